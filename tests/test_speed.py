"""Speed switches (render/diffusion/speed.py) on tiny models, CPU: each one acts, none leaks, runs repeat.

The speed itself is measured on a GPU (benchmarks/bench_diffusion.py, docs/BENCHMARKS.md); here
each switch is checked by what it does: DeepCache runs the deep blocks only on whole steps (and
changes the frame), the tuning switches keep the frame, a LoRA'd layer is never fused, the tiny
VAE and TCD load from a user's folder, and every switch reaches the settings from the CLI.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest
import tiny
import torch
from PIL import Image

from autokose.errors import InputError
from autokose.render.diffusion import DiffusionSettings, speed
from autokose.render.diffusion.engine import DiffusionEngine, FrameRequest

W = H = 64
STEPS = 10
POSE = Image.new("RGB", (W, H), (200, 60, 40))


def request(**kw) -> FrameRequest:
    return FrameRequest(**{"prompt": "aldarkose the man and a yurt", "width": W, "height": H, "seed": 5,
                           "controls": {"openpose": POSE}, **kw})


def engine(store, **kw) -> DiffusionEngine:
    return DiffusionEngine(DiffusionSettings(**{"model": str(tiny.tiny_sd15(store)), "steps": STEPS,
                                                "controlnet": str(tiny.tiny_controlnet(store)), **kw}))


def px(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def diff(a, b) -> float:
    return float(np.abs(px(a) - px(b)).mean())


@pytest.fixture(scope="module")
def default_frame(store):
    return engine(store).denoise([request()])[0]


def count_calls(modules: dict) -> dict:
    """Forward calls per name, counted on a module *inside* each block (a skipped block runs none)."""
    counts = dict.fromkeys(modules, 0)
    for name, module in modules.items():
        module.register_forward_hook(lambda *_, name=name: counts.__setitem__(name, counts[name] + 1))
    return counts


# --------------------------------------------------------------------------- DeepCache
def test_deep_cache_runs_the_deep_blocks_only_on_whole_steps(store, default_frame):
    e = engine(store, deep_cache=3)
    unet, net = e.session().pipe.unet, e.session().pipe.controlnet
    counts = count_calls({"unet down 1": unet.down_blocks[1].resnets[0], "unet mid": unet.mid_block.resnets[0],
                          "unet up 0": unet.up_blocks[0].resnets[0], "controlnet down 1": net.down_blocks[1].resnets[0],
                          "unet down 0": unet.down_blocks[0].resnets[0], "unet last up": unet.up_blocks[-1].resnets[0],
                          "controlnet down 0": net.down_blocks[0].resnets[0]})
    frame = e.denoise([request()])[0]
    whole = len(range(0, STEPS, 3))  # steps 0, 3, 6, 9
    assert counts == {"unet down 1": whole, "unet mid": whole, "unet up 0": whole, "controlnet down 1": whole,
                      "unet down 0": STEPS, "unet last up": STEPS, "controlnet down 0": STEPS}
    assert diff(frame, default_frame) > 0.3  # reused features change the picture, a little
    assert diff(frame, e.denoise([request()])[0]) == 0  # same seed, same bytes
    assert all(hook.kept is None for hook in e.session().deep_cache.hooks)  # nothing held between calls


def test_fast_is_deep_cache_3_and_an_explicit_deep_cache_wins(store, default_frame):
    assert DiffusionSettings(model="m", fast=True).deep_cache_interval == 3
    assert DiffusionSettings(model="m", fast=True, deep_cache=2).deep_cache_interval == 2
    assert DiffusionSettings(model="m").deep_cache_interval == 1
    fast = engine(store, fast=True).denoise([request()])[0]
    assert diff(fast, engine(store, deep_cache=3).denoise([request()])[0]) == 0
    assert diff(engine(store, fast=True, deep_cache=1).denoise([request()])[0], default_frame) == 0


def test_a_session_used_with_deep_cache_draws_whole_frames_again_after(store, default_frame):
    """keep_warm shares a session between engines: one engine's DeepCache must not reach the next."""
    e = engine(store, fast=True)
    fast = e.denoise([request()])[0]
    e.settings = e.settings.model_copy(update={"fast": False})
    assert diff(e.denoise([request()])[0], default_frame) == 0
    assert diff(fast, default_frame) > 0


def test_deep_cache_with_img2img_and_a_batch(store):
    """Video stylisation's path: img2img (a later first timestep), several frames in one call."""
    e = engine(store, deep_cache=2)
    init = Image.new("RGB", (W, H), (30, 120, 200))
    frames = e.denoise([request(init_image=init, strength=0.6, seed=s) for s in (1, 2)])
    again = e.denoise([request(init_image=init, strength=0.6, seed=s) for s in (1, 2)])
    assert [f.size for f in frames] == [(W, H)] * 2
    assert diff(frames[0], frames[1]) > 0 and diff(frames[0], again[0]) == diff(frames[1], again[1]) == 0


# --------------------------------------------------------------------------- load-time tuning
def test_channels_last_and_fused_qkv_keep_the_frame(store, default_frame):
    e = engine(store, channels_last=True, fused_qkv=True)
    frame = e.denoise([request()])[0]
    pipe = e.session().pipe
    attn1 = [m for n, m in pipe.unet.named_modules() if n.endswith("attn1")]
    assert e.session().tuned["fused_qkv_layers"] > 0 and all(getattr(a, "fused_projections", False) for a in attn1)
    conv = pipe.unet.conv_in.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    assert diff(frame, default_frame) < 0.5  # other kernels, same function


def test_fused_qkv_leaves_the_layers_a_lora_acts_on(store, default_frame):
    lora = str(tiny.tiny_lora_diffusers(store))
    plain = engine(store, loras=[lora]).denoise([request()])[0]
    e = engine(store, loras=[lora], fused_qkv=True)
    fused = e.denoise([request()])[0]
    unet, net = e.session().pipe.unet, e.session().pipe.controlnet
    assert not any(getattr(m, "fused_projections", False) for n, m in unet.named_modules() if n.endswith("attn1"))
    assert e.session().tuned["fused_qkv_layers"] == sum(n.endswith("attn1") for n, _ in net.named_modules()) > 0
    assert diff(plain, default_frame) > 1  # the LoRA matters here...
    assert diff(fused, plain) < 0.5  # ...and still acts with fused_qkv


@pytest.mark.slow
def test_compile_blocks_compiles_every_repeated_block_and_keeps_the_frame(store, default_frame, monkeypatch):
    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")  # dynamo traces; no code generation on CPU
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(store / "inductor"))
    torch._dynamo.reset()
    try:
        e = engine(store, compile="blocks", cache_dir=str(store / "cache"))
        frame = e.denoise([request()])[0]
        compiled = e.session().tuned["compiled"]
        pipe = e.session().pipe
        blocks = [m for m in (*pipe.unet.modules(), *pipe.controlnet.modules())
                  if type(m).__name__ in speed.COMPILED_BLOCKS]
        assert len(compiled) == len(blocks) and all(m._compiled_call_impl is not None for m in blocks)
        assert any(c.startswith("unet.") for c in compiled) and any(c.startswith("controlnet0.") for c in compiled)
        assert diff(frame, default_frame) < 0.5
        full = engine(store, compile="full", fast=True)
        assert full.session().tuned["compiled"] == ["unet", "controlnet0"]
        assert diff(full.denoise([request()])[0], engine(store, fast=True).denoise([request()])[0]) < 0.5
    finally:
        torch._dynamo.reset()


def test_compile_keeps_a_users_inductor_cache_folder(monkeypatch, tmp_path):
    import os

    class Net(torch.nn.Module):
        down_blocks, mid_block, up_blocks = [], None, []

    class Pipe:
        unet = Net()

    monkeypatch.setattr(speed, "COMPILE_BACKEND", "eager")
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    speed.compile_models(Pipe(), "blocks", cache_dir=tmp_path)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "inductor")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/users/own")
    speed.compile_models(Pipe(), "blocks", cache_dir=tmp_path)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/users/own"


def test_attention_backend_is_preferred_around_the_call(store, default_frame, monkeypatch):
    seen = []
    real = speed.attention
    monkeypatch.setattr(speed, "attention", lambda name: seen.append(name) or real(name))
    frame = engine(store, attention="math").denoise([request()])[0]
    assert seen == ["math"] and diff(frame, default_frame) < 0.5


def test_load_time_switches_are_part_of_the_load_key(store):
    keys = {engine(store, **kw).load_key() for kw in ({}, {"compile": "blocks"}, {"channels_last": True},
                                                       {"fused_qkv": True})}
    assert len(keys) == 4
    assert engine(store, fast=True, attention="math").load_key() == engine(store).load_key()  # per call


@pytest.mark.parametrize("bad, needle", [({"compile": "yes"}, "compile"), ({"attention": "fastest"}, "attention"),
                                         ({"deep_cache": 0}, "deep_cache"), ({"scheduler": "tcdx"}, "scheduler")])
def test_bad_speed_settings_are_one_line_input_errors(bad, needle):
    with pytest.raises(InputError, match=needle) as e:
        DiffusionSettings.from_render({"model": "m", **bad})
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------------- tiny VAE, TCD, prompts
def tiny_autoencoder(folder: Path) -> Path:
    """A diffusers AutoencoderTiny folder (the taesd layout), random weights."""
    from diffusers import AutoencoderTiny

    if not (folder / "config.json").is_file():
        torch.manual_seed(3)
        AutoencoderTiny(encoder_block_out_channels=(8, 8, 8, 8), decoder_block_out_channels=(8, 8, 8, 8),
                        num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)).save_pretrained(folder)
    return folder


def test_a_tiny_autoencoder_given_as_vae_draws_and_encodes(store, default_frame):
    folder = tiny_autoencoder(store / "taesd")
    e = engine(store, vae=str(folder))
    e.check((W, H))
    frame = e.denoise([request()])[0]
    assert type(e.session().pipe.vae).__name__ == "AutoencoderTiny"
    assert frame.size == (W, H) and diff(frame, default_frame) > 1
    init = Image.new("RGB", (W, H), (30, 120, 200))
    assert e.denoise([request(init_image=init, strength=0.5)])[0].size == (W, H)  # img2img encodes with it


def test_tcd_scheduler(store):
    e = engine(store, scheduler="tcd", steps=4, cfg=1.0)
    assert type(e.session().pipe.scheduler).__name__ == "TCDScheduler"
    assert e.denoise([request()])[0].size == (W, H)


def test_each_distinct_text_is_encoded_once(store):
    from autokose.prompt_embeds import encode_prompts

    pipe = engine(store).session().pipe
    rows = []
    hook = pipe.text_encoder.register_forward_hook(lambda m, args, out: rows.append(args[0].shape[0]))
    emb = encode_prompts(pipe, ["aldarkose", "aldarkose", "the yurt"], ["sketch"] * 3, windows=2)
    hook.remove()
    assert rows == [3 * 2]  # 3 distinct texts x 2 windows
    one = encode_prompts(pipe, ["the yurt"], ["sketch"], windows=2)
    torch.testing.assert_close(emb.prompt[2:], one.prompt)
    torch.testing.assert_close(emb.prompt[0], emb.prompt[1])
    torch.testing.assert_close(emb.negative, one.negative.expand(3, -1, -1))


# --------------------------------------------------------------------------- from the command line
@pytest.mark.parametrize("module, names", [("autokose.app.cli:story", "autokose.app.cli:RENDER_OPTIONS"),
                                           ("autokose.app.cli:render", "autokose.app.cli:RENDER_OPTIONS"),
                                           ("autokose.app.video:stylize", "autokose.video.options:DIFFUSION_OPTIONS"),
                                           ("autokose.app.evaluate:evaluate",
                                            "autokose.app.evaluate:EVAL_RENDER_OPTIONS")])
def test_every_command_that_draws_takes_the_speed_flags(module, names):
    import importlib

    def get(ref):
        mod, name = ref.split(":")
        return getattr(importlib.import_module(mod), name)

    params = inspect.signature(get(module)).parameters
    assert {"fast", "deep_cache", "compile"} <= set(params) & set(get(names))


def test_character_sheet_passes_the_speed_flags_on(monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from autokose.app.cli import app
    from autokose.render import sheet

    seen = {}

    def plan(char, assets, diffusion=None, **kw):
        seen.update(diffusion.given())
        raise InputError("stop here")

    monkeypatch.setattr(sheet, "plan_sheet", plan)
    result = CliRunner().invoke(app, ["character", "sheet", "aldar", "--out", str(tmp_path / "s"), "--model", "m",
                                      "--fast", "--deep-cache", "2", "--compile", "blocks"])
    assert result.exit_code == 2 and seen == {"model": "m", "fast": True, "deep_cache": 2, "compile": "blocks"}


def test_fast_reaches_the_manifest_and_a_rerender(store, tmp_path):
    from typer.testing import CliRunner

    from autokose.app.cli import app

    out = tmp_path / "board"
    args = ["story", "Aldar Köse tricks the bai", "--scenes", "1", "--out", str(out),
            "--model", str(tiny.tiny_sd15(store)), "--steps", "3", "--width", "64", "--height", "64",
            "--stages", "write,cast,stage,render", "--fast", "--compile", "off"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    diffusion = json.loads((out / "manifest.json").read_text())["command"]["render"]["diffusion"]
    assert diffusion["fast"] is True and diffusion["compile"] == "off"
    bad = CliRunner().invoke(app, ["render", str(out / "story.json"), "--compile", "always"])
    assert bad.exit_code == 2 and "compile" in bad.output


def test_subject_plans_are_made_before_the_unet_runs(store, monkeypatch):
    """Masked consistency plans its token groups before the call: made inside the attention
    processor, a compiled UNet would break its graph there at every new layer size."""
    from autokose.regions import box_mask
    from autokose.render.diffusion import consistency
    from autokose.render.diffusion.engine import Region

    e = engine(store, consistency=0.5, steps=2)
    unet = e.session().pipe.unet
    inside, made = [False], []
    unet.register_forward_pre_hook(lambda *_: inside.__setitem__(0, True))
    unet.register_forward_hook(lambda *_: inside.__setitem__(0, False))
    real = consistency.subject_plan
    monkeypatch.setattr(consistency, "subject_plan", lambda *a: made.append(inside[0]) or real(*a))
    box = (0.1, 0.1, 0.6, 0.9)
    ctl = e.consistent_attention(seed=1)
    try:
        e.denoise([request(seed=s, regions=[Region("aldar", box_mask(box, W, H))]) for s in (1, 2)], consistency=ctl)
    finally:
        ctl.disable()
    assert made and not any(made)  # every level planned, none inside the UNet


@pytest.mark.slow
def test_the_gpu_benchmark_runs_its_rows_on_tiny_models(tmp_path):
    """benchmarks/bench_diffusion.py is run once per GPU session: its rows must not rot meanwhile."""
    import subprocess
    import sys

    from conftest import REPO

    out = tmp_path / "bench.json"
    rows = ["plain", "default", "fast", "tiny_vae", "fused_qkv", "compile_blocks"]
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_diffusion.py"), "--tiny", "--arch", "sd15",
                           "--repeats", "1", "--only", *rows, "--out", str(out), "--table", str(tmp_path / "t.md")],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    measured = json.loads(out.read_text())["archs"]["sd15"]["runs"]
    assert set(rows) <= set(measured)
    assert not [name for name, row in measured.items() if "error" in row], measured
    assert measured["default"]["same_bytes"] is True and measured["fast"]["same_bytes"] is True
    assert "| fast |" in (tmp_path / "t.md").read_text()


def test_sdxl_like_unets_keep_their_outermost_attention_level_fresh():
    """SDXL's last up block has no attention: DeepCache keeps two levels fresh there, so consistent
    attention, IP-Adapter and regional prompts still act on every step."""
    from types import SimpleNamespace

    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(
        sample_size=16, block_out_channels=(8, 16, 16), layers_per_block=1, norm_num_groups=4, cross_attention_dim=8,
        attention_head_dim=2, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")).eval()
    assert speed.fresh_levels(unet) == 2 and speed.fresh_levels(tiny._unet()) == 1
    cache = speed.DeepCache(SimpleNamespace(unet=unet))
    assert [h.fn_ref.original_forward.__self__ for h in cache.hooks] == [unet.down_blocks[2], unet.mid_block,
                                                                          unet.up_blocks[0]]
    x, text = torch.randn(1, 4, 16, 16), torch.randn(1, 3, 8)
    with torch.no_grad(), cache.running(2):
        whole = unet(x, 10, text).sample
        cache.step_end(0)
        reused = unet(x * 1.1, 9, text).sample
    assert reused.shape == whole.shape and not torch.equal(reused, whole)


def test_speed_settings_that_change_no_picture_keep_saved_frames():
    from autokose.render import RenderSettings
    from autokose.render.quality import picture_settings

    def picture(**kw):
        return picture_settings(RenderSettings(renderer="diffusion", diffusion={"model": "m", **kw}))

    assert picture(compile="blocks", channels_last=True, fused_qkv=True, attention="math") == picture()
    assert picture(fast=True) != picture() and picture(deep_cache=2) != picture()
    video = DiffusionSettings(model="m").picture()
    assert not {"compile", "fast", "deep_cache", "attention"} & set(video)  # old video recipes still match
    assert DiffusionSettings(model="m", fast=True, compile="full").picture()["fast"] is True


def test_tcd_samples_with_its_own_eta(store, monkeypatch):
    e = engine(store, scheduler="tcd", steps=2, cfg=1.0)
    scheduler = e.session().pipe.scheduler
    seen, step = [], scheduler.step

    def spy(model_output, timestep, sample, eta=0.3, generator=None, return_dict=True):  # step's own signature
        seen.append(eta)
        return step(model_output, timestep, sample, eta=eta, generator=generator, return_dict=return_dict)

    monkeypatch.setattr(scheduler, "step", spy)
    e.denoise([request()])
    assert seen == [0.3, 0.3]


def test_training_refuses_a_tiny_autoencoder(store):
    from autokose.models import load_components

    with pytest.raises(InputError, match="training needs a KL VAE"):
        load_components(str(tiny.tiny_sd15(store)), vae=str(tiny_autoencoder(store / "taesd")))
