"""Write: logline → Story. Writers share one small interface.

`offline` (the default) writes from templates with no model and no network; `llm` asks any
OpenAI-compatible chat endpoint. Both hand their draft to `writers.common.assemble_story`,
so prompts, seeds and the cast list are built the same way.
"""

from __future__ import annotations

import inspect
from typing import Protocol

from autokose.bible import Bible
from autokose.errors import InputError
from autokose.story import Story

WRITERS = ("offline", "llm")


class Writer(Protocol):
    name: str

    def write(self, logline: str, *, scenes: int, seed: int, bible: Bible) -> Story: ...


def get_writer(name: str, **options) -> Writer:
    """The writer called `name`, configured by `options` (see each writer's constructor)."""
    if name == "offline":
        from autokose.writers.offline import OfflineWriter

        cls = OfflineWriter
    elif name == "llm":
        from autokose.writers.llm import LLMWriter

        cls = LLMWriter
    else:
        raise InputError(f"unknown writer '{name}' (writers: {', '.join(WRITERS)})")
    return _construct(cls, name, options)


def _construct(cls, name: str, options: dict) -> Writer:
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        hint = " (LLM options need --writer llm)" if name == "offline" else ""
        allowed = ", ".join(accepted) or "none"
        raise InputError(f"writer '{name}' has no option '{unknown[0]}'{hint}; options: {allowed}")
    return cls(**options)
