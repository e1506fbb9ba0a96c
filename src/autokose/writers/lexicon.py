"""The writers' vocabulary (`data/writer/lexicon.yaml`) and the word matching that reads it.

Aliases are matched against the words of a logline with light, explicit morphology rather
than a stemmer library: a plain alias also matches its Russian inflections (one ending
swapped), Kazakh suffix chains (plural + possessive + case) and English -s/'s; `word*`
matches any word starting with `word`; several words match consecutive words.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from itertools import product
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from autokose.language import normalize, words
from autokose.story import Angle, Beat, Shot, TimeOfDay

Role = Literal["A", "M", "S", "W", "D", "H"]
Place = Literal["approach", "outside", "inside", "away"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Setting(_Data):
    prompt: str
    aliases: list[str]
    interior: bool = False


class TimeWords(_Data):
    prompt: str
    aliases: list[str]
    interior: str | None = Field(None, description="Prompt words for the time of day seen indoors.")


class Prop(_Data):
    kind: Literal["lure", "payment", "scenery"]
    prompt: str
    aliases: list[str]
    pairs_with: str | None = None


class Mark(_Data):
    home: str
    yard: str
    household: bool = False
    time: TimeOfDay | None = None


class Group(_Data):
    members: list[str]
    aliases: list[str]


class Cues(_Data):
    poses: dict[str, list[str]]
    emotions: dict[str, list[str]]


class PromptWords(_Data):
    negative: str
    beardless: str
    shots: dict[Shot, str]
    angles: dict[Angle, str]
    poses: dict[str, str]
    emotions: dict[str, str]


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

    @model_validator(mode="after")
    def _blocking_is_for_the_cast(self) -> Move:
        for role, directions in self.blocking.items():
            if role not in self.cast:
                raise ValueError(f"move {self.id}: blocking for {role}, who is not in the cast")
            if not 1 <= len(directions) <= 3:
                raise ValueError(f"move {self.id}: blocking is [pose, emotion, prop]")
        return self


class Lexicon(_Data):
    settings: dict[str, Setting]
    times: dict[TimeOfDay, TimeWords]
    props: dict[str, Prop]
    marks: dict[str, Mark]
    groups: dict[str, Group]
    cues: Cues
    prompt: PromptWords
    moves: dict[Beat, list[Move]]

    @property
    def poses(self) -> list[str]:
        """The pose vocabulary every writer uses (staging draws these)."""
        return list(self.prompt.poses)

    @property
    def emotions(self) -> list[str]:
        return list(self.prompt.emotions)

    @model_validator(mode="after")
    def _consistent(self) -> Lexicon:
        for mark in self.marks.values():
            for place in (mark.home, mark.yard):
                if place not in self.settings:
                    raise ValueError(f"marks: unknown setting {place!r}")
        for beat, moves in self.moves.items():
            for move in moves:
                for pose, *rest in move.blocking.values():
                    if pose not in self.prompt.poses or (rest and rest[0] not in self.prompt.emotions):
                        raise ValueError(f"moves.{beat.value}.{move.id}: unknown pose or emotion {[pose, *rest]}")
        return self


@cache
def lexicon() -> Lexicon:
    text = resources.files("autokose").joinpath("data/writer/lexicon.yaml").read_text(encoding="utf-8")
    return Lexicon.model_validate(yaml.safe_load(text))


@cache
def vocabulary() -> dict[str, Matcher]:
    """Matchers for the lexicon's props, settings, times, poses and emotions."""
    lex = lexicon()
    return {
        "props": Matcher({k: p.aliases for k, p in lex.props.items()}),
        "settings": Matcher({k: s.aliases for k, s in lex.settings.items()}),
        "times": Matcher({k.value: t.aliases for k, t in lex.times.items()}),
        "poses": Matcher(lex.cues.poses),
        "emotions": Matcher(lex.cues.emotions),
    }


# -- matching ------------------------------------------------------------------------

_RU_ENDINGS = sorted(
    "а я у ю е и ы о ь ой ей ом ем ам ям ах ях ов ев ую юю ая яя ое ее ые ие ый ий ых их ого его ому ему "
    "ыми ими ами ями".split(),
    key=len,
    reverse=True,
)
_KK_PLURAL = ["", "лар", "лер", "дар", "дер", "тар", "тер"]
_KK_POSSESSIVE = ["", "ы", "і", "сы", "сі", "ым", "ім", "м", "ың", "ің", "ң"]
_KK_CASE = ["", "ға", "ге", "қа", "ке", "ның", "нің", "дың", "дің", "тың", "тің", "ны", "ні", "ды", "ді", "ты",
            "ті", "мен", "бен", "пен", "да", "де", "та", "те", "дан", "ден", "тан", "тен", "нан", "нен"]
_KK_AFTER_POSSESSIVE = ["а", "е", "на", "не", "н", "нда", "нде", "нан", "нен"]
_SUFFIXES = frozenset(
    {p + s + c for p, s, c in product(_KK_PLURAL, _KK_POSSESSIVE, _KK_CASE)}
    | {p + s + c for p, s, c in product(_KK_PLURAL, _KK_POSSESSIVE[1:], _KK_AFTER_POSSESSIVE)}
    | {"s", "es", "'s", "'", "s'"}
) - {""}


@lru_cache(maxsize=1 << 14)
def _ru_stem(word: str) -> str:
    if not any("\u0400" <= c <= "\u04ff" for c in word):
        return word
    for ending in _RU_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            return word[: -len(ending)]
    return word


def word_matches(token: str, word: str, *, prefix: bool = False, stem: bool = True) -> bool:
    """Whether a logline word is a form of an alias word (see the module docstring)."""
    if token[:1] != word[:1]:  # every form shares the first letter; most pairs stop here
        return False
    if prefix:
        return token.startswith(word)
    if token == word or (token.startswith(word) and token[len(word):] in _SUFFIXES):
        return True
    return stem and len(word) >= 3 and _ru_stem(token) == _ru_stem(word) != token


@dataclass(frozen=True)
class Mention:
    key: str
    start: int
    end: int
    token: str  # the last matched word, as written (lowercased)


class Matcher:
    """Finds aliases of many keys in a list of words; longer aliases win at each position.

    Keys in `unstemmed` match only exact forms and suffix chains (group words such as
    "слуги" must not also match the singular "слуга").
    """

    def __init__(self, aliases: dict[str, list[str]], *, unstemmed: frozenset[str] = frozenset()):
        compiled = []
        for key, alias_list in aliases.items():
            for alias in alias_list:
                parts = tuple((w.rstrip("*"), w.endswith("*")) for w in normalize(alias).split())
                if parts:
                    compiled.append((key, parts))
        # Longest first; among equals, keys in the order given.
        keys = list(aliases)
        compiled.sort(key=lambda kp: (-len(kp[1]), -sum(len(w) for w, _ in kp[1]), keys.index(kp[0])))
        self._by_letter: dict[str, list] = {}  # every form starts with its alias's first letter
        for key, parts in compiled:
            self._by_letter.setdefault(parts[0][0][:1], []).append((key, parts))
        self._unstemmed = unstemmed

    def scan(self, tokens: list[str]) -> list[Mention]:
        found, i = [], 0
        while i < len(tokens):
            hit = self._match_at(tokens, i)
            if hit:
                found.append(hit)
                i = hit.end
            else:
                i += 1
        return found

    def _match_at(self, tokens: list[str], i: int) -> Mention | None:
        # Exact forms and suffix chains first, so "слуги" finds the group before the stemmed
        # singular "слуга"; then Russian stems.
        for stemming in (False, True):
            for key, parts in self._by_letter.get(tokens[i][:1], ()):
                n = len(parts)
                if i + n > len(tokens) or (stemming and key in self._unstemmed):
                    continue
                if all(word_matches(tokens[i + k], w, prefix=p, stem=stemming) for k, (w, p) in enumerate(parts)):
                    return Mention(key, i, i + n, tokens[i + n - 1])
        return None

    def first(self, text: str) -> str | None:
        """The key of the first alias found in `text` (free text from a model or a user)."""
        hits = self.scan(words(text))
        return hits[0].key if hits else None
