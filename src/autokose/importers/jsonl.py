"""JSONL: one JSON object per line.

A line is one prompt, with the keys a CSV header would have (`{"prompt": ..., "concept": ...,
"seed": 3, "shot": "wide"}`), or a whole ConsiStory+ concept (`{"subject": ..., "style": ...,
"settings": [...]}`, see consistory.py). Blank lines and lines starting with `#` are skipped.
"""

from __future__ import annotations

import json
from pathlib import Path

from autokose.errors import InputError
from autokose.importers import consistory
from autokose.importers.builder import Entry, entry_from_mapping
from autokose.story import check_text


def read(path: Path, text: str) -> list[Entry]:
    entries: list[Entry] = []
    concepts = 0
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path}:{n}"
        try:
            data = json.loads(line)
            check_text(data)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: not a JSON object ({e.msg} at column {e.colno})") from None
        except RecursionError:
            raise InputError(f"{where}: nested too deeply") from None
        except ValueError as e:  # check_text's
            raise InputError(f"{where}: {e}") from None
        if not isinstance(data, dict):
            raise InputError(f"{where}: not a JSON object (one prompt per line, like {{\"prompt\": \"...\"}})")
        if "settings" in data:
            concepts += 1
            entries += consistory.concept_entries(data, concepts, path, n, [])
            continue
        bad = next((k for k, v in data.items() if isinstance(v, (dict, list))), None)
        if bad is not None:
            raise InputError(f"{where}: {bad!r} holds a {type(data[bad]).__name__}; values are text or numbers")
        entries.append(entry_from_mapping(data, n, where))
    return entries
