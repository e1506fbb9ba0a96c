"""`autokose` command line: thin wrappers that build a RunConfig and call the pipeline."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autokose.errors import InputError
from autokose.story import MAX_LOGLINE_CHARS, MAX_SCENES, format_validation_error

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Character-consistent storyboards from a logline.")
console = Console(stderr=True)


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def user_errors():
    """Turn expected failures into one line and exit code 2."""
    try:
        yield
    except InputError as e:
        fail(str(e))
    except ValidationError as e:
        fail(format_validation_error(e))
    except KeyboardInterrupt:
        fail("interrupted; run again with --resume to continue")


@contextmanager
def stage_progress():
    with Progress(TextColumn("{task.description:<8}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False, disable=not console.is_terminal) as bars:
        tasks: dict[str, int] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage, total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update


def parse_only(only: str | None) -> list[int] | None:
    if only is None:
        return None
    try:
        values = [int(part) for part in only.replace(" ", "").split(",") if part]
    except ValueError:
        fail(f"--only: expected scene numbers like 3,5 (got '{only}')")
    if not values:
        fail("--only: no scene numbers given")
    return values


def parse_picks(picks: list[str]) -> dict[int, int]:
    out = {}
    for spec in picks:
        scene, sep, cand = spec.partition("=")
        if not sep or not scene.strip().isdigit() or not cand.strip().isdigit():
            fail(f"--pick: expected SCENE=CANDIDATE like 4=2 (got '{spec}')")
        out[int(scene)] = int(cand)
    return out


# Options shared by `story` and `render`: everything that decides the pixels.
Model = Annotated[Optional[str], typer.Option(help="SD 1.5/SDXL: HF repo id, diffusers folder or .safetensors file. Omit for previz.")]
Vae = Annotated[Optional[str], typer.Option(help="Separate VAE (HF id, folder or file).")]
Lora = Annotated[Optional[list[str]], typer.Option(help="LoRA file[:weight]; repeatable (diffusers/peft or kohya format).")]
IpAdapter = Annotated[Optional[str], typer.Option(help="IP-Adapter: h94 name (ip-adapter_sd15, ip-adapter-plus-face_sd15, ...) or file.")]
IpScale = Annotated[Optional[float], typer.Option(help="IP-Adapter scale.")]
ControlNet = Annotated[Optional[str], typer.Option(help="OpenPose ControlNet (HF id, folder or file).")]
ControlScale = Annotated[Optional[float], typer.Option(help="ControlNet conditioning scale.")]
Lineart = Annotated[Optional[str], typer.Option(help="Lineart ControlNet fed previz lines (HF id, folder or file).")]
LineartScale = Annotated[Optional[float], typer.Option(help="Lineart ControlNet conditioning scale (default 0.6).")]
Consistency = Annotated[Optional[float], typer.Option(help="Consistent self-attention sampling rate across frames (0 = off).")]
Scheduler = Annotated[Optional[str], typer.Option(help="dpmpp_2m_karras, euler_a, ddim or lcm.")]
Steps = Annotated[Optional[int], typer.Option(help="Denoising steps.")]
Cfg = Annotated[Optional[float], typer.Option("--cfg", help="Classifier-free guidance scale.")]
Width = Annotated[Optional[int], typer.Option(help="Frame width in pixels.")]
Height = Annotated[Optional[int], typer.Option(help="Frame height in pixels.")]
Device = Annotated[Optional[str], typer.Option(help="cuda, cpu or mps (default: best available).")]
Dtype = Annotated[Optional[str], typer.Option(help="float16, bfloat16 or float32 (default: fp16 on CUDA, fp32 on CPU).")]
LowVram = Annotated[Optional[bool], typer.Option("--low-vram", help="8–12 GB cards: model CPU offload, VAE slicing and tiling.")]
ModelConfig = Annotated[Optional[str], typer.Option(help="Diffusers config folder for a single-file --model (default: the shipped SD 1.5/SDXL one).")]
BatchSize = Annotated[Optional[int], typer.Option(help="Frames denoised together (default 8; 2 with --low-vram).")]
BestOf = Annotated[int, typer.Option(help="Draw K candidates per frame and keep the best-scoring one.")]
MinIdentity = Annotated[Optional[float], typer.Option(help="Re-roll frames whose identity score is below this.")]
ClipModel = Annotated[Optional[str], typer.Option(help="CLIP model for scoring (HF id or folder).")]


# The options above that decide pixels, shared by `story` and `render`.
RENDER_OPTIONS = ("model", "vae", "lora", "ip_adapter", "ip_adapter_scale", "controlnet", "controlnet_scale",
                  "lineart", "lineart_scale", "consistency", "scheduler", "steps", "cfg", "width", "height", "device",
                  "dtype", "low_vram", "model_config", "batch_size")


def render_settings(base: dict, *, width=None, height=None, **options) -> dict:
    """Merge the options given on the command line over a board's saved settings (manifest).

    Options left out keep their saved value; the diffusion renderer fills in its own defaults.
    """
    settings = dict(base or {})
    diffusion = dict(settings.get("diffusion") or {})
    if options.get("lora") is not None:
        options["loras"] = options.pop("lora")
    diffusion.update({k: v for k, v in options.items() if v is not None and v != []})
    if diffusion.get("model"):
        settings["renderer"] = "diffusion"
    elif diffusion:
        fail("diffusion options need --model (a HF repo id, a diffusers folder or a .safetensors file)")
    settings["diffusion"] = diffusion
    settings.update({k: v for k, v in dict(width=width, height=height).items() if v})
    return settings


@app.command()
def story(
    logline: Annotated[str, typer.Argument(help="One line: who, where, what trick.")],
    scenes: Annotated[int, typer.Option(help=f"Number of scenes (1–{MAX_SCENES}).")] = 8,
    out: Annotated[Path, typer.Option(help="Board folder to write.")] = Path("boards/board"),
    writer: Annotated[str, typer.Option(help="offline or llm.")] = "offline",
    seed: Annotated[int, typer.Option(help="Seed for the story and every frame.")] = 0,
    characters: Annotated[Optional[Path], typer.Option(help="Character bible YAML that overrides/extends the built-in cast.")] = None,
    stages: Annotated[Optional[str], typer.Option(help="Comma-separated stages to run (write,cast,stage,render,score,export).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue a board in OUT: keep its story, render only missing frames.")] = False,
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty OUT.")] = False,
    llm_base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint (or AUTOKOSE_LLM_BASE_URL).")] = None,
    llm_model: Annotated[Optional[str], typer.Option(help="LLM model name (or AUTOKOSE_LLM_MODEL).")] = None,
    llm_config: Annotated[Optional[Path], typer.Option(help="TOML/YAML file with base_url, model, api_key, timeout.")] = None,
    model: Model = None, vae: Vae = None, lora: Lora = None, ip_adapter: IpAdapter = None, ip_adapter_scale: IpScale = None,
    controlnet: ControlNet = None, controlnet_scale: ControlScale = None, lineart: Lineart = None,
    lineart_scale: LineartScale = None, consistency: Consistency = None,
    scheduler: Scheduler = None, steps: Steps = None, cfg: Cfg = None, width: Width = None,
    height: Height = None, device: Device = None, dtype: Dtype = None, low_vram: LowVram = None,
    model_config: ModelConfig = None, batch_size: BatchSize = None,
    best_of: BestOf = 1, min_identity: MinIdentity = None, clip_model: ClipModel = None,
) -> None:
    """Write a story from LOGLINE and draw its storyboard."""
    from autokose.pipeline import STAGES, RunConfig, run

    options = {k: v for k, v in locals().items() if k in RENDER_OPTIONS}

    if not logline.strip():
        fail("logline is empty")
    if len(logline) > MAX_LOGLINE_CHARS:
        fail(f"logline is {len(logline)} characters; the limit is {MAX_LOGLINE_CHARS}")
    if not 1 <= scenes <= MAX_SCENES:
        fail(f"--scenes must be between 1 and {MAX_SCENES} (got {scenes})")
    if resume and force:
        fail("--resume and --force contradict each other; choose one")
    with user_errors():
        writer_options = {k: v for k, v in dict(base_url=llm_base_url, model=llm_model,
                                                 config=str(llm_config) if llm_config else None).items() if v}
        cfg_ = RunConfig(
            logline=logline, scenes=scenes, seed=seed, writer=writer, writer_options=writer_options,
            characters_file=str(characters) if characters else None,
            render=render_settings({}, **options),
            quality=dict(best_of=best_of, min_identity=min_identity, clip_model=clip_model),
            stages=stages.split(",") if stages else list(STAGES),
        )
        with stage_progress() as progress:
            board = run(cfg_, out, resume=resume, force=force, progress=progress)
    _report(board)


@app.command()
def render(
    story_json: Annotated[Path, typer.Argument(help="story.json of a board (frames go next to it).")],
    only: Annotated[Optional[str], typer.Option(help="Scenes to re-render, e.g. 3,5 (others are kept).")] = None,
    pick: Annotated[Optional[list[str]], typer.Option(help="Keep candidate C for scene S: S=C (repeatable).")] = None,
    stages: Annotated[Optional[str], typer.Option(help="Comma-separated stages (cast,stage,render,score,export).")] = None,
    model: Model = None, vae: Vae = None, lora: Lora = None, ip_adapter: IpAdapter = None, ip_adapter_scale: IpScale = None,
    controlnet: ControlNet = None, controlnet_scale: ControlScale = None, lineart: Lineart = None,
    lineart_scale: LineartScale = None, consistency: Consistency = None,
    scheduler: Scheduler = None, steps: Steps = None, cfg: Cfg = None, width: Width = None,
    height: Height = None, device: Device = None, dtype: Dtype = None, low_vram: LowVram = None,
    model_config: ModelConfig = None, batch_size: BatchSize = None,
    best_of: BestOf = 1, min_identity: MinIdentity = None, clip_model: ClipModel = None,
) -> None:
    """Re-render a board from its story.json (after editing a scene), with the settings in its manifest."""
    from autokose.board import Board
    from autokose.pipeline import STAGES, RunConfig, run
    from autokose.story import Story

    options = {k: v for k, v in locals().items() if k in RENDER_OPTIONS}
    only_list = parse_only(only)
    picks = parse_picks(pick or [])
    with user_errors():
        story_ = Story.load(story_json)
        board = Board(story_json.parent)
        base = saved_config(board)
        quality = base.quality.model_dump()
        quality.update(picks={**quality.get("picks", {}), **picks}, clip_model=clip_model or quality.get("clip_model"))
        if best_of != 1:
            quality["best_of"] = best_of
        if min_identity is not None:
            quality["min_identity"] = min_identity
        cfg_ = RunConfig.model_validate(dict(
            base.model_dump(),
            render=render_settings(base.render.model_dump(), **options),
            quality=quality,
            stages=stages.split(",") if stages else [s for s in STAGES if s != "write"],
            only=only_list,
        ))
        with stage_progress() as progress:
            board = run(cfg_, board.root, story=story_, progress=progress)
    _report(board)


@app.command()
def schema() -> None:
    """Print the JSON Schema of story.json."""
    from autokose.story import story_schema

    typer.echo(json.dumps(story_schema(), ensure_ascii=False, indent=2))


@app.command()
def characters(
    file: Annotated[Optional[Path], typer.Option("--characters", help="Bible YAML that overrides/extends the built-in cast.")] = None,
) -> None:
    """List the characters of the bible."""
    from autokose.bible import load_bible

    with user_errors():
        bible = load_bible(file)
    table = Table("id", "name", "role", "trigger", "lora")
    for ch in bible:
        table.add_row(ch.id, ch.name, ch.role, ch.trigger or "-", ch.lora or (ch.card and "card") or "-")
    Console().print(table)


@app.command()
def score(
    board_dir: Annotated[Path, typer.Argument(help="Board folder (with story.json and frames/).")],
    clip_model: ClipModel = None,
) -> None:
    """Score identity consistency of a board: writes scores.json and badges in board.html."""
    from autokose.board import Board
    from autokose.score import score_board
    from autokose.staging import stage_story

    with user_errors():
        board = Board(board_dir)
        if not board.story_path.exists():
            raise InputError(f"{board_dir}: no story.json here (is it a board folder?)")
        story_ = board.load_story()
        size = saved_config(board).render
        scores = score_board(board, story_, stage_story(story_, size.width / size.height), clip_model=clip_model)
        from autokose.export import export_board

        export_board(board, story_, ["html"])
    typer.echo(json.dumps(scores.get("summary", {}), ensure_ascii=False, indent=2))


def saved_config(board):
    """The RunConfig a board was made with (its manifest), or the defaults for a hand-made board."""
    from autokose.pipeline import RunConfig

    previous = board.load_manifest().get("command", {})
    return RunConfig.model_validate(previous) if previous else RunConfig()


def _report(board) -> None:
    console.print(f"[green]board written:[/] {board.root}  (open {board.html_path})", highlight=False)


def _register_subcommands() -> None:
    try:
        from autokose.cast.cli import app as character_app
    except ImportError:
        return
    app.add_typer(character_app, name="character", help="Train and inspect character identity assets.")


_register_subcommands()


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    sys.exit(main())
