"""Diffusion renderer throughput on full-size SD 1.5 / SDXL with random weights (needs a GPU).

Builds a random-weight pipeline from the shipped config folder (`autokose.models.config_dir`),
saves it as a diffusers folder and renders an offline-written board through
`DiffusionRenderer`, the code path `autokose story --model` uses. Random weights cost the
same arithmetic as trained ones, so the timings hold; the pictures are noise.

    python benchmarks/bench_render.py --arch sd15 --frames 8 --steps 25
    python benchmarks/bench_render.py --arch sdxl --frames 8 --steps 25 --configs b1,b8,b8+c

A config is '+'-joined tokens: bN = batch of N frames, c = consistency 0.5, lv = --low-vram,
cn = with an OpenPose ControlNet, l = the three characters in most scenes get their own random LoRA
(rank 16, the UNet's attention projections), g = global controls (--no-regional: LoRAs and
words act on the whole frame), u = unmasked consistency (--consistency-all). Regional prompts,
regional LoRAs and masked consistency are the defaults, so the ensemble comparison of several
characters per frame is

    python benchmarks/bench_render.py --arch sd15 --configs b8+c+l,b8+c+l+g+u --logline ensemble

`--device cpu --width 64 --height 64 --steps 1` runs any config as a smoke test without a GPU
(slowly: the weights are full size).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# An 8-scene story whose scenes mostly hold three characters (Aldar, the Bai, the Bai's wife).
LOGLINES = {
    "coat": "Aldar Köse sells the greedy Bai a magic coat that keeps nobody warm",
    "ensemble": "Aldar Köse tricks the greedy Bai and his wife the baibishe out of their best horse",
}


def random_pipeline(arch: str, dest: Path, dtype, device: str = "cuda") -> Path:
    """A diffusers folder with the shipped configs and random weights."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from autokose.models import config_dir

    src = config_dir(arch)
    shutil.copytree(src, dest)
    with torch.device(device):
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


def random_controlnet(model: Path, dest: Path, dtype, device: str = "cuda") -> Path:
    import torch
    from diffusers import ControlNetModel, UNet2DConditionModel

    with torch.device(device):
        unet = UNet2DConditionModel.from_pretrained(model / "unet")
        ControlNetModel.from_unet(unet).to(dtype).save_pretrained(dest, safe_serialization=True)
    return dest


def random_lora(model: Path, dest: Path, seed: int, rank: int = 16) -> Path:
    """A LoRA in the diffusers/peft layout on every attention projection of the UNet, random A and B
    (B is not zero, so it changes the pixels as a trained one would and costs the same)."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import save_file

    unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(model / "unet"))
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, module in unet.named_modules():
        if name.endswith(("to_q", "to_k", "to_v", "to_out.0")) and isinstance(module, torch.nn.Linear):
            down = torch.randn(rank, module.in_features, generator=generator) / module.in_features ** 0.5
            up = torch.randn(module.out_features, rank, generator=generator) * 0.01
            state[f"unet.{name}.lora_A.weight"] = down.half()
            state[f"unet.{name}.lora_B.weight"] = up.half()
    dest.mkdir(parents=True, exist_ok=True)
    save_file(state, str(dest / "pytorch_lora_weights.safetensors"))
    return dest / "pytorch_lora_weights.safetensors"


def parse_config(name: str) -> dict:
    tokens = name.split("+")
    batch = next((int(t[1:]) for t in tokens if t.startswith("b") and t[1:].isdigit()), None)
    return dict(batch_size=batch, consistency=0.5 if "c" in tokens else 0.0, low_vram="lv" in tokens,
                controlnet="cn" in tokens, loras="l" in tokens, regional="g" not in tokens,
                consistency_masked="u" not in tokens)


def main() -> None:
    import torch

    from autokose.bible import load_bible
    from autokose.cast import IdentityAssets
    from autokose.models import LoraRef
    from autokose.render import RenderSettings
    from autokose.render.diffusion import DiffusionRenderer
    from autokose.staging import stage_story
    from autokose.writers import get_writer

    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["sd15", "sdxl"], default="sd15")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--configs", default="b1,b8,b8+c")
    ap.add_argument("--logline", choices=sorted(LOGLINES), default="coat")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--width", type=int)
    ap.add_argument("--height", type=int)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit("needs a CUDA GPU (or --device cpu for a smoke test)")
    dtype = torch.float16 if cuda else torch.float32

    work = Path(tempfile.mkdtemp())
    t0 = time.perf_counter()
    model = random_pipeline(args.arch, work / "model", dtype, args.device)
    configs = {name: parse_config(name) for name in args.configs.split(",")}
    needs_cn = any(c["controlnet"] for c in configs.values())
    controlnet = random_controlnet(model, work / "controlnet", dtype, args.device) if needs_cn else None
    print(f"built random {args.arch} in {time.perf_counter() - t0:.1f}s", flush=True)

    story = get_writer("offline").write(LOGLINES[args.logline], scenes=args.frames, seed=0, bible=load_bible())
    layouts = stage_story(story)
    only = [s.index for s in story.scenes]
    cast = sorted({cid for s in story.scenes for cid in s.characters})
    loras = {}
    if any(c["loras"] for c in configs.values()):  # the three characters in most scenes
        top = Counter(cid for s in story.scenes for cid in s.characters).most_common(3)
        loras = {cid: random_lora(model, work / "loras" / cid, seed) for seed, (cid, _) in enumerate(top)}
    per_frame = sum(len(s.characters) for s in story.scenes) / len(story.scenes)
    print(f"story: {len(story.scenes)} scenes, cast {', '.join(cast)}, {per_frame:.1f} characters a frame", flush=True)
    frame_size = {k: v for k, v in (("width", args.width), ("height", args.height)) if v}
    rows = []
    sessions: dict[tuple, object] = {}
    for name, config in configs.items():
        options = dict(model=str(model), steps=args.steps, batch_size=config["batch_size"] or args.frames,
                       consistency=config["consistency"], low_vram=config["low_vram"], regional=config["regional"],
                       consistency_masked=config["consistency_masked"], device=args.device)
        if config["controlnet"]:
            options["controlnet"] = str(controlnet)
        assets = {cid: IdentityAssets(cid, lora=LoraRef(str(path), 0.8)) for cid, path in loras.items()} \
            if config["loras"] else {}
        renderer = DiffusionRenderer(RenderSettings(renderer="diffusion", diffusion=options, **frame_size), assets)
        key = (config["low_vram"], config["controlnet"], config["loras"], config["regional"])
        t0 = time.perf_counter()
        if key in sessions:  # same pipeline: reuse it rather than load again (options apply per render)
            renderer.engine._session = sessions[key]
        else:
            sessions.clear()
            if cuda:
                torch.cuda.empty_cache()
            sessions[key] = renderer.session()
        load = time.perf_counter() - t0
        list(renderer.render(story, layouts, only[:1]))  # warm-up (kernels, allocator)
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        frames = list(renderer.render(story, layouts, only))
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - t0
        size = frames[0].image.size
        row = dict(config=name, arch=args.arch, frames=len(frames), size=f"{size[0]}x{size[1]}", steps=args.steps,
                   batch=options["batch_size"], consistency=options["consistency"], low_vram=options["low_vram"],
                   controlnet=config["controlnet"], loras=len(assets), regional=config["regional"],
                   masked=config["consistency_masked"], load_s=round(load, 1), board_s=round(seconds, 2),
                   frame_s=round(seconds / len(frames), 3),
                   peak_gib=round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None)
        rows.append(row)
        print(json.dumps(row), flush=True)
    device = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"\n{device}, {str(dtype).removeprefix('torch.')}, {args.steps} steps, dpmpp_2m_karras, CFG 7")
    print("| config | size | frames | batch | consistency | LoRAs | regional | masked | board s | s/frame | peak GiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['config']} | {r['size']} | {r['frames']} | {r['batch']} | {r['consistency']} | {r['loras']} | "
              f"{r['regional']} | {r['masked']} | {r['board_s']} | {r['frame_s']} | {r['peak_gib']} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
