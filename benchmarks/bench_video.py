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
then plain diffusers per-frame img2img (StableDiffusionImg2ImgPipeline) and plain per-frame
ControlNet img2img + IP-Adapter (the reference passed as `ip_adapter_image` every frame): fps and
peak CUDA memory. Random weights change no kernel, so speeds carry over to real checkpoints.
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


def reference_image(work: Path) -> Path:
    if FACE.is_file():
        return FACE
    import numpy as np
    from PIL import Image

    path = work / "reference.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)).save(path)
    return path


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
    del pipe
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    return {"frames": len(frames), "seconds": seconds, "peak_gib": peak}


def bench_full(args, work: Path) -> list[dict]:
    import torch

    from autokose.render.diffusion import DiffusionSettings
    from autokose.render.diffusion.engine import DiffusionEngine

    cuda = args.device.startswith("cuda")
    t0 = time.perf_counter()
    models = full_models(work, args.device, torch.float16 if cuda else torch.float32)
    clip = square_clip(args.clip, work / "square.mp4", args.frames)
    reference = reference_image(work)
    print(f"built full-size random SD 1.5 + ControlNet + IP-Adapter in {time.perf_counter() - t0:.1f}s", flush=True)
    rows = []
    engine = DiffusionEngine(DiffusionSettings(model=str(models["model"]), controlnet=str(models["controlnet"]),
                                               ip_adapter=str(models["ip_adapter"]), steps=args.full_steps,
                                               device=args.device))
    engine.session()
    common = dict(PROMPT, references=[str(reference)], strength=args.strength, seed=args.seed,
                  short_side=args.full_size)
    run_stylize(clip, work / "warm.mp4", engine, args.device, compare=False, **dict(common, **span(2, clip)))
    for name in ("defaults", "baseline"):
        r = run_stylize(clip, work / f"full-{name}.mp4", engine, args.device, compare=False,
                        **dict(common, **configs(args.deflicker)[name]))
        frames = r["metrics"]["frames"]
        rows.append(dict(what=f"autokose stylize ({name})", frames=frames, seconds=r["wall_s"],
                         fps=frames / r["wall_s"], draw_fps=r["draw_fps"], peak_gib=r["peak_gib"],
                         stages=r["stages"], identity=r["metrics"].get("identity")))
        print(json.dumps(rows[-1]), flush=True)
    del engine
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
    for with_controls, what in ((False, "diffusers img2img per frame"),
                                (True, "diffusers ControlNet img2img + IP-Adapter per frame")):
        p = plain_per_frame(models, clip, args, reference, with_controls)
        rows.append(dict(what=what, frames=p["frames"], seconds=p["seconds"], fps=p["frames"] / p["seconds"],
                         draw_fps=p["frames"] / p["seconds"], peak_gib=p["peak_gib"]))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def full_table(rows: list[dict], args) -> str:
    import torch

    from hardware import cpu_name

    cuda = args.device.startswith("cuda")
    where = f"{torch.cuda.get_device_name()}, fp16" if cuda else f"{cpu_name()} (smoke test), fp32"
    head = (f"{where}, {args.full_size}x{args.full_size}, {args.full_steps} steps x "
            f"strength {args.strength}, DPM++ 2M Karras, CFG 7\n")
    lines = ["| run | frames | s, whole call | fps, whole call | fps, drawing | peak GiB |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        draw = "—" if r["draw_fps"] is None else f"{r['draw_fps']:.2f}"
        lines.append(f"| {r['what']} | {r['frames']} | {r['seconds']:.2f} | {r['fps']:.2f} | {draw} "
                     f"| {r['peak_gib']} |")
    note = ("\nWhole call: stylize() from the call to OUT.metrics.json (reading, flow, controls, drawing, encoding, "
            "warp error, face identity of every frame); drawing: the steady rate of its stylize stage (frames 2..N). "
            "Diffusers rows: the per-frame loop alone.")
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
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.clip.is_file():
        sys.exit(f"no clip at {args.clip} (give --clip)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("no CUDA GPU here")
    work = Path(tempfile.mkdtemp(prefix="bench-video-"))
    try:
        if args.full:
            rows = bench_full(args, work)
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


if __name__ == "__main__":
    main()
