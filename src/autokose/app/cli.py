"""`autokose` command line: parse options, build the run with `config.resolve`, call the pipeline, print.

Everything a web server or a ComfyUI node would need too (checking a logline, merging a board's
saved settings with new ones, staging, cancelling) lives below `autokose.app`; what stays here
is the command-line syntax (`--only 3,5`, `--pick 4=2`) and the terminal (progress bars, lines).
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from autokose import __version__
from autokose.app.batch import batch
from autokose.app.board_files import export, scenes_app
from autokose.app.character import app as character_app
from autokose.app.comfy import app as comfy_app
from autokose.app.evaluate import evaluate
from autokose.app.importing import import_prompts
from autokose.app.serve import serve
from autokose.app.flags import (  # option types shared with `autokose video`
    OUTPUT, QUALITY, STORY, BatchSize, BestOf, Cfg, ClipModel, Compile, Consistency, ConsistencyBlocks,
    ConsistencyMasked, ConsistencySteps, ControlNet, ControlScale, DeepCache, Device, Dtype, Fast, Height, IpAdapter,
    IpScale, Lineart, LineartScale, Lora, LowVram, MinIdentity, Model, ModelConfig, Regional, RegionalBase,
    RerollOnSwap, Scheduler, Stages, Steps, Vae, Width, stage_progress)
from autokose.app.terminal import OneLineErrors, console, literal, show_warnings, user_errors
from autokose.app.video import app as video_app
from autokose.errors import InputError
from autokose.render import MAX_SIDE, MIN_SIDE  # noqa: F401  (--width/--height bounds, for callers)
from autokose.story import MAX_SCENES


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


def parse_only(only: str | None) -> list[int] | None:
    """--only 3,5 as [3, 5] (scenes the story lacks: the pipeline)."""
    if only is None:
        return None
    from autokose.scenes import scene_numbers

    try:
        return scene_numbers(only)
    except InputError as e:
        raise typer.BadParameter(str(e)) from None


def parse_picks(picks: list[str] | None) -> dict[int, int]:
    """--pick 4=2 (repeatable) as {4: 2}. Called in the command, not as a callback: typer would
    turn the dict back into a list."""
    out = {}
    for spec in picks or []:
        scene, sep, cand = spec.partition("=")
        if not sep or not scene.strip().isdigit() or not cand.strip().isdigit():
            raise typer.BadParameter(f"expected SCENE=CANDIDATE like 4=2 (got '{spec}')", param_hint="'--pick'")
        out[int(scene)] = int(cand)
    return out


def scene_count(value: int) -> int:
    """--scenes: refused while parsing, with the range (RunConfig holds the same bound)."""
    if not 1 <= value <= MAX_SCENES:
        raise typer.BadParameter(f"must be between 1 and {MAX_SCENES} (got {value})")
    return value


# The options of app/flags.py that decide pixels, shared by `story` and `render`.
RENDER_OPTIONS = ("model", "vae", "lora", "ip_adapter", "ip_adapter_scale", "controlnet", "controlnet_scale",
                  "lineart", "lineart_scale", "consistency", "consistency_masked", "consistency_steps", "consistency_blocks",
                  "regional", "regional_base", "scheduler", "steps", "cfg", "width", "height", "device", "dtype",
                  "low_vram", "model_config", "batch_size", "fast", "deep_cache", "compile")


@app.command()
def story(
    logline: Annotated[str, typer.Argument(help="One line: who, where, what trick.")],
    scenes: Annotated[int, typer.Option(help=f"Number of scenes (1–{MAX_SCENES}).", callback=scene_count,
                                        rich_help_panel=STORY)] = 8,
    out: Annotated[Path, typer.Option(help="Board folder to write.", rich_help_panel=OUTPUT)] = Path("boards/board"),
    writer: Annotated[str, typer.Option(help="offline or llm.", rich_help_panel=STORY)] = "offline",
    seed: Annotated[int, typer.Option(help="Seed for the story and every frame.", rich_help_panel=STORY)] = 0,
    characters: Annotated[Optional[Path], typer.Option(
        help="Character bible YAML that overrides/extends the built-in cast; a top-level `protagonist: ID` casts "
             "that character as the lead instead of Aldar.", rich_help_panel=STORY)] = None,
    stages: Stages = None,
    export_formats: Annotated[Optional[str], typer.Option(
        "--export", help="Comma-separated formats the export stage writes (default html,pdf,sheet; see `autokose "
                         "export --help`).", rich_help_panel=OUTPUT)] = None,
    resume: Annotated[bool, typer.Option(help="Continue a board in OUT: keep its story, render only missing frames.", rich_help_panel=OUTPUT)] = False,
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty OUT.", rich_help_panel=OUTPUT)] = False,
    llm_base_url: Annotated[Optional[str], typer.Option(help="OpenAI-compatible endpoint (or AUTOKOSE_LLM_BASE_URL).", rich_help_panel=STORY)] = None,
    llm_model: Annotated[Optional[str], typer.Option(help="LLM model name (or AUTOKOSE_LLM_MODEL).", rich_help_panel=STORY)] = None,
    llm_config: Annotated[Optional[Path], typer.Option(help="TOML/YAML file with base_url, model, api_key, timeout.", rich_help_panel=STORY)] = None,
    model: Model = None, vae: Vae = None, lora: Lora = None, ip_adapter: IpAdapter = None, ip_adapter_scale: IpScale = None,
    controlnet: ControlNet = None, controlnet_scale: ControlScale = None, lineart: Lineart = None,
    lineart_scale: LineartScale = None, consistency: Consistency = None, consistency_masked: ConsistencyMasked = None,
    consistency_steps: ConsistencySteps = None, consistency_blocks: ConsistencyBlocks = None,
    regional: Regional = None, regional_base: RegionalBase = None,
    scheduler: Scheduler = None, steps: Steps = None, cfg: Cfg = None, width: Width = None,
    height: Height = None, device: Device = None, dtype: Dtype = None, low_vram: LowVram = None,
    model_config: ModelConfig = None, batch_size: BatchSize = None, fast: Fast = None, deep_cache: DeepCache = None,
    compile: Compile = None,
    best_of: BestOf = 1, min_identity: MinIdentity = None, reroll_on_swap: RerollOnSwap = None,
    clip_model: ClipModel = None,
) -> None:
    """Write a story from LOGLINE and draw its storyboard."""
    from autokose.board import Board
    from autokose.config import resolve, saved
    from autokose.pipeline import STAGES, run

    options = {k: v for k, v in locals().items() if k in RENDER_OPTIONS}
    with user_errors():
        writer_options = {k: v for k, v in dict(base_url=llm_base_url, model=llm_model,
                                                 config=str(llm_config) if llm_config else None).items() if v}
        overrides = dict(options, logline=logline, scenes=scenes, seed=seed, writer=writer,
                         writer_options=writer_options, characters_file=str(characters) if characters else None,
                         best_of=best_of if best_of != 1 else None, min_identity=min_identity,
                         reroll_on_swap=reroll_on_swap,
                         clip_model=clip_model, stages=stages or list(STAGES), exports=_formats(export_formats))
        cfg_ = resolve(saved(Board(out)) if resume and not force else None, overrides)  # checks the logline too
        with stage_progress() as progress:
            board = run(cfg_, out, resume=resume, force=force, progress=progress)
    _report(board, cfg_.stages)


@app.command()
def render(
    story_json: Annotated[Path, typer.Argument(help="story.json of a board (frames go next to it).")],
    only: Annotated[Optional[str], typer.Option(help="Scenes to re-render, e.g. 3,5 (others are kept).", callback=parse_only,
                                                rich_help_panel=OUTPUT)] = None,
    pick: Annotated[Optional[list[str]], typer.Option(help="Keep candidate C for scene S: S=C (repeatable).", rich_help_panel=QUALITY)] = None,
    characters: Annotated[Optional[Path], typer.Option(
        help="Character bible YAML: LoRAs, references and cards for the characters of story.json (what story.json "
             "writes on a character wins). Saved with the board.", rich_help_panel=STORY)] = None,
    stages: Stages = None,
    export_formats: Annotated[Optional[str], typer.Option(
        "--export", help="Comma-separated formats the export stage writes (default html,pdf,sheet).",
        rich_help_panel=OUTPUT)] = None,
    model: Model = None, vae: Vae = None, lora: Lora = None, ip_adapter: IpAdapter = None, ip_adapter_scale: IpScale = None,
    controlnet: ControlNet = None, controlnet_scale: ControlScale = None, lineart: Lineart = None,
    lineart_scale: LineartScale = None, consistency: Consistency = None, consistency_masked: ConsistencyMasked = None,
    consistency_steps: ConsistencySteps = None, consistency_blocks: ConsistencyBlocks = None,
    regional: Regional = None, regional_base: RegionalBase = None,
    scheduler: Scheduler = None, steps: Steps = None, cfg: Cfg = None, width: Width = None,
    height: Height = None, device: Device = None, dtype: Dtype = None, low_vram: LowVram = None,
    model_config: ModelConfig = None, batch_size: BatchSize = None, fast: Fast = None, deep_cache: DeepCache = None,
    compile: Compile = None,
    best_of: BestOf = 1, min_identity: MinIdentity = None, reroll_on_swap: RerollOnSwap = None,
    clip_model: ClipModel = None,
) -> None:
    """Re-render a board from its story.json (after editing a scene), with the settings in its manifest."""
    from autokose.board import Board
    from autokose.config import resolve, saved
    from autokose.pipeline import STAGES, run
    from autokose.story import Story

    options = {k: v for k, v in locals().items() if k in RENDER_OPTIONS}
    picks = parse_picks(pick)
    with user_errors():
        story_ = Story.load(story_json)
        board = Board(story_json.parent)
        overrides = dict(options, picks=picks, best_of=best_of if best_of != 1 else None, min_identity=min_identity,
                         reroll_on_swap=reroll_on_swap, characters_file=str(characters) if characters else None,
                         clip_model=clip_model, stages=stages or [s for s in STAGES if s != "write"], only=only,
                         exports=_formats(export_formats))
        cfg_ = resolve(saved(board), overrides)
        with stage_progress() as progress:
            board = run(cfg_, board.root, story=story_, progress=progress)
    _report(board, cfg_.stages)


def _formats(formats: str | None) -> list[str] | None:
    """--export FORMATS as a list (unknown names: export.parse_formats, as InputError)."""
    from autokose.export import parse_formats

    return parse_formats(formats) if formats else None


class SchemaOf(str, Enum):
    story = "story"
    run = "run"


@app.command()
def schema(
    what: Annotated[SchemaOf, typer.Argument(help="story: story.json; run: a run's settings (RunConfig, as in "
                                                "manifest.json), what a web form or a ComfyUI node is built from.")]
    = SchemaOf.story,
) -> None:
    """Print a JSON Schema: story.json's (the default) or a run's settings."""
    if what is SchemaOf.run:
        from autokose.config import RunConfig

        found = RunConfig.model_json_schema()
    else:
        from autokose.story import story_schema

        found = story_schema()
    typer.echo(json.dumps(found, ensure_ascii=False, indent=2))


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
    from autokose.pipeline import score as score_board

    with user_errors():
        scores = score_board(board_dir, clip_model=clip_model)
    typer.echo(json.dumps(scores.get("summary", {}), ensure_ascii=False, indent=2))


class VocabOf(str, Enum):
    poses = "poses"
    emotions = "emotions"
    settings = "settings"
    props = "props"
    animals = "animals"
    places = "places"


@app.command(help="List the words story.json accepts (poses, emotions, settings, props, animals, places), "
                  "one a line, with the words that name each in a logline (en, ru/kk).")
def vocab(
    what: Annotated[Optional[VocabOf], typer.Argument(help="One list (default: all of them).")] = None,
) -> None:
    """The documented vocabularies: what `blocking`, `setting`, `props` and `kind` take."""
    # Each line: the word story.json takes (a pose: or one of its aliases), then the logline
    # words (Russian and Kazakh share one Cyrillic list in the table; `word*` matches any word
    # starting with it). Plain echo, so nothing is read as markup.
    sections = [what] if what else list(VocabOf)
    for section in sections:
        lines = vocab_lines(section.value)
        if what is None:
            typer.echo(f"{section.value}:")
            lines = ["  " + line for line in lines]
        typer.echo("\n".join(lines))


def vocab_lines(section: str) -> list[str]:
    """The lines of `autokose vocab SECTION`, from the pose library, the word table and the drawing kit."""
    from autokose.poses import POSE_ALIASES, POSES
    from autokose.staging import ANIMALS, RIDEABLE
    from autokose.vocabulary import table

    vocab = table()
    if section == "poses":
        aliases = {pose: [a for a, p in POSE_ALIASES.items() if p == pose] for pose in POSES}
        return [_vocab_line(pose, vocab.cues.poses.get(pose, []), also=aliases[pose]) for pose in POSES]
    if section == "emotions":
        return [_vocab_line(e, vocab.cues.emotions.get(e, [])) for e in vocab.emotions]
    if section == "settings":
        return [_vocab_line(k, s.aliases) for k, s in vocab.settings.items()]
    if section == "props":
        return [_vocab_line(k, p.aliases or p.hints) for k, p in vocab.props.items()]
    if section == "places":
        return [_vocab_line(k.value if isinstance(k, Enum) else k, words) for k, words in vocab.places.items()]
    # `kind` values: the drawing kit's animals, then any the word table names that the kit lacks
    named = vocab.animals
    kinds = [*ANIMALS, *(k for k in named if k not in ANIMALS)]
    lines = []
    for kind in kinds:
        notes = ["rideable" if kind in RIDEABLE else "", "" if kind in ANIMALS else "no drawing: a silhouette"]
        names = named[kind].names if kind in named else {}
        notes.append("names: " + ", ".join(f"{names[lang]} ({lang})" for lang in ("en", "ru", "kk") if lang in names)
                     if names else "")
        lines.append(_vocab_line(kind, named[kind].aliases if kind in named else [], notes=notes))
    return lines


def _vocab_line(key: str, words: list[str], also: list[str] | None = None, notes: list[str] = ()) -> str:
    """`key — notes; aliases: …; en: …; ru/kk: …` (what is empty is left out). The table's word
    lists mix Russian and Kazakh, so they are split by script, not guessed apart."""
    latin = [w for w in words if not any("\u0400" <= c <= "\u04ff" for c in w)]
    cyrillic = [w for w in words if w not in latin]
    parts = [note for note in notes if note]
    parts += [f"{label}: {', '.join(items)}" for label, items in (("aliases", also or []), ("en", latin),
                                                                   ("ru/kk", cyrillic)) if items]
    return f"{key} — {'; '.join(parts)}" if parts else key


def _report(board, stages: list[str]) -> None:
    """The success line: points at board.html only when this run's export stage wrote it."""
    line = Text.assemble(("board written:", "green"), " ", literal(board.root))
    if "export" in stages:
        line.append_text(Text.assemble("  (open ", literal(board.html_path), ")"))
    else:
        held = [path.name + ("/" if path.is_dir() else "")
                for path in (board.story_path, board.layouts_path, board.pose_path(1).parent, board.frame_path(1).parent)
                if path.exists()]
        line.append(f"  (holds {', '.join(held)}; the export stage makes board.html)")
    console.print(line, highlight=False, soft_wrap=True)


app.add_typer(character_app, name="character", help="Train and inspect character identity assets.")
app.command(name="export")(export)
app.command(name="serve")(serve)
app.command(name="batch")(batch)
app.command(name="import")(import_prompts)
app.command(name="eval")(evaluate)
app.add_typer(scenes_app, name="scenes", help="Reorder a board's scenes: move, insert, delete, duplicate "
                                              "(autokose scenes BOARD move 3 --to 1).")
app.add_typer(video_app, name="video", help="Footage → stylised character video (autokose video stylize).")
app.add_typer(comfy_app, name="comfy", help="AutoKöse as ComfyUI custom nodes: autokose comfy path.")


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    sys.exit(main())
