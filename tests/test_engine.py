"""The diffusion engine with no Story anywhere: frame requests in, images out (tiny models, offline, CPU).

Each input is checked by what it does to the pixels: a region's mask decides where its
references act, `strength` decides how much of the init image survives, the seed decides the
noise. Each test fails if the engine drops that input.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tiny
from PIL import Image

from autokose.errors import Cancelled, InputError
from autokose.regions import box_mask
from autokose.render.diffusion import DiffusionSettings
from autokose.render.diffusion.engine import DiffusionEngine, FrameRequest, Region

W, H = 64, 64
PROMPT = "aldarkose the man and a yurt"


@pytest.fixture(scope="module")
def references(tmp_path_factory):
    return tiny.reference_faces(tmp_path_factory.mktemp("engine-refs"))


@pytest.fixture(scope="module")
def plain(store) -> DiffusionEngine:
    return DiffusionEngine(DiffusionSettings(model=str(tiny.tiny_sd15(store)), steps=10))


@pytest.fixture(scope="module")
def with_ip(store, tmp_path_factory) -> DiffusionEngine:
    return DiffusionEngine(DiffusionSettings(
        model=str(tiny.tiny_sd15(store)), steps=2, ip_adapter=str(tiny.tiny_ip_adapter(store, "base")),
        ip_adapter_scale=1.0, cache_dir=str(tmp_path_factory.mktemp("engine-cache"))))


def request(**kw) -> FrameRequest:
    return FrameRequest(**{"prompt": PROMPT, "width": W, "height": H, "seed": 7, **kw})


def px(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def diff(a: Image.Image, b: Image.Image) -> float:
    return float(np.abs(px(a) - px(b)).mean())


def init_picture(flip: bool = False) -> Image.Image:
    """A bold two-colour picture, so what survives of it is easy to see."""
    a = np.zeros((H, W, 3), dtype=np.uint8)
    a[:, : W // 2] = (230, 40, 30)
    a[:, W // 2:] = (20, 60, 220)
    return Image.fromarray(a[:, ::-1].copy() if flip else a)


# --------------------------------------------------------------------------- seeds and sizes
def test_seed_decides_the_noise_and_reruns_are_identical(plain):
    (a,), (b,), (c,) = (plain.denoise([request()]), plain.denoise([request()]), plain.denoise([request(seed=8)]))
    assert a.size == (W, H) and a.mode == "RGB"
    assert diff(a, b) == 0
    assert diff(a, c) > 1  # a seed the engine ignored would give the same picture
    # a frame's noise is its own: batch-mates do not change it
    pair = plain.denoise([request(), request(seed=8, prompt="a yurt and a hat")])
    assert np.abs(px(pair[0]) - px(a)).max() <= 1


def test_cancel_stops_a_call_after_the_step_that_asked(plain):
    """A server's stop button does not wait for a whole batch: the engine asks after every step."""
    steps = []
    plain.progress = lambda stage, done, total: steps.append(done)
    plain.cancel = lambda: len(steps) >= 3
    try:
        with pytest.raises(Cancelled):
            plain.denoise([request()])
    finally:
        plain.progress = plain.cancel = None
    assert steps == [1, 2, 3], "stopped at the third of ten steps"


@pytest.mark.parametrize("size", [(65, 64), (64, 70), (56, 56)])
def test_a_request_with_a_size_the_model_cannot_draw_is_an_input_error(plain, size):
    with pytest.raises(InputError, match="multiple of 8|too small"):
        plain.denoise([request(width=size[0], height=size[1])])


def test_one_call_draws_one_size(plain):
    with pytest.raises(InputError, match="one frame size"):
        plain.denoise([request(), request(width=72)])


def test_a_control_image_without_its_controlnet_is_an_input_error(plain):
    with pytest.raises(InputError, match="openpose control image needs"):
        plain.denoise([request(controls={"openpose": Image.new("RGB", (W, H))})])


# --------------------------------------------------------------------------- img2img
def test_img2img_strength_decides_how_much_of_the_init_image_survives(plain):
    """How much a frame depends on its init image: two pictures, same seed and prompt, compared.

    (The tiny VAE has random weights, so a frame cannot look like its init image; that it
    depends on it, the more the lower the strength, is what img2img means.)
    """
    def drawn(strength, flip=False):
        return plain.denoise([request(init_image=init_picture(flip), strength=strength)])[0]

    def survives(strength) -> float:
        return diff(drawn(strength), drawn(strength, flip=True))

    low, mid, high = drawn(0.1), drawn(0.5), drawn(1.0)
    assert low.size == (W, H) and low.mode == "RGB"
    assert diff(low, mid) > 1 and diff(mid, high) > 1  # strength changes the output
    kept = [survives(s) for s in (0.1, 0.5, 1.0)]
    assert kept[0] > kept[1] > kept[2], kept  # strength → 0 keeps the init image, 1 redraws it
    assert kept[0] > 20 * kept[2], kept
    assert diff(low, drawn(0.1)) == 0  # reproducible
    txt2img = plain.denoise([request()])[0]
    assert diff(txt2img, plain.denoise([request()])[0]) == 0 and diff(txt2img, low) > 1


def test_img2img_with_a_controlnet_and_an_ip_adapter_uses_both(store, references, tmp_path):
    """The ControlNet img2img pipeline shares the loaded weights: control images and regions still act."""
    engine = DiffusionEngine(DiffusionSettings(
        model=str(tiny.tiny_sd15(store)), steps=4, controlnet=str(tiny.tiny_controlnet(store)), controlnet_scale=2.0,
        ip_adapter=str(tiny.tiny_ip_adapter(store, "base")), ip_adapter_scale=1.0, cache_dir=str(tmp_path)))
    blank, lines = Image.new("RGB", (W, H)), Image.new("RGB", (W, H), (255, 255, 255))

    def drawn(control, *regions, strength=0.5):
        return engine.denoise([request(init_image=init_picture(), strength=strength, controls={"openpose": control},
                                       regions=list(regions))])[0]

    base = drawn(blank)
    assert type(engine.session().img2img).__name__ == "StableDiffusionControlNetImg2ImgPipeline"
    assert diff(base, drawn(lines)) > 0  # the control image reaches the ControlNet
    assert diff(base, drawn(blank, Region("aldar", box_mask(None, W, H), references))) > 0  # and the references
    assert diff(base, drawn(blank, strength=1.0)) > 1
    with pytest.raises(InputError, match="openpose control image"):
        engine.denoise([request(init_image=init_picture(), strength=0.5)])


@pytest.mark.parametrize("strength", [0.0, 0.05, 1.5])
def test_img2img_strength_that_denoises_nothing_is_an_input_error(plain, strength):
    with pytest.raises(InputError, match="strength"):
        plain.denoise([request(init_image=init_picture(), strength=strength)])


def test_img2img_takes_init_images_for_all_frames_or_none(plain):
    with pytest.raises(InputError, match="all its frames or none"):
        plain.denoise([request(init_image=init_picture(), strength=0.5), request()])


# --------------------------------------------------------------------------- regions + IP-Adapter
def test_region_references_act_only_through_its_mask(with_ip, references):
    left = box_mask((0.0, 0.0, 0.5, 1.0), W, H)
    right = box_mask((0.5, 0.0, 1.0, 1.0), W, H)
    nothing = np.zeros((H, W), dtype=np.float32)

    def drawn(*regions):
        return with_ip.denoise([request(regions=list(regions))])[0]

    bare = drawn()
    on_left = drawn(Region("aldar", left, references))
    on_right = drawn(Region("aldar", right, references))
    assert diff(bare, on_left) > 0 and diff(bare, on_right) > 0  # the references condition the frame
    assert diff(on_left, on_right) > 0  # ... where the mask says
    # an all-zero mask: the reference adds exactly nothing (a dropped mask would let it act everywhere)
    assert diff(bare, drawn(Region("aldar", nothing, references))) == 0
    # a region without references is inert
    assert diff(bare, drawn(Region("bai", left, []))) == 0


def test_region_mask_of_another_size_is_an_input_error(with_ip, references):
    with pytest.raises(InputError, match="region aldar: mask is 32x64"):
        with_ip.denoise([request(regions=[Region("aldar", np.ones((64, 32), np.float32), references)])])


def test_references_without_an_ip_adapter_are_an_input_error(plain, references):
    with pytest.raises(InputError, match="--ip-adapter"):
        plain.denoise([request(regions=[Region("aldar", box_mask(None, W, H), references)])])


# --------------------------------------------------------------------------- the engine's place
def test_the_engine_module_knows_no_story():
    """It imports none of story, staging, board, writers, prompting or the storyboard renderer."""
    source = Path(__file__).parents[1] / "src/autokose/render/diffusion/engine.py"
    imported = set()
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names)
    banned = ("autokose.story", "autokose.staging", "autokose.board", "autokose.writers", "autokose.prompting",
              "autokose.render.diffusion.renderer")
    assert not [m for m in imported if m.startswith(banned)]
    code = ("import sys, autokose.render.diffusion.engine; "
            "print(sorted(m for m in sys.modules if m.startswith(%r)))" % (banned,))
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", f"importing the engine loads {loaded.strip()}"


def test_render_settings_with_diffusion_options_import_no_torch():
    code = ("import sys; from autokose.config import RunConfig; "
            "c = RunConfig.model_validate({'render': {'renderer': 'diffusion', 'diffusion': {'model': 'm'}}}); "
            "c.model_dump(mode='json'); RunConfig.model_json_schema(); "
            "import autokose.render.diffusion; "
            "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_sdxl_draws_txt2img_and_img2img(store):
    engine = DiffusionEngine(DiffusionSettings(model=str(tiny.tiny_sdxl(store)), steps=4))
    (t,) = engine.denoise([request()])
    (a,) = engine.denoise([request(init_image=init_picture(), strength=0.5)])
    (b,) = engine.denoise([request(init_image=init_picture(flip=True), strength=0.5)])
    assert engine.arch == "sdxl" and t.size == a.size == (W, H)
    assert diff(a, b) > 0 and diff(t, a) > 0
