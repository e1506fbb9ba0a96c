"""The character bible: who can appear in a story and how each one looks.

A bible is a YAML file with a `characters:` list (see `data/bible.yaml`, the built-in Aldar
Köse cast). A user's file overrides built-in entries field by field and adds new ones, and may
name the lead with a top-level `protagonist: ID` (any id of the merged cast; Aldar by default):
the writers cast that character in Aldar's part, and scoring reports on them first.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import yaml
from pydantic import ValidationError

from autokose.errors import InputError, format_validation_error
from autokose.fsio import read_text
from autokose.story import Character, check_text

PROTAGONIST = "aldar"


class Bible:
    """An ordered mapping id → Character, and the id of the lead (`protagonist`)."""

    def __init__(self, characters: list[Character], protagonist: str = PROTAGONIST):
        self.characters = {c.id: c for c in characters}
        self.protagonist = protagonist

    def __getitem__(self, cid: str) -> Character:
        try:
            return self.characters[cid]
        except KeyError:
            known = ", ".join(self.characters)
            raise InputError(f"unknown character '{cid}' (known: {known})") from None

    def __contains__(self, cid: str) -> bool:
        return cid in self.characters

    def __iter__(self):
        return iter(self.characters.values())

    def __len__(self) -> int:
        return len(self.characters)


def _read_entries(text: str, source: str) -> tuple[list[dict], str | None]:
    """The `characters:` entries of a bible file and its `protagonist:` (None when it names none)."""
    try:
        data = yaml.safe_load(text)
        check_text(data)
    except yaml.YAMLError as e:
        raise InputError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise InputError(f"{source}: nested too deeply to be a characters file") from None
    except ValueError as e:  # check_text: a lone surrogate
        raise InputError(f"{source}: {e}") from None
    entries = data.get("characters") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(f"{source}: expected a top-level 'characters:' list of mappings")
    for n, entry in enumerate(entries):
        if not isinstance(entry.get("id"), str):
            raise InputError(f"{source}: characters[{n}].id: missing or not a string")
    lead = data.get("protagonist")
    if lead is not None and not isinstance(lead, str):
        raise InputError(f"{source}: protagonist: expected one character id (got {lead!r})")
    return entries, lead


def _validate(entry: dict, source: str, n: int) -> Character:
    try:
        return Character.model_validate(entry)
    except ValidationError as e:
        raise InputError(f"{source}: characters[{n}].{format_validation_error(e)}") from None


def builtin_bible() -> Bible:
    text = resources.files("autokose").joinpath("data/bible.yaml").read_text(encoding="utf-8")
    entries, _ = _read_entries(text, "built-in bible")
    return Bible([_validate(e, "built-in bible", n) for n, e in enumerate(entries)])


def load_bible(path: Path | str | None = None) -> Bible:
    """The built-in bible, overridden and extended by the user's file when one is given.

    Relative paths inside the user's file (references, lora, card) are resolved against it. Its
    `protagonist:`, when given, must be an id of the merged cast.
    """
    bible = builtin_bible()
    if path is None:
        return bible
    path = Path(path)
    text = read_text(path, "characters file")
    merged = dict(bible.characters)
    entries, lead = _read_entries(text, str(path))
    for n, entry in enumerate(entries):
        entry = resolve_paths(entry, path.parent)
        base = merged[entry["id"]].model_dump() if entry["id"] in merged else {}
        merged[entry["id"]] = _validate({**base, **entry}, str(path), n)
    if lead is not None and lead not in merged:
        raise InputError(f"{path}: protagonist: unknown character '{lead}' (known: {', '.join(merged)})")
    return Bible(list(merged.values()), lead or PROTAGONIST)


def resolve_paths(entry: dict, root: Path) -> dict:
    """A character entry with its relative file paths (lora, card, references) made absolute against
    `root` where such a file exists there: the characters file's folder for a bible, the board's for
    story.json (`cast.identity_assets`)."""
    entry = dict(entry)
    for key in ("lora", "card"):
        if isinstance(entry.get(key), str):
            entry[key] = _resolve(entry[key], root)
    if isinstance(entry.get("references"), list):
        entry["references"] = [_resolve(r, root) if isinstance(r, str) else r for r in entry["references"]]
    return entry


def _resolve(value: str, root: Path) -> str:
    # `file.safetensors:0.8` keeps its weight suffix; HF ids and absolute paths stay as they are.
    head, sep, tail = value.rpartition(":")
    stem, suffix = (head, sep + tail) if sep and _is_number(tail) else (value, "")
    candidate = root / stem
    return (str(candidate.resolve()) if candidate.exists() else stem) + suffix


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
