"""CSV and TSV shot lists: a header row, then one prompt per row.

Columns are found by their header names (`builder.FIELD_COLUMNS`): the prompt is the first of
prompt, description, caption, text; board, concept, group or subject groups rows into boards;
shot, setting, time, negative, seed, notes, ... fill the scene's fields; any other column is kept
in the scene's `extra.source.columns`. Rows whose cells are all empty are skipped. Errors name
the line a row starts on (a quoted cell may span lines).
"""

from __future__ import annotations

import csv
from pathlib import Path

from autokose.errors import InputError
from autokose.importers.builder import Entry, column_key, entry_from_mapping

DELIMITERS = {"csv": ",", "tsv": "\t"}


def read(path: Path, text: str, fmt: str = "csv") -> list[Entry]:
    reader = csv.reader(text.splitlines(keepends=True), delimiter=DELIMITERS[fmt], strict=True)
    try:
        header = next(reader, None)
        if header is None or not any(h.strip() for h in header):
            raise InputError(f"{path}:1: no header row (name the columns: prompt, shot, setting, ...)")
        names = [h.strip() for h in header]
        keys = [column_key(h) for h in names]
        repeated = next((h for h, k in zip(names, keys) if k and keys.count(k) > 1), None)
        if repeated:
            raise InputError(f"{path}:1: column {repeated!r} appears twice")
        entries, row, start = [], 0, reader.line_num + 1
        for cells in reader:
            row += 1
            where = f"{path}:{start}"
            if any(c.strip() for c in cells):
                if len(cells) > len(names):
                    raise InputError(f"{where}: {len(cells)} cells but the header names {len(names)} columns")
                values = {name: cell for name, cell in zip(names, cells) if name}
                entries.append(entry_from_mapping(values, start, where, row=row))
            start = reader.line_num + 1
    except csv.Error as e:
        raise InputError(f"{path}:{reader.line_num}: not valid {fmt.upper()} ({e})") from None
    return entries
