"""Face-identity adapters: IP-Adapter FaceID (base, plus, plus v2, portrait) for SD 1.5 / SDXL.

FaceID conditions on a face's identity, not its picture: the adapter's projection takes an
InsightFace ArcFace embedding (512 numbers per face), so lighting, crop and drawing style of the
reference photos matter far less than with the CLIP-image adapters in `controls.py`. The Plus
variants also take the CLIP image encoder's penultimate hidden states of the aligned face crop
(their "structure"), and Plus v2 adds the ID tokens back on top (`shortcut`).

Weights. h94 ships FaceID as pickled `.bin` files (`h94/IP-Adapter-FaceID`); they are read with
`torch.load(weights_only=True)`, which only rebuilds tensors and dicts, or from a `.safetensors`
conversion with the `image_proj.` / `ip_adapter.` key prefixes diffusers writes. The base and
plus files also hold a LoRA for every attention of the UNet (`N.to_q_lora.down.weight`, …) that
the adapter was trained with. diffusers would load it as a peft adapter called `faceid_0` and
switch every other adapter off (`set_adapters(["faceid_0"])`), silencing the characters' LoRAs;
the LoRA is always on at weight 1 in h94's code, so here it is merged into the attention weights
once instead, and the character LoRAs stay as they were set.

Embeddings. A character's identity is the mean of the normed embeddings of the largest face in
each of its reference images, normalised again (the adapter was trained on unit vectors; the
`_unnorm` SDXL portrait file on the raw embedding, averaged as is). Portrait adapters were
trained on several faces at once, as separate token groups; here too every region gets one mean
embedding, because the engine gives each region one IP-Adapter slot under its mask. The
negative is the zero embedding (as in h94's code). The embeddings are cached like
`controls.ReferenceEmbeddings` (memory and disk), keyed by the image bytes, the adapter and the
InsightFace model pack.

The Plus projection reads its CLIP embeddings from an attribute (`clip_embeds`) rather than from
the call. To keep one slot per region with its own mask, the engine's embeddings carry both:
each slot is the ID embedding followed by the flattened CLIP hidden states, and a thin wrapper
around the projection splits them again inside the UNet call (`packed_plus_projection`).

InsightFace. `pip install insightface onnxruntime` and the buffalo_l model pack (the one h94
trained FaceID with) unpacked to `~/.insightface/models/buffalo_l/` or anywhere named by
`AUTOKOSE_INSIGHTFACE` (the pack folder, or a root holding `models/buffalo_l`). InsightFace downloads a missing pack on its own;
that is never allowed to happen: a missing pack is refused, with where to put it, by `check()`.

PuLID (SDXL) is refused: see `PULID_REFUSAL` for why.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autokose.errors import InputError, first_line
from autokose.models import check_folder_weights, hub_file, safetensors_keys
from autokose.render.diffusion import controls

FACEID_REPO = "h94/IP-Adapter-FaceID"
# h94 trained FaceID on buffalo_l's recognition model (w600k_r50); another pack's ArcFace (antelopev2's
# glintr100) embeds faces in another space, so it is used only when named, with a warning.
PACK = "buffalo_l"
INSIGHTFACE_ENV = "AUTOKOSE_INSIGHTFACE"
ID_DIM = 512  # ArcFace embedding size
INSTALL = "pip install insightface onnxruntime (onnxruntime-gpu on CUDA)"
PULID_REFUSAL = ("PuLID is not supported: its ID encoder (IDFormer) and attention processors are code from the "
                 "PuLID repo that diffusers does not ship, and its EVA02-CLIP and face-parsing weights are "
                 "pickles; use an IP-Adapter FaceID (e.g. ip-adapter-faceid-plusv2_sdxl) instead")


def is_face_adapter(spec: str | None) -> bool:
    """Whether `--ip-adapter spec` names a face-identity adapter (FaceID, PuLID) handled here."""
    return bool(spec) and bool(re.search(r"faceid|pulid", Path(spec).name.lower()))


# --------------------------------------------------------------------------- files
@dataclass
class FaceIdFiles:
    """A FaceID adapter on disk: its weights, its variant and (Plus) the CLIP image encoder it needs."""

    weights: Path
    name: str
    variant: str  # "base", "plus" or "portrait": from the name; `check_weights` holds the weights to it
    shortcut: bool = False  # Plus v2: ID tokens added to the resampler's output
    normed: bool = True  # False for the `_unnorm` portrait: raw ArcFace embeddings
    image_encoder: Path | None = None


def _variant_of_name(name: str) -> str:
    low = name.lower()
    return "plus" if "plus" in low else "portrait" if "portrait" in low else "base"


def _check_arch(spec: str, stem: str, arch: str) -> None:
    stem = stem.lower()
    if arch != "sdxl" and "sdxl" in stem:
        raise InputError(f"--ip-adapter {spec}: an SDXL FaceID adapter on an SD 1.5 model")
    if arch == "sdxl" and "sd15" in stem:
        raise InputError(f"--ip-adapter {spec}: an SD 1.5 FaceID adapter on an SDXL model")


def _encoder_for(weights: Path) -> Path:
    """The CLIP ViT-H image encoder of the Plus variants: beside the weights, else h94/IP-Adapter's."""
    for folder in (weights.parent / "image_encoder", weights.parent / "models" / "image_encoder",
                   weights.parent.parent / "models" / "image_encoder"):
        if (folder / "config.json").is_file():
            return folder
    sub = "models/image_encoder"  # FaceID Plus uses ViT-H for SD 1.5 and SDXL alike
    hub_file(controls.IP_ADAPTER_REPO, "model.safetensors", subfolder=sub, what="ip-adapter")
    return hub_file(controls.IP_ADAPTER_REPO, "config.json", subfolder=sub, what="ip-adapter").parent


def resolve(spec: str, arch: str) -> FaceIdFiles:
    """A FaceID file (.bin or .safetensors), a folder with one, or an h94 FaceID weight name → FaceIdFiles."""
    if "pulid" in Path(spec).name.lower():
        raise InputError(f"--ip-adapter {spec}: {PULID_REFUSAL}")
    path = Path(spec).expanduser()
    _check_arch(spec, path.name, arch)  # before any hub lookup
    if path.is_dir():
        found = sorted(p for p in path.glob("*faceid*") if p.suffix in (".bin", ".safetensors")
                       and not p.stem.endswith("_lora"))
        if len(found) != 1:
            raise InputError(f"--ip-adapter {spec}: expected one *faceid*.bin or .safetensors in the folder "
                             f"(found {len(found)}); give the file instead")
        path = found[0]
    elif not path.is_file():
        if "/" in spec or "\\" in spec or path.suffix not in ("", ".bin", ".safetensors"):
            raise InputError(f"--ip-adapter {spec}: no such file or folder")
        name = path.stem if path.suffix else spec
        path = hub_file(FACEID_REPO, path.name if path.suffix else f"{name}.bin", what="ip-adapter")
    if path.suffix not in (".bin", ".safetensors"):
        raise InputError(f"--ip-adapter {spec}: expected a FaceID .bin or .safetensors file")
    _check_arch(spec, path.stem, arch)
    variant = _variant_of_name(path.stem)
    return FaceIdFiles(weights=path, name=path.stem, variant=variant, shortcut="plusv2" in path.stem.lower(),
                       normed="unnorm" not in path.stem.lower(),
                       image_encoder=_encoder_for(path) if variant == "plus" else None)


def read_state(path: Path) -> dict:
    """{"image_proj": {...}, "ip_adapter": {...}} from a FaceID file; never unpickles code."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            flat = load_file(str(path))
        except Exception as e:  # safetensors' own error types for bad headers and short files
            raise InputError(f"--ip-adapter {path}: not a readable safetensors file ({first_line(e)[:160]})") from None
        state: dict = {"image_proj": {}, "ip_adapter": {}}
        for key, value in flat.items():
            head, _, rest = key.partition(".")
            if head in state:
                state[head][rest] = value
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # UnpicklingError for anything but tensors and containers, zip errors
            raise InputError(f"--ip-adapter {path}: not a FaceID weights file torch can read safely "
                             f"({first_line(e)[:160]})") from None
    if not isinstance(state, dict) or not state.get("image_proj") or not state.get("ip_adapter"):
        raise InputError(f"--ip-adapter {path}: no image_proj / ip_adapter weights (not an IP-Adapter FaceID file)")
    return state


def check_weights(files: FaceIdFiles) -> None:
    """The adapter file holds FaceID weights (a cheap read: safetensors header, or a memory-mapped .bin)."""
    if files.weights.suffix == ".safetensors":
        keys = safetensors_keys(files.weights)
        proj = {k.partition(".")[2] for k in keys if k.startswith("image_proj.")}
        if not any(k.startswith("ip_adapter.") for k in keys):
            proj = set()
    else:
        proj = set(read_state(files.weights)["image_proj"])
    if "perceiver_resampler.proj_in.weight" in proj:
        kind = "plus"
    elif "norm.weight" in proj:
        kind = "base"
    else:
        raise InputError(f"--ip-adapter {files.weights}: not an IP-Adapter FaceID file "
                         "(its image_proj is no FaceID projection)")
    if (kind == "plus") != (files.variant == "plus"):
        raise InputError(f"--ip-adapter {files.weights}: the name says {files.variant}, the weights are "
                         f"{'a Plus' if kind == 'plus' else 'a non-Plus'} FaceID adapter; rename the file")


# --------------------------------------------------------------------------- InsightFace
def require_insightface(spec: str) -> None:
    missing = [m for m in ("insightface", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(f"--ip-adapter {spec}: FaceID needs InsightFace face embeddings, and {' and '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not installed: {INSTALL}")


def _has_onnx(folder: Path) -> bool:
    return folder.is_dir() and any(folder.glob("*.onnx"))


def insightface_pack() -> Path | None:
    """The InsightFace model pack folder: $AUTOKOSE_INSIGHTFACE (a pack, or a root holding
    models/buffalo_l), else ~/.insightface/models/buffalo_l; None when it holds no .onnx file."""
    given = os.environ.get(INSIGHTFACE_ENV)
    root = Path(given).expanduser() if given else Path.home() / ".insightface"
    for folder in ([root] if given else []) + [root / "models" / PACK, root / PACK]:
        for pack in (folder, folder / folder.name):  # some zips unpack one folder deeper
            if _has_onnx(pack):
                return pack
    return None


def pack_hint() -> str:
    given = os.environ.get(INSIGHTFACE_ENV)
    where = f"{given} (${INSIGHTFACE_ENV})" if given else f"~/.insightface/models/{PACK}/ (or set {INSIGHTFACE_ENV})"
    return f"no InsightFace model pack: unzip {PACK}.zip so that {where} holds its .onnx files"


def check_insightface(spec: str) -> Path:
    """InsightFace and onnxruntime importable and a model pack present (never downloaded); the pack folder."""
    require_insightface(spec)
    pack = insightface_pack()
    if pack is None:
        raise InputError(f"--ip-adapter {spec}: {pack_hint()}")
    if pack.name != PACK:
        logging.getLogger("autokose").warning(
            f"InsightFace pack {pack.name}: FaceID was trained on {PACK}'s face embeddings; another pack's "
            "recognition model may not keep the identity")
    return pack


@dataclass
class Face:
    """One detected face: its box (x0, y0, x1, y1 in pixels), ArcFace embedding and aligned crop."""

    box: tuple[float, float, float, float]
    embedding: object  # np.ndarray [512], as the recognition model gives it
    normed: object  # np.ndarray [512], unit length
    crop: object = None  # PIL image of the aligned face (224 x 224), for the Plus variants

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])


FaceEmbedder = Callable[[object], list[Face]]  # RGB PIL image → its faces


def insightface_embedder(spec: str) -> tuple[FaceEmbedder, str]:
    """An embedder over the user's InsightFace model pack, and an id of the pack for the embedding cache."""
    import numpy as np

    pack = check_insightface(spec)
    from insightface.app import FaceAnalysis
    from insightface.utils import face_align
    from PIL import Image

    try:
        app = FaceAnalysis(name=str(pack), allowed_modules=["detection", "recognition"])
        app.prepare(ctx_id=0, det_size=(640, 640))
    except Exception as e:  # onnxruntime errors, a pack without a detector (AssertionError)
        raise InputError(f"InsightFace model pack {pack}: cannot be loaded ({first_line(e)[:160]})") from None

    def embed(image) -> list[Face]:
        bgr = np.asarray(image.convert("RGB"))[:, :, ::-1].copy()
        faces = []
        for f in app.get(bgr):
            if f.embedding is None or f.kps is None:  # detected, but not recognisable
                continue
            crop = face_align.norm_crop(bgr, landmark=f.kps, image_size=224)
            faces.append(Face(tuple(float(v) for v in f.bbox), f.embedding, f.normed_embedding,
                              Image.fromarray(crop[:, :, ::-1].copy())))
        return faces

    onnx = sorted(pack.glob("*.onnx"))
    return embed, "|".join([pack.name] + [controls.file_fingerprint(p) for p in onnx])


# --------------------------------------------------------------------------- loading into a pipeline
def packed_plus_projection(inner, tokens: int, dim: int):
    """Wrap a FaceID Plus projection so each slot's CLIP embeddings travel with its ID embedding.

    Input rows are [ID embedding (512) | CLIP hidden states flattened (tokens x dim)]; the
    wrapper sets them as the projection's `clip_embeds` for this call and projects the ID part.
    """
    import torch

    class PackedFaceIdPlusProjection(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = inner

        def forward(self, packed):
            ids, clip = packed[:, :ID_DIM], packed[:, ID_DIM:]
            self.inner.clip_embeds = clip.reshape(-1, 1, tokens, dim).to(self.inner.proj_in.weight.dtype)
            try:
                return self.inner(ids)
            finally:
                self.inner.clip_embeds = None

    return PackedFaceIdPlusProjection()


def merge_faceid_lora(unet, ip_adapter_state: dict) -> dict:
    """Merge the adapter's attention LoRA (h94: `N.to_q_lora.down.weight`, N over all attentions) into
    the UNet's attention weights; the state without the LoRA keys."""
    import torch

    lora = {k: v for k, v in ip_adapter_state.items() if "_lora." in k}
    if not lora:
        return ip_adapter_state
    pairs = []  # (linear, up, down), all checked before any weight changes
    for n, name in enumerate(unet.attn_processors):
        attn = unet.get_submodule(name.rsplit(".", 1)[0])
        for part, module in (("to_q", attn.to_q), ("to_k", attn.to_k), ("to_v", attn.to_v), ("to_out", attn.to_out[0])):
            down, up = lora.get(f"{n}.{part}_lora.down.weight"), lora.get(f"{n}.{part}_lora.up.weight")
            if down is None or up is None:
                continue
            linear = getattr(module, "base_layer", module)  # under a character's peft LoRA
            if (up.shape[0], down.shape[1]) != tuple(linear.weight.shape) or up.shape[1] != down.shape[0]:
                raise InputError(f"--ip-adapter: its LoRA for {name.rsplit('.', 1)[0]}.{part} is "
                                 f"{up.shape[0]}x{down.shape[1]}, the model's {tuple(linear.weight.shape)}: "
                                 "an adapter for another model (SD 1.5 / SDXL)")
            pairs.append((linear, up, down))
    with torch.no_grad():
        for linear, up, down in pairs:
            linear.weight += (up.float() @ down.float()).to(linear.weight.device, linear.weight.dtype)
    return {k: v for k, v in ip_adapter_state.items() if k not in lora}


def load_into(pipe, files: FaceIdFiles) -> None:
    """Load the adapter (and for Plus its image encoder) into `pipe`."""
    state = read_state(files.weights)
    state = {"image_proj": dict(state["image_proj"]), "ip_adapter": merge_faceid_lora(pipe.unet, state["ip_adapter"])}
    if files.image_encoder is not None:
        controls.load_image_encoder(pipe, files.image_encoder)
    # Without an image encoder diffusers warns that `ip_adapter_image` will not work: FaceID takes embeddings.
    quiet = logging.getLogger("diffusers.loaders.ip_adapter")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        pipe.load_ip_adapter(state, subfolder="", weight_name=files.weights.name, image_encoder_folder=None)
    except (ValueError, KeyError, RuntimeError) as e:
        raise InputError(f"--ip-adapter {files.weights}: does not fit this model ({first_line(e)[:200]})") from None
    finally:
        quiet.setLevel(level)
    if files.variant == "plus":
        layers = pipe.unet.encoder_hid_proj.image_projection_layers
        inner = layers[0]
        inner.shortcut = files.shortcut
        cfg = pipe.image_encoder.config
        layers[0] = packed_plus_projection(inner, (cfg.image_size // cfg.patch_size) ** 2 + 1, cfg.hidden_size)


@dataclass
class FaceEmbeddings(controls.ReferenceEmbeddings):
    """`controls.ReferenceEmbeddings` for FaceID: (negative, positive) [1, 1, D] per character.

    D is 512, or for Plus 512 + the CLIP hidden states of the aligned face crops, flattened.
    """

    embedder: FaceEmbedder | None = None
    files: FaceIdFiles | None = None

    def _faces(self, images: list[Path]) -> list[Face]:
        from autokose.images import Unreadable, open_rgb

        largest = []
        for p in images:
            try:
                picture = open_rgb(p)
            except Unreadable as e:
                raise InputError(f"{p}: {e}") from None
            faces = self.embedder(picture)
            if not faces:
                raise InputError(f"reference image {p}: no face found (FaceID needs a visible face in every reference)")
            largest.append(max(faces, key=lambda f: f.area))
        return largest

    def _compute(self, images: list[Path]):
        import torch

        faces = self._faces(images)
        vectors = torch.stack([torch.as_tensor(f.normed if self.files.normed else f.embedding, dtype=torch.float32)
                               for f in faces])
        ident = vectors.mean(0)
        if self.files.normed:
            ident = ident / ident.norm().clamp_min(1e-6)
        pos, neg = ident.reshape(1, 1, -1), torch.zeros(1, 1, ident.numel())
        if self.files.variant == "plus":
            clip_pos, clip_neg = self._clip([f.crop for f in faces])
            pos, neg = torch.cat([pos, clip_pos], -1), torch.cat([neg, clip_neg], -1)
        return neg, pos

    def _clip(self, crops: list):
        """Mean penultimate CLIP hidden states of the face crops, and of a black image (the negative)."""
        import torch

        pipe = self.pipe
        with torch.no_grad():
            pairs = [pipe.encode_image(crop, pipe._execution_device, 1, output_hidden_states=True) for crop in crops]
        pos = torch.stack([p.float().cpu() for p, _ in pairs]).mean(0)
        neg = pairs[0][1].float().cpu()
        return pos.reshape(1, 1, -1), neg.reshape(1, 1, -1)

    def unconditional(self):
        """Zeros (ID) and the black-image CLIP states: what padding slots under an all-zero mask carry."""
        import torch

        if "uncond" not in self.memory:
            neg = torch.zeros(1, 1, ID_DIM)
            if self.files.variant == "plus":
                from PIL import Image

                _, clip_neg = self._clip([Image.new("RGB", (224, 224))])
                neg = torch.cat([neg, clip_neg], -1)
            self.memory["uncond"] = (neg, neg)
        return self.memory["uncond"]


# --------------------------------------------------------------------------- the engine's two calls
def check(spec: str, arch: str) -> FaceIdFiles:
    """Everything a FaceID run needs, without loading weights: InsightFace with a model pack, the adapter
    file, and for Plus its image encoder. InputError (one line) otherwise."""
    files = resolve(spec, arch)
    check_insightface(spec)
    check_weights(files)
    if files.image_encoder is not None:
        if not (files.image_encoder / "config.json").is_file():
            raise InputError(f"--ip-adapter {spec}: no config.json in its image encoder folder {files.image_encoder}")
        check_folder_weights(files.image_encoder, "ip-adapter")
    return files


def load(pipe, spec: str, arch: str, cache_dir: str | None,
         embedder: tuple[FaceEmbedder, str] | None = None) -> tuple[FaceIdFiles, FaceEmbeddings]:
    """Load the FaceID adapter into `pipe`; its files and the per-character embeddings.

    `embedder` (function, id) replaces InsightFace (tests; another face model)."""
    files = resolve(spec, arch)
    embed, model_id = embedder or insightface_embedder(spec)
    load_into(pipe, files)
    cache = Path(cache_dir) if cache_dir else controls.default_cache_dir()
    enc = [controls.file_fingerprint(p) for p in sorted(files.image_encoder.glob("*.safetensors"))] \
        if files.image_encoder else []
    ident = "|".join(["faceid", files.name, controls.file_fingerprint(files.weights), model_id, *enc])
    return files, FaceEmbeddings(pipe, hashlib.sha256(ident.encode()).hexdigest(), cache, embedder=embed, files=files)
