"""`autokose import FILE --out DIR`: a thin shell over `autokose.importers` (read, check, write)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.text import Text

from autokose.app.terminal import console, literal, user_errors
from autokose.story import MAX_SCENES


def import_prompts(
    file: Annotated[Path, typer.Argument(help="Prompt file: .txt (a prompt a line), .csv/.tsv shot list, "
                                              "ConsiStory+ .yaml, or .jsonl.")],
    out: Annotated[Path, typer.Option(help="Folder for the boards: OUT/NAME/story.json per concept.")],
    seed: Annotated[int, typer.Option(min=0, help="Every frame's seed is derived from this (same file and seed: "
                                                  "same seeds); a seed column wins.")] = 0,
    fmt: Annotated[Optional[str], typer.Option("--format", help="txt, csv, tsv, consistory or jsonl (default: from "
                                                                "the extension).")] = None,
    scenes_per_board: Annotated[int, typer.Option(min=1, max=MAX_SCENES, help="Cut a longer concept into boards "
                                                  f"of this many scenes (default {MAX_SCENES}).")] = MAX_SCENES,
    style: Annotated[str, typer.Option(help="Words put before every prompt (default: prompts as written).")] = "",
    negative: Annotated[Optional[str], typer.Option(help="Negative prompt of every scene whose line gives none "
                                                         "(default: a neutral one).")] = None,
    force: Annotated[bool, typer.Option(help="Replace boards already in OUT (their frames are deleted).")] = False,
) -> None:
    """Turn a prompt set into boards (no frames drawn: `autokose batch OUT --out X` draws them)."""
    from autokose.errors import InputError
    from autokose.importers import NEUTRAL_NEGATIVE, Options, read_boards, write_boards

    with user_errors():
        if negative is not None and not negative.strip():
            raise InputError("--negative is blank (a blank negative prompt means the built-in one); give words, "
                             "or leave the option out for the neutral default")
        options = Options(seed=seed, scenes_per_board=scenes_per_board, style=style,
                          negative=negative.strip() if negative else NEUTRAL_NEGATIVE)
        boards = read_boards(file, fmt, options)
        written = write_boards(boards, out, force=force)
    for board, root in zip(boards, written):
        console.print(Text.assemble(("board:", "green"), " ", literal(root), f"  ({len(board.story.scenes)} scenes)"),
                      highlight=False, soft_wrap=True)
    console.print(Text.assemble(f"{len(written)} board(s); draw them with `autokose batch ", literal(out),
                                " --out RENDERS` (or `autokose render BOARD/story.json`)"),
                  highlight=False, soft_wrap=True)
