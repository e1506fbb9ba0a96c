"""The one word table (`data/vocabulary.yaml`) and the one matcher that reads it.

A story names settings, props, times, places and moods freely, in Russian, Kazakh or English
("the Bai's yurt", "казан", "артында"). Writers need the canonical id a word names, staging
and previz need the drawable kind, prompting needs the English prompt words. All of them read
this module, so a word is added in one place and means the same everywhere.

Aliases are matched against words with light, explicit morphology rather than a stemmer
library: a plain alias also matches its Russian inflections (one ending swapped), Kazakh
suffix chains (plural + possessive + case) and English -s/'s; `word*` matches any word
starting with `word`; several words match consecutive words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from itertools import product
from typing import Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from autokose.language import normalize, words
from autokose.story import Angle, Position, Shot, TimeOfDay

DEFAULT_SETTING = "steppe"  # what previz draws for a setting it has no hint for
GENERIC_PROP = "bundle"  # what previz draws for a prop it has no hint for
PLACES: tuple[str, ...] = get_args(Position)


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Setting(_Data):
    prompt: str
    aliases: list[str]
    hints: list[str] = Field(default_factory=list, description="Stems that make previz draw this setting.")
    interior: bool = False


class TimeWords(_Data):
    prompt: str
    aliases: list[str]
    interior: str | None = Field(None, description="Prompt words for the time of day seen indoors.")


class Prop(_Data):
    role: Literal["lure", "payment", "scenery"] | None = Field(
        None, description="The prop's part in a tale; None: previz draws it, writers do not cast it.")
    prompt: str | None = None
    aliases: list[str] = Field(default_factory=list)
    hints: list[str] = Field(default_factory=list, description="Stems that make previz draw this prop.")
    pairs_with: str | None = None


class Animal(_Data):
    """An animal a logline may name; a story casts it as a character of this `kind`."""

    names: dict[str, str] = Field(description="Display name per language code (ru, kk, en).")
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


class Vocabulary(_Data):
    settings: dict[str, Setting]
    times: dict[TimeOfDay, TimeWords]
    props: dict[str, Prop]
    animals: dict[str, Animal] = Field(default_factory=dict)
    places: dict[Position, list[str]]
    cues: Cues
    prompt: PromptWords

    @model_validator(mode="after")
    def _consistent(self) -> Vocabulary:
        if DEFAULT_SETTING not in self.settings:
            raise ValueError(f"settings: no {DEFAULT_SETTING!r}, the setting drawn for unknown places")
        for name, prop in self.props.items():
            if prop.role and not (prop.prompt and prop.aliases):
                raise ValueError(f"props.{name}: a prop with a role needs a prompt and aliases")
            if prop.pairs_with and not self.props.get(prop.pairs_with, Prop()).role:
                raise ValueError(f"props.{name}: pairs_with {prop.pairs_with!r} is not a prop with a role")
        return self

    @property
    def story_props(self) -> dict[str, Prop]:
        """The props writers know (those with a role in a tale), in table order."""
        return {k: p for k, p in self.props.items() if p.role}

    @property
    def poses(self) -> list[str]:
        """The pose vocabulary every writer uses (staging draws these)."""
        return list(self.prompt.poses)

    @property
    def emotions(self) -> list[str]:
        return list(self.prompt.emotions)


@cache
def table() -> Vocabulary:
    """The word table, read once."""
    text = resources.files("autokose").joinpath("data/vocabulary.yaml").read_text(encoding="utf-8")
    return Vocabulary.model_validate(yaml.safe_load(text))


@cache
def matchers() -> dict[str, Matcher]:
    """Matchers for the names of props, settings, times and places, and for pose and emotion cues."""
    vocab = table()
    return {
        "props": Matcher({k: p.aliases for k, p in vocab.story_props.items()}),
        "all_props": Matcher({k: p.aliases for k, p in vocab.props.items() if p.aliases}),
        "animals": Matcher({k: a.aliases for k, a in vocab.animals.items()}),
        "settings": Matcher({k: s.aliases for k, s in vocab.settings.items()}),
        "times": Matcher({k.value: t.aliases for k, t in vocab.times.items()}),
        "places": Matcher(dict(vocab.places)),
        "poses": Matcher(vocab.cues.poses),
        "emotions": Matcher(vocab.cues.emotions),
    }


@cache
def _hints(section: str) -> Matcher:
    return Matcher({k: entry.hints for k, entry in getattr(table(), section).items() if entry.hints})


# -- what previz draws ----------------------------------------------------------------------


@lru_cache(maxsize=4096)
def resolve_setting(setting: str) -> str:
    """The drawable setting for a scene's setting text; anything unknown is the open steppe."""
    return _hints("settings").first_key(_loose_words(setting)) or DEFAULT_SETTING


@lru_cache(maxsize=4096)
def resolve_prop(name: str) -> str:
    """The drawable prop for a prop name; unknown things become a wrapped bundle."""
    return _hints("props").first_key(_loose_words(name)) or GENERIC_PROP


def is_interior(setting: str) -> bool:
    """Whether previz draws this setting text indoors (light through the roof ring, no horizon)."""
    return table().settings[resolve_setting(setting)].interior


def canonical_place(text: str | None) -> Position | None:
    """A `Blocking.place` for a place word in any language ("позади", "back row"); None if unknown."""
    if not text or not text.strip():
        return None
    word = text.strip().lower()
    return word if word in PLACES else matchers()["places"].first(word)


def _loose_words(text: str) -> list[str]:
    """Free text split at every non-word character: "golden-egg" and "bai's" name an egg and a bai."""
    return re.findall(r"\w+", normalize(text).replace("_", " "))


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


KAZAKH_CASE_SUFFIXES: tuple[str, ...] = tuple(sorted(_KK_CASE[1:], key=len, reverse=True))


def ru_stem(word: str) -> str:
    """A Russian word without its last regular ending ("Жантыка" → "жантык"); other words as they are."""
    return _ru_stem(word)


@lru_cache(maxsize=1 << 14)
def _ru_stem(word: str) -> str:
    if not any("\u0400" <= c <= "\u04ff" for c in word):
        return word
    for ending in _RU_ENDINGS:
        if word.endswith(ending) and len(word) - len(ending) >= 3:
            return word[: -len(ending)]
    return word


def word_matches(token: str, word: str, *, prefix: bool = False, stem: bool = True) -> bool:
    """Whether a word of the text is a form of an alias word (see the module docstring)."""
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
        self._keys = list(aliases)
        compiled.sort(key=lambda kp: (-len(kp[1]), -sum(len(w) for w, _ in kp[1]), self._keys.index(kp[0])))
        self._by_letter: dict[str, list] = {}  # every form starts with its alias's first letter
        for key, parts in compiled:
            self._by_letter.setdefault(parts[0][0][:1], []).append((key, parts))
        self._unstemmed = unstemmed

    def scan(self, tokens: list[str]) -> list[Mention]:
        """Every mention, left to right; a matched alias's words are not read again."""
        found, i = [], 0
        while i < len(tokens):
            hit = self._match_at(tokens, i)
            if hit:
                found.append(hit)
                i = hit.end
            else:
                i += 1
        return found

    def _match_at(self, tokens: list[str], i: int, key: str | None = None) -> Mention | None:
        # Exact forms and suffix chains first, so "слуги" finds the group before the stemmed
        # singular "слуга"; then Russian stems.
        for stemming in (False, True):
            for k, parts in self._by_letter.get(tokens[i][:1], ()):
                n = len(parts)
                if (key is not None and k != key) or i + n > len(tokens) or (stemming and k in self._unstemmed):
                    continue
                if all(word_matches(tokens[i + j], w, prefix=p, stem=stemming) for j, (w, p) in enumerate(parts)):
                    return Mention(k, i, i + n, tokens[i + n - 1])
        return None

    def first(self, text: str) -> str | None:
        """The key of the first alias found in `text` (free text from a model or a user)."""
        hits = self.scan(words(text))
        return hits[0].key if hits else None

    def first_key(self, tokens: list[str]) -> str | None:
        """The first key, in the order given, with an alias anywhere in `tokens` (order is priority)."""
        return next((k for k in self._keys if any(self._match_at(tokens, i, k) for i in range(len(tokens)))), None)
