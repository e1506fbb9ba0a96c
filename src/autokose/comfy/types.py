"""The Python objects behind the nodes' custom types: STORY, LAYOUTS, BOARD, CHARACTER.

Why these shapes: ComfyUI caches every node's outputs and hands the same object to every
consumer, so each is immutable (frozen dataclasses, or a Story that nodes copy before changing).
A STORY is `autokose.story.Story` itself, the contract every stage already reads; a BOARD is
only its folder, because a board *is* its folder (story.json, manifest.json, frames) and every
later stage (`pipeline.score`, `pipeline.export`) reads it from there. A CHARACTER is one entry
of a character bible (the fields `--characters FILE` takes), so the nodes reach the writer and
the renderer through the same `load_bible` the command line uses: they write the entries as a
characters YAML and pass its path (`characters_file`), nothing else.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from autokose.fsio import png_bytes, write_bytes, write_text

STORY, LAYOUTS, BOARD, CHARACTER = "STORY", "LAYOUTS", "BOARD", "CHARACTER"
CHARACTERS_FILE = "characters.yaml"  # in a board (or sheet) folder: the CHARACTER inputs of its last run
REFERENCES_DIR = "references"  # beside it: reference pictures given as IMAGE, <id>/NN.png


@dataclass(frozen=True)
class Layouts:
    """What Stage made: every scene's layout for frames of width × height (`pipeline.stage`)."""

    layouts: tuple
    width: int
    height: int


@dataclass(frozen=True)
class BoardRef:
    """A board folder (absolute). The folder is the board: nodes read it afresh each time."""

    root: Path


@dataclass(frozen=True)
class CharacterEntry:
    """A bible entry (`entry`: id, name, appearance, trigger, references, lora) and the reference
    pictures given as an IMAGE batch (uint8 H×W×3 arrays), which only exist once written beside
    the characters file that names them."""

    entry: dict
    images: tuple = field(default=(), compare=False)

    @property
    def id(self) -> str:
        return self.entry["id"]


def characters_document(characters: list[CharacterEntry], folder: Path | None) -> dict:
    """The `characters:` YAML document of `characters`; their IMAGE references are named as files
    under `folder`/references/<id>/ (left out when `folder` is None: nothing is written then)."""
    entries = []
    for ch in characters:
        entry = dict(ch.entry)
        if folder is not None and ch.images:
            entry["references"] = [*entry.get("references", []),
                                   *(str(p) for p in reference_paths(ch, folder))]
        entries.append(entry)
    return {"characters": entries}


def reference_paths(ch: CharacterEntry, folder: Path) -> list[Path]:
    return [folder / REFERENCES_DIR / ch.id / f"{n:02d}.png" for n in range(1, len(ch.images) + 1)]


def check_characters(characters: list[CharacterEntry]) -> None:
    """Each id once: two CHARACTER inputs for one id would silently merge."""
    ids = [ch.id for ch in characters]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        from autokose.errors import InputError

        raise InputError(f"character {twice[0]!r} is given twice; connect each character once")


def bible_of(characters: list[CharacterEntry]):
    """The built-in bible with `characters` over it, read by `load_bible` exactly as `--characters FILE`
    is (so a bad entry is refused with the same line). The YAML lives in a temporary folder; IMAGE
    references are left out here (they are written, and named, only by `write_characters`)."""
    from autokose.bible import builtin_bible, load_bible

    if not characters:
        return builtin_bible()
    check_characters(characters)
    with tempfile.TemporaryDirectory(prefix="autokose-characters-") as tmp:
        path = Path(tmp) / CHARACTERS_FILE
        path.write_text(yaml.safe_dump(characters_document(characters, None), allow_unicode=True), encoding="utf-8")
        return load_bible(path)


def write_characters(characters: list[CharacterEntry], folder: Path) -> Path | None:
    """Write `characters` as `folder`/characters.yaml (IMAGE references beside it) and return its path,
    for `RunConfig.characters_file`; None when there are none. Checked first (`bible_of`), written after."""
    if not characters:
        return None
    bible_of(characters)
    import numpy as np
    from PIL import Image

    for ch in characters:
        for path, pixels in zip(reference_paths(ch, folder), ch.images, strict=True):
            write_bytes(path, png_bytes(Image.fromarray(np.asarray(pixels, dtype=np.uint8))), only_if_changed=True)
    text = yaml.safe_dump(characters_document(characters, folder), allow_unicode=True)
    return write_text(folder / CHARACTERS_FILE, text, only_if_changed=True)
