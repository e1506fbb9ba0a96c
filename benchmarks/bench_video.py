"""Footage → stylised video: speed and flicker per temporal mechanism, on the real clip.

CPU (default): the tiny random-weight SD 1.5 of the tests (`tests/tiny.py`) stylises the first
N frames of ../shared/data/video/short_hamilton_clip.mp4 at each short side (64 and 256 px) once
per configuration, through `autokose.video.stylize.stylize`, the code path of
`autokose video stylize`. Each row: the output's warp error (Lai et al. 2018, `video.metrics`),
its ratio to the per-frame baseline (same settings, every mechanism off, one fixed seed: < 1
flickers less), and seconds per frame (the whole stylize() call: reading, flow, controls,
denoising, writing the MP4, measuring; the baseline's frames not included), as wall clock and
as this process's CPU time (all its threads: steadier than the wall clock on a shared machine).

    baseline            every mechanism off: must equal the per-frame baseline (ratio 1.000)
    noise               warped_noise only (the initial noise moves along the input's flow)
    init                flow_init only, fuse 0 (stylised t-1 carried along the flow is t's init)
    fuse                flow_init with fuse (the carried frame also blended into the result)
    keyframes           keyframe_attention only (cross-frame attention to the anchor frames)
    defaults            StylizeSettings() as shipped
    defaults+deflicker  the defaults with the post-pass deflicker

The baseline is rendered once per size (`compare_baseline=True` on the all-off configuration, an
extra run) and its warp error reused by the others: it depends on the settings the
configurations share, not on the mechanisms; the timed runs draw no baseline (stylize() draws it
frame by frame beside its own). `--baseline-each` renders it in every run instead (no s/frame). A random-weight model
cannot show what attention sharing does to a picture; its ratios pin the mechanisms' behaviour
on this model, not the quality of a trained one.

    python benchmarks/bench_video.py                                   # CPU table (64 and 256 px)
    python benchmarks/bench_video.py --frames 4 --sizes 64 --configs baseline,defaults   # smoke test
    python benchmarks/bench_video.py --full --device cuda              # GPU: full size, 512x512
    python benchmarks/bench_video.py --full --frames 2 --full-size 64 --full-steps 2   # its CPU smoke test

`--full` (GPU): full-size random-weight SD 1.5 (the shipped config skeleton, as
benchmarks/bench_render.py builds it) + an OpenPose ControlNet (`ControlNetModel.from_unet`) +
IP-Adapter in the h94 base layout with a ViT-H/14 image encoder (as benchmarks/bench_diffusion.py
builds it), fp16, DPM++ 2M Karras, CFG 7. The clip is cropped to its centre square and
stylised at 512x512. In one run: our stylize() with the defaults and with every mechanism off,
then the defaults with the engine's speed switches (issue 17: >= 2 fps at 512x512 with ControlNet +
IP-Adapter + consistency): `fast` (the --fast preset, DeepCache every 3rd step, same loaded
pipeline), `compile_blocks` (torch.compile of the UNet's and ControlNet's repeated blocks,
`speed.compile_models(pipe, "blocks")`; its warm-up, compiling included, reported as warmup_s)
and `fast+compile_blocks`; then plain diffusers per-frame img2img (StableDiffusionImg2ImgPipeline)
and plain per-frame ControlNet img2img + IP-Adapter (the reference passed as `ip_adapter_image`
every frame): fps and peak CUDA memory. Random weights change no kernel, so speeds carry over to
real checkpoints. `--full-configs` picks rows, `--deadline` skips those that would not fit (rows
written to --json as they finish), `--table` writes the markdown table.

    python benchmarks/bench_video.py --full --device cuda --full-configs defaults,fast,compile_blocks \
        --deadline 200 --json v.json --table v.md
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
T0 = time.perf_counter()
FULL_CONFIGS = ("defaults", "baseline", "fast", "compile_blocks", "fast+compile_blocks", "plain_img2img",
                "plain_controlnet")

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO.parent / "shared" / "data" / "video" / "short_hamilton_clip.mp4"
FACE = REPO.parent / "shared" / "data" / "faces" / "obama" / "1.jpg"
PROMPT = {"character": "aldarkose the man, a fur hat", "style": "watercolour illustration, soft light"}


def configs(deflicker: float) -> dict[str, dict]:
    """Each mechanism alone, then the shipped defaults (with deflicker on top)."""
    from autokose.video.stylize import StylizeSettings

    default = {name: field.default for name, field in StylizeSettings.model_fields.items()}
    off = dict(flow_init=False, warped_noise=False, keyframe_attention=0.0, deflicker=0.0)
    return {
        "baseline": off,
        "noise": dict(off, warped_noise=True),
        "init": dict(off, flow_init=True, fuse=0.0),
        "fuse": dict(off, flow_init=True, fuse=default["fuse"] or 0.5),
        "keyframes": dict(off, keyframe_attention=default["keyframe_attention"] or 0.5),
        "defaults": {},
        "defaults+deflicker": dict(deflicker=deflicker),
    }


class StageClock:
    """Seconds per stage from stylize()'s progress(stage, done, total) calls: the time since the
    previous call is charged to the stage reported (before the first: "read"); and each stage's
    steady rate, items per second between its first and its last call (the first frame's set-up
    left out)."""

    def __init__(self):
        self.start = self.last = time.perf_counter()
        self.stages: dict[str, float] = {}
        self.spans: dict[str, list] = {}  # stage -> [first time, first done, last time, last done]
        self.first = True

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        key = "read" if self.first else stage
        self.stages[key] = self.stages.get(key, 0.0) + now - self.last
        self.first, self.last = False, now
        span = self.spans.setdefault(stage, [now, done, now, done])
        span[2:] = [now, done]

    def rate(self, stage: str) -> float | None:
        t0, d0, t1, d1 = self.spans.get(stage, [0, 0, 0, 0])
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else None


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def run_stylize(clip: Path, out: Path, engine, device: str, *, compare: bool, **settings) -> dict:
    """One stylize() call: its metrics, wall time, time per progress stage, peak CUDA memory."""
    import torch

    from autokose.video.stylize import StylizeSettings, stylize

    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    clock = StageClock()
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    metrics = stylize(clip, out, StylizeSettings(**settings), engine, progress=clock, compare_baseline=compare)
    sync(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"metrics": metrics, "wall_s": wall, "cpu_s": cpu,
            "stages": {k: round(v, 3) for k, v in clock.stages.items()}, "draw_fps": clock.rate("stylize"),
            "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None}


def span(frames: int, clip: Path) -> dict:
    from autokose.video import io

    info = io.probe(clip)
    return {"start": 0.0, "end": (frames - 0.5) / float(info.fps)}


# --------------------------------------------------------------------------- CPU: tiny model, per mechanism
def bench_mechanisms(args, work: Path) -> list[dict]:
    sys.path.insert(0, str(REPO / "tests"))
    import tiny

    from autokose.render.diffusion import DiffusionSettings
    from autokose.render.diffusion.engine import DiffusionEngine

    model = tiny.tiny_sd15(work / "models")
    engine = DiffusionEngine(DiffusionSettings(model=str(model), steps=args.steps, device=args.device))
    engine.session()
    table = configs(args.deflicker)
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown:
        sys.exit(f"unknown configs {unknown}; known: {', '.join(table)}")
    common = dict(PROMPT, strength=args.strength, seed=args.seed, **span(args.frames, args.clip))
    # Warm-up (first calls into the UNet, the flow and the encoder), not timed.
    run_stylize(args.clip, work / "warm.mp4", engine, args.device, compare=False, short_side=64,
                **dict(common, **span(2, args.clip)))
    rows = []
    for size in args.sizes:
        # The per-frame baseline once per size: `compare_baseline` on the all-off configuration (its
        # output must equal the baseline). stylize() draws the baseline frame by frame beside ours,
        # so the timed runs below are made without it.
        check = run_stylize(args.clip, work / f"{size}-compare.mp4", engine, args.device, compare=True,
                            short_side=size, **dict(common, **table["baseline"]))
        baseline = check["metrics"]["warp_error"]["baseline"]
        print(json.dumps({"size": size, "compare_baseline": check["metrics"]["warp_error"],
                          "wall_s": round(check["wall_s"], 2)}), flush=True)
        for name in names:
            r = run_stylize(args.clip, work / f"{size}-{name}.mp4", engine, args.device, compare=args.baseline_each,
                            short_side=size, **dict(common, **table[name]))
            w = r["metrics"]["warp_error"]
            frames = r["metrics"]["frames"]
            against = w["baseline"] if args.baseline_each else baseline
            row = dict(config=name, size="x".join(map(str, r["metrics"].get("size", [size, size]))), frames=frames,
                       steps=args.steps, strength=args.strength, input=w["input"], output=w["output"],
                       baseline=against, ratio=w["output"] / against if against else None,
                       s_per_frame=None if args.baseline_each else r["wall_s"] / frames,
                       cpu_s_per_frame=None if args.baseline_each else r["cpu_s"] / frames, stages=r["stages"],
                       identity=r["metrics"].get("identity"))
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def mechanisms_table(rows: list[dict], args) -> str:
    lines = ["| config | size | frames | warp error | ratio to baseline | s/frame | CPU s/frame |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = "—" if r["ratio"] is None else f"{r['ratio']:.3f}"
        seconds = "—" if r["s_per_frame"] is None else f"{r['s_per_frame']:.2f}"
        cpu = "—" if r["cpu_s_per_frame"] is None else f"{r['cpu_s_per_frame']:.2f}"
        lines.append(f"| {r['config']} | {r['size']} | {r['frames']} | {r['output']:.3g} | {ratio} | {seconds} "
                     f"| {cpu} |")
    sizes = {}
    for r in rows:
        sizes.setdefault(r["size"], r)
    for size, r in sizes.items():
        lines.append(f"\n{size}: warp error of the input {r['input']:.3g}, "
                     f"of the per-frame baseline {r['baseline']:.3g}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- GPU: full size, against diffusers
def square_clip(src: Path, dest: Path, frames: int) -> Path:
    """The clip's first `frames` frames cropped to their centre square (a 512x512 run needs a square)."""
    from autokose.video import io

    info = io.probe(src)
    side = min(info.width, info.height)
    x0, y0 = (info.width - side) // 2, (info.height - side) // 2
    cropped = (f[y0:y0 + side, x0:x0 + side] for _, f in io.read_frames(info, **span(frames, src)))
    io.write_video(cropped, dest, info.fps, crf=12)
    return dest


def full_models(work: Path, device: str, dtype) -> dict[str, Path]:
    """Random-weight SD 1.5 folder, OpenPose-shaped ControlNet, IP-Adapter (h94 base layout + ViT-H/14)."""
    import torch
    from bench_diffusion import VIT_H, ip_adapter_state_dict
    from bench_render import random_controlnet, random_pipeline
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(0)
    model = random_pipeline("sd15", work / "sd15", dtype, device)
    controlnet = random_controlnet(model, work / "controlnet", dtype, device)
    ipa = work / "ip-adapter"
    with torch.device(device):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(model / "unet"))
        encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**VIT_H))
    state = ip_adapter_state_dict(unet, encoder.config.projection_dim)
    flat = {f"{group}.{k}": v.to(dtype).contiguous() for group, part in state.items() for k, v in part.items()}
    (ipa / "models").mkdir(parents=True, exist_ok=True)
    save_file(flat, str(ipa / "models" / "ip-adapter_sd15.safetensors"))
    encoder.to(dtype).save_pretrained(ipa / "models" / "image_encoder", safe_serialization=True)
    del unet, encoder
    return {"model": model, "controlnet": controlnet, "ip_adapter": ipa}


def reference_image(work: Path, given: Path | None = None) -> Path:
    if given is not None:
        return given
    if FACE.is_file():
        return FACE
    import numpy as np
    from PIL import Image

    path = work / "reference.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(path)
    return path


def ensure_pose_detection() -> str:
    """mediapipe's pose detector when installed; otherwise a stand-in that finds nobody, so every
    OpenPose control image is blank: the ControlNet's work is the same, the CPU's pose detection
    (mediapipe, per frame) is left out of the whole-call time."""
    import importlib.machinery
    import importlib.util
    import types

    if importlib.util.find_spec("mediapipe") is not None:
        return "mediapipe"
    from autokose.video import controls

    class NoPose:
        def __init__(self, **kwargs):
            pass

        def __call__(self, frame):
            return None

        def close(self) -> None:
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            pass

    stub = types.ModuleType("mediapipe")  # stylize's check asks find_spec("mediapipe") for the ControlNet
    stub.__spec__ = importlib.machinery.ModuleSpec("mediapipe", None)
    sys.modules["mediapipe"] = stub
    controls.PoseDetector = NoPose
    return "blank (mediapipe not installed: no pose detection, blank OpenPose images)"


def plain_per_frame(models: dict, clip: Path, args, reference: Path, with_controls: bool) -> dict:
    """What a user writes with diffusers alone: img2img each frame, fixed seed, nothing shared."""
    import torch
    from diffusers import (
        ControlNetModel,
        StableDiffusionControlNetImg2ImgPipeline,
        StableDiffusionImg2ImgPipeline,
    )
    from PIL import Image

    from autokose.render.diffusion.engine import make_scheduler
    from autokose.video import io

    cuda = args.device.startswith("cuda")
    dtype = torch.float16 if cuda else torch.float32
    common = dict(dtype=dtype, safety_checker=None, requires_safety_checker=False)
    if with_controls:
        net = ControlNetModel.from_pretrained(models["controlnet"], dtype=dtype)
        pipe = StableDiffusionControlNetImg2ImgPipeline.from_pretrained(models["model"], controlnet=net, **common)
        pipe.load_ip_adapter(str(models["ip_adapter"]), subfolder="models", weight_name="ip-adapter_sd15.safetensors")
        pipe.set_ip_adapter_scale(0.6)
    else:
        pipe = StableDiffusionImg2ImgPipeline.from_pretrained(models["model"], **common)
    pipe.to(args.device)
    pipe.scheduler = make_scheduler("dpmpp_2m_karras", pipe.scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    frames = [Image.fromarray(f) for _, f in io.read_frames(clip, short_side=args.full_size)]
    ref = Image.open(reference).convert("RGB")
    prompt = ", ".join(PROMPT.values())

    def one(frame):
        extra = dict(control_image=frame, ip_adapter_image=ref) if with_controls else {}
        return pipe(prompt, image=frame, strength=args.strength, num_inference_steps=args.full_steps,
                    guidance_scale=7.0, generator=torch.Generator(args.device).manual_seed(args.seed),
                    **extra).images[0]

    one(frames[0])  # warm-up
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    sync(args.device)
    t0 = time.perf_counter()
    for frame in frames:
        one(frame)
    sync(args.device)
    seconds = time.perf_counter() - t0
    peak = round(torch.cuda.max_memory_allocated() / 2**30, 2) if cuda else None
    pipe = None  # frees the GPU memory (gc below)
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return {"frames": len(frames), "seconds": seconds, "peak_gib": peak}


def bench_full(args, work: Path, save=lambda rows: None) -> list[dict]:
    import torch

    from autokose.render.diffusion import DiffusionSettings, speed
    from autokose.render.diffusion.engine import DiffusionEngine

    cuda = args.device.startswith("cuda")
    wanted = [n.strip() for n in args.full_configs.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in FULL_CONFIGS]
    if unknown:
        sys.exit(f"unknown --full-configs {unknown}; known: {', '.join(FULL_CONFIGS)}")
    args.pose_detection = ensure_pose_detection()
    t0 = time.perf_counter()
    models = full_models(work, args.device, torch.float16 if cuda else torch.float32)
    clip = square_clip(args.clip, work / "square.mp4", args.frames)
    reference = reference_image(work, args.reference)
    print(f"built full-size random SD 1.5 + ControlNet + IP-Adapter in {time.perf_counter() - t0:.1f}s", flush=True)
    rows: list[dict] = []
    estimate = {"s": 60.0}  # seconds one row takes (the last one measured)

    def left() -> float:
        return args.deadline - (time.perf_counter() - T0)

    def fits(name: str, extra: float = 0.0) -> bool:
        if name not in wanted:
            return False
        if left() < estimate["s"] + extra:
            rows.append(dict(what=name, skipped=f"not enough time left ({left():.0f}s < "
                             f"{estimate['s'] + extra:.0f}s estimated)"))
            print(json.dumps(rows[-1]), flush=True)
            save(rows)
            return False
        return True

    settings = DiffusionSettings(model=str(models["model"]), controlnet=str(models["controlnet"]),
                                 ip_adapter=str(models["ip_adapter"]), steps=args.full_steps, device=args.device)
    engine = DiffusionEngine(settings)
    engine.session()
    # The fast preset is a call-time switch: a second engine on the same loaded session.
    fast = DiffusionEngine(DiffusionSettings(**settings.model_dump(exclude_unset=True), fast=True))
    fast._session = engine.session()
    common = dict(PROMPT, references=[str(reference)], strength=args.strength, seed=args.seed,
                  short_side=args.full_size)
    configs_ = configs(args.deflicker)

    def ours(name: str, what: str, eng, config: str, warm_frames: int = 2) -> None:
        """A warm-up on the clip's first frames (batches of 1, 2, 3 rows: every shape), then the timed run."""
        tw = time.perf_counter()
        run_stylize(clip, work / "warm.mp4", eng, args.device, compare=False,
                    **dict(common, **span(warm_frames, clip)))
        warm_s = time.perf_counter() - tw
        r = run_stylize(clip, work / f"full-{name}.mp4", eng, args.device, compare=False,
                        **dict(common, **configs_[config]))
        frames = r["metrics"]["frames"]
        rows.append(dict(config=name, what=what, frames=frames, seconds=r["wall_s"], fps=frames / r["wall_s"],
                         draw_fps=r["draw_fps"], peak_gib=r["peak_gib"], warmup_s=round(warm_s, 1),
                         stages=r["stages"], identity=r["metrics"].get("identity")))
        estimate["s"] = r["wall_s"] + warm_s
        print(json.dumps(rows[-1]), flush=True)
        save(rows)

    for name in ("defaults", "baseline"):
        if fits(name):
            ours(name, f"autokose stylize ({name})", engine, name)
    if fits("fast"):
        ours("fast", "autokose stylize (defaults, --fast: DeepCache every 3rd step)", fast, "defaults", 3)
    if "compile_blocks" in wanted or "fast+compile_blocks" in wanted:
        if fits("compile_blocks" if "compile_blocks" in wanted else "fast+compile_blocks", args.compile_estimate):
            speed.COMPILE_BACKEND = "inductor" if cuda else "eager"
            compiled = speed.compile_models(engine.session().pipe, "blocks", cache_dir=work)
            print(f"compiling {len(compiled)} blocks ({speed.COMPILE_BACKEND}) on first use", flush=True)
            if "compile_blocks" in wanted:
                ours("compile_blocks", f"autokose stylize (defaults, compile blocks: {len(compiled)} blocks, "
                     f"{speed.COMPILE_BACKEND}; warm-up compiles)", engine, "defaults", 3)
            if fits("fast+compile_blocks"):
                ours("fast+compile_blocks", "autokose stylize (defaults, --fast + compile blocks)", fast,
                     "defaults", 3)
    del engine, fast
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    plain = (("plain_img2img", False, "diffusers img2img per frame"),
             ("plain_controlnet", True, "diffusers ControlNet img2img + IP-Adapter per frame"))
    for name, with_controls, what in plain:
        if not fits(name):
            continue
        p = plain_per_frame(models, clip, args, reference, with_controls)
        rows.append(dict(config=name, what=what, frames=p["frames"], seconds=p["seconds"],
                         fps=p["frames"] / p["seconds"], draw_fps=p["frames"] / p["seconds"], peak_gib=p["peak_gib"]))
        print(json.dumps(rows[-1]), flush=True)
        save(rows)
    return rows


def full_table(rows: list[dict], args) -> str:
    import torch

    from hardware import cpu_name

    cuda = args.device.startswith("cuda")
    where = f"{torch.cuda.get_device_name()}, fp16" if cuda else f"{cpu_name()} (smoke test), fp32"
    head = (f"{where}, {args.full_size}x{args.full_size}, {args.full_steps} steps x "
            f"strength {args.strength}, DPM++ 2M Karras, CFG 7; poses: {getattr(args, 'pose_detection', '?')}\n")
    lines = ["| run | frames | s, whole call | fps, whole call | fps, drawing | peak GiB | warm-up s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['what']} | skipped: {r['skipped']} | | | | | |")
            continue
        draw = "—" if r["draw_fps"] is None else f"{r['draw_fps']:.2f}"
        lines.append(f"| {r['what']} | {r['frames']} | {r['seconds']:.2f} | {r['fps']:.2f} | {draw} "
                     f"| {r['peak_gib']} | {r.get('warmup_s', '—')} |")
    note = ("\nWhole call: stylize() from the call to OUT.metrics.json (reading, flow, controls, drawing, encoding, "
            "warp error, face identity of every frame); drawing: the steady rate of its stylize stage (frames 2..N). "
            "Diffusers rows: the per-frame loop alone, after one warm-up frame; ours: after a warm-up stylize() "
            "of the clip's first 2-3 frames (warm-up s; compiling included).")
    return head + "\n".join(lines) + note


def main() -> None:
    import torch
    from hardware import cpu_name

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip", type=Path, default=CLIP)
    ap.add_argument("--frames", type=int, default=10, help="Frames from the clip's start (default 10).")
    ap.add_argument("--sizes", default="64,256", help="Short sides, comma-separated (CPU table).")
    ap.add_argument("--configs", default="baseline,noise,init,fuse,keyframes,defaults,defaults+deflicker")
    ap.add_argument("--steps", type=int, default=4, help="Tiny model's steps (x strength are denoised).")
    ap.add_argument("--strength", type=float, default=0.5)
    ap.add_argument("--deflicker", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--baseline-each", action="store_true", help="Render the per-frame baseline in every run.")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--full", action="store_true", help="GPU: full-size SD 1.5 + ControlNet + IP-Adapter.")
    ap.add_argument("--full-size", type=int, default=512)
    ap.add_argument("--full-steps", type=int, default=25)
    ap.add_argument("--full-configs", default=",".join(FULL_CONFIGS),
                    help=f"--full rows, comma-separated (default all: {','.join(FULL_CONFIGS)})")
    ap.add_argument("--compile-estimate", type=float, default=90.0,
                    help="--full: seconds compiling the blocks is expected to take, for --deadline")
    ap.add_argument("--deadline", type=float, default=1e9,
                    help="--full: seconds from start; rows that would run past it are skipped")
    ap.add_argument("--reference", type=Path, help="--full: the reference image (default: a face from ../shared)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--table", type=Path, help="also write the markdown table here")
    args = ap.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.clip.is_file():
        sys.exit(f"no clip at {args.clip} (give --clip)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA GPU here")
    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    try:
        if args.full:
            def save(rows: list[dict]) -> None:  # each row as it finishes: a run cut short keeps them
                if args.json:
                    args.json.write_text(json.dumps(rows, indent=2))

            rows = bench_full(args, work, save)
            table = full_table(rows, args)
        else:
            rows = bench_mechanisms(args, work)
            where = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
                f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.get_num_threads()} threads"
            table = (f"{where}; tiny random-weight SD 1.5, {args.steps} steps x strength {args.strength}, "
                     f"first {args.frames} frames of {args.clip.name}\n" + mechanisms_table(rows, args))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + table)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if args.table:
        args.table.write_text(table + "\n")


if __name__ == "__main__":
    main()
