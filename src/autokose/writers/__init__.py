"""Write: logline → Story. Writers share one small interface."""

from __future__ import annotations

from typing import Protocol

from autokose.bible import Bible
from autokose.story import Story


class Writer(Protocol):
    name: str

    def write(self, logline: str, *, scenes: int, seed: int, bible: Bible) -> Story: ...


def get_writer(name: str, **options) -> Writer:
    raise NotImplementedError
