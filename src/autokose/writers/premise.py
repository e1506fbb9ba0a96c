"""Read a logline: who is in it, what they hold, where and when, and how each one acts.

The logline describes the story's key moment. Each sentence is read on its own: a pose or
emotion word belongs to the nearest character named before it (else the first one after
it), so "Слуги Бая переглядываются" makes the servants, not the Bai, exchange glances.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from autokose.bible import Bible
from autokose.language import detect_language, words
from autokose.story import Language, TimeOfDay
from autokose.vocabulary import Matcher, Mention, matchers
from autokose.writers.lexicon import lexicon

_SENTENCE = re.compile(r"[.!?;…]+|\s[—–]\s")
_POSSESSIVE = re.compile(r"(ның|нің|дың|дің|тың|тің|'s|s')$")
_GROUP = "group:"


@dataclass
class Direction:
    """What the logline says one character does (None: not said)."""

    pose: str | None = None
    emotion: str | None = None
    holds: str | None = None


@dataclass
class Premise:
    language: Language
    characters: list[str] = field(default_factory=list)  # bible ids, in order of first mention
    props: list[str] = field(default_factory=list)  # lexicon prop ids, in order of first mention
    setting: str | None = None
    settings: list[str] = field(default_factory=list)  # every place named, in order (setting is the first)
    sold: str | None = None  # the prop the logline says Aldar sells or offers (the lure), if it says so
    time: TimeOfDay | None = None
    directions: dict[str, Direction] = field(default_factory=dict)

    def direction(self, cid: str) -> Direction:
        return self.directions.get(cid, Direction())


def character_matcher(bible: Bible) -> Matcher:
    """Groups first (so "слуги" means both servants), then every name and alias in the bible."""
    groups = {f"{_GROUP}{name}": g.aliases for name, g in lexicon().groups.items()
              if all(m in bible for m in g.members)}
    people = {c.id: [c.id, c.name, *c.names.values(), *c.aliases] for c in bible}
    return Matcher({**groups, **people}, unstemmed=frozenset(groups))


def read_premise(logline: str, bible: Bible) -> Premise:
    premise = Premise(language=detect_language(logline))
    who = character_matcher(bible)
    vocab = matchers()

    for sentence in _SENTENCE.split(logline):
        tokens = words(sentence)
        if not tokens:
            continue
        people = [(m, _members(m.key)) for m in who.scan(tokens)]
        for _, ids in people:
            premise.characters += [cid for cid in ids if cid not in premise.characters]
        found_props = [m.key for m in vocab["props"].scan(tokens)]
        premise.props += [p for p in found_props if p not in premise.props]
        places = [m.key for m in vocab["settings"].scan(tokens)]
        premise.settings += [p for p in places if p not in premise.settings]
        premise.setting = premise.setting or next(iter(places), None)
        premise.sold = premise.sold or _sold(tokens, vocab["props"])
        if premise.time is None and (hit := next(iter(vocab["times"].scan(tokens)), None)):
            premise.time = TimeOfDay(hit.key)
        for cue in vocab["poses"].scan(tokens):
            for cid in _actor(cue, people):
                d = premise.directions.setdefault(cid, Direction())
                d.pose = d.pose or cue.key
                if cue.key == "hold" and found_props and d.holds is None:
                    d.holds = found_props[0]
        for cue in vocab["emotions"].scan(tokens):
            for cid in _actor(cue, people):
                d = premise.directions.setdefault(cid, Direction())
                d.emotion = d.emotion or cue.key
    return premise


@cache
def _sell_matcher() -> Matcher:
    return Matcher({"sell": lexicon().sells})


def _sold(tokens: list[str], props: Matcher) -> str | None:
    """The prop a selling word points at: the first after it, else (Kazakh verb last) the one before."""
    sells = _sell_matcher().scan(tokens)
    if not sells:
        return None
    found = props.scan(tokens)
    after = [m.key for m in found if m.start >= sells[0].end]
    before = [m.key for m in found if m.end <= sells[-1].start]
    return (after or before[-1:] or [None])[0]


def _members(key: str) -> list[str]:
    if key.startswith(_GROUP):
        return list(lexicon().groups[key.removeprefix(_GROUP)].members)
    return [key]


def _actor(cue: Mention, people: list[tuple[Mention, list[str]]]) -> list[str]:
    """The character a cue word describes.

    A cue right before a name describes it ("the greedy merchant"); otherwise the nearest
    subject before the cue, else the first one after it. Possessors are never subjects:
    "Байдың", "the Bai's", and a name right after another ("слуги Бая").
    """
    heads = {m.end for m, _ in people if not _POSSESSIVE.search(m.token)}
    subjects = [(m, ids) for m, ids in people if not _POSSESSIVE.search(m.token) and m.start not in heads]
    for m, ids in subjects:
        if m.start == cue.end:
            return ids
    before = [ids for m, ids in subjects if m.end <= cue.start]
    after = [ids for m, ids in subjects if m.start >= cue.end]
    return before[-1] if before else (after[0] if after else [])
