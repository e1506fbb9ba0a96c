"""JSONL: one JSON object per line.

A line is one prompt, with the keys a CSV header would have (`{"prompt": ..., "concept": ...,
"seed": 3, "shot": "wide"}`), or a whole ConsiStory+ concept (`{"subject": ..., "style": ...,
"settings": [...]}`, see consistory.py). Blank lines and lines starting with `#` are skipped.
"""

from __future__ import annotations

from pathlib import Path

from autokose.errors import InputError
from autokose.fsio import json_lines
from autokose.importers import consistory
from autokose.importers.builder import Entry, entry_from_mapping
from autokose.story import check_text


def read(path: Path, text: str) -> list[Entry]:
    entries: list[Entry] = []
    concepts = 0
    for n, data in json_lines(text, str(path), "prompt", '{"prompt": "..."}', check=check_text):
        where = f"{path}:{n}"
        if "settings" in data:
            concepts += 1
            entries += consistory.concept_entries(data, concepts, path, n, [])
            continue
        bad = next((k for k, v in data.items() if isinstance(v, (dict, list))), None)
        if bad is not None:
            raise InputError(f"{where}: {bad!r} holds a {type(data[bad]).__name__}; values are text or numbers")
        entries.append(entry_from_mapping(data, n, where))
    return entries
