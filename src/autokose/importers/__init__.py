"""Outside prompt sets → boards: `autokose import FILE --out DIR`.

    text.py        a plain text file, one prompt per line
    table.py       CSV/TSV shot lists, columns found by header name
    consistory.py  the ConsiStory+ YAML layout (subject, style, settings, concept_token)
    jsonl.py       one JSON object per line (a prompt, or a whole concept)
    builder.py     what they share: entries → checked stories (seeds, negative, extra.source) → board folders

    boards = read_boards(path, fmt=None, options=Options(seed=3))   # checked, in memory
    write_boards(boards, out, force=False)                          # OUT/NAME/story.json each

The boards hold no frames: `autokose render OUT/NAME/story.json` or `autokose batch OUT --out X`
draws them. A format module only turns text into `Entry` objects; every check and default
lives in builder.py, so all formats refuse and default alike.
"""

from __future__ import annotations

from pathlib import Path

from autokose.errors import InputError
from autokose.fsio import read_text
from autokose.importers.builder import NEUTRAL_NEGATIVE, Entry, Imported, Options, build_boards, write_boards

__all__ = ["FORMATS", "NEUTRAL_NEGATIVE", "Entry", "Imported", "Options", "detect_format", "read_boards",
           "read_entries", "write_boards"]

FORMATS = ("txt", "csv", "tsv", "consistory", "jsonl")
EXTENSIONS = {".txt": "txt", ".text": "txt", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".yaml": "consistory",
              ".yml": "consistory", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def detect_format(path: Path, fmt: str | None = None) -> str:
    """`fmt` checked, or the format the file's extension names."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise InputError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
        return fmt
    found = EXTENSIONS.get(Path(path).suffix.lower())
    if found is None:
        raise InputError(f"{path}: cannot tell the format from the extension {Path(path).suffix or '(none)'!r}; "
                         f"give --format ({', '.join(FORMATS)})")
    return found


def read_entries(path: Path, fmt: str) -> list[Entry]:
    """The file's prompts as entries (InputError naming file:line for a bad one)."""
    from autokose.importers import consistory, jsonl, table, text

    content = read_text(path, "prompt file").removeprefix("\ufeff")
    if fmt in ("csv", "tsv"):
        return table.read(path, content, fmt)
    return {"txt": text.read, "consistory": consistory.read, "jsonl": jsonl.read}[fmt](path, content)


def read_boards(path: Path | str, fmt: str | None = None, options: Options = Options()) -> list[Imported]:
    """Every board a prompt file makes, checked and in memory; nothing is written."""
    path = Path(path)
    fmt = detect_format(path, fmt)
    return build_boards(read_entries(path, fmt), path, fmt, options)
