"""`autokose eval SET --model M --out DIR`: a thin shell over `autokose.evaluate` (see its docstring)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from autokose.app.flags import (
    BatchSize, Cfg, ClipModel, Compile, ControlNet, ControlScale, DeepCache, Device, Dtype, Fast, Height, IpAdapter,
    IpScale, Lora, LowVram, Model, ModelConfig, Scheduler, Steps, Vae, Width, retold, stage_progress)
from autokose.app.terminal import console, literal, user_errors

# The render options eval passes on to every method's run (consistency is the methods' own).
EVAL_RENDER_OPTIONS = ("model", "vae", "lora", "ip_adapter", "ip_adapter_scale", "controlnet", "controlnet_scale",
                       "scheduler", "steps", "cfg", "width", "height", "device", "dtype", "low_vram", "model_config",
                       "batch_size", "fast", "deep_cache", "compile")


def evaluate(
    set_path: Annotated[Path, typer.Argument(metavar="SET", help="Folder of imported boards (`autokose import`), "
                                                                "or a prompt file (imported into OUT/set/).")],
    model: retold(Model, "SD 1.5/SDXL every method draws with: HF repo id, diffusers folder or .safetensors "
                         "file."),
    out: Annotated[Path, typer.Option(help="Folder for the boards (OUT/METHOD/BOARD) and results.json/.md.")],
    methods: Annotated[str, typer.Option(help="Comma-separated: plain, consistency, ip-adapter (plain is "
                                              "always drawn: differences are to it).")] = "plain,consistency",
    clip_model: ClipModel = None,
    dino_model: Annotated[Optional[str], typer.Option(help="DINO model for the DINO metric (HF id in the cache "
                                                           "or folder); without it the metric is skipped.")] = None,
    seed: Annotated[int, typer.Option(min=0, help="Seed the frames' seeds are derived from when SET is a "
                                                  "prompt file.")] = 0,
    vae: Vae = None, lora: Lora = None, ip_adapter: IpAdapter = None, ip_adapter_scale: IpScale = None,
    controlnet: ControlNet = None, controlnet_scale: ControlScale = None, scheduler: Scheduler = None,
    steps: Steps = None, cfg: Cfg = None, width: Width = None, height: Height = None, device: Device = None,
    dtype: Dtype = None, low_vram: LowVram = None, model_config: ModelConfig = None, batch_size: BatchSize = None,
    fast: Fast = None, deep_cache: DeepCache = None, compile: Compile = None,
) -> None:
    """Draw a benchmark set once per method with the same seeds, score it, write results.json and results.md."""
    from autokose.evaluate import evaluate as run_eval
    from autokose.evaluate import parse_methods

    options = {k: v for k, v in locals().items() if k in EVAL_RENDER_OPTIONS}
    with user_errors():
        with stage_progress() as progress:
            results = run_eval(set_path, out, overrides=options, methods=parse_methods(methods),
                               clip_model=clip_model, dino_model=dino_model, seed=seed, progress=progress)
    console.print(Text.assemble(("results:", "green"), " ", literal(out / "results.md"),
                                f"  ({len(results['rows'])} rows)"), highlight=False, soft_wrap=True)
