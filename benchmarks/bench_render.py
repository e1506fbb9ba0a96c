"""Diffusion renderer throughput on full-size SD 1.5 / SDXL with random weights (needs a GPU).

Builds a random-weight pipeline from the shipped config folder (`autokose.models.config_dir`),
saves it as a diffusers folder and renders an offline-written board through
`DiffusionRenderer`, the code path `autokose story --model` uses. Random weights cost the
same arithmetic as trained ones, so the timings hold; the pictures are noise.

    python benchmarks/bench_render.py --arch sd15 --frames 8 --steps 25
    python benchmarks/bench_render.py --arch sdxl --frames 8 --steps 25 --configs b1,b8,b8+c

A config is '+'-joined tokens: bN = batch of N frames, c = consistency 0.5, lv = --low-vram,
cn = with an OpenPose ControlNet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def random_pipeline(arch: str, dest: Path, dtype) -> Path:
    """A diffusers folder with the shipped configs and random weights."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from autokose.models import config_dir

    src = config_dir(arch)
    shutil.copytree(src, dest)
    with torch.device("cuda"):
        parts = {
            "unet": UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(src / "unet")),
            "vae": AutoencoderKL.from_config(AutoencoderKL.load_config(src / "vae")),
            "text_encoder": CLIPTextModel(CLIPTextConfig.from_pretrained(src / "text_encoder")),
        }
        if arch == "sdxl":
            parts["text_encoder_2"] = CLIPTextModelWithProjection(CLIPTextConfig.from_pretrained(src / "text_encoder_2"))
    for name, module in parts.items():
        module.to(dtype).save_pretrained(dest / name, safe_serialization=True)
    return dest


def random_controlnet(model: Path, dest: Path, dtype) -> Path:
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    with torch.device("cuda"):
        unet = UNet2DConditionModel.from_pretrained(model / "unet")
        ControlNetModel.from_unet(unet).to(dtype).save_pretrained(dest, safe_serialization=True)
    return dest


def parse_config(name: str) -> dict:
    tokens = name.split("+")
    batch = next((int(t[1:]) for t in tokens if t.startswith("b") and t[1:].isdigit()), None)
    return dict(batch_size=batch, consistency=0.5 if "c" in tokens else 0.0, low_vram="lv" in tokens,
                controlnet="cn" in tokens)


def main() -> None:
    import torch

    from autokose.bible import load_bible
    from autokose.render import RenderSettings
    from autokose.render.diffusion import DiffusionRenderer
    from autokose.staging import stage_story
    from autokose.writers import get_writer

    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["sd15", "sdxl"], default="sd15")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--configs", default="b1,b8,b8+c")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU")

    work = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    model = random_pipeline(args.arch, work / "model", torch.float16)
    configs = {name: parse_config(name) for name in args.configs.split(",")}
    needs_cn = any(c["controlnet"] for c in configs.values())
    controlnet = random_controlnet(model, work / "controlnet", torch.float16) if needs_cn else None
    print(f"built random {args.arch} in {time.perf_counter() - t0:.1f}s", flush=True)

    story = get_writer("offline").write("Aldar Köse sells the greedy Bai a magic coat that keeps nobody warm",
                                        scenes=args.frames, seed=0, bible=load_bible())
    layouts = stage_story(story)
    only = [s.index for s in story.scenes]
    rows = []
    sessions: dict[bool, object] = {}
    for name, config in configs.items():
        options = dict(model=str(model), steps=args.steps, batch_size=config["batch_size"] or args.frames,
                       consistency=config["consistency"], low_vram=config["low_vram"])
        if config["controlnet"]:
            options["controlnet"] = str(controlnet)
        renderer = DiffusionRenderer(RenderSettings(renderer="diffusion", diffusion=options))
        key = (config["low_vram"], config["controlnet"])
        t0 = time.perf_counter()
        if key in sessions:  # same pipeline: reuse it rather than load again (options apply per render)
            renderer.engine._session = sessions[key]
        else:
            sessions.clear()
            torch.cuda.empty_cache()
            sessions[key] = renderer.session()
        load = time.perf_counter() - t0
        list(renderer.render(story, layouts, only[:1]))  # warm-up (kernels, allocator)
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        frames = list(renderer.render(story, layouts, only))
        torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        size = frames[0].image.size
        row = dict(config=name, arch=args.arch, frames=len(frames), size=f"{size[0]}x{size[1]}", steps=args.steps,
                   batch=options["batch_size"], consistency=options["consistency"], low_vram=options["low_vram"],
                   controlnet=config["controlnet"], load_s=round(load, 1), board_s=round(seconds, 2),
                   frame_s=round(seconds / len(frames), 3),
                   peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1))
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{torch.cuda.get_device_name()}, fp16, {args.steps} steps, dpmpp_2m_karras, CFG 7")
    print("| config | size | frames | batch | consistency | board s | s/frame | peak GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['size']} | {r['frames']} | {r['batch']} | {r['consistency']} | "
              f"{r['board_s']} | {r['frame_s']} | {r['peak_gib']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
