"""The command-line options several commands share: their types, help and panels, and the
progress bars of a run's stages.

`story` and `render` (cli.py) and `video stylize` (video.py) declare the same diffusion options
(`--model`, `--lora`, `--controlnet`, ...) with these aliases, so a flag reads and behaves the same
in every command. Its own module, so video.py need not import cli.py (no circle inside app/).
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Annotated, Optional, get_args

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from autokose.app.terminal import console
from autokose.render import MAX_SIDE, MIN_SIDE


@contextmanager
def stage_progress():
    """A rich bar per stage a run reports through `progress(stage, done, total)` (none off a terminal)."""
    with Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=not console.is_terminal) as bars:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update


def parse_stages(stages: str | None) -> list[str] | None:
    """--stages as a list; an empty one is an error, not "all stages" (unknown names: RunConfig)."""
    from autokose.config import STAGES

    if stages is None:
        return None
    names = [name.strip() for name in stages.split(",") if name.strip()]
    if not names:
        raise typer.BadParameter(f"no stage given (stages: {', '.join(STAGES)})")
    return names


def frame_side(value: int | None) -> int | None:
    """--width/--height: checked while parsing, so a 0 is refused rather than taken for "unset"."""
    if value is not None and not MIN_SIDE <= value <= MAX_SIDE:
        raise typer.BadParameter(f"must be between {MIN_SIDE} and {MAX_SIDE} pixels (got {value})")
    return value


# `--help` panels: each option under the question it answers, so names fit in 80 columns.
STORY, DIFFUSION, IDENTITY, CONSISTENCY, QUALITY, OUTPUT = ("Story", "Diffusion", "Identity", "Consistency",
                                                       "Quality", "Output")

# Options shared by `story` and `render`: everything that decides the pixels.
Model = Annotated[Optional[str], typer.Option(help="SD 1.5/SDXL: HF repo id, diffusers folder or .safetensors file. Omit for previz.", rich_help_panel=DIFFUSION)]
Vae = Annotated[Optional[str], typer.Option(help="Separate VAE (HF id, folder or file).", rich_help_panel=DIFFUSION)]
Lora = Annotated[Optional[list[str]], typer.Option(help="LoRA file[:weight]; repeatable (diffusers/peft or kohya format).", rich_help_panel=IDENTITY)]
IpAdapter = Annotated[Optional[str], typer.Option(help="IP-Adapter: h94 name (ip-adapter_sd15, ip-adapter-plus-face_sd15, ...) or file.", rich_help_panel=IDENTITY)]
IpScale = Annotated[Optional[float], typer.Option(help="IP-Adapter scale.", rich_help_panel=IDENTITY)]
ControlNet = Annotated[Optional[str], typer.Option(help="OpenPose ControlNet (HF id, folder or file).", rich_help_panel=IDENTITY)]
ControlScale = Annotated[Optional[float], typer.Option(help="ControlNet conditioning scale.", rich_help_panel=IDENTITY)]
Lineart = Annotated[Optional[str], typer.Option(help="Lineart ControlNet fed the frame's lines: previz ink or the footage's edges (HF id, folder or file).", rich_help_panel=IDENTITY)]
LineartScale = Annotated[Optional[float], typer.Option(help="Lineart ControlNet conditioning scale (default 0.6).", rich_help_panel=IDENTITY)]
# Keeping each face across frames and apart inside a frame (own panel: the switch names are long).
Consistency = Annotated[Optional[float], typer.Option(help="Share self-attention tokens across frames at this rate (0 = off).", rich_help_panel=CONSISTENCY)]
ConsistencyMasked = Annotated[Optional[bool], typer.Option("--consistency-masked/--consistency-all", help="Share only inside the same character's box, or all tokens (default masked).", rich_help_panel=CONSISTENCY)]
ConsistencySteps = Annotated[Optional[str], typer.Option(help="Steps that share, as fractions: START,END (default 0,1).", rich_help_panel=CONSISTENCY)]
ConsistencyBlocks = Annotated[Optional[str], typer.Option(help="UNet blocks that share: down, mid, up (default up).", rich_help_panel=CONSISTENCY)]
Regional = Annotated[Optional[bool], typer.Option("--regional/--no-regional", help="Each character's words and LoRA act in its own box (default on).", rich_help_panel=CONSISTENCY)]
RegionalBase = Annotated[Optional[float], typer.Option(help="Weight of the shared prompt inside a box, 0-1 (default 0.25).", rich_help_panel=CONSISTENCY)]
Scheduler = Annotated[Optional[str], typer.Option(help="dpmpp_2m_karras, euler_a, ddim, lcm or tcd (lcm/tcd: with an LCM or TCD LoRA, 4-8 steps, cfg 1-2).", rich_help_panel=DIFFUSION)]
Steps = Annotated[Optional[int], typer.Option(help="Denoising steps.", rich_help_panel=DIFFUSION)]
Cfg = Annotated[Optional[float], typer.Option("--cfg", help="Classifier-free guidance scale.", rich_help_panel=DIFFUSION)]
Width = Annotated[Optional[int], typer.Option(help=f"Frame width in pixels ({MIN_SIDE}–{MAX_SIDE}).", callback=frame_side,
                                              rich_help_panel=OUTPUT)]
Height = Annotated[Optional[int], typer.Option(help=f"Frame height in pixels ({MIN_SIDE}–{MAX_SIDE}).", callback=frame_side,
                                               rich_help_panel=OUTPUT)]
Device = Annotated[Optional[str], typer.Option(help="cuda, cpu or mps (default: best available).", rich_help_panel=DIFFUSION)]
Dtype = Annotated[Optional[str], typer.Option(help="float16, bfloat16 or float32 (default: fp16 on CUDA, fp32 on CPU).", rich_help_panel=DIFFUSION)]
LowVram = Annotated[Optional[bool], typer.Option("--low-vram", help="8–12 GB cards: model CPU offload, VAE slicing and tiling.", rich_help_panel=DIFFUSION)]
# Speed (render/diffusion/speed.py): --fast trades a little detail; compiling only costs its first run.
Fast = Annotated[Optional[bool], typer.Option("--fast", help="Faster drafts: the whole UNet every 3rd step, its outer blocks in between (DeepCache); a little less fine detail.", rich_help_panel=DIFFUSION)]
DeepCache = Annotated[Optional[int], typer.Option(help="Whole UNet every N-th step, outer blocks in between (1 = off; --fast means 3).", rich_help_panel=DIFFUSION)]
Compile = Annotated[Optional[str], typer.Option(help="torch.compile: off, blocks or full (the first run compiles for minutes; later runs use the cache).", rich_help_panel=DIFFUSION)]
ModelConfig = Annotated[Optional[str], typer.Option(help="Diffusers config folder for a single-file --model (default: the shipped SD 1.5/SDXL one).", rich_help_panel=DIFFUSION)]
BatchSize = Annotated[Optional[int], typer.Option(help="Frames denoised together (default 8; 2 with --low-vram).", rich_help_panel=DIFFUSION)]
BestOf = Annotated[int, typer.Option(help="Draw K candidates per frame and keep the best-scoring one. Needs something to score by: "
                                          "faces of characters with reference images, or a --clip-model; else seed order decides.",
                                     rich_help_panel=QUALITY)]
MinIdentity = Annotated[Optional[float], typer.Option(help="Re-roll frames whose identity score is below this.", rich_help_panel=QUALITY)]
RerollOnSwap = Annotated[Optional[bool], typer.Option("--reroll-on-swap/--no-reroll-on-swap", help="Scored candidates where one character has another's face rank last and are re-rolled (default on).", rich_help_panel=QUALITY)]
ClipModel = Annotated[Optional[str], typer.Option(help="CLIP model for scoring (HF id or folder).", rich_help_panel=QUALITY)]
Stages = Annotated[Optional[str], typer.Option(help="Comma-separated stages to run, of: write, cast, stage, render, score, export.",
                                               callback=parse_stages, rich_help_panel=OUTPUT)]


def retold(alias, help: str):
    """`alias` (an option type above) with other help text: the same flag, described for another command
    (e.g. `--model`, which `video stylize` requires, where `story` draws previz without it)."""
    kind, info = get_args(alias)
    info = copy.copy(info)
    info.help = help
    return Annotated[kind, info]
