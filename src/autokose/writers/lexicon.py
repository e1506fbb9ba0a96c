"""The writers' own data (`data/writer/lexicon.yaml`): dupes, group words, reactions, scene moves.

The words every stage shares (settings, times, props, places, pose and emotion cues, prompt
words) and the word matcher are in `autokose.vocabulary`; this is what only writers need.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from autokose.story import Beat, Position, Shot, TimeOfDay
from autokose.vocabulary import table

Role = Literal["A", "M", "S", "W", "D", "H"]
Place = Literal["approach", "outside", "inside", "away"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mark(_Data):
    home: str
    yard: str
    household: bool = False
    time: TimeOfDay | None = None


class Group(_Data):
    members: list[str]
    aliases: list[str]


class Move(_Data):
    """One thing that can happen in a beat, with who is there and what they do."""

    id: str
    cast: list[Role]
    place: Place
    blocking: dict[Role, list[str]]
    props: list[str] = Field(default_factory=list)
    shots: list[Shot] = Field(default_factory=list)
    core: bool = False
    insert: bool = False
    not_at: list[str] = Field(default_factory=list, description="Settings where this cannot happen.")

    @model_validator(mode="after")
    def _blocking_is_for_the_cast(self) -> Move:
        for role, directions in self.blocking.items():
            if role not in self.cast:
                raise ValueError(f"move {self.id}: blocking for {role}, who is not in the cast")
            if not 1 <= len(directions) <= 3:
                raise ValueError(f"move {self.id}: blocking is [pose, emotion, prop]")
        return self


class Lexicon(_Data):
    marks: dict[str, Mark]
    groups: dict[str, Group]
    reaction_places: dict[str, Position] = Field(
        default_factory=dict, description="Where a group reacting this way in the key moment stands.")
    moves: dict[Beat, list[Move]]
    sells: list[str] = Field(
        default_factory=list, description="Words saying Aldar sells or offers a thing: that thing is the lure.")
    not_names: frozenset[str] = Field(
        default_factory=frozenset, description="Capitalised sentence openers that are no custom name.")

    @model_validator(mode="after")
    def _consistent(self) -> Lexicon:
        vocab = table()
        for mark in self.marks.values():
            for place in (mark.home, mark.yard):
                if place not in vocab.settings:
                    raise ValueError(f"marks: unknown setting {place!r}")
        for beat, moves in self.moves.items():
            for move in moves:
                for pose, *rest in move.blocking.values():
                    if pose not in vocab.prompt.poses or (rest and rest[0] not in vocab.prompt.emotions):
                        raise ValueError(f"moves.{beat.value}.{move.id}: unknown pose or emotion {[pose, *rest]}")
        return self


@cache
def lexicon() -> Lexicon:
    text = resources.files("autokose").joinpath("data/writer/lexicon.yaml").read_text(encoding="utf-8")
    return Lexicon.model_validate(yaml.safe_load(text))
