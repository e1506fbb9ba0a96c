"""Export: the board as files people use outside AutoKöse.

    board.html   self-contained viewer (frames embedded), identity badges when scored
    board.pdf    A4 landscape, six panels a page, for print
    sheet.png    contact sheet of every frame

Missing frames (not rendered yet) become placeholders, so a board can be exported at any stage.
A frame that is a symlink leading out of the board is not embedded (a placeholder and a
warning instead): exports are mailed around, and must not carry files from elsewhere.
All three are deterministic: the same board gives the same bytes.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from PIL import Image

from autokose.board import Board
from autokose.errors import InputError
from autokose.fsio import read_json_object
from autokose.images import Unreadable, open_rgb
from autokose.story import Story

FORMATS = ("html", "pdf", "sheet")
log = logging.getLogger("autokose")


def export_board(board: Board, story: Story, formats: list[str]) -> dict[str, Path]:
    """Write the requested exports into the board folder; returns format → path."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError(f"unknown export format '{unknown[0]}' (formats: {', '.join(FORMATS)})")
    from autokose.export.html import write_html
    from autokose.export.pdf import write_pdf
    from autokose.export.sheet import write_sheet

    writers = {"html": write_html, "pdf": write_pdf, "sheet": write_sheet}
    return {fmt: writers[fmt](board, story) for fmt in dict.fromkeys(formats)}


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
            log.warning("%s is a symlink that leaves the board; not embedded (a placeholder instead)", path)
            continue
        files[scene.index] = path
    return files


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
