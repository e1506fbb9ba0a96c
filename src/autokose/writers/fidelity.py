"""What a logline names, and which of it a story leaves out.

A user who writes "a wolf and a camel" or "Жантык и Улпан" expects to see them on the board.
`logline_elements` reads every animal, prop, person and place a logline names (ru/kk/en, any
grammatical case, through the one word matcher of `autokose.vocabulary`), including custom
names: capitalised words that no table knows. `cast_for_logline` turns the animals and custom
names into characters a writer can cast, and `missing_elements` tells what a finished story
still lacks, so the pipeline reports it instead of dropping it silently.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from autokose.bible import Bible
from autokose.language import detect_language, normalize
from autokose.story import Character, Language, Story
from autokose.vocabulary import KAZAKH_CASE_SUFFIXES, Matcher, matchers, ru_stem, table
from autokose.writers.lexicon import lexicon
from autokose.writers.premise import character_matcher

ElementKind = Literal["animal", "prop", "person", "place"]
_TOKEN = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*|[.!?;…:]+")
_PEOPLE_KINDS = ("human", "spirit")


@dataclass(frozen=True)
class Element:
    """One thing a logline names.

    key: the canonical id — an animal kind ("wolf"), a prop id ("fur_coat"), a bible character
    id ("bai") or a custom name as written in the nominative ("Жантык"), a setting id ("bazaar").
    words: the logline's own words for it.
    """

    kind: ElementKind
    key: str
    words: str

    @property
    def custom(self) -> bool:
        """A person no bible knows (a name the logline made up)."""
        return self.kind == "person" and not re.fullmatch(r"[a-z][a-z0-9_]*", self.key)


def logline_elements(logline: str, bible: Bible) -> list[Element]:
    """Every animal, prop, person and place the logline names, in order of first mention."""
    originals, sentence_start = _tokens(logline)
    tokens = [normalize(t) for t in originals]
    covered: set[int] = set()
    things: set[int] = set()  # words naming an animal, a thing or a place (a name after one is its owner)
    found: list[tuple[int, Element]] = []

    def take(matcher: Matcher, make, thing: bool = True) -> None:
        for m in matcher.scan(tokens):
            span = set(range(m.start, m.end))
            if span & covered:
                continue
            covered.update(span)
            if thing:
                things.update(span)
            for element in make(m.key, " ".join(originals[m.start:m.end])):
                found.append((m.start, element))

    def person(key: str, said: str) -> list[Element]:
        if key.startswith("group:"):
            return [Element("person", cid, said) for cid in lexicon().groups[key.removeprefix("group:")].members]
        kind = bible[key].kind
        return [Element("person", key, said) if kind in _PEOPLE_KINDS else Element("animal", kind, said)]

    vocab = matchers()
    take(character_matcher(bible), person, thing=False)
    take(vocab["animals"], lambda key, said: [Element("animal", key, said)])
    take(vocab["all_props"], lambda key, said: [Element("prop", key, said)])
    take(vocab["settings"], lambda key, said: [Element("place", key, said)])
    for name in ("times", "places", "poses", "emotions"):
        take(vocab[name], lambda key, said: [], thing=False)
    found += _custom_names(originals, tokens, sentence_start, covered, things, detect_language(logline))

    out: dict[tuple[str, str], Element] = {}
    for _, element in sorted(found, key=lambda pair: pair[0]):
        out.setdefault((element.kind, element.key), element)
    return list(out.values())


def missing_elements(story: Story, logline: str, bible: Bible) -> list[Element]:
    """The logline's elements the story does not use (see `unused_elements`)."""
    return unused_elements(story, logline_elements(logline, bible))


def unused_elements(story: Story, elements: list[Element]) -> list[Element]:
    """The `elements` the story does not use: an animal or person not among its characters, a
    prop in no scene, a place that is no scene's setting."""
    ids = {c.id for c in story.characters}
    kinds = {c.kind for c in story.characters}
    names = {normalize(n) for c in story.characters for n in (c.name, *c.names.values(), *c.aliases)}
    props = {_canonical(p, "all_props") for s in story.scenes
             for p in (*s.props, *(b.holds for b in s.blocking.values() if b.holds))}
    settings = {_canonical(s.setting, "settings") for s in story.scenes}
    missing = []
    for e in elements:
        if e.kind == "animal":
            ok = e.key in kinds or e.key in ids
        elif e.kind == "person":
            ok = e.key in ids or (e.custom and (normalize(e.key) in names or character_id(e.key) in ids))
        elif e.kind == "prop":
            ok = e.key in props
        else:
            ok = e.key in settings
        if not ok:
            missing.append(e)
    return missing


def cast_for_logline(elements: list[Element], bible: Bible) -> Bible:
    """The bible plus a character for every animal and custom name the logline brings.

    An animal the bible already has (the donkey, the horse, a user's own wolf) is used as it is;
    a new one is cast with `kind` = the animal, so previz draws that animal, never a man.
    """
    extra: list[Character] = []
    kinds = {c.kind for c in bible}
    ids = {c.id for c in bible}
    animals = table().animals
    named = {e.key for e in elements if e.kind == "animal" and e.key in animals}
    # A bible animal answers to every word for its kind ("волк" finds the user's `grey_wolf`).
    base = [c.model_copy(update={"aliases": list(dict.fromkeys([*c.aliases, *animals[c.kind].aliases]))})
            if c.kind in named else c for c in bible]
    for e in elements:
        if e.kind == "animal" and e.key not in kinds and e.key in animals:
            entry = animals[e.key]
            cid = _free_id(e.key, ids)
            extra.append(Character(
                id=cid, name=entry.names.get("en", e.key).removeprefix("the "), names=dict(entry.names),
                kind=e.key, build="animal", role=f"a {e.key} the logline names",
                appearance=f"a {e.key}", aliases=list(entry.aliases)))
            kinds.add(e.key)
            ids.add(cid)
        elif e.custom:
            cid = _free_id(character_id(e.key), ids)
            forms = {normalize(e.key), normalize(e.words)}
            extra.append(Character(
                id=cid, name=e.key, names={lang.value: e.key for lang in Language}, kind="human",
                build="average", role="a person the logline names",
                appearance="a Kazakh villager in a plain chapan and a felt hat",
                palette={"robe": "#8a6f4d", "hat": "#d8cfc0"}, aliases=sorted(forms)))
            ids.add(cid)
    changed = extra or any(a is not b for a, b in zip(base, bible, strict=True))
    return Bible([*base, *extra], bible.protagonist) if changed else bible


# -- custom names ------------------------------------------------------------------------

_TRANSLIT = dict(zip(
    "абвгдеёжзийклмнопрстуфхцчшщъыьэюяәғқңөұүһі",
    ["a", "b", "v", "g", "d", "e", "e", "zh", "z", "i", "i", "k", "l", "m", "n", "o", "p", "r", "s", "t", "u",
     "f", "kh", "ts", "ch", "sh", "shch", "", "y", "", "e", "yu", "ya", "a", "g", "q", "n", "o", "u", "u", "h",
     "i"], strict=True))


def character_id(name: str) -> str:
    """A bible id for a custom name: "Жантык" → "zhantyk", "Ұлпан" → "ulpan"."""
    text = "".join(_TRANSLIT.get(c, c) for c in normalize(name))
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "_", text).strip("_")
    if not slug or not slug[0].isalpha():
        slug = f"person_{slug}".rstrip("_")
    return slug[:40]


def _free_id(cid: str, taken: set[str]) -> str:
    n, out = 2, cid
    while out in taken:
        out, n = f"{cid}_{n}", n + 1
    return out


def _tokens(text: str) -> tuple[list[str], set[int]]:
    """The words as written, and the indices of words that begin a sentence."""
    out, starts, new = [], set(), True
    for tok in _TOKEN.findall(unicodedata.normalize("NFC", text)):
        if not tok[0].isalpha():
            new = True
            continue
        if new:
            starts.add(len(out))
        out.append(tok)
        new = False
    return out, starts


_RU_ADJECTIVE = re.compile(r"(ый|ий|ой|ая|яя|ое|ее|ые|ие|ого|его)$")


def _custom_names(originals: list[str], tokens: list[str], starts: set[int], covered: set[int],
                  things: set[int], language: Language) -> list[tuple[int, Element]]:
    """Capitalised words no table knows are names ("Жантык", "Ұлпанға", "Zhantyk's").

    A sentence's first word is capitalised anyway, so it counts only when it is no common word
    (`not_names` of the lexicon) and, in Russian, no adjective.
    """
    common = lexicon().not_names
    groups: dict[str, tuple[int, str, str]] = {}  # stem → (first index, nominative, as written)
    for i, (orig, tok) in enumerate(zip(originals, tokens, strict=True)):
        if i in covered or not orig[0].isupper() or len(tok) < 2 or tok in common:
            continue
        if orig.isupper() and len(orig) > 1 and i in starts:
            continue
        if i in starts and (language == Language.ru and _RU_ADJECTIVE.search(tok)):
            continue
        if i in starts and i + 1 < len(originals) and i + 1 not in covered and originals[i + 1][0].isupper():
            continue  # "Пастух Ербол", "Shepherd Erbol": a title before the name
        nominative = _nominative(orig, language, after_noun=i - 1 in things)
        stem = ru_stem(normalize(nominative)) if language == Language.ru else normalize(nominative)
        if stem in groups:
            first, known, said = groups[stem]
            if len(nominative) < len(known):
                groups[stem] = (first, nominative, said)
        else:
            groups[stem] = (i, nominative, orig)
    return [(i, Element("person", name, said)) for i, name, said in groups.values()]


def _nominative(word: str, language: Language, *, after_noun: bool = False) -> str:
    """The name without its case ending, as far as regular endings tell. In Russian a name right
    after a noun is a genitive ("аул Сарсена" → "Сарсен", "юрта Алексея" → "Алексей")."""
    if word.endswith(("'s", "’s")):
        return word[:-2]
    if language == Language.kk:
        low = normalize(word)
        for suffix in KAZAKH_CASE_SUFFIXES:
            if low.endswith(suffix) and len(low) - len(suffix) >= 3:
                return word[: -len(suffix)]
    if language == Language.ru and after_noun and len(word) > 4 and word[-1] in "ая":
        return word[:-1] + ("й" if word[-1] == "я" else "")
    if language == Language.ru:
        for ending in ("ом", "ем", "ым"):
            if word.endswith(ending) and len(word) > 4:
                return word[: -len(ending)]
    return word


def _canonical(text: str, section: str) -> str:
    word = normalize(text.strip())
    if section == "all_props" and word in table().props:
        return word
    if section == "settings" and word in table().settings:
        return word
    return matchers()[section].first(word) or word
