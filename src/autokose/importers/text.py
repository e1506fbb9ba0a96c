"""Plain text: one prompt per line.

Blank lines and lines starting with `#` are skipped; every other line is a prompt, used as
written. The whole file is one concept (one board, named after the file, cut by
--scenes-per-board).
"""

from __future__ import annotations

from pathlib import Path

from autokose.importers.builder import Entry


def read(path: Path, text: str) -> list[Entry]:
    return [Entry(line, n) for n, line in enumerate(text.splitlines(), 1)
            if line.strip() and not line.lstrip().startswith("#")]
