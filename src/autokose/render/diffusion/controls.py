"""Identity and layout controls for the diffusion pipeline: LoRA, IP-Adapter, ControlNet.

LoRA. Every LoRA (the user's `--lora` files and each story character's own, from the cast
stage) is loaded as a named peft adapter. The user's act on the whole frame with their weight.
A character's own LoRA acts inside that character's figure only (`regional.py`; with
`--no-regional` it too acts on the whole frame, and fires mostly where its trigger token is,
which the prompt builder puts only in that character's frames). diffusers reads both the
diffusers/peft and the kohya-ss key layouts.

IP-Adapter. h94 layouts (base, plus, plus-face) from a file, a folder, or a name that resolves
inside the `h94/IP-Adapter` repo (`ip-adapter-plus-face_sd15` → models/<name>.safetensors,
image encoder models/image_encoder; SDXL non-ViT-H names use sdxl_models/). Every character
with reference images conditions its own figure: one IP-Adapter image per character, masked
to the figure's box in the scene's layout (diffusers' `ip_adapter_masks`), so two characters
in one frame do not blend into one face and frames without them are left alone. A
character's image embedding (averaged over its references) is computed once and cached in
memory and on disk, keyed by the image bytes and the encoder. FaceID variants take InsightFace
ArcFace embeddings instead of images: `faceid.py` loads them (this module refuses them).

ControlNet. An OpenPose skeleton per frame drawn from the scene's Layout at the generation
size (the same drawing as the board's control/NN_pose.png), with a conditioning scale. A
lineart ControlNet, alone or beside OpenPose, takes the previz frame of the same layout drawn
as its ink alone: every outline in the previz drawings is one colour (`previz.svg.INK`), so
recolouring the SVG (ink white, all else black) and rasterising it gives exactly the drawn
lines, one per outline and anti-aliased, whatever the fills or the time of day. Edge detection
on the coloured frame would double every stroke (both sides of it), add the edges of fills and
clouds, and lose lines on dark night scenes.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from autokose.models import LoraRef
from autokose.errors import InputError, first_line
from autokose.models import (
    check_folder_weights,
    check_text_encoder_lora_support,
    check_weights,
    check_weights_file,
    hub_file,
    is_peft_version_error,
    locate,
    peft_mismatch,
)

IP_ADAPTER_REPO = "h94/IP-Adapter"
# Text-encoder LoRA keys: diffusers/peft (`text_encoder.…`, `text_encoder_2.…`) and kohya (`lora_te…`).
_TEXT_ENCODER_KEYS = ("text_encoder", "lora_te")


# --------------------------------------------------------------------------- LoRA
@dataclass
class LoadedLora:
    name: str
    path: str
    weight: float
    character: str | None = None


def adapter_name(path: str, taken: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_]", "_", Path(path).stem) or "lora"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def check_lora(ref: LoraRef, character: str | None = None) -> None:
    """A LoRA file that will load: safetensors, readable header, and a library pair that can take it."""
    try:
        keys = check_weights(Path(ref.path).expanduser(), "lora")
        if any(k.startswith(_TEXT_ENCODER_KEYS) for k in keys):
            check_text_encoder_lora_support(f"--lora {ref.path}")
    except InputError as e:
        if character is None:
            raise
        raise InputError(f"character {character}'s LoRA: {e}") from None


def apply_loras(pipe, refs: list[tuple[LoraRef, str | None]], regional: bool = False) -> list[LoadedLora]:
    """Load each (LoraRef, character id or None) as an adapter and activate them with their weights.

    With `regional`, a character's own LoRA stays out of peft's active set: the regional hooks
    (`regional.py`) add it inside the character's figure only. LoRAs without an owner act globally.
    """
    loaded: list[LoadedLora] = []
    seen: dict[str, LoadedLora] = {}
    for ref, character in refs:
        path = check_weights_file(Path(ref.path).expanduser())
        key = str(path.resolve())
        if key in seen:  # the same file twice (e.g. --lora and the bible): load once, keep the last weight
            seen[key].weight = ref.weight
            continue
        name = adapter_name(str(path), {lo.name for lo in loaded})
        try:
            pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as e:
            if is_peft_version_error(e):
                raise InputError(peft_mismatch(f"--lora {ref.path}")) from None
            raise InputError(f"--lora {ref.path}: not a LoRA this model can use ({first_line(e)[:200]})") from None
        seen[key] = LoadedLora(name, str(path), ref.weight, character)
        loaded.append(seen[key])
    active = [lo for lo in loaded if not (regional and lo.character)]
    if active:
        pipe.set_adapters([lo.name for lo in active], adapter_weights=[lo.weight for lo in active])
    elif loaded:  # only characters' LoRAs, all regional: none acts on the whole frame
        pipe.disable_lora()
    return loaded


# --------------------------------------------------------------------------- IP-Adapter
@dataclass
class IpAdapterFiles:
    weights: Path
    image_encoder: Path
    name: str


def _encoder_subfolder(name: str, arch: str) -> str:
    return "models/image_encoder" if arch == "sd15" or "vit-h" in name.lower() else "sdxl_models/image_encoder"


def _find_encoder(weights: Path) -> Path | None:
    for folder in (weights.parent / "image_encoder", weights.parent.parent / "models" / "image_encoder",
                   weights.parent.parent / "image_encoder"):
        if (folder / "config.json").is_file():
            return folder
    return None


def resolve_ip_adapter(spec: str, arch: str) -> IpAdapterFiles:
    """A file, a folder (with one IP-Adapter file), or an h94 weight name → local weights + image encoder."""
    if "faceid" in spec.lower():
        raise InputError(f"--ip-adapter {spec}: a FaceID adapter takes InsightFace face embeddings, not images "
                         "(load it with autokose.render.diffusion.faceid)")
    path = Path(spec).expanduser()
    is_name = "/" not in spec and "\\" not in spec and not path.exists()
    if is_name:
        name = spec.removesuffix(".safetensors")
        if name.endswith((".bin", ".ckpt")):
            check_weights_file(Path(name))
        sub = "models" if arch == "sd15" else "sdxl_models"
        weights = hub_file(IP_ADAPTER_REPO, f"{name}.safetensors", subfolder=sub, what="ip-adapter")
        enc_sub = _encoder_subfolder(name, arch)
        hub_file(IP_ADAPTER_REPO, "model.safetensors", subfolder=enc_sub, what="ip-adapter")
        encoder = hub_file(IP_ADAPTER_REPO, "config.json", subfolder=enc_sub, what="ip-adapter").parent
        return IpAdapterFiles(weights, encoder, name)
    source = locate(spec, "ip-adapter")
    if source.kind == "hub":
        raise InputError(f"--ip-adapter {spec}: give a weight name like ip-adapter-plus-face_sd15 "
                         f"(looked up in {IP_ADAPTER_REPO}), a .safetensors file or a folder")
    weights = Path(source.location)
    if source.kind == "folder":
        found = sorted(p for d in (weights, weights / "models", weights / "sdxl_models") if d.is_dir()
                       for p in d.glob("ip-adapter*.safetensors"))
        if len(found) != 1:
            raise InputError(f"--ip-adapter {spec}: expected one ip-adapter*.safetensors in the folder "
                             f"(found {len(found)}); give the file instead")
        weights = found[0]
    encoder = _find_encoder(weights)
    if encoder is None:
        raise InputError(f"--ip-adapter {spec}: no image_encoder/ folder beside {weights.name} "
                         f"(the h94 layout keeps it in models/image_encoder)")
    return IpAdapterFiles(weights, encoder, weights.stem)


def check_ip_adapter(files: IpAdapterFiles) -> None:
    """The adapter weights and its image encoder (config.json, safetensors weights) are readable."""
    check_weights(files.weights, "ip-adapter")
    if not (files.image_encoder / "config.json").is_file():
        raise InputError(f"--ip-adapter: no config.json in its image encoder folder {files.image_encoder}")
    check_folder_weights(files.image_encoder, "ip-adapter")


def check_references(cid: str, paths: list[Path]) -> None:
    """A character's IP-Adapter reference images: present, not a pixel bomb (by the header) and
    decodable to the end (a few small photos: a truncated one must fail now, not mid-render)."""
    from autokose.images import Unreadable, open_rgb

    for path in paths:
        try:
            open_rgb(path)
        except Unreadable as e:
            raise InputError(f"{cid}: reference image {path}: {e}") from None


def load_image_encoder(pipe, folder: Path) -> None:
    """The IP-Adapter's CLIP image encoder (safetensors only) from `folder`, registered on `pipe`."""
    from transformers import CLIPVisionModelWithProjection

    try:
        encoder = CLIPVisionModelWithProjection.from_pretrained(str(folder), dtype=pipe.unet.dtype,
                                                                use_safetensors=True)
    except (OSError, ValueError) as e:
        raise InputError(f"--ip-adapter: cannot load the image encoder in {folder} ({e})") from None
    pipe.register_modules(image_encoder=encoder.to(pipe.unet.device))


def load_ip_adapter(pipe, files: IpAdapterFiles) -> None:
    load_image_encoder(pipe, files.image_encoder)
    try:
        pipe.load_ip_adapter(str(files.weights.parent), subfolder="", weight_name=files.weights.name,
                             image_encoder_folder=None, local_files_only=True)
    except (ValueError, KeyError, RuntimeError) as e:
        raise InputError(f"--ip-adapter {files.weights}: does not fit this model ({first_line(e)[:200]})") from None


def image_hash(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class ReferenceEmbeddings:
    """Per character: the IP-Adapter image embedding (negative and positive), computed once.

    Cached in memory and as safetensors under `cache_dir/ip-embeds/<key>.safetensors`, where the
    key hashes the reference images' bytes and the adapter + encoder files.
    """

    pipe: object
    encoder_id: str
    cache_dir: Path
    memory: dict[str, tuple] = field(default_factory=dict)

    def key(self, images: list[Path]) -> str:
        h = hashlib.sha256(self.encoder_id.encode())
        for p in images:
            h.update(image_hash(p).encode())
        return h.hexdigest()[:32]

    def get(self, images: list[Path]):
        """(negative, positive) embeddings [1, tokens, dim] for these images (averaged)."""
        from safetensors.torch import load_file, save_file

        from autokose.fsio import write_with

        missing = [str(p) for p in images if not Path(p).is_file()]
        if missing:
            raise InputError(f"reference image not found: {missing[0]}")
        key = self.key(images)
        if key in self.memory:
            return self.memory[key]
        file = self.cache_dir / "ip-embeds" / f"{key}.safetensors"
        if file.is_file():
            data = load_file(str(file))
            pair = (data["negative"], data["positive"])
        else:
            pair = self._compute(images)
            write_with(file, lambda tmp: save_file({"negative": pair[0].contiguous(), "positive": pair[1].contiguous()},
                                                   str(tmp)))
        self.memory[key] = pair
        return pair

    def _compute(self, images: list[Path]):
        import torch

        from autokose.images import Unreadable, open_rgb

        pipe = self.pipe
        pictures = []
        for p in images:
            try:
                pictures.append(open_rgb(p))
            except Unreadable as e:
                raise InputError(f"{p}: {e}") from None
        with torch.no_grad():
            per_image = [pipe.prepare_ip_adapter_image_embeds([im], None, pipe._execution_device, 1, True)[0]
                         for im in pictures]
        stacked = torch.stack([e.float().cpu() for e in per_image])  # [n, 2, tokens, dim]: negative, positive
        mean = stacked.mean(0)
        return mean[:1], mean[1:]

    def unconditional(self):
        """The zero-image embedding (both halves), for frames without a referenced character."""
        import torch

        key = "uncond"
        if key not in self.memory:
            pipe = self.pipe
            from PIL import Image

            blank = Image.new("RGB", (224, 224))
            with torch.no_grad():
                e = pipe.prepare_ip_adapter_image_embeds([blank], None, pipe._execution_device, 1, True)[0]
            neg = e[:1].float().cpu()
            self.memory[key] = (neg, neg)
        return self.memory[key]


def default_cache_dir() -> Path:
    env = os.environ.get("AUTOKOSE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "autokose"


def file_fingerprint(path: Path, span: int = 1 << 20) -> str:
    """Size + first and last MiB: tells weight files apart without reading gigabytes each run."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with open(path, "rb") as f:
        h.update(f.read(span))
        f.seek(max(0, path.stat().st_size - span))
        h.update(f.read(span))
    return h.hexdigest()[:16]


def encoder_id(files: IpAdapterFiles) -> str:
    """Identifies what turns images into embeddings: the adapter (its projection) and the image encoder."""
    enc = sorted(files.image_encoder.glob("*.safetensors"))
    return "|".join([files.name, file_fingerprint(files.weights)] + [file_fingerprint(p) for p in enc])


# --------------------------------------------------------------------------- ControlNet
def pose_images(layouts, width: int, height: int) -> list:
    """OpenPose skeleton images at the generation size, one per layout."""
    try:
        from autokose.openpose import draw_pose
    except ImportError:
        raise InputError("--controlnet: the OpenPose drawing module (autokose.openpose) is not available") from None
    return [draw_pose(layout, width, height).convert("RGB") for layout in layouts]


_PAINT = re.compile(r'\b(fill|stroke)="([^"]*)"')


def ink_only(svg: str) -> str:
    """A previz SVG with its ink white and every other paint black (`none` stays unpainted).

    Shapes keep their order, so fills still hide the lines behind them.
    """
    from autokose.previz.svg import INK

    def repaint(m: re.Match) -> str:
        attr, value = m.groups()
        if value == "none" or value.startswith("url("):
            return m.group(0)
        return f'{attr}="{"#ffffff" if value.lower() == INK else "#000000"}"'

    return _PAINT.sub(repaint, svg)


def lineart_images(story, layouts, width: int, height: int) -> list:
    """Lineart controls at the generation size, one per layout: the previz frame's ink, white on black.

    Drawn from the layouts as given (as the pose skeletons are), so both controls line up;
    the background's seed is the scene's own, so re-rolling a frame's noise keeps its lines.
    """
    from autokose.previz.designs import design_for
    from autokose.render.previz import rasterise, scene_svg

    designs = {c.id: design_for(c) for c in story.characters}
    seeds = {sc.index: sc.seed for sc in story.scenes}
    return [rasterise(ink_only(scene_svg(layout, designs, width, height, seeds.get(layout.index, 0))))
            for layout in layouts]
