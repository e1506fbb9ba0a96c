"""IP-Adapter FaceID: h94 weight files into a tiny SD 1.5 pipeline, face embeddings in, frames out.

InsightFace and its model packs are downloads the tests do not have, so the face embedder is
injected: it "finds" one face per picture whose 512-d embedding is seeded by the picture's
pixels (and none in an all-black one). The adapters are random tiny weights in h94's key layout
(projection, to_k_ip/to_v_ip, and the attention LoRA the base and plus files carry), saved as a
pickled .bin (read with weights_only) or as safetensors.
"""

from __future__ import annotations

import hashlib
import logging

import numpy as np
import pytest
import tiny
import torch
from PIL import Image
from safetensors.torch import save_file
from test_ip_adapter_regions import ip_effects, token_box_mask

from autokose.errors import InputError
from autokose.regions import box_mask
from autokose.render.diffusion import DiffusionSettings, faceid
from autokose.render.diffusion.engine import DiffusionEngine, FrameRequest, Region

W, H = 128, 64  # the token grid test_ip_adapter_regions.token_box_mask assumes
LORA_RANK = 4


# --------------------------------------------------------------------------- tiny FaceID files (h94 layout)
def _h94_plus_projection(state: dict) -> dict:
    """diffusers IPAdapterFaceIDPlusImageProjection keys → h94's (perceiver_resampler.*, proj.0/2, norm)."""
    out = {}
    for key, value in tiny._plus_projection_to_h94(state).items():
        if key.startswith("proj.net.0.proj."):
            out["proj.0." + key.rsplit(".", 1)[1]] = value
        elif key.startswith("proj.net.2."):
            out["proj.2." + key.rsplit(".", 1)[1]] = value
        elif key.startswith(("layers.", "proj_in.", "proj_out.", "norm_out.")):
            out["perceiver_resampler." + key] = value
        else:
            out[key] = value
    return out


def _adapter_layers(unet, cross: int, g: torch.Generator) -> dict:
    """to_k_ip/to_v_ip per cross-attention (ids 1, 3, …) and a LoRA on every attention (ids 0, 1, …)."""
    layers = {}
    for n, name in enumerate(unet.attn_processors):
        attn = unet.get_submodule(name.rsplit(".", 1)[0])
        if name.endswith("attn2.processor"):
            for kv in ("to_k_ip", "to_v_ip"):
                layers[f"{n}.{kv}.weight"] = torch.randn(attn.to_k.out_features, cross, generator=g) * 0.5
        for part, lin in (("to_q", attn.to_q), ("to_k", attn.to_k), ("to_v", attn.to_v), ("to_out", attn.to_out[0])):
            layers[f"{n}.{part}_lora.down.weight"] = torch.randn(LORA_RANK, lin.in_features, generator=g) * 0.1
            layers[f"{n}.{part}_lora.up.weight"] = torch.randn(lin.out_features, LORA_RANK, generator=g) * 0.1
    return layers


def tiny_faceid(folder, kind: str = "base", fmt: str = "bin", sdxl: bool = False):
    """An h94 FaceID file: kind "base" (MLP projection) or "plusv2" (resampler over CLIP; + image_encoder/)."""
    from diffusers.models.embeddings import IPAdapterFaceIDImageProjection, IPAdapterFaceIDPlusImageProjection

    folder = folder / f"faceid-{kind}-{fmt}{'-sdxl' if sdxl else ''}"
    path = folder / f"ip-adapter-faceid{'-plusv2' if kind == 'plusv2' else ''}_{'sdxl' if sdxl else 'sd15'}.{fmt}"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    unet = tiny._unet(sdxl=sdxl)
    cross = unet.config.cross_attention_dim
    torch.manual_seed(tiny.SEED + 20)
    if kind == "base":
        proj = IPAdapterFaceIDImageProjection(image_embed_dim=512, cross_attention_dim=cross, mult=1, num_tokens=4)
        image_proj = {k.replace("ff.net.0.proj", "proj.0").replace("ff.net.2", "proj.2"): v
                      for k, v in proj.state_dict().items()}
    else:
        encoder = tiny._image_encoder()
        encoder.save_pretrained(folder / "image_encoder", safe_serialization=True)
        # h94's ID tokens are as wide as the cross-attention (Plus v2 adds them to the output)
        proj = IPAdapterFaceIDPlusImageProjection(embed_dims=cross, output_dims=cross, id_embeddings_dim=512,
                                                  hidden_dims=encoder.config.hidden_size, heads=1)
        image_proj = _h94_plus_projection(proj.state_dict())
    layers = _adapter_layers(unet, cross, torch.Generator().manual_seed(tiny.SEED + 21))
    if fmt == "bin":
        torch.save({"image_proj": image_proj, "ip_adapter": layers}, path)
    else:
        flat = {f"image_proj.{k}": v.contiguous() for k, v in image_proj.items()}
        flat.update({f"ip_adapter.{k}": v.contiguous() for k, v in layers.items()})
        save_file(flat, str(path))
    return path


# --------------------------------------------------------------------------- the injected face embedder
def fake_faces(image: Image.Image) -> list[faceid.Face]:
    """One face covering the picture, its identity seeded by the pixels; no face in a black picture."""
    pixels = np.asarray(image.convert("RGB"))
    if pixels.max() == 0:
        return []
    seed = int(hashlib.sha256(pixels.tobytes()).hexdigest()[:8], 16)
    raw = np.random.default_rng(seed).normal(size=512).astype(np.float32) * 20
    crop = image.convert("RGB").resize((224, 224))
    return [faceid.Face((0.0, 0.0, float(image.width), float(image.height)), raw, raw / np.linalg.norm(raw), crop)]


def picture(folder, name: str, colour) -> object:
    path = folder / f"{name}.png"
    Image.new("RGB", (48, 48), colour).save(path)
    return path


@pytest.fixture
def injected(monkeypatch):
    calls = []

    def embedder(spec):
        calls.append(spec)
        return fake_faces, "fake-pack"

    monkeypatch.setattr(faceid, "insightface_embedder", embedder)
    return calls


def engine_for(store, weights, tmp_path) -> DiffusionEngine:
    return DiffusionEngine(DiffusionSettings(model=str(tiny.tiny_sd15(store)), steps=2, ip_adapter=str(weights),
                                             ip_adapter_scale=1.0, cache_dir=str(tmp_path / "cache")))


def request(*regions) -> FrameRequest:
    return FrameRequest(prompt="aldarkose the man", width=W, height=H, seed=3, regions=list(regions))


def diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(np.asarray(a, np.int16) - np.asarray(b, np.int16)).mean())


# --------------------------------------------------------------------------- loading
@pytest.mark.slow
def test_faceid_bin_loads_with_its_lora_merged_and_character_loras_kept(store, injected, tmp_path):
    from diffusers.models.embeddings import IPAdapterFaceIDImageProjection

    weights = tiny_faceid(store, "base", "bin")
    engine = DiffusionEngine(DiffusionSettings(
        model=str(tiny.tiny_sd15(store)), steps=2, ip_adapter=str(weights), cache_dir=str(tmp_path),
        loras=[str(tiny.tiny_lora_diffusers(store))]))
    s = engine.session()
    assert isinstance(s.pipe.unet.encoder_hid_proj.image_projection_layers[0], IPAdapterFaceIDImageProjection)
    assert s.refs.files.variant == "base" and injected == [str(weights)]
    # The adapter's LoRA is merged into the attention weights (W + up @ down) ...
    state = torch.load(weights, weights_only=True)["ip_adapter"]
    name = next(iter(s.pipe.unet.attn_processors))
    attn = s.pipe.unet.get_submodule(name.rsplit(".", 1)[0])
    from diffusers import UNet2DConditionModel

    base = UNet2DConditionModel.from_pretrained(tiny.tiny_sd15(store), subfolder="unet")
    before = base.get_submodule(name.rsplit(".", 1)[0]).to_q.weight
    merged = getattr(attn.to_q, "base_layer", attn.to_q).weight
    expected = before + state["0.to_q_lora.up.weight"] @ state["0.to_q_lora.down.weight"]
    assert torch.allclose(merged, expected, atol=1e-5)
    # ... and is no peft adapter that would switch the user's LoRA off
    assert "faceid_0" not in getattr(s.pipe.unet, "peft_config", {})
    assert s.pipe.get_active_adapters() == [s.loras[0].name]


class NotATensor:
    pass


def test_pickles_with_code_are_refused_and_files_without_faceid_weights_too(tmp_path):
    bad = tmp_path / "ip-adapter-faceid_sd15.bin"
    torch.save({"image_proj": {"x": NotATensor()}, "ip_adapter": {}}, bad)
    with pytest.raises(InputError, match="torch can read safely"):
        faceid.read_state(bad)
    other = tmp_path / "faceid-other.safetensors"
    save_file({"image_proj.proj.weight": torch.zeros(2, 2), "ip_adapter.1.to_k_ip.weight": torch.zeros(2, 2)},
              str(other))
    with pytest.raises(InputError, match="not an IP-Adapter FaceID file"):
        faceid.check_weights(faceid.resolve(str(other), "sd15"))


# --------------------------------------------------------------------------- denoising
@pytest.mark.slow
def test_face_embedding_changes_the_frame_inside_its_region_only(store, injected, tmp_path, monkeypatch):
    weights = tiny_faceid(store, "base", "safetensors")
    engine = engine_for(store, weights, tmp_path)
    a, b = [picture(tmp_path, "a", (200, 40, 40))], [picture(tmp_path, "b", (40, 40, 200))]
    box = (0.0, 0.0, 0.5, 1.0)
    left = box_mask(box, W, H)
    bare = engine.denoise([request()])[0]
    with_a = engine.denoise([request(Region("aldar", left, a))])[0]
    with_b = engine.denoise([request(Region("aldar", left, b))])[0]
    assert diff(bare, with_a) > 0 and diff(with_a, with_b) > 0  # the identity reaches the frame
    nothing = np.zeros((H, W), np.float32)
    assert diff(bare, engine.denoise([request(Region("aldar", nothing, a))])[0]) == 0  # the mask gates it

    effects = ip_effects(monkeypatch)  # per token: what the adapter adds, at every cross-attention
    engine.denoise([request(Region("aldar", left, a))])
    inside = outside = 0.0
    for effect in effects:
        region = torch.from_numpy(token_box_mask(box, effect.shape[1]))
        cond = effect[effect.shape[0] // 2:]
        inside += float(cond[:, region].mean())
        outside += float(cond[:, ~region].mean())
    assert inside > 0 and inside > 5 * outside, (inside, outside)


@pytest.mark.slow
def test_plus_v2_takes_the_face_crop_through_clip_and_adds_the_id_shortcut(store, injected, tmp_path):
    weights = tiny_faceid(store, "plusv2", "bin")
    engine = engine_for(store, weights, tmp_path)
    s = engine.session()
    inner = s.pipe.unet.encoder_hid_proj.image_projection_layers[0].inner
    assert inner.shortcut is True and s.refs.files.variant == "plus"
    refs = [picture(tmp_path, "a", (200, 40, 40))]
    neg, pos = s.refs.get(refs)
    assert pos.shape == neg.shape and pos.shape[-1] > faceid.ID_DIM  # ID embedding + CLIP hidden states
    full = box_mask(None, W, H)
    bare = engine.denoise([request()])[0]
    drawn = engine.denoise([request(Region("aldar", full, refs))])[0]
    assert diff(bare, drawn) > 0
    # same identity, another crop: the CLIP part of the embedding reaches the frame too
    s.refs.memory.clear()
    same_id = fake_faces(Image.open(refs[0]))[0]
    s.refs.embedder = lambda image: [faceid.Face(same_id.box, same_id.embedding, same_id.normed,
                                                 Image.new("RGB", (224, 224), (0, 255, 0)))]
    s.refs.encoder_id += "-other-crop"
    assert diff(drawn, engine.denoise([request(Region("aldar", full, refs))])[0]) > 0


@pytest.mark.slow
def test_faceid_on_sdxl(store, injected, tmp_path):
    engine = DiffusionEngine(DiffusionSettings(
        model=str(tiny.tiny_sdxl(store)), steps=2, ip_adapter=str(tiny_faceid(store, "base", "bin", sdxl=True)),
        ip_adapter_scale=1.0, cache_dir=str(tmp_path)))
    a, b = [picture(tmp_path, "a", (200, 40, 40))], [picture(tmp_path, "b", (40, 40, 200))]
    full = box_mask(None, 64, 64)

    def drawn(*regions):
        return engine.denoise([FrameRequest(prompt="aldarkose", width=64, height=64, seed=3, regions=list(regions))])[0]

    bare, with_a = drawn(), drawn(Region("aldar", full, a))
    assert engine.arch == "sdxl" and diff(bare, with_a) > 0 and diff(with_a, drawn(Region("aldar", full, b))) > 0
    # an SD 1.5 adapter renamed to pass the name check: its LoRA does not fit, one line, not a traceback
    wrong = tmp_path / "ip-adapter-faceid_sdxl.bin"
    wrong.write_bytes(tiny_faceid(store, "base", "bin").read_bytes())
    with pytest.raises(InputError, match="its LoRA for .* an adapter for another model"):
        faceid.load_into(engine.session().pipe, faceid.resolve(str(wrong), "sdxl"))
    assert diff(bare, drawn()) == 0  # checked before any weight was touched


# --------------------------------------------------------------------------- embeddings
def test_character_identity_is_the_renormalised_mean_and_is_cached(tmp_path):
    files = faceid.FaceIdFiles(tmp_path / "w.bin", "ip-adapter-faceid_sd15", "base")
    emb = faceid.FaceEmbeddings(None, "id", tmp_path, embedder=fake_faces, files=files)
    refs = [picture(tmp_path, "a", (200, 40, 40)), picture(tmp_path, "b", (40, 40, 200))]
    neg, pos = emb.get(refs)
    normed = [torch.as_tensor(fake_faces(Image.open(p))[0].normed) for p in refs]
    mean = (normed[0] + normed[1]) / 2
    assert pos.shape == (1, 1, 512) and torch.allclose(pos[0, 0], mean / mean.norm(), atol=1e-6)
    assert torch.count_nonzero(neg) == 0  # h94's negative: the zero embedding
    assert (tmp_path / "ip-embeds").is_dir()
    again = faceid.FaceEmbeddings(None, "id", tmp_path, embedder=lambda image: pytest.fail("not cached"), files=files)
    assert torch.equal(again.get(refs)[1], pos)  # read from the disk cache, no face detection
    unnorm = faceid.FaceEmbeddings(None, "id2", tmp_path, embedder=fake_faces,
                                   files=faceid.FaceIdFiles(files.weights, "x_unnorm", "portrait", normed=False))
    assert unnorm.get(refs[:1])[1].norm() > 2  # the _unnorm portrait takes the raw embedding


def test_a_reference_without_a_face_is_named(tmp_path):
    files = faceid.FaceIdFiles(tmp_path / "w.bin", "ip-adapter-faceid_sd15", "base")
    emb = faceid.FaceEmbeddings(None, "id", tmp_path, embedder=fake_faces, files=files)
    black = picture(tmp_path, "black", (0, 0, 0))
    with pytest.raises(InputError, match=r"black\.png: no face found"):
        emb.get([picture(tmp_path, "a", (200, 40, 40)), black])


def test_the_largest_face_of_a_reference_is_used(tmp_path):
    small = faceid.Face((0, 0, 10, 10), np.ones(512), np.ones(512) / np.sqrt(512))
    large = faceid.Face((0, 0, 30, 30), -np.ones(512), -np.ones(512) / np.sqrt(512))
    files = faceid.FaceIdFiles(tmp_path / "w.bin", "ip-adapter-faceid_sd15", "base")
    emb = faceid.FaceEmbeddings(None, "id", tmp_path, embedder=lambda image: [small, large], files=files)
    assert float(emb.get([picture(tmp_path, "a", (9, 9, 9))])[1].sum()) < 0


# --------------------------------------------------------------------------- refusals (before anything is written)
def test_missing_insightface_is_refused_by_the_engine_check(store, monkeypatch, tmp_path):
    weights = tiny_faceid(store, "base", "bin")
    installed = {"onnxruntime"}
    monkeypatch.setattr(faceid.importlib.util, "find_spec", lambda name: object() if name in installed else None)
    with pytest.raises(InputError, match="insightface is not installed: pip install insightface onnxruntime") as e:
        engine_for(store, weights, tmp_path).check()
    assert "\n" not in str(e.value)
    installed.clear()
    with pytest.raises(InputError, match="insightface and onnxruntime are not installed"):
        engine_for(store, weights, tmp_path).check()


def test_missing_model_pack_is_refused_with_where_to_put_it(store, monkeypatch, tmp_path, caplog):
    weights = tiny_faceid(store, "base", "bin")
    monkeypatch.setattr(faceid.importlib.util, "find_spec", lambda name: object())  # pretend both are installed
    empty = tmp_path / "packs"
    empty.mkdir()
    monkeypatch.setenv(faceid.INSIGHTFACE_ENV, str(empty))
    with pytest.raises(InputError, match=f"no InsightFace model pack: unzip buffalo_l.zip so that {empty}"):
        engine_for(store, weights, tmp_path).check()
    monkeypatch.delenv(faceid.INSIGHTFACE_ENV)
    monkeypatch.setenv("HOME", str(empty))
    with pytest.raises(InputError, match="~/.insightface/models/buffalo_l/"):
        engine_for(store, weights, tmp_path).check()
    pack = empty / ".insightface" / "models" / "buffalo_l" / "buffalo_l"  # as some zips unpack
    pack.mkdir(parents=True)
    (pack / "det_10g.onnx").write_bytes(b"onnx")
    assert faceid.insightface_pack() == pack
    assert engine_for(store, weights, tmp_path).check() == "sd15" and not caplog.records
    other = tmp_path / "antelopev2"  # another recognition model: used when named, with a warning
    other.mkdir()
    (other / "glintr100.onnx").write_bytes(b"onnx")
    monkeypatch.setenv(faceid.INSIGHTFACE_ENV, str(other))
    with caplog.at_level(logging.WARNING, logger="autokose"):
        assert faceid.check_insightface("x") == other
    assert "trained on buffalo_l" in caplog.text


def test_pulid_and_mismatched_faceid_files_are_refused(store, tmp_path):
    with pytest.raises(InputError, match="PuLID is not supported"):
        faceid.resolve("pulid_v1.1.safetensors", "sdxl")
    assert faceid.is_face_adapter("pulid_v1.1") and faceid.is_face_adapter("ip-adapter-faceid-plusv2_sd15")
    assert not faceid.is_face_adapter("ip-adapter-plus-face_sd15") and not faceid.is_face_adapter(None)
    with pytest.raises(InputError, match="SDXL FaceID adapter on an SD 1.5"):
        faceid.resolve("ip-adapter-faceid-plusv2_sdxl", "sd15")
    plus_named = tmp_path / "ip-adapter-faceid-plus_sd15.bin"
    plus_named.write_bytes(tiny_faceid(store, "base", "bin").read_bytes())
    (tmp_path / "image_encoder").mkdir()
    (tmp_path / "image_encoder" / "config.json").write_text("{}")
    with pytest.raises(InputError, match="the name says plus"):
        faceid.check_weights(faceid.resolve(str(plus_named), "sd15"))


def test_h94_names_resolve_in_the_faceid_repo(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(InputError, match="h94/IP-Adapter-FaceID: ip-adapter-faceid_sd15.bin not in the local"):
        faceid.resolve("ip-adapter-faceid_sd15", "sd15")
