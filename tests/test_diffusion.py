"""The diffusion renderer end to end on tiny random-weight models, offline, on CPU.

Each control is checked by what it does to the pixels: on changes them, off does not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tiny
from PIL import Image, ImageDraw

from autokose.bible import builtin_bible
from autokose.cast import IdentityAssets, LoraRef
from autokose.errors import InputError
from autokose.render import RenderSettings, get_renderer
from autokose.render.diffusion import DiffusionRenderer, DiffusionSettings, controls
from autokose.prompt_embeds import count_windows, encode_prompts
from autokose.prompting import build_negative, build_prompt
from autokose.render.diffusion.settings import frame_size
from autokose.staging import stage_story
from autokose.story import Blocking, Scene, Story

W, H = 96, 64


@pytest.fixture(scope="module")
def story() -> Story:
    bible = builtin_bible()
    return Story(
        title="The magic coat", logline="Aldar Köse sells the Bai a coat that keeps nobody warm",
        characters=[bible["aldar"], bible["bai"]],
        scenes=[
            Scene(index=1, characters=["aldar"], action="Aldar walks across the steppe", shot="wide", seed=11),
            Scene(index=2, characters=["aldar", "bai"], action="Aldar shows the Bai a patched coat", seed=12,
                  blocking={"aldar": Blocking(pose="point", emotion="sly"), "bai": Blocking(emotion="greedy")}),
            Scene(index=3, characters=["bai"], action="The Bai shivers in the coat", shot="close_up", seed=13),
        ],
    )


@pytest.fixture(scope="module")
def layouts(story):
    return stage_story(story)


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    return tiny.reference_faces(tmp_path_factory.mktemp("refs"))


def renderer(model, assets=None, width=W, height=H, **options) -> DiffusionRenderer:
    options.setdefault("steps", 2)
    settings = RenderSettings(renderer="diffusion", width=width, height=height, diffusion=dict(model=str(model), **options))
    return DiffusionRenderer(settings, assets=assets)


def pixels(frames) -> dict[int, np.ndarray]:
    return {f.index: np.asarray(f.image, dtype=np.int16) for f in frames}


def differs(a: dict, b: dict, index: int) -> int:
    return int(np.abs(a[index] - b[index]).max())


# --------------------------------------------------------------------------- settings, prompts, planning
def test_settings_defaults_and_errors():
    s = DiffusionSettings.from_render({"model": "x/y"})
    assert (s.scheduler, s.steps, s.cfg, s.ip_adapter_scale, s.controlnet_scale, s.consistency) == (
        "dpmpp_2m_karras", 25, 7.0, 0.6, 0.8, 0.0)
    assert DiffusionSettings.from_render({"model": "m", "model_config": "cfg"}).model_config_dir == "cfg"
    with pytest.raises(InputError, match="--model"):
        DiffusionSettings.from_render({"steps": 3})
    with pytest.raises(InputError, match="scheduler"):
        DiffusionSettings.from_render({"model": "m", "scheduler": "plms"})
    with pytest.raises(InputError, match="consistency"):
        DiffusionSettings.from_render({"model": "m", "consistency": 2})
    assert (s.lineart, s.lineart_scale) == (None, 0.6)
    with pytest.raises(InputError, match="lineart_scale"):
        DiffusionSettings.from_render({"model": "m", "lineart": "x/y", "lineart_scale": -0.1})


def test_render_settings_hold_typed_diffusion_settings_and_store_only_what_was_given():
    r = RenderSettings(renderer="diffusion", diffusion={"model": "m", "steps": 4, "model_config": "cfg"})
    assert isinstance(r.diffusion, DiffusionSettings)
    assert (r.diffusion.steps, r.diffusion.cfg, r.diffusion.model_config_dir) == (4, 7.0, "cfg")
    # the manifest keeps the user's options only: defaults stay defined in code
    assert r.model_dump(mode="json")["diffusion"] == {"model": "m", "steps": 4, "model_config_dir": "cfg"}
    assert RenderSettings.model_validate(r.model_dump(mode="json")) == r  # a manifest round trip
    # previz boards: stored as {} (as every manifest so far), read back as no diffusion settings
    assert RenderSettings().model_dump(mode="json")["diffusion"] == {}
    assert RenderSettings.model_validate({"diffusion": {}}).diffusion is None
    with pytest.raises(InputError, match="needs --model"):
        DiffusionRenderer(RenderSettings(renderer="diffusion"))
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="steps"):
        RenderSettings(diffusion={"model": "m", "steps": 0})


def test_resolve_merges_diffusion_options_into_the_typed_settings(caplog):
    import logging

    from autokose.config import RunConfig, resolve

    cfg = resolve(None, {"logline": "x", "model": "m", "model_config": "cfg", "steps": 3, "lora": ["a.safetensors"]})
    assert cfg.render.renderer == "diffusion"
    assert cfg.render.diffusion.given() == {"model": "m", "model_config_dir": "cfg", "steps": 3,
                                            "loras": ["a.safetensors"]}
    saved = RunConfig.model_validate(cfg.model_dump(mode="json"))  # as read back from manifest.json
    with caplog.at_level(logging.WARNING, logger="autokose"):
        again = resolve(saved, {"steps": 5})
    assert again.render.diffusion.given() == {**cfg.render.diffusion.given(), "steps": 5}
    assert "--model-config cfg" in caplog.text and "--lora a.safetensors" in caplog.text
    # an old manifest, written when the options were a plain dict under their CLI names
    old = RunConfig.model_validate({"render": {"renderer": "diffusion", "diffusion": {"model": "m", "model_config": "c"}}})
    assert old.render.diffusion.model_config_dir == "c"
    with pytest.raises(InputError, match="diffusion options need --model"):
        resolve(None, {"steps": 3})


def test_json_schema_names_and_describes_every_diffusion_option():
    schema = RenderSettings.model_json_schema()
    fields = schema["$defs"]["DiffusionSettings"]["properties"]
    assert set(fields) == set(DiffusionSettings.model_fields)
    assert all(f.get("description") for f in fields.values()), [k for k, f in fields.items() if not f.get("description")]
    assert fields["steps"]["default"] == 25 and fields["steps"]["minimum"] == 1
    assert "model" in schema["$defs"]["DiffusionSettings"]["required"]


def test_frame_size_rule():
    assert frame_size(960, 540, "sd15") == (768, 432)  # RenderSettings defaults → model-native 16:9
    assert frame_size(960, 540, "sdxl") == (1344, 768)
    assert frame_size(W, H, "sdxl") == (W, H)  # explicit sizes exactly as given
    # not silently rounded: the manifest would record a size the frame does not have
    with pytest.raises(InputError, match=r"^--width 65 must be a multiple of 8 for diffusion \(e\.g\. 64 or 72"):
        frame_size(65, 64, "sd15")
    with pytest.raises(InputError, match="--height 563"):
        frame_size(1000, 563, "sd15")


def test_width_not_a_multiple_of_8_fails_the_check_before_rendering(store):
    with pytest.raises(InputError, match="--width 65"):
        renderer(tiny.tiny_sd15(store), width=65).check()


def test_prompt_from_scene_fields_has_triggers_appearance_and_setting(story):
    prompt = build_prompt(story, story.scenes[1], {"aldar": "zxaldar"})
    assert prompt.index("zxaldar") < prompt.index("greedybai")  # left to right, card trigger replaces the bible's
    assert "aldarkose" not in prompt
    assert "tymak hat" in prompt and "green silk robe" in prompt
    assert prompt.startswith(story.style)


def test_written_prompt_is_used_as_is_with_card_triggers():
    bible = builtin_bible()
    scene = Scene(index=1, characters=["aldar", "bai"], prompt="ink sketch, aldarkose laughs at the Bai",
                  negative_prompt="blurry, text")
    story = Story(title="t", logline="l", characters=[bible["aldar"], bible["bai"]], scenes=[scene])
    assert build_prompt(story, scene) == "ink sketch, aldarkose laughs at the Bai"
    # exactly as written: card triggers are neither swapped in nor prepended
    assert build_prompt(story, scene, {"aldar": "zx1"}) == "ink sketch, aldarkose laughs at the Bai"
    assert build_prompt(story, scene, {"bai": "zx2"}) == "ink sketch, aldarkose laughs at the Bai"
    # a prompt the bible builds does get the card's trigger
    built = build_prompt(story, scene.model_copy(update={"prompt": ""}), {"bai": "zx2"})
    assert "zx2" in built and "greedybai" not in built
    assert build_negative(story, scene, "Text, watermark") == "blurry, text, watermark"
    assert "watermark" in build_negative(story, scene.model_copy(update={"negative_prompt": ""}))


def test_long_prompts_are_encoded_in_windows_not_truncated(store):
    from autokose.models import load_pipeline

    pipe = load_pipeline(str(tiny.tiny_sd15(store)))
    short = "aldarkose the man and a yurt"
    ours = encode_prompts(pipe, [short], [""])
    theirs, negative = pipe.encode_prompt(short, "cpu", 1, True, negative_prompt="")
    assert ours.prompt.shape == theirs.shape == (1, 77, 32)
    assert float((ours.prompt - theirs).detach().abs().max()) < 1e-5  # ≤ 75 tokens: the pipeline's encoding
    assert float((ours.negative - negative).detach().abs().max()) < 1e-5

    long = ", ".join(["aldarkose the man in the steppe"] * 10)
    assert count_windows(pipe.tokenizer, long) > 1
    a = encode_prompts(pipe, [long + ", yurt"], [""])
    b = encode_prompts(pipe, [long + ", hat"], [""])
    assert a.prompt.shape[1] == 77 * count_windows(pipe.tokenizer, long + ", yurt")
    assert a.negative.shape == a.prompt.shape  # negatives padded to the same windows
    assert float((a.prompt - b.prompt).abs().max()) > 0  # words past token 77 still count


def test_plan_batches_follow_story_order(story, store):
    off = renderer(store / "unused", batch_size=2)
    assert off.plan(story, [3, 1]) == [[1, 3]]
    on = renderer(store / "unused", batch_size=2, consistency=0.5)
    assert on.plan(story, [3]) == [[1, 2], [3]]  # the bank-writing first batch, then the one holding 3
    assert on.plan(story, [2]) == [[1, 2]]
    assert renderer(store / "unused", consistency=0.5).plan(story, [2]) == [[1, 2, 3]]


# --------------------------------------------------------------------------- rendering
def test_renders_requested_frames_with_size_seed_and_meta(store, story, layouts):
    r = renderer(tiny.tiny_sd15(store))
    frames = list(r.render(story, layouts, [1, 3]))
    assert [f.index for f in frames] == [1, 3]
    assert all(f.image.size == (W, H) and f.image.mode == "RGB" for f in frames)
    assert [f.seed for f in frames] == [11, 13]
    meta = frames[0].meta
    assert meta["scheduler"] == "dpmpp_2m_karras" and meta["steps"] == 2 and meta["cfg"] == 7.0
    assert "aldarkose" in meta["prompt"] and "watermark" in meta["negative_prompt"]
    assert meta["prompt"] == build_prompt(story, story.scenes[0])
    assert meta["controls"] == {"loras": []}
    json.dumps(meta)  # goes into manifest.json as is
    assert get_renderer(r.settings, assets={}).name == "diffusion"


def test_same_seed_same_pixels_and_seed_override(store, story, layouts):
    model = tiny.tiny_sd15(store)
    a = pixels(renderer(model).render(story, layouts, [1, 2]))
    b = pixels(renderer(model).render(story, layouts, [1, 2]))
    assert differs(a, b, 1) == 0 and differs(a, b, 2) == 0
    c = pixels(renderer(model).render(story, layouts, [1, 2], seeds={2: 99}))
    assert differs(a, c, 1) == 0 and differs(a, c, 2) > 0
    # a frame does not depend on which other frames share its batch (consistency off)
    alone = pixels(renderer(model).render(story, layouts, [2]))
    assert differs(a, alone, 2) <= 1


def test_denoising_steps_are_reported_as_progress(store, story, layouts):
    seen = []
    settings = renderer(tiny.tiny_sd15(store), batch_size=2).settings
    r = get_renderer(settings, assets={}, progress=lambda stage, done, total: seen.append((stage, done, total)))
    short = story.model_copy(update={"scenes": [s.model_copy(update={"prompt": "aldarkose the man"})
                                                for s in story.scenes]})
    list(r.render(short, layouts, [1, 2, 3]))
    assert seen == [("denoise", n, 4) for n in range(1, 5)]  # 2 batches × 2 steps


def test_frames_are_batched_by_their_own_prompt_window_count():
    from autokose.render.diffusion.renderer import denoise_calls

    windows = {1: 4, 2: 6, 3: 4, 4: 4}

    def calls(batches, coupled):
        return [(c.rows, c.windows, c.real) for c in denoise_calls(batches, windows, coupled=coupled)]

    # uncoupled: one call per window count inside each batch; rows keep their place, fillers elsewhere
    assert calls([[1, 2, 3], [4]], False) == [([1, 1, 3], 4, [True, False, True]), ([2, 2, 2], 6, [False, True, False]),
                                              ([4], 4, [True])]
    assert calls([[1, 3, 4]], False) == [([1, 3, 4], 4, [True] * 3)]
    # coupled frames stay together at the batch's largest count
    assert calls([[1, 2, 3], [4]], True) == [([1, 2, 3], 6, [True] * 3), ([4], 4, [True])]


@pytest.mark.slow
def test_editing_one_prompt_leaves_the_other_frames_byte_identical(store, story, layouts):
    """Re-rendering a whole board after making one scene's prompt much longer changes only that frame."""
    model = tiny.tiny_sd15(store)
    before = pixels(renderer(model).render(story, layouts, [1, 2, 3]))
    long = ", ".join(["aldarkose the man in the steppe beside a yurt"] * 12)
    edited = story.model_copy(update={"scenes": [s.model_copy(update={"prompt": long}) if s.index == 2 else s
                                                 for s in story.scenes]})
    after = pixels(renderer(model).render(edited, layouts, [1, 2, 3]))
    assert differs(before, after, 2) > 0
    assert differs(before, after, 1) == 0 and differs(before, after, 3) == 0


@pytest.mark.parametrize("scheduler", ["euler_a", "ddim", "lcm"])
def test_schedulers_run_and_matter(store, story, layouts, scheduler):
    model = tiny.tiny_sd15(store)
    base = pixels(renderer(model, steps=3).render(story, layouts, [1]))
    other = pixels(renderer(model, steps=3, scheduler=scheduler).render(story, layouts, [1]))
    assert differs(base, other, 1) > 0


@pytest.mark.slow
def test_lora_weight_changes_output_and_kohya_matches_diffusers(store, story, layouts):
    model = tiny.tiny_sd15(store)
    lora, kohya = tiny.tiny_lora_diffusers(store), tiny.tiny_lora_kohya(store)
    plain = pixels(renderer(model).render(story, layouts, [2]))
    zero = renderer(model, loras=[f"{lora}:0"])
    off = pixels(zero.render(story, layouts, [2]))
    full = renderer(model, loras=[f"{lora}:1.0"])
    on = pixels(full.render(story, layouts, [2]))
    as_kohya = pixels(renderer(model, loras=[str(kohya)]).render(story, layouts, [2]))
    assert differs(plain, off, 2) == 0
    assert differs(off, on, 2) > 10
    assert differs(on, as_kohya, 2) <= 1
    meta = next(iter(full.render(story, layouts, [2]))).meta["controls"]["loras"]
    assert meta == [{"path": str(lora), "weight": 1.0, "character": None}]


def test_character_lora_from_cast_assets_and_its_trigger(store, story, layouts):
    model = tiny.tiny_sd15(store)
    plain = pixels(renderer(model).render(story, layouts, [2]))
    assets = {"aldar": IdentityAssets("aldar", trigger="zxaldar", lora=LoraRef(str(tiny.tiny_lora_diffusers(store)), 0.9))}
    frames = list(renderer(model, assets=assets).render(story, layouts, [2]))
    assert "zxaldar" in frames[0].meta["prompt"] and "aldarkose" not in frames[0].meta["prompt"]
    assert frames[0].meta["controls"]["loras"][0]["character"] == "aldar"
    assert differs(plain, pixels(frames), 2) > 0


def test_bad_lora_files_are_input_errors(store, story, layouts, tmp_path):
    model = tiny.tiny_sd15(store)
    with pytest.raises(InputError, match="pickled"):
        list(renderer(model, loras=[str(tmp_path / "x.ckpt")]).render(story, layouts, [1]))
    with pytest.raises(InputError, match="no such file"):
        list(renderer(model, loras=[str(tmp_path / "missing.safetensors")]).render(story, layouts, [1]))
    import torch
    from safetensors.torch import save_file

    save_file({"something.else": torch.zeros(2)}, str(tmp_path / "notlora.safetensors"))
    with pytest.raises(InputError, match="LoRA"):
        list(renderer(model, loras=[str(tmp_path / "notlora.safetensors")]).render(story, layouts, [1]))


@pytest.mark.slow
def test_ip_adapter_scale_and_reference_cache(store, story, layouts, references, tmp_path, monkeypatch):
    model = tiny.tiny_sd15(store)
    adapter = tiny.tiny_ip_adapter(store, "plus")
    assets = {"aldar": IdentityAssets("aldar", trigger="aldarkose", references=references)}
    plain = pixels(renderer(model).render(story, layouts, [1, 3]))
    common = dict(assets=assets, ip_adapter=str(adapter), cache_dir=str(tmp_path / "cache"))
    zero = pixels(renderer(model, ip_adapter_scale=0.0, **common).render(story, layouts, [1, 3]))
    one_r = renderer(model, ip_adapter_scale=1.0, **common)
    one_frames = list(one_r.render(story, layouts, [1, 3]))
    one = pixels(one_frames)
    assert differs(plain, zero, 1) == 0
    assert differs(zero, one, 1) > 10  # Aldar's references steer frame 1
    assert differs(plain, one, 3) == 0  # the Bai has no references: frame 3 is left alone
    assert one_frames[0].meta["controls"]["ip_adapter"]["characters"] == ["aldar"]
    assert one_frames[1].meta["controls"]["ip_adapter"]["characters"] == []

    cached = list((tmp_path / "cache" / "ip-embeds").glob("*.safetensors"))
    assert len(cached) == 1
    monkeypatch.setattr(controls.ReferenceEmbeddings, "_compute", lambda *a: pytest.fail("recomputed"))
    again = pixels(renderer(model, ip_adapter_scale=1.0, **common).render(story, layouts, [1, 3]))
    assert differs(one, again, 1) == 0  # read back from the disk cache


def test_ip_adapter_gives_each_character_its_own_region(store, story, layouts, references, tmp_path):
    model, adapter = tiny.tiny_sd15(store), tiny.tiny_ip_adapter(store, "base")
    aldar_only = {"aldar": IdentityAssets("aldar", references=references)}
    both = {**aldar_only, "bai": IdentityAssets("bai", references=references[1:])}
    common = dict(ip_adapter=str(adapter), ip_adapter_scale=1.0, cache_dir=str(tmp_path))
    one = list(renderer(model, assets=aldar_only, **common).render(story, layouts, [2]))
    two = list(renderer(model, assets=both, **common).render(story, layouts, [2]))
    assert two[0].meta["controls"]["ip_adapter"]["characters"] == ["aldar", "bai"]
    assert differs(pixels(one), pixels(two), 2) > 0


def test_box_mask():
    from autokose.regions import box_mask

    mask = box_mask((0.25, 0.5, 0.75, 1.0), 8, 4)
    assert mask.shape == (4, 8) and mask.sum() == 4 * 2
    assert mask[2:, 2:6].min() == 1 and mask[:2].max() == 0
    assert box_mask(None, 8, 4).min() == 1  # no box: the whole frame
    assert box_mask((0, 0, 0, 0), 8, 4).min() == 1


def test_reference_cache_key_follows_image_bytes_and_encoder(references, tmp_path):
    a = controls.ReferenceEmbeddings(pipe=None, encoder_id="enc-a", cache_dir=tmp_path)
    b = controls.ReferenceEmbeddings(pipe=None, encoder_id="enc-b", cache_dir=tmp_path)
    assert a.key(references) == a.key(list(references))
    assert a.key(references) != b.key(references)
    assert a.key(references[:1]) != a.key(references)
    copy = tmp_path / "renamed.png"
    copy.write_bytes(references[0].read_bytes())
    assert a.key([copy]) == a.key(references[:1])  # the bytes count, not the file name
    with pytest.raises(InputError, match="not found"):
        a.get([tmp_path / "missing.png"])


def test_ip_adapter_names_resolve_to_h94_and_faceid_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(InputError, match="h94/IP-Adapter") as err:
        controls.resolve_ip_adapter("ip-adapter-plus-face_sd15", "sd15")
    assert "models/ip-adapter-plus-face_sd15.safetensors" in str(err.value)
    with pytest.raises(InputError, match="FaceID"):
        controls.resolve_ip_adapter("ip-adapter-faceid-plusv2_sd15", "sd15")
    assert controls._encoder_subfolder("ip-adapter-plus_sdxl_vit-h", "sdxl") == "models/image_encoder"
    assert controls._encoder_subfolder("ip-adapter_sdxl", "sdxl") == "sdxl_models/image_encoder"


def test_ip_adapter_file_in_h94_layout_resolves(store):
    root = tiny.tiny_ip_adapter(store, "base")
    files = controls.resolve_ip_adapter(str(root / "models" / "ip-adapter_sd15.safetensors"), "sd15")
    assert files.image_encoder == root / "models" / "image_encoder"
    assert controls.resolve_ip_adapter(str(root), "sd15").weights == files.weights


def _fake_pose(layouts, width, height):
    out = []
    for layout in layouts:
        img = Image.new("RGB", (width, height))
        for fig in layout.figures:
            x = int(fig.x * width)
            ImageDraw.Draw(img).line((x, int(0.2 * height), x, int(0.9 * height)), fill=(255, 0, 0), width=4)
        out.append(img)
    return out


def test_controlnet_scale_changes_output(store, story, layouts, monkeypatch):
    monkeypatch.setattr(controls, "pose_images", _fake_pose)  # the skeleton drawing is the staging stage's
    model, net = tiny.tiny_sd15(store), tiny.tiny_controlnet(store)
    zero = pixels(renderer(model, controlnet=str(net), controlnet_scale=0.0).render(story, layouts, [2]))
    one_frames = list(renderer(model, controlnet=str(net), controlnet_scale=1.0).render(story, layouts, [2]))
    assert differs(zero, pixels(one_frames), 2) > 10
    assert one_frames[0].meta["controls"]["controlnet"] == {"model": str(net), "scale": 1.0, "control": "openpose"}


def test_controlnet_with_the_real_pose_drawing(store, story, layouts):
    pytest.importorskip("autokose.openpose")
    model, net = tiny.tiny_sd15(store), tiny.tiny_controlnet(store)
    frames = list(renderer(model, controlnet=str(net)).render(story, layouts, [1, 2]))
    assert [f.image.size for f in frames] == [(W, H)] * 2


def test_lineart_control_is_the_previz_frames_ink(story):
    """White where the previz frame is drawn in ink, black elsewhere; same layout, same size."""
    from autokose.previz.svg import INK, rgb
    from autokose.render.previz import PrevizRenderer

    width, height = 384, 256  # large enough for the ink strokes to cover whole pixels
    layouts = stage_story(story, width / height)
    lines = controls.lineart_images(story, layouts, width, height)
    previz = list(PrevizRenderer(RenderSettings(width=width, height=height)).render(story, layouts, [1, 2, 3]))
    assert [im.size for im in lines] == [(width, height)] * 3 and {im.mode for im in lines} == {"RGB"}
    for line, frame in zip(lines[1:], previz[1:]):
        grey = np.asarray(line, dtype=np.int16)
        assert (grey == grey[..., :1]).all()  # white on black, no colour
        grey = grey[..., 0]
        off_ink = np.abs(np.asarray(frame.image, dtype=np.int16) - np.array(rgb(INK))).max(-1)
        ink, elsewhere = off_ink <= 2, off_ink > 100
        assert ink.sum() > 500 and (grey[ink] >= 128).mean() > 0.99
        assert (grey[elsewhere] < 64).mean() > 0.98 and (grey > 0).mean() < 0.15
    again = controls.lineart_images(story, layouts, width, height)
    assert all(a.tobytes() == b.tobytes() for a, b in zip(lines, again))


def test_lineart_scale_changes_output(store, story, layouts):
    model, net = tiny.tiny_sd15(store), tiny.tiny_controlnet(store)
    zero = pixels(renderer(model, lineart=str(net), lineart_scale=0.0).render(story, layouts, [2]))
    one_frames = list(renderer(model, lineart=str(net), lineart_scale=1.0).render(story, layouts, [2]))
    assert differs(zero, pixels(one_frames), 2) > 10
    controls_meta = one_frames[0].meta["controls"]
    assert controls_meta["lineart"] == {"model": str(net), "scale": 1.0, "control": "previz lineart"}
    assert "controlnet" not in controls_meta


def test_pose_and_lineart_together_both_scales_matter(store, story, layouts, monkeypatch):
    monkeypatch.setattr(controls, "pose_images", _fake_pose)
    model, net = tiny.tiny_sd15(store), str(tiny.tiny_controlnet(store))
    both = renderer(model, controlnet=net, lineart=net, controlnet_scale=1.0, lineart_scale=1.0)
    frames = list(both.render(story, layouts, [1, 2]))  # one batch: per-frame controls stay with their frame
    assert type(both.session().pipe.controlnet).__name__ == "MultiControlNetModel"
    assert set(frames[0].meta["controls"]) >= {"controlnet", "lineart"}
    base = pixels(frames)
    no_pose = pixels(renderer(model, controlnet=net, lineart=net, controlnet_scale=0.0, lineart_scale=1.0)
                     .render(story, layouts, [2]))
    no_lines = pixels(renderer(model, controlnet=net, lineart=net, controlnet_scale=1.0, lineart_scale=0.0)
                      .render(story, layouts, [2]))
    assert differs(base, no_pose, 2) > 10 and differs(base, no_lines, 2) > 10
    alone = pixels(both.render(story, layouts, [2]))
    assert differs(base, alone, 2) <= 1  # frame 2 got its own controls when batched with frame 1


def test_sdxl_pose_and_lineart_together(store, story, layouts, monkeypatch):
    monkeypatch.setattr(controls, "pose_images", _fake_pose)
    model, net = tiny.tiny_sdxl(store), str(tiny.tiny_controlnet(store, sdxl=True))
    both = pixels(renderer(model, controlnet=net, lineart=net).render(story, layouts, [1, 2]))
    no_lines = pixels(renderer(model, controlnet=net, lineart=net, lineart_scale=0.0).render(story, layouts, [1, 2]))
    assert both[1].shape == (H, W, 3) and differs(both, no_lines, 2) > 0


def test_missing_lineart_model_fails_before_anything_is_written(store, tmp_path):
    from typer.testing import CliRunner

    from autokose.app.cli import app

    missing = str(tmp_path / "no-lineart")
    with pytest.raises(InputError, match="--lineart"):
        renderer(tiny.tiny_sd15(store), lineart=missing).check()
    board = tmp_path / "board"
    result = CliRunner().invoke(app, ["story", "Aldar Köse fools the Bai", "--scenes", "2", "--out", str(board),
                                      "--model", str(tiny.tiny_sd15(store)), "--lineart", missing])
    assert result.exit_code == 2 and "--lineart" in result.output
    assert not board.exists()


def test_sdxl_renders_with_long_prompts_and_lora(store, story, layouts):
    model = tiny.tiny_sdxl(store)
    plain = pixels(renderer(model).render(story, layouts, [2]))
    with_lora = list(renderer(model, loras=[str(tiny.tiny_lora_diffusers(store, sdxl=True))]).render(story, layouts, [2]))
    assert with_lora[0].meta["arch"] == "sdxl" and with_lora[0].image.size == (W, H)
    assert differs(plain, pixels(with_lora), 2) > 0


def test_consistency_couples_frames_of_a_batch_and_only_reproduces(store, story, layouts):
    """With consistency on, --only N gives frame N the pixels it had in the full run."""
    model = tiny.tiny_sd15(store)
    full = pixels(renderer(model, consistency=0.5, batch_size=2).render(story, layouts, [1, 2, 3]))
    only3 = pixels(renderer(model, consistency=0.5, batch_size=2).render(story, layouts, [3]))
    assert set(only3) == {3}
    assert differs(full, only3, 3) == 0
    plain = pixels(renderer(model).render(story, layouts, [1, 2, 3]))
    assert differs(full, plain, 1) > 0


@pytest.mark.slow
def test_cli_story_then_render_only_reproduces_the_frame(store, tmp_path):
    """`autokose story … --model` then `autokose render story.json --only 2` with the manifest's settings."""
    from typer.testing import CliRunner

    from autokose.app.cli import app

    board = tmp_path / "board"
    cli = CliRunner()
    result = cli.invoke(app, [
        "story", "Aldar Köse sells the greedy Bai a magic coat", "--scenes", "2", "--out", str(board),
        "--model", str(tiny.tiny_sd15(store)), "--steps", "2", "--width", str(W), "--height", str(H),
        "--stages", "write,cast,stage,render", "--lora", f"{tiny.tiny_lora_kohya(store)}:0.8", "--batch-size", "2",
        "--controlnet", str(tiny.tiny_controlnet(store))])
    assert result.exit_code == 0, result.output
    manifest = json.loads((board / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["command"]["render"]["diffusion"]["batch_size"] == 2
    first = manifest["frames"]["02"]
    assert first["scheduler"] == "dpmpp_2m_karras" and first["steps"] == 2
    assert first["controls"]["loras"][0]["weight"] == 0.8
    assert first["controls"]["controlnet"]["scale"] == 0.8
    assert (board / "control" / "02_pose.png").is_file()
    with Image.open(board / "frames" / "02.png") as img:
        assert img.size == (W, H)

    before = np.asarray(Image.open(board / "frames" / "02.png"), dtype=np.int16)
    (board / "frames" / "02.png").unlink()
    result = cli.invoke(app, ["render", str(board / "story.json"), "--only", "2", "--stages", "cast,stage,render"])
    assert result.exit_code == 0, result.output
    again = json.loads((board / "manifest.json").read_text(encoding="utf-8"))["frames"]
    assert again["02"]["seed"] == first["seed"] and again["02"]["prompt"] == first["prompt"]
    assert again["01"]["sha256"] == manifest["frames"]["01"]["sha256"]  # frame 1 left alone
    after = np.asarray(Image.open(board / "frames" / "02.png"), dtype=np.int16)
    # Same settings from the manifest, same seed: the same picture. Frame 2 was denoised in a
    # batch with frame 1 the first time and alone now, so float rounding may differ by a level.
    assert np.abs(before - after).max() <= 1

    missing = cli.invoke(app, ["render", str(board / "story.json"), "--model", "nobody/nothing-here",
                               "--stages", "render"])
    assert missing.exit_code == 2
    assert "nobody/nothing-here" in missing.output


def test_cli_story_with_openpose_and_lineart(store, tmp_path):
    from typer.testing import CliRunner

    from autokose.app.cli import app

    board, net = tmp_path / "board", str(tiny.tiny_controlnet(store))
    result = CliRunner().invoke(app, [
        "story", "Aldar Köse sells the greedy Bai a magic coat", "--scenes", "2", "--out", str(board),
        "--model", str(tiny.tiny_sd15(store)), "--steps", "2", "--width", str(W), "--height", str(H),
        "--stages", "write,cast,stage,render", "--controlnet", net, "--lineart", net, "--lineart-scale", "0.5"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((board / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["command"]["render"]["diffusion"]["lineart"] == net
    for name in ("01", "02"):
        assert (board / "frames" / f"{name}.png").is_file()
        used = manifest["frames"][name]["controls"]
        assert used["controlnet"] == {"model": net, "scale": 0.8, "control": "openpose"}
        assert used["lineart"] == {"model": net, "scale": 0.5, "control": "previz lineart"}
