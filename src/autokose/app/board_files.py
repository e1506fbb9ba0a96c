"""`autokose export` and `autokose scenes`: commands that work on a finished board's files.

Thin shells: `export` over `pipeline.export` (settings through `config.resolve`, saved with the
board), `scenes` over `autokose.scenes` (one Story → Edit function per verb).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from autokose.app.flags import OUTPUT, stage_progress
from autokose.app.terminal import OneLineErrors, console, literal, user_errors
from autokose.board import EXPORT_FILES
from autokose.story import Angle, Shot, TimeOfDay

ANIMATIC, TIMELINE, PRINT = "Animatic", "Timeline", "Print"
Formats = Annotated[Optional[str], typer.Option(
    "--format", "-f", help=f"Comma-separated formats: {', '.join(EXPORT_FILES)} (default html,pdf,sheet).",
    rich_help_panel=OUTPUT)]


def export(
    board_dir: Annotated[Path, typer.Argument(help="Board folder (with story.json).")],
    formats: Formats = None,
    fps: Annotated[Optional[str], typer.Option(help="Frame rate of the animatic and timeline: 23.976, 24, 25, 29.97, "
                                                   "30, 50, 59.94, 60.", rich_help_panel=ANIMATIC)] = None,
    resolution: Annotated[Optional[int], typer.Option(help="Animatic height in pixels (default 1080).",
                                                      rich_help_panel=ANIMATIC)] = None,
    still: Annotated[Optional[bool], typer.Option("--still/--camera-moves", help="Hold every panel still, or move the "
                                                  "camera by the shot (default).", rich_help_panel=ANIMATIC)] = None,
    dissolve: Annotated[Optional[float], typer.Option(help="Seconds of cross-dissolve at each cut (0 = cuts).",
                                                      rich_help_panel=ANIMATIC)] = None,
    captions: Annotated[Optional[str], typer.Option(help="burn, track (a subtitle stream), both or off.",
                                                    rich_help_panel=ANIMATIC)] = None,
    scene_numbers: Annotated[Optional[bool], typer.Option("--scene-numbers/--no-scene-numbers",
                                                          help="Scene number in the corner.",
                                                          rich_help_panel=ANIMATIC)] = None,
    soundtrack: Annotated[Optional[str], typer.Option(help="Audio file under the whole animatic (\"\" clears a "
                                                           "saved one).", rich_help_panel=ANIMATIC)] = None,
    narrate: Annotated[Optional[bool], typer.Option("--narrate/--no-narrate", help="Read captions aloud with "
                                                    "espeak-ng (offline; skipped when not installed).",
                                                    rich_help_panel=ANIMATIC)] = None,
    voice: Annotated[Optional[str], typer.Option(help="espeak-ng voice (default: the story's language).",
                                                 rich_help_panel=ANIMATIC)] = None,
    gif_width: Annotated[Optional[int], typer.Option(help="Width of animatic.gif.", rich_help_panel=ANIMATIC)] = None,
    timeline_media: Annotated[Optional[str], typer.Option(help="Timeline clips point at: frames or animatic.",
                                                          rich_help_panel=TIMELINE)] = None,
    edl_style: Annotated[Optional[str], typer.Option(help="EDL flavour: avid or premiere (Premiere-safe).",
                                                     rich_help_panel=TIMELINE)] = None,
    pdf_panels: Annotated[Optional[int], typer.Option(help="Panels per PDF page: 1, 2, 3, 4, 6 or 9.",
                                                      rich_help_panel=PRINT)] = None,
    page: Annotated[Optional[str], typer.Option(help="PDF page size: A4, A3, letter or tabloid.",
                                                rich_help_panel=PRINT)] = None,
    orientation: Annotated[Optional[str], typer.Option(help="PDF page: landscape or portrait.",
                                                       rich_help_panel=PRINT)] = None,
) -> None:
    """Write a board's exports: animatic, editorial timeline, shot list, subtitles, PDF, HTML.

    The options are saved with the board (manifest.json), so later exports keep them.
    """
    options = {k: v for k, v in locals().items() if k not in ("board_dir", "formats")}
    from autokose.export import parse_formats
    from autokose.pipeline import export as export_board

    with user_errors():
        # a path typed on the command line is the shell's (absolute here); one saved relative is the board's
        overrides = dict(options, soundtrack=str(Path(soundtrack).absolute()) if soundtrack else soundtrack,
                         exports=parse_formats(formats) if formats else None)
        with stage_progress() as progress:
            written = export_board(board_dir, overrides, progress=progress)
    for fmt, path in written.items():
        console.print(Text.assemble((f"{fmt:<6}", "green"), " ", literal(path)), highlight=False, soft_wrap=True)


scenes_app = typer.Typer(cls=OneLineErrors, add_completion=False, no_args_is_help=True,
                         help="Reorder a board's scenes (move, insert, delete, duplicate); nothing is drawn again.")


@scenes_app.callback()
def _scenes_board(ctx: typer.Context,
                  board_dir: Annotated[Path, typer.Argument(help="Board folder (with story.json).")]) -> None:
    ctx.obj = board_dir


def _apply(ctx: typer.Context, edit, what: str) -> None:
    from autokose.scenes import edit_board

    with user_errors():
        board, done, restaged = edit_board(ctx.obj, edit)
    console.print(Text.assemble(("scenes:", "green"), " ", literal(what), f" ({len(done.story.scenes)} scenes)"),
                  highlight=False, soft_wrap=True)
    story_json = literal(board.story_path)
    for index in done.new:
        console.print(Text.assemble(f"scene {index} is new: draw it with `autokose render ", story_json,
                                    f" --only {index}`"), highlight=False, soft_wrap=True)
    if restaged:
        only = ",".join(map(str, restaged))
        console.print(Text.assemble(f"scene(s) {only} are framed anew next to their new neighbours; their frames "
                                    "are kept: redraw them with `autokose render ", story_json, f" --only {only}`"),
                      highlight=False, soft_wrap=True)


@scenes_app.command()
def move(ctx: typer.Context, index: Annotated[int, typer.Argument(help="Scene to move.")],
         to: Annotated[int, typer.Option("--to", help="Its new position.")]) -> None:
    """Move scene INDEX to position --to; the scenes between shift by one."""
    from autokose import scenes

    _apply(ctx, lambda story: scenes.move(story, index, to), f"moved {index} to {to}")


@scenes_app.command()
def delete(ctx: typer.Context, index: Annotated[int, typer.Argument(help="Scene to delete.")]) -> None:
    """Delete scene INDEX and its frame, controls and candidates; later scenes move up."""
    from autokose import scenes

    _apply(ctx, lambda story: scenes.delete(story, index), f"deleted {index}")


@scenes_app.command()
def duplicate(ctx: typer.Context, index: Annotated[int, typer.Argument(help="Scene to copy.")]) -> None:
    """Copy scene INDEX (frame, seed, prompt) to the position after it."""
    from autokose import scenes

    _apply(ctx, lambda story: scenes.duplicate(story, index), f"duplicated {index}")


@scenes_app.command()
def insert(
    ctx: typer.Context,
    at: Annotated[int, typer.Option("--at", help="Position of the new scene (1 to scenes + 1).")],
    caption: Annotated[Optional[str], typer.Option(help="Caption.")] = None,
    action: Annotated[Optional[str], typer.Option(help="What happens.")] = None,
    dialogue: Annotated[Optional[str], typer.Option(help="Line spoken.")] = None,
    notes: Annotated[Optional[str], typer.Option(help="Notes for the panel.")] = None,
    shot: Annotated[Optional[Shot], typer.Option(help="Shot size.")] = None,
    angle: Annotated[Optional[Angle], typer.Option(help="Camera angle.")] = None,
    setting: Annotated[Optional[str], typer.Option(help="Place (default: the scene before's).")] = None,
    time: Annotated[Optional[TimeOfDay], typer.Option(help="Time of day (default: the scene before's).")] = None,
    characters: Annotated[Optional[str], typer.Option(help="Comma-separated character ids (default: the scene "
                                                           "before's).")] = None,
    duration: Annotated[Optional[float], typer.Option(help="Seconds on screen (default 3).")] = None,
) -> None:
    """Insert a new scene at --at; what is not given continues the scene before. It has no frame until rendered."""
    from autokose import scenes

    fields = dict(caption=caption, action=action, dialogue=dialogue, notes=notes,
                  shot=shot.value if shot else None, angle=angle.value if angle else None, setting=setting,
                  time=time.value if time else None, duration=duration,
                  characters=[c.strip() for c in characters.split(",") if c.strip()] if characters is not None
                  else None)
    _apply(ctx, lambda story: scenes.insert(story, at, fields), f"inserted a scene at {at}")
