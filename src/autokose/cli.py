"""`autokose` command line: thin wrappers that build a RunConfig and call the pipeline."""

from __future__ import annotations

import errno
import json
import logging
import sys
import unicodedata
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from autokose import __version__
from autokose.errors import InputError
from autokose.render import MAX_SIDE, MIN_SIDE
from autokose.story import MAX_LOGLINE_CHARS, MAX_SCENES, SURROGATE, format_validation_error

console = Console(stderr=True)

# OSErrors caused by the user's machine, not by a bug: a read-only or full disk, no permission,
# a file where a folder should be. They get one line naming the path; any other OSError is a bug
# and keeps its traceback.
ENVIRONMENT_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
                                errno.ENOTDIR, errno.EISDIR})


def literal(value: object) -> Text:
    """`value` as plain text for rich: `[bold]` or `[/x]` in a path or message is shown, not obeyed.

    Undecodable bytes (lone surrogates from argv or a file name) are shown escaped, not crashed on.
    """
    return Text(str(value).encode("utf-8", "backslashreplace").decode("utf-8"))


def fail(message: str) -> NoReturn:
    console.print(Text("error:", style="bold red"), literal(message), highlight=False, soft_wrap=True)
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
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise
        fail(f"{e.filename}: {e.strerror}" if e.filename else str(e.strerror or e))
    except KeyboardInterrupt:
        fail("interrupted; run again with --resume to continue")


# click's base of usage errors; typer vendors click in newer releases, so reach it through typer.
CLICK_ERROR = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


@contextmanager
def _one_line_usage_errors():
    """Typer's usage errors (`--scenes abc`, an unknown option) as one `error:` line, exit 2."""
    try:
        yield
    except CLICK_ERROR as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # typer has printed the help already
            raise
        fail(" ".join(e.format_message().split()))


class OneLineErrors(TyperGroup):
    """The root command: catches usage errors of every subcommand before typer draws its box.

    Hooked here rather than in `main()` so the console script and tests invoking `app` agree.
    """

    def make_context(self, *args, **kwargs):
        with _one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with _one_line_usage_errors():
            return super().invoke(ctx)


class WarningLines(logging.Handler):
    """Library warnings ("... changes nothing") as `warning: ...` on stderr, printed literally."""

    def emit(self, record: logging.LogRecord) -> None:
        console.print(Text(f"{record.levelname.lower()}:", style="yellow"), literal(self.format(record)),
                      highlight=False, soft_wrap=True)


def show_warnings() -> None:
    """Send the `autokose` logger's warnings to the terminal (once, however often a command runs)."""
    logger = logging.getLogger("autokose")
    if not any(isinstance(h, WarningLines) for h in logger.handlers):
        logger.addHandler(WarningLines(logging.WARNING))


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"autokose {__version__}")
        raise typer.Exit()


app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True,
                  help="Character-consistent storyboards from a logline.")


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.", is_eager=True,
                                          callback=_print_version)] = False,
) -> None:
    show_warnings()


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


def check_logline(logline: str) -> None:
    """One line for a logline no writer can use: empty, too long, undecodable bytes, binary data."""
    if SURROGATE.search(logline):  # bytes argv could not decode (surrogateescape)
        fail("logline is not valid UTF-8")
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in logline):
        fail("logline contains control characters (NUL or other binary data)")
    if not logline.strip():
        fail("logline is empty")
    if len(logline) > MAX_LOGLINE_CHARS:
        fail(f"logline is {len(logline)} characters; the limit is {MAX_LOGLINE_CHARS}")


def parse_stages(stages: str | None, default) -> list[str]:
    """--stages as a list; an empty one is an error, not "all stages" (unknown names: the pipeline)."""
    from autokose.pipeline import STAGES

    if stages is None:
        return list(default)
    names = [name.strip() for name in stages.split(",") if name.strip()]
    if not names:
        fail(f"--stages: no stage given (stages: {', '.join(STAGES)})")
    return names


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


def frame_side(value: int | None) -> int | None:
    """--width/--height: checked while parsing, so a 0 is refused rather than taken for "unset"."""
    if value is not None and not MIN_SIDE <= value <= MAX_SIDE:
        raise typer.BadParameter(f"must be between {MIN_SIDE} and {MAX_SIDE} pixels (got {value})")
    return value


# `--help` panels: each option under the question it answers, so names fit in 80 columns.
STORY, DIFFUSION, IDENTITY, QUALITY, OUTPUT = "Story", "Diffusion", "Identity", "Quality", "Output"

# Options shared by `story` and `render`: everything that decides the pixels.
Model = Annotated[Optional[str], typer.Option(help="SD 1.5/SDXL: HF repo id, diffusers folder or .safetensors file. Omit for previz.", rich_help_panel=DIFFUSION)]
Vae = Annotated[Optional[str], typer.Option(help="Separate VAE (HF id, folder or file).", rich_help_panel=DIFFUSION)]
Lora = Annotated[Optional[list[str]], typer.Option(help="LoRA file[:weight]; repeatable (diffusers/peft or kohya format).", rich_help_panel=IDENTITY)]
IpAdapter = Annotated[Optional[str], typer.Option(help="IP-Adapter: h94 name (ip-adapter_sd15, ip-adapter-plus-face_sd15, ...) or file.", rich_help_panel=IDENTITY)]
IpScale = Annotated[Optional[float], typer.Option(help="IP-Adapter scale.", rich_help_panel=IDENTITY)]
ControlNet = Annotated[Optional[str], typer.Option(help="OpenPose ControlNet (HF id, folder or file).", rich_help_panel=IDENTITY)]
ControlScale = Annotated[Optional[float], typer.Option(help="ControlNet conditioning scale.", rich_help_panel=IDENTITY)]
Lineart = Annotated[Optional[str], typer.Option(help="Lineart ControlNet fed previz lines (HF id, folder or file).", rich_help_panel=IDENTITY)]
LineartScale = Annotated[Optional[float], typer.Option(help="Lineart ControlNet conditioning scale (default 0.6).", rich_help_panel=IDENTITY)]
Consistency = Annotated[Optional[float], typer.Option(help="Consistent self-attention sampling rate across frames (0 = off).", rich_help_panel=IDENTITY)]
Scheduler = Annotated[Optional[str], typer.Option(help="dpmpp_2m_karras, euler_a, ddim or lcm.", rich_help_panel=DIFFUSION)]
Steps = Annotated[Optional[int], typer.Option(help="Denoising steps.", rich_help_panel=DIFFUSION)]
Cfg = Annotated[Optional[float], typer.Option("--cfg", help="Classifier-free guidance scale.", rich_help_panel=DIFFUSION)]
Width = Annotated[Optional[int], typer.Option(help=f"Frame width in pixels ({MIN_SIDE}–{MAX_SIDE}).", callback=frame_side,
                                              rich_help_panel=OUTPUT)]
Height = Annotated[Optional[int], typer.Option(help=f"Frame height in pixels ({MIN_SIDE}–{MAX_SIDE}).", callback=frame_side,
                                               rich_help_panel=OUTPUT)]
Device = Annotated[Optional[str], typer.Option(help="cuda, cpu or mps (default: best available).", rich_help_panel=DIFFUSION)]
Dtype = Annotated[Optional[str], typer.Option(help="float16, bfloat16 or float32 (default: fp16 on CUDA, fp32 on CPU).", rich_help_panel=DIFFUSION)]
LowVram = Annotated[Optional[bool], typer.Option("--low-vram", help="8–12 GB cards: model CPU offload, VAE slicing and tiling.", rich_help_panel=DIFFUSION)]
ModelConfig = Annotated[Optional[str], typer.Option(help="Diffusers config folder for a single-file --model (default: the shipped SD 1.5/SDXL one).", rich_help_panel=DIFFUSION)]
BatchSize = Annotated[Optional[int], typer.Option(help="Frames denoised together (default 8; 2 with --low-vram).", rich_help_panel=DIFFUSION)]
BestOf = Annotated[int, typer.Option(help="Draw K candidates per frame and keep the best-scoring one. Needs something to score by: "
                                          "faces of characters with reference images, or a --clip-model; else seed order decides.",
                                     rich_help_panel=QUALITY)]
MinIdentity = Annotated[Optional[float], typer.Option(help="Re-roll frames whose identity score is below this.", rich_help_panel=QUALITY)]
ClipModel = Annotated[Optional[str], typer.Option(help="CLIP model for scoring (HF id or folder).", rich_help_panel=QUALITY)]
Stages = Annotated[Optional[str], typer.Option(help="Comma-separated stages to run, of: write, cast, stage, render, score, export.",
                                               rich_help_panel=OUTPUT)]

# The options above that decide pixels, shared by `story` and `render`.
RENDER_OPTIONS = ("model", "vae", "lora", "ip_adapter", "ip_adapter_scale", "controlnet", "controlnet_scale",
                  "lineart", "lineart_scale", "consistency", "scheduler", "steps", "cfg", "width", "height", "device",
                  "dtype", "low_vram", "model_config", "batch_size")


@app.command()
def story(
    logline: Annotated[str, typer.Argument(help="One line: who, where, what trick.")],
    scenes: Annotated[int, typer.Option(help=f"Number of scenes (1–{MAX_SCENES}).", rich_help_panel=STORY)] = 8,
    out: Annotated[Path, typer.Option(help="Board folder to write.", rich_help_panel=OUTPUT)] = Path("boards/board"),
    writer: Annotated[str, typer.Option(help="offline or llm.", rich_help_panel=STORY)] = "offline",
    seed: Annotated[int, typer.Option(help="Seed for the story and every frame.", rich_help_panel=STORY)] = 0,
    characters: Annotated[Optional[Path], typer.Option(help="Character bible YAML that overrides/extends the built-in cast.", rich_help_panel=STORY)] = None,
    stages: Stages = None,
    resume: Annotated[bool, typer.Option(help="Continue a board in OUT: keep its story, render only missing frames.", rich_help_panel=OUTPUT)] = False,
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty OUT.", rich_help_panel=OUTPUT)] = False,
    llm_base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint (or AUTOKOSE_LLM_BASE_URL).", rich_help_panel=STORY)] = None,
    llm_model: Annotated[Optional[str], typer.Option(help="LLM model name (or AUTOKOSE_LLM_MODEL).", rich_help_panel=STORY)] = None,
    llm_config: Annotated[Optional[Path], typer.Option(help="TOML/YAML file with base_url, model, api_key, timeout.", rich_help_panel=STORY)] = None,
    model: Model = None, vae: Vae = None, lora: Lora = None, ip_adapter: IpAdapter = None, ip_adapter_scale: IpScale = None,
    controlnet: ControlNet = None, controlnet_scale: ControlScale = None, lineart: Lineart = None,
    lineart_scale: LineartScale = None, consistency: Consistency = None,
    scheduler: Scheduler = None, steps: Steps = None, cfg: Cfg = None, width: Width = None,
    height: Height = None, device: Device = None, dtype: Dtype = None, low_vram: LowVram = None,
    model_config: ModelConfig = None, batch_size: BatchSize = None,
    best_of: BestOf = 1, min_identity: MinIdentity = None, clip_model: ClipModel = None,
) -> None:
    """Write a story from LOGLINE and draw its storyboard."""
    from autokose.board import Board
    from autokose.config import resolve, saved
    from autokose.pipeline import STAGES, run

    options = {k: v for k, v in locals().items() if k in RENDER_OPTIONS}

    check_logline(logline)
    stage_list = parse_stages(stages, STAGES)
    if not 1 <= scenes <= MAX_SCENES:
        fail(f"--scenes must be between 1 and {MAX_SCENES} (got {scenes})")
    if resume and force:
        fail("--resume and --force contradict each other; choose one")
    with user_errors():
        writer_options = {k: v for k, v in dict(base_url=llm_base_url, model=llm_model,
                                                 config=str(llm_config) if llm_config else None).items() if v}
        overrides = dict(options, logline=logline, scenes=scenes, seed=seed, writer=writer,
                         writer_options=writer_options, characters_file=str(characters) if characters else None,
                         best_of=best_of if best_of != 1 else None, min_identity=min_identity,
                         clip_model=clip_model, stages=stage_list)
        cfg_ = resolve(saved(Board(out)) if resume else None, overrides)
        with stage_progress() as progress:
            board = run(cfg_, out, resume=resume, force=force, progress=progress)
    _report(board, stage_list)


@app.command()
def render(
    story_json: Annotated[Path, typer.Argument(help="story.json of a board (frames go next to it).")],
    only: Annotated[Optional[str], typer.Option(help="Scenes to re-render, e.g. 3,5 (others are kept).", rich_help_panel=OUTPUT)] = None,
    pick: Annotated[Optional[list[str]], typer.Option(help="Keep candidate C for scene S: S=C (repeatable).", rich_help_panel=QUALITY)] = None,
    stages: Stages = None,
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
    from autokose.config import resolve, saved
    from autokose.pipeline import STAGES, run
    from autokose.story import Story

    options = {k: v for k, v in locals().items() if k in RENDER_OPTIONS}
    only_list = parse_only(only)
    picks = parse_picks(pick or [])
    stage_list = parse_stages(stages, [s for s in STAGES if s != "write"])
    with user_errors():
        story_ = Story.load(story_json)
        board = Board(story_json.parent)
        overrides = dict(options, picks=picks, best_of=best_of if best_of != 1 else None,
                         min_identity=min_identity, clip_model=clip_model, stages=stage_list, only=only_list)
        cfg_ = resolve(saved(board), overrides)
        with stage_progress() as progress:
            board = run(cfg_, board.root, story=story_, progress=progress)
    _report(board, stage_list)


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
        cells = (ch.id, ch.name, ch.role, ch.trigger or "-", ch.lora or (ch.card and "card") or "-")
        table.add_row(*map(literal, cells))
    Console(highlight=False).print(table)


@app.command()
def score(
    board_dir: Annotated[Path, typer.Argument(help="Board folder (with story.json and frames/).")],
    clip_model: ClipModel = None,
) -> None:
    """Score identity consistency of a board: writes scores.json and badges in board.html."""
    from autokose.board import Board
    from autokose.config import RunConfig, saved
    from autokose.score import score_board
    from autokose.staging import stage_story

    with user_errors():
        board = Board(board_dir)
        if not board.story_path.exists():
            raise InputError(f"{board_dir}: no story.json here (is it a board folder?)")
        with board.claim(fresh=False):  # locked, checked and tidied like any run
            story_ = board.load_story()
            board.check_frames(story_)
            size = (saved(board) or RunConfig()).render
            scores = score_board(board, story_, stage_story(story_, size.width / size.height), clip_model=clip_model)
            from autokose.export import export_board

            export_board(board, story_, ["html"])
    typer.echo(json.dumps(scores.get("summary", {}), ensure_ascii=False, indent=2))


def _report(board, stages: list[str]) -> None:
    """The success line: points at board.html only when this run's export stage wrote it."""
    line = Text.assemble(("board written:", "green"), " ", literal(board.root))
    if "export" in stages:
        line.append_text(Text.assemble("  (open ", literal(board.html_path), ")"))
    else:
        held = [name for name in ("story.json", "control/", "frames/") if (board.root / name).exists()]
        line.append(f"  (holds {', '.join(held)}; the export stage makes board.html)")
    console.print(line, highlight=False, soft_wrap=True)


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
