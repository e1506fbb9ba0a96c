"""Export: the board as files people use outside AutoKöse, each written atomically into the board.

    board.html   self-contained viewer (frames embedded), identity badges when scored
    board.pdf    printable board: 1, 2, 3, 4, 6 or 9 panels a page, with notes and dialogue
    sheet.png    contact sheet of every frame, captions in full
    animatic.mp4 / .gif   each panel held for its duration, camera moves, captions, sound (animatic.py)
    timeline.otio / .xml / .fcpxml / .edl   the editorial timeline via OpenTimelineIO (editorial.py)
    shots.csv, captions.srt, captions.vtt   shot list and subtitles (shotlist.py)

The animatic, timeline, shot list and subtitles share one clock (timing.py), so they agree to the
frame. Missing frames (not rendered yet) become placeholders, so a board can be exported at any
stage. A frame that is a symlink leading out of the board is not embedded (a placeholder and a
warning instead): exports are mailed around, and must not carry files from elsewhere.
Every requested format is checked (`check_exports`: libraries, sound files) before the first
one is written.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from importlib import resources
from pathlib import Path

from PIL import Image

from autokose.board import EXPORT_FILES, Board
from autokose.errors import InputError
from autokose.fsio import read_json_object
from autokose.images import Unreadable, image_size, open_rgb
from autokose.story import Story

from autokose.export.settings import ExportSettings

FORMATS = tuple(EXPORT_FILES)
log = logging.getLogger("autokose")
_WARNED: set[Path] = set()
# Format → (module, writer, checker). Each writer is `write(board, story, settings) -> Path`; each
# checker `check(board, story, settings)` raises InputError for what would stop it (a missing library,
# a sound file), and is called for every format before any writer runs.
WRITERS = {
    "html": ("html", "write_html", None), "pdf": ("pdf", "write_pdf", None), "sheet": ("sheet", "write_sheet", None),
    "mp4": ("animatic", "write_mp4", "check_mp4"), "gif": ("animatic", "write_gif", None),
    "otio": ("editorial", "write_otio", "check_otio"), "fcp7": ("editorial", "write_fcp7", "check_fcp7"),
    "fcpx": ("editorial", "write_fcpx", "check_fcpx"), "edl": ("editorial", "write_edl", "check_edl"),
    "csv": ("shotlist", "write_csv", None), "srt": ("shotlist", "write_srt", None),
    "vtt": ("shotlist", "write_vtt", None),
}


def parse_formats(formats: list[str] | str) -> list[str]:
    """'mp4, otio' or ['mp4', 'otio'] as known formats in the given order, once each; InputError names an
    unknown one."""
    items = formats.split(",") if isinstance(formats, str) else formats
    names = [f.strip().lower() for f in items if f.strip()]
    unknown = [f for f in names if f not in FORMATS]
    if unknown:
        raise InputError(f"unknown export format '{unknown[0]}' (formats: {', '.join(FORMATS)})")
    if not names:
        raise InputError(f"no export format given (formats: {', '.join(FORMATS)})")
    return list(dict.fromkeys(names))


def formats_to_write(board: Board, formats: list[str] | str) -> list[str]:
    """The formats asked for, then every other export already in the board, the animatic first.

    Exports are written together so that none is left behind: a timeline, subtitles and an animatic
    of different frame rates or scene orders side by side would disagree. So an export (or a run's
    export stage, or a scene edit) rewrites every export file the board holds, not only those named;
    delete a file to stop it being kept up. The animatic goes first because a timeline may point at it.
    """
    asked = parse_formats(formats) if formats else []
    held = [fmt for fmt in FORMATS if fmt not in asked and board.export_path(fmt).is_file()]
    return sorted(asked + held, key=lambda fmt: fmt != "mp4")


def _part(fmt: str, which: int):
    from importlib import import_module

    module, *names = WRITERS[fmt]
    name = names[which]
    return getattr(import_module(f"autokose.export.{module}"), name) if name else None


def check_exports(board: Board, story: Story, formats: list[str], settings: ExportSettings | None = None) -> None:
    """Raise InputError for anything that would stop one of `formats`, before any is written."""
    settings = settings or ExportSettings()
    for fmt in parse_formats(formats):
        checker = _part(fmt, 1)
        if checker is not None:
            checker(board, story, settings)


def export_board(board: Board, story: Story, formats: list[str], settings: ExportSettings | None = None,
                 progress=None) -> dict[str, Path]:
    """Write exactly the formats given into the board folder (`formats_to_write` adds those the board
    holds); returns format → path.

    `progress("export", done, total)` hears of each format written (the animatic takes seconds).
    """
    settings = settings or ExportSettings()
    formats = parse_formats(formats)
    check_exports(board, story, formats, settings)
    written = {}
    for n, fmt in enumerate(formats, 1):
        written[fmt] = _part(fmt, 0)(board, story, settings)
        if progress is not None:
            progress("export", n, len(formats))
    return written


def font_path(bold: bool = False) -> Path:
    """DejaVu Sans, shipped with the package: it covers Cyrillic and the Kazakh letters (ә ғ қ ң ө ұ ү һ і)."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return Path(str(resources.files("autokose") / "data" / "fonts" / name))


def frame_files(board: Board, story: Story) -> dict[int, Path]:
    """Scene index → frame file, for the frames that exist and lie inside the board."""
    files = {}
    for scene in story.scenes:
        path = board.frame_path(scene.index)
        if not path.is_file():
            continue
        if not board.contains(path):
            if path not in _WARNED:  # every export asks; say it once
                _WARNED.add(path)
                log.warning("%s is a symlink that leaves the board; not embedded (a placeholder instead)", path)
            continue
        files[scene.index] = path
    return files


def picture_size(board: Board, story: Story, height: int) -> tuple[int, int]:
    """The animatic's and the timeline's frame size: `height` (made even, as H.264 needs) and the aspect
    of the first readable frame on disk (16:9 when there is none)."""
    aspect = Fraction(16, 9)
    for path in frame_files(board, story).values():
        try:
            width, tall = image_size(path)
        except Unreadable:
            continue
        aspect = Fraction(width, tall)
        break
    height -= height % 2
    return max(2, round(height * aspect / 2) * 2), height


def open_frame(path: Path) -> Image.Image:
    """A frame as RGB; a broken file is the user's to fix, so it is an InputError."""
    try:
        return open_rgb(path)
    except Unreadable as e:
        raise InputError(f"{path}: {e}") from None


def load_scores(board: Board) -> dict | None:
    """scores.json written by the scoring stage, or None when the board is not scored."""
    path = board.scores_path
    if not path.is_file():
        return None
    data = read_json_object(path, "scores", "; delete it or run `autokose score` again")
    if not isinstance(data.get("frames", {}), dict):
        raise InputError(f"{path}: expected an object with a 'frames' object; delete it or run `autokose score` again")
    return data
