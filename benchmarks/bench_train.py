"""Character LoRA training speed and memory: full-size SD 1.5 at 512², the real training loop.

The model is SD 1.5 built from the shipped config skeleton (`autokose.models.config_dir("sd15")`)
with random weights and saved as an fp16 diffusers folder, so nothing is downloaded; random
weights change no kernel, so speeds carry over to real checkpoints. 12 reference images
(512×512 noise textures) are trained with `autokose.cast.train.train_character`, exactly as
`autokose character train` runs it (bf16 mixed precision on GPUs that have it, LoRA rank 16
on to_q/to_k/to_v/to_out.0, AdamW).

- "default run": the command's defaults, 500 steps, batch 1, checkpoints every 100 steps and
  2 validation images at the end; wall clock from the call to card.json, model loading included.
- batch 1 and 4, gradient checkpointing off and on: steps/s over the loop after a warm-up,
  peak CUDA memory (torch.cuda.max_memory_allocated / reserved) for the whole run.

    python benchmarks/bench_train.py --out results.json      # CUDA GPU
    python benchmarks/bench_train.py --tiny --out tiny.json  # CPU smoke test, tiny model
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import shutil
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def build_sd15(folder: Path, device: str) -> Path:
    """Random-weight SD 1.5 from the shipped configs, saved as an fp16 diffusers folder."""
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from autokose.models import config_dir

    cfg = config_dir("sd15")
    torch.manual_seed(0)
    with torch.device(device):  # initialising 1 B parameters is minutes on a CPU, a second on a GPU
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(cfg / "unet"))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(cfg / "vae"))
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(cfg / "text_encoder"))
    pipe = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=CLIPTokenizer.from_pretrained(cfg / "tokenizer"), unet=unet,
        scheduler=PNDMScheduler.from_pretrained(cfg / "scheduler"), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False)
    pipe.to(torch.float16 if device == "cuda" else torch.float32).save_pretrained(folder, safe_serialization=True)
    del pipe, unet, vae, text_encoder
    return folder


def build_tiny(root: Path) -> Path:
    sys.path.insert(0, str(REPO / "tests"))
    import tiny

    return tiny.tiny_sd15(root)


def make_references(folder: Path, count: int, size: int) -> Path:
    """Distinct noise textures: as costly to encode as photos, no faces (centre crops)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in range(count):
        base = rng.integers(0, 256, (size // 8, size // 8, 3), dtype=np.uint8)
        image = Image.fromarray(base).resize((size, size), Image.Resampling.BICUBIC)
        image.save(folder / f"{n:02d}.png")
    return folder


def run(name: str, model: Path, refs: Path, work: Path, *, warmup: int, **options) -> dict:
    from autokose.bible import builtin_bible
    from autokose.cast.train import config_for, train_character

    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    cfg = config_for(builtin_bible()["aldar"], images=str(refs), model=str(model), out=str(out), **options)
    stamps: list[float] = []
    cuda = torch.cuda.is_available()
    gc.collect()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    result = train_character(cfg, on_step=lambda step, total, loss: stamps.append(time.perf_counter()))
    wall = time.perf_counter() - t0
    steps = len(stamps)
    timed = steps - 1 - warmup
    row = {
        "name": name, "batch_size": cfg.batch_size, "gradient_checkpointing": cfg.gradient_checkpointing,
        "steps": steps, "resolution": cfg.resolution, "checkpoint_every": cfg.checkpoint_every,
        "validation": cfg.render_validation,
        "steps_per_s": round(timed / (stamps[-1] - stamps[warmup]), 3) if timed > 0 else None,
        "images_per_s": round(timed * cfg.batch_size / (stamps[-1] - stamps[warmup]), 2) if timed > 0 else None,
        "setup_s": round(stamps[0] - t0, 2), "loop_s": round(stamps[-1] - stamps[0], 2),
        "after_loop_s": round(t0 + wall - stamps[-1], 2), "wall_s": round(wall, 2),
        "final_loss": result.final_loss,
    }
    if cuda:
        row["peak_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        row["peak_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
    del result
    gc.collect()
    return row


def environment() -> dict:
    env = {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": torch.get_num_threads()}
    for dist in ("torch", "diffusers", "transformers", "peft", "accelerate"):
        try:
            env[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench_train.json"))
    parser.add_argument("--tiny", action="store_true", help="tiny random model at 64 px (CPU smoke test)")
    parser.add_argument("--steps", type=int, default=500, help="steps of the default run")
    parser.add_argument("--sweep-steps", type=int, default=60, help="steps of each batch/checkpointing run")
    parser.add_argument("--images", type=int, default=12)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp folder)")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_train_"))
    work.mkdir(parents=True, exist_ok=True)
    resolution = 64 if args.tiny else 512
    results = {"benchmark": "character LoRA training (SD 1.5)", "tiny": args.tiny, "environment": environment(),
               "images": args.images, "runs": []}

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    t = time.perf_counter()
    model = build_tiny(work) if args.tiny else build_sd15(work / "sd15-random", device)
    results["build_model_s"] = round(time.perf_counter() - t, 2)
    refs = make_references(work / "refs", args.images, resolution)
    common = dict(resolution=resolution, validation_steps=2 if args.tiny else 25)
    warmup = 3 if args.tiny else 10
    plan = [("default", dict(steps=args.steps))]
    for batch in (1, 4):
        for checkpointing in (False, True):
            plan.append((f"batch{batch}_gc{'on' if checkpointing else 'off'}",
                         dict(steps=args.sweep_steps, batch_size=batch, gradient_checkpointing=checkpointing,
                              checkpoint_every=0, render_validation=False)))
    for name, options in plan:
        try:
            row = run(name, model, refs, work, warmup=warmup, **common, **options)
        except Exception as e:  # keep the other rows (e.g. out of memory in one configuration)
            row = {"name": name, "error": f"{type(e).__name__}: {e}"}
        results["runs"].append(row)
        print(json.dumps(row), flush=True)
        save()
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
