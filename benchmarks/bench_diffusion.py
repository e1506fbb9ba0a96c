"""Diffusion renderer speed: an 8-frame board with ControlNet + IP-Adapter + consistent attention.

Full-size SD 1.5 (512x512) and SDXL (1024x1024) built from the shipped config skeletons
(`autokose.models.config_dir`) with random weights, so nothing is downloaded:

- UNet, VAE and text encoders from the skeleton configs;
- an OpenPose-style ControlNet: `ControlNetModel.from_unet` (the real ControlNet layout);
- IP-Adapter in the h94 "base" layout (`image_proj.proj` + `to_k_ip`/`to_v_ip` per
  cross-attention) with a CLIP ViT-H/14 image encoder (the h94 `models/image_encoder`).

Side by side in one run, same weights, DPM++ 2M Karras, 25 steps, CFG 7 (unless a row says
otherwise), each row the median of `--repeats` timed boards (every run's seconds kept in the
JSON) after an untimed 2-step warm-up board with the same settings (compile time shows there):

    plain                    diffusers ControlNet pipeline called once per frame, fp16 + SDPA, the
                             reference passed as `ip_adapter_image` (what a careful user writes)
    default                  DiffusionRenderer.render() on the whole board, consistency 0.5
                             (one batch of 8 frames, prompts in 75-token windows, IP-Adapter
                             embedding computed once per character); same_bytes: a rerun's bytes
    consistency_0/0.25/1     the same at other consistency rates (overhead vs consistency_0)
    attn_flash/cudnn/efficient   SDPA backend tried first (engine `attention`; CUDA only)
    channels_last            UNet, ControlNet and VAE in NHWC (speed.set_channels_last; undone after)
    fp16_vae                 SDXL: VAE decode in fp16, no fp32 upcast (an fp16-safe VAE such as
                             sdxl-vae-fp16-fix)
    tiny_vae                 a random-weight AutoencoderTiny (taesd / taesdxl layout) as pipe.vae
    deep_cache_2, fast       DeepCache: whole UNet + ControlNet every 2nd / 3rd step (fast = the
                             `--fast` preset); same_bytes for fast
    lcm_4, lcm_8             LCMScheduler, 4 / 8 steps, CFG 1: the speed of an LCM/TCD LoRA a user
                             has (random weights: speed only, not pictures)
    bf16                     the whole pipeline in bfloat16 (moved there and back)
    fused_qkv                self-attention q/k/v as one matmul (speed.fuse_qkv;
                             irreversible: it and every row below keep it)
    compile_blocks           + torch.compile of the repeated blocks (speed.compile_models "blocks")
    best_blocks              + fast on top of compile_blocks
    compile_full             + torch.compile of the whole UNet and ControlNet ("full"; blocks undone)
    best_full                + fast on top of compile_full

Load-time switches are applied by this script to the injected pipeline (the engine's
`speed.tune` does the same at load); call-time ones (attention, deep_cache, fast) are the
renderer's own settings. Timings are wall clock from the call to PIL images. Random weights
change no kernel, so speeds carry over to real checkpoints (DeepCache's and LCM's picture
quality does not: measure that on real models).

    python benchmarks/bench_diffusion.py --out r.json --table r.md      # CUDA GPU
    python benchmarks/bench_diffusion.py --arch sd15 --only plain default fast --repeats 5
    python benchmarks/bench_diffusion.py --tiny --repeats 1 --out /tmp/t.json --table /tmp/t.md  # CPU smoke
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path

import torch

T0 = time.perf_counter()
SIZES = {"sd15": 512, "sdxl": 1024}
# CLIP ViT-H/14 vision tower, as in h94/IP-Adapter models/image_encoder/config.json.
VIT_H = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224,
             patch_size=14, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5)
TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
TINY_UNET = {
    "sd15": dict(block_out_channels=[32, 64], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                 up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], layers_per_block=1, cross_attention_dim=32,
                 attention_head_dim=8),
    "sdxl": dict(block_out_channels=[32, 64], down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], layers_per_block=1, cross_attention_dim=64,
                 attention_head_dim=[4, 8], transformer_layers_per_block=[1, 2], addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=6 * 8 + 32),
}
TINY_VAE = dict(block_out_channels=[32] * 4, layers_per_block=1)
TINY_VIT = dict(TINY_TEXT, image_size=224, patch_size=14, hidden_act="gelu")
ACTIONS = ["rides a donkey across the steppe", "bows to the greedy bai at his yurt", "points at the sky",
           "whispers a secret", "holds out an empty bag", "laughs by the fire", "runs with a fur coat",
           "waves goodbye from the hill"]


def log(*args) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s]", *args, flush=True)


# --------------------------------------------------------------------------- models with random weights
def build_pipeline(arch: str, device: str, dtype, tiny: bool):
    """A ControlNet pipeline of `arch` with IP-Adapter loaded; random weights, real shapes."""
    import diffusers
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from autokose.models import config_dir
    from autokose.render.diffusion.engine import make_scheduler

    root = config_dir(arch)
    unet_cfg = dict(UNet2DConditionModel.load_config(root / "unet"), **(TINY_UNET[arch] if tiny else {}))
    vae_cfg = dict(AutoencoderKL.load_config(root / "vae"), **(TINY_VAE if tiny else {}))

    def text(sub: str, cls):
        cfg = CLIPTextConfig.from_pretrained(root / sub)
        if tiny:
            cfg.update(TINY_TEXT)
        return cls(cfg).eval()

    torch.manual_seed(0)
    with torch.device(device):
        parts = dict(
            unet=UNet2DConditionModel.from_config(unet_cfg),
            vae=AutoencoderKL.from_config(vae_cfg),
            text_encoder=text("text_encoder", CLIPTextModel),
            image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**(TINY_VIT if tiny else VIT_H))).eval(),
        )
        parts["controlnet"] = ControlNetModel.from_unet(parts["unet"])
        if arch == "sdxl":
            parts["text_encoder_2"] = text("text_encoder_2", CLIPTextModelWithProjection)
    parts = {k: m.to(dtype) for k, m in parts.items()}
    parts["tokenizer"] = CLIPTokenizer.from_pretrained(root / "tokenizer")
    scheduler_name = json.loads((root / "scheduler" / "scheduler_config.json").read_text())["_class_name"]
    scheduler_cls = getattr(diffusers, scheduler_name)
    parts["scheduler"] = make_scheduler("dpmpp_2m_karras", scheduler_cls.load_config(root / "scheduler"))
    if arch == "sdxl":
        parts["tokenizer_2"] = CLIPTokenizer.from_pretrained(root / "tokenizer_2")
        pipe = diffusers.StableDiffusionXLControlNetPipeline(feature_extractor=None, **parts)
    else:
        pipe = diffusers.StableDiffusionControlNetPipeline(safety_checker=None, feature_extractor=None,
                                                           requires_safety_checker=False, **parts)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(ip_adapter_state_dict(pipe.unet, pipe.image_encoder.config.projection_dim),
                         subfolder="", weight_name="", image_encoder_folder=None)
    pipe.set_ip_adapter_scale(0.6)
    return pipe


def ip_adapter_state_dict(unet, image_embed_dim: int) -> dict:
    """IP-Adapter (base) weights in the h94 layout: 4 image tokens, to_k_ip/to_v_ip per cross-attention."""
    cross = unet.config.cross_attention_dim
    g = torch.Generator().manual_seed(1)
    image_proj = {"proj.weight": torch.randn(cross * 4, image_embed_dim, generator=g) * 0.02,
                  "proj.bias": torch.zeros(cross * 4), "norm.weight": torch.ones(cross),
                  "norm.bias": torch.zeros(cross)}
    layers, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            hidden = unet.get_submodule(name.removesuffix(".processor")).to_k.out_features
            for kv in ("to_k_ip", "to_v_ip"):
                layers[f"{key_id}.{kv}.weight"] = torch.randn(hidden, cross, generator=g) * 0.02
            key_id += 2
    return {"image_proj": image_proj, "ip_adapter": layers}


# --------------------------------------------------------------------------- the board
def board(frames: int, tmp: Path):
    """A story of `frames` scenes with Aldar Köse (reference image) and the bai, its layouts and assets."""
    from PIL import Image

    from autokose.bible import load_bible
    from autokose.cast import IdentityAssets
    from autokose.staging import Layout, stage_story
    from autokose.story import Scene, Shot, Story

    bible = load_bible(None)
    shots = [Shot.wide, Shot.medium, Shot.close_up, Shot.medium]
    scenes = [Scene(index=i + 1, characters=["aldar", "bai"] if i % 2 else ["aldar"], action=ACTIONS[i % len(ACTIONS)],
                    shot=shots[i % len(shots)], seed=1000 + i) for i in range(frames)]
    story = Story(title="Benchmark", logline="Aldar Köse tricks the greedy bai.",
                  characters=[bible.characters["aldar"], bible.characters["bai"]], scenes=scenes)
    try:
        layouts = stage_story(story)
    except Exception as e:  # staging still being built: empty layouts draw blank pose images
        log(f"staging unavailable ({type(e).__name__}); blank layouts")
        layouts = [Layout(index=s.index, shot=s.shot, setting=s.setting) for s in scenes]
    ref = tmp / "aldar.png"
    g = torch.Generator().manual_seed(2)
    Image.fromarray((torch.rand(512, 512, 3, generator=g) * 255).byte().numpy()).save(ref)
    assets = {"aldar": IdentityAssets("aldar", trigger="aldarkose", references=[ref])}
    return story, layouts, assets, ref


def ensure_pose_drawing() -> str:
    """Use autokose.openpose when present; otherwise blank control images (same tensor shapes and cost)."""
    from PIL import Image

    from autokose.render.diffusion import controls

    try:
        import autokose.openpose  # noqa: F401

        return "autokose.openpose"
    except ImportError:
        controls.pose_images = lambda layouts, w, h: [Image.new("RGB", (w, h)) for _ in layouts]
        return "blank (autokose.openpose not available)"


def renderer(pipe, arch: str, device: str, dtype, *, steps: int, consistency: float, size: int, frames: int,
             cache: Path, assets: dict, cfg: float = 7.0, attached=None, **extra):
    """AutoKöse's DiffusionRenderer around an already built pipeline (no loading from disk).

    `extra`: further DiffusionSettings (attention, deep_cache, fast, scheduler, ...); the call-time
    ones act through the engine's settings. `attached`: a speed.DeepCache already attached to
    `pipe` (its hooks can be registered once per pipeline), handed on from an earlier renderer.
    """
    from autokose.render import RenderSettings
    from autokose.render.diffusion import controls
    from autokose.render.diffusion.engine import Session
    from autokose.render.diffusion.renderer import DiffusionRenderer

    settings = RenderSettings(renderer="diffusion", width=size, height=size, diffusion=dict(
        model="random-weights", controlnet="random-weights", ip_adapter="random-weights", consistency=consistency,
        steps=steps, cfg=cfg, batch_size=frames, cache_dir=str(cache), **extra))
    r = DiffusionRenderer(settings, assets=assets)
    r.engine._session = Session(pipe=pipe, arch=arch, device=device, dtype=dtype,
                                ip=controls.IpAdapterFiles(Path("random"), Path("random"), "ip-adapter_random"),
                                refs=controls.ReferenceEmbeddings(pipe, f"random-{arch}-{cache.name}", cache),
                                deep_cache=attached)
    return r


def render_board(r, story, layouts) -> list:
    return list(r.render(story, layouts, [s.index for s in story.scenes]))


def plain_board(pipe, story, layouts, ref, texts: dict, *, steps: int, size: int, scenes=None) -> list:
    """What a diffusers user writes: one pipeline call per frame, same prompts, poses, reference, seeds.

    `texts` maps scene index → (prompt, negative prompt) as the renderer built them.
    """
    from PIL import Image

    from autokose.render.diffusion import controls

    reference = Image.open(ref).convert("RGB")
    images = []
    for scene in scenes or story.scenes:
        prompt, negative = texts[scene.index]
        pose = controls.pose_images([layouts[scene.index - 1]], size, size)[0]
        out = pipe(prompt=prompt, negative_prompt=negative, image=pose, ip_adapter_image=reference,
                   num_inference_steps=steps, guidance_scale=7.0, controlnet_conditioning_scale=0.8, height=size,
                   width=size, output_type="pil", generator=torch.Generator("cpu").manual_seed(scene.seed))
        images += out.images
    return images


# --------------------------------------------------------------------------- load-time switches on the pipe
def tiny_vae(pipe, tiny: bool):
    """A random-weight AutoencoderTiny: the taesd / taesdxl layout (diffusers' defaults), or a tiny one."""
    from diffusers import AutoencoderTiny

    kwargs = dict(encoder_block_out_channels=(16,) * 4, decoder_block_out_channels=(16,) * 4,
                  num_encoder_blocks=(1, 1, 1, 1), num_decoder_blocks=(1, 1, 1, 1)) if tiny else {}
    torch.manual_seed(3)
    return AutoencoderTiny(**kwargs).to(pipe.vae.device, pipe.vae.dtype).eval()


def uncompile(pipe) -> int:
    """Undo `speed.compile_models`: every module of the UNet and ControlNets back to its eager call."""
    from autokose.render.diffusion import speed

    n = 0
    for model in (pipe.unet, *speed.controlnets(pipe)):
        for sub in model.modules():
            if getattr(sub, "_compiled_call_impl", None) is not None:
                sub._compiled_call_impl = None
                n += 1
    return n


@contextlib.contextmanager
def swapped(obj, name: str, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


# --------------------------------------------------------------------------- measuring
def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(device: str, fn) -> tuple[float, float | None, list]:
    """(seconds, peak GiB on CUDA, images) of one call of `fn`."""
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    seconds = time.perf_counter() - t
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None
    return seconds, peak, out


def image_bytes(out: list) -> list[bytes]:
    return [(getattr(x, "image", None) or x).tobytes() for x in out]


def bench_arch(arch: str, args, device: str, dtype, results: dict, save) -> None:
    from autokose.render.diffusion import speed
    from autokose.render.diffusion.engine import make_scheduler

    cuda = device.startswith("cuda")
    size = 64 if args.tiny else SIZES[arch]
    frames, steps, repeats, rate = args.frames, args.steps, max(1, args.repeats), args.consistency
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{arch}-"))
    story, layouts, assets, ref = board(frames, tmp)
    log(f"{arch}: building full-size random-weight pipeline" if not args.tiny else f"{arch}: tiny pipeline")
    t = time.perf_counter()
    pipe = build_pipeline(arch, device, dtype, args.tiny)
    rows: dict = {}
    info = results["archs"][arch] = {"size": size, "frames": frames, "steps": steps, "repeats": repeats,
                                     "repeats_variants": args.repeats_variants or repeats,
                                     "build_s": round(time.perf_counter() - t, 1),
                                     "params_unet": sum(p.numel() for p in pipe.unet.parameters()), "runs": rows}
    log(f"{arch}: built in {time.perf_counter() - t:.1f}s")
    state: list[str] = []  # load-time switches in force on the pipe (irreversible ones stay)
    keep = {"deep_cache": None}
    serial = iter(range(10**6))

    def left() -> float:
        return args.deadline - (time.perf_counter() - T0)

    def wanted(name: str) -> bool:
        return name not in args.skip and (not args.only or name in args.only)

    def ours(n_steps: int, dtype_=None, consistency: float | None = None, **extra):
        r = renderer(pipe, arch, device, dtype_ or dtype, steps=n_steps, size=size, frames=frames,
                     consistency=rate if consistency is None else consistency, cache=tmp / f"cache-{next(serial)}",
                     assets=assets, attached=keep["deep_cache"], **extra)
        return r

    def ours_board(n_steps: int, **kw) -> list:
        r = ours(n_steps, **kw)
        out = render_board(r, story, layouts)
        keep["deep_cache"] = r.engine._session.deep_cache or keep["deep_cache"]
        return out

    def run(name: str, what: str, fn, warm=None, estimate: float = 0.0, same_bytes: bool = False,
            skip: str | None = None) -> None:
        """One row: warm-up, then `repeats` timed boards; their median, every run, peak memory."""
        if not wanted(name):
            return
        if skip or left() < estimate:
            reason = skip or f"not enough time left ({left():.0f}s < {estimate:.0f}s estimated)"
            rows[name] = {"what": what, "skipped": reason}
            log(f"{arch}/{name}: skipped ({reason})")
            save()
            return
        row: dict = {"what": what, "state": list(state)}
        try:
            if warm is not None:
                tw = time.perf_counter()
                warm()
                sync(device)
                row["warmup_s"] = round(time.perf_counter() - tw, 1)
            runs, peaks, shots = [], [], []
            for _ in range(repeats if name in ("plain", "default") else args.repeats_variants or repeats):
                seconds, peak, out = timed(device, fn)
                assert len(out) == frames, f"expected {frames} images, got {len(out)}"
                runs.append(round(seconds, 3))
                peaks.append(peak)
                if same_bytes and len(shots) < 2:
                    shots.append(image_bytes(out))
            if same_bytes and len(shots) < 2:  # --repeats 1: one more, untimed, render to compare
                shots.append(image_bytes(fn()))
            median = statistics.median(runs)
            row.update(seconds=round(median, 3), images_per_s=round(frames / median, 4), runs_s=runs)
            if cuda:
                row["peak_gib"] = max(peaks)
            if same_bytes:
                row["same_bytes"] = shots[0] == shots[1]
            base = rows.get("plain", {}).get("images_per_s")
            if base and name != "plain":
                row["speedup_vs_plain"] = round(row["images_per_s"] / base, 2)
            rows[name] = row
            log(f"{arch}/{name}: {row}")
        except Exception as e:  # keep the other measurements
            row["error"] = f"{type(e).__name__}: {str(e)[:400]}"
            rows[name] = row
            log(f"{arch}/{name}: FAILED {row['error']}")
        save()

    def ours_row(name: str, what: str, estimate: float, n_steps: int | None = None, warm_steps: int = 2,
                 same_bytes: bool = False, skip: str | None = None, **kw) -> None:
        run(name, what, lambda: ours_board(n_steps or steps, **kw), warm=lambda: ours_board(warm_steps, **kw),
            estimate=estimate, same_bytes=same_bytes, skip=skip)

    # The renderer's own prompts (frame metadata), so both paths denoise the same text.
    tw = time.perf_counter()
    texts = {f.index: (f.meta["prompt"], f.meta.get("negative_prompt", "")) for f in ours_board(2)}
    log(f"{arch}: first (2-step) board {time.perf_counter() - tw:.1f}s")
    run("plain", "diffusers pipeline once per frame (SDPA)",
        lambda: plain_board(pipe, story, layouts, ref, texts, steps=steps, size=size),
        warm=lambda: plain_board(pipe, story, layouts, ref, texts, steps=2, size=size, scenes=story.scenes[:1]))
    plain_s = rows.get("plain", {}).get("seconds", 60.0)
    ours_row("default", f"DiffusionRenderer, one batch of {frames}, consistency {rate}", (repeats + 2) * plain_s / 3,
             same_bytes=True)
    board_s = rows.get("default", {}).get("seconds", plain_s / 3)  # one of our boards, from here on

    def est(n: float = 1.0) -> float:  # a row's time: warm-up + timed boards (+ a same_bytes rerun)
        return ((args.repeats_variants or repeats) + 0.5) * board_s * n

    for c in (0.0, 0.25, 1.0):
        ours_row(f"consistency_{c:g}", f"consistency {c:g} (cost of consistent attention)", est(), consistency=c)
    base = rows.get("consistency_0", {}).get("seconds")
    for name in ("default", "consistency_0.25", "consistency_1"):
        if base and rows.get(name, {}).get("seconds"):
            rows[name]["overhead_vs_consistency_0"] = round(rows[name]["seconds"] / base - 1, 3)
    for kernel in ("flash", "cudnn", "efficient"):
        ours_row(f"attn_{kernel}", f"SDPA backend {kernel} tried first (attention={kernel})", est(),
                 skip=None if cuda else "CUDA only (SDPA backend choice)", attention=kernel)
    if wanted("channels_last"):
        speed.set_channels_last(pipe)
        state.append("channels_last")
        ours_row("channels_last", "UNet, ControlNet, VAE in channels_last", est())
        speed.set_channels_last(pipe, on=False)
        state.remove("channels_last")
    if arch == "sdxl" and wanted("fp16_vae"):
        force_upcast = pipe.vae.config.force_upcast
        pipe.vae.register_to_config(force_upcast=False)
        ours_row("fp16_vae", "VAE decode in the pipe's dtype, no fp32 upcast (an fp16-safe VAE)", est(),
                 skip=None if dtype == torch.float16 else "fp16 only (no upcast to skip)")
        pipe.vae.register_to_config(force_upcast=force_upcast)
    if wanted("tiny_vae"):
        vae = tiny_vae(pipe, args.tiny)
        info["tiny_vae_params"] = sum(p.numel() for p in vae.parameters())
        with swapped(pipe, "vae", vae):
            state.append("tiny_vae")
            ours_row("tiny_vae", f"AutoencoderTiny ({'taesdxl' if arch == 'sdxl' else 'taesd'} layout) as the VAE",
                     est())
            state.remove("tiny_vae")
        del vae
    ours_row("deep_cache_2", "DeepCache: whole UNet/ControlNet every 2nd step (deep_cache=2)", est(0.8), deep_cache=2)
    ours_row("fast", "the --fast preset (DeepCache every 3rd step)", est(0.8), same_bytes=True, fast=True)
    lcm = make_scheduler("lcm", pipe.scheduler.config)
    for n in (4, 8):
        with swapped(pipe, "scheduler", lcm):
            ours_row(f"lcm_{n}", f"LCM scheduler, {n} steps, CFG 1 (speed of an LCM/TCD LoRA)",
                     est(n / steps), n_steps=n, cfg=1.0, scheduler="lcm")
    if wanted("bf16"):
        pipe.to(torch.bfloat16)
        state.append("bf16")
        ours_row("bf16", "whole pipeline in bfloat16", est(), dtype_=torch.bfloat16)
        pipe.to(dtype)  # weights rounded through bf16 from here on: same speed, other pixels
        state.remove("bf16")
    later = ["fused_qkv", "compile_blocks", "best_blocks", "compile_full", "best_full"]
    if any(wanted(n) for n in later):
        info["fused_qkv_layers"] = speed.fuse_qkv(pipe)
        state.append("fused_qkv")
    ours_row("fused_qkv", "+ fused self-attention QKV (UNet, ControlNet)", est())
    if not args.compile:
        return
    speed.COMPILE_BACKEND = "inductor" if cuda else "eager"
    info["compile_backend"] = speed.COMPILE_BACKEND
    for how in ("blocks", "full"):
        if not (wanted(f"compile_{how}") or wanted(f"best_{how}")):
            continue
        compile_s = args.compile_estimate.get(f"{arch}_{how}", args.compile_estimate.get(arch, 240))
        if left() < est() + compile_s:  # compiling and one row would not fit before the deadline
            for name in (f"compile_{how}", f"best_{how}"):
                run(name, f"torch.compile {how}", None, skip=f"not enough time left to compile ({left():.0f}s < "
                    f"{est() + compile_s:.0f}s estimated with {compile_s}s compiling)")
            continue
        uncompile(pipe)
        torch._dynamo.reset()
        info[f"compiled_{how}"] = len(speed.compile_models(pipe, how, cache_dir=tmp))
        state.append(f"compile={how}")
        ours_row(f"compile_{how}", f"+ torch.compile {how} ({speed.COMPILE_BACKEND}), warm-up includes compiling",
                 est() + compile_s)
        ours_row(f"best_{how}", f"+ fast on top of compile {how}", est(0.8) + compile_s / 2, fast=True,
                 same_bytes=True)
        state.remove(f"compile={how}")
    uncompile(pipe)


def _cell(r: dict):
    def cell(key: str, fmt: str = "{}") -> str:
        return fmt.format(r[key]) if r.get(key) is not None else "—"

    return cell


def table(results: dict) -> str:
    """The markdown tables of `results`, one per arch, to paste into docs/BENCHMARKS.md."""
    v = results["versions"]
    where = v.get("gpu") or f"{v.get('cpu') or platform.machine()} (CPU smoke test)"
    lines = [f"{where}; torch {v['torch']}, diffusers {v.get('diffusers')}, transformers {v.get('transformers')}, "
             f"Python {v['python']}" + (f", CUDA {v['cuda']}, driver {v['driver']}" if v.get("cuda") else "")
             + f"; {results['dtype']}."]
    for arch, a in results["archs"].items():
        if "skipped" in a:
            lines += ["", f"**{arch}**: skipped ({a['skipped']})"]
            continue
        lines += ["", f"**{arch}**, {a['size']}×{a['size']}, {a['frames']} frames, {a['steps']} steps; s / board is "
                  f"the median of {a['repeats']} boards for plain and default, {a['repeats_variants']} for the "
                  f"other rows (every run in the JSON); pipeline built in {a['build_s']} s.", "",
                  "| row | s / board (median) | images/s | vs plain | peak GiB | warm-up s | notes |",
                  "|---|---|---|---|---|---|---|"]
        for name, r in a["runs"].items():
            notes = []
            if "skipped" in r:
                notes.append(f"skipped: {r['skipped']}")
            if "error" in r:
                notes.append(f"error: {r['error'][:120]}")
            if "same_bytes" in r:
                notes.append(f"same bytes on rerun: {'yes' if r['same_bytes'] else 'NO'}")
            if "overhead_vs_consistency_0" in r:
                notes.append(f"{100 * r['overhead_vs_consistency_0']:+.0f}% vs consistency 0")
            if r.get("state") and "seconds" in r:
                notes.append("with " + ", ".join(r["state"]))
            if len(r.get("runs_s", [])) > 1:
                notes.append("runs " + " / ".join(f"{s:.2f}" for s in r["runs_s"]))
            cell = _cell(r)
            speedup = cell("speedup_vs_plain", "{:.2f}×") if name != "plain" and "seconds" in r else (
                "1.00×" if "seconds" in r else "—")
            lines.append(f"| {name} | {cell('seconds', '{:.2f}')} | {cell('images_per_s', '{:.2f}')} | {speedup} "
                         f"| {cell('peak_gib')} | {cell('warmup_s')} | {'; '.join(notes)} |")
    return "\n".join(lines) + "\n"


def versions() -> dict:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("diffusers", "transformers", "accelerate", "peft"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    with contextlib.suppress(Exception):
        from hardware import cpu_name  # benchmarks/hardware.py

        out["cpu"] = f"{cpu_name()}, {os.cpu_count()} cores"
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
        out["cuda"] = torch.version.cuda
        with contextlib.suppress(Exception):
            import subprocess

            out["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=20).stdout.strip()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", default=["sd15", "sdxl"], choices=["sd15", "sdxl"])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--repeats", type=int, default=3, help="timed boards per row; the table gives their median")
    p.add_argument("--repeats-variants", type=int,
                   help="timed boards for the rows other than plain and default (default: --repeats)")
    p.add_argument("--consistency", type=float, default=0.5)
    p.add_argument("--tiny", action="store_true", help="tiny configs on CPU, 2 steps: checks the script runs")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--compile-estimate", type=json.loads,
                   default={"sd15_blocks": 60, "sd15_full": 120, "sdxl_blocks": 120, "sdxl_full": 300},
                   help="seconds torch.compile is expected to take per ARCH_HOW or ARCH (JSON), for --deadline")
    p.add_argument("--skip", nargs="*", default=[], help="rows to leave out, e.g. consistency_1 attn_efficient")
    p.add_argument("--only", nargs="*", default=[], help="the rows to run (plain and default are what 'vs' uses)")
    p.add_argument("--deadline", type=float, default=1e9,
                   help="seconds from start: skip rows that would run past it (a build in progress still ends)")
    p.add_argument("--out", type=Path, default=Path("bench_diffusion.json"))
    p.add_argument("--table", type=Path, help="also write the markdown tables here")
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    dtype = torch.float32 if device == "cpu" else torch.float16
    if args.tiny:
        args.steps = min(args.steps, 2)
        torch.set_num_threads(1)  # tiny models gain nothing from threads; a busy small VM loses a lot
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    results = {"versions": versions(), "device": device, "dtype": str(dtype).removeprefix("torch."),
               "pose_drawing": ensure_pose_drawing(), "argv": sys.argv[1:], "archs": {}}
    log(results["versions"])

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        if args.table:
            args.table.write_text(table(results))

    for arch in args.arch:
        if args.deadline - (time.perf_counter() - T0) < 30:
            log(f"{arch}: skipped, deadline")
            results["archs"][arch] = {"skipped": "deadline"}
            continue
        bench_arch(arch, args, device, dtype, results, save)
        gc.collect()  # the pipeline goes with bench_arch's frame
        if device == "cuda":
            torch.cuda.empty_cache()
    results["total_s"] = round(time.perf_counter() - T0, 1)
    save()
    log(f"done: {args.out}" + (f", {args.table}" if args.table else ""))


if __name__ == "__main__":
    main()
