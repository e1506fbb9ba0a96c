"""Story languages: detect a logline's language, read and inflect words, phrase tables.

AutoKöse writes Russian, Kazakh and English. Captions name characters inside sentences, so
names need grammatical cases: Russian forms come from the `cases` table of the phrase file
(`data/writer/ru.yaml`), Kazakh forms follow the language's regular suffix rules (vowel
harmony and the last sound of the word), English only has the possessive.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from autokose.story import Language

KAZAKH_LETTERS = frozenset("әғқңөұүһі")
_WORD = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")


def normalize(text: str) -> str:
    """Lowercase, NFC, `ё` → `е`, typographic apostrophes → `'`: the form all matching uses."""
    text = unicodedata.normalize("NFC", text).lower()
    return text.replace("ё", "е").replace("’", "'")


def words(text: str) -> list[str]:
    """The words of `text` in matching form (letters, inner hyphens and apostrophes)."""
    return _WORD.findall(normalize(text))


def detect_language(text: str) -> Language:
    """Kazakh if a word uses a Kazakh-only letter, Russian for other Cyrillic, else English.

    "Көсе" alone does not make a Russian logline Kazakh: the hero's name is skipped.
    """
    cyrillic = sum(1 for c in text if "\u0400" <= c <= "\u04ff")
    latin = sum(1 for c in text if c.isascii() and c.isalpha())
    if cyrillic <= latin:
        return Language.en
    kazakh_words = [w for w in words(text) if KAZAKH_LETTERS & set(w) and not w.startswith("көсе")]
    return Language.kk if kazakh_words else Language.ru


# -- inflection ------------------------------------------------------------------

_KK_FRONT = frozenset("әеіөүи")
_KK_VOWELS = frozenset("аәеиоөұүыіуэюя")
_KK_VOICELESS = frozenset("пфктшсхцчщқ")


@dataclass(frozen=True)
class Noun:
    """A name in the grammatical cases captions use; formats as its nominative.

    Templates write `{M}` for the nominative and `{M.dat}`, `{M.gen}`, `{M.acc}`, `{M.ins}`
    for the dative, genitive (English: possessive), accusative and instrumental.
    """

    nom: str
    gen: str
    dat: str
    acc: str
    ins: str

    def __str__(self) -> str:
        return self.nom

    def __format__(self, spec: str) -> str:
        return format(self.nom, spec)


def inflect(name: str, language: Language | str, cases: dict[str, list[str]] | None = None) -> Noun:
    """`name` (nominative) in every case of `language`.

    Russian needs a `cases` entry (nom → [gen, dat, acc, ins]); a name missing there stays in
    the nominative, which reads a little stiff but never wrong in meaning.
    """
    code = Language(language).value
    if code == "en":
        return Noun(name, name + ("'" if name.endswith("s") else "'s"), name, name, name)
    if code == "kk":
        return Noun(name, *(_kazakh_case(name, case) for case in ("gen", "dat", "acc", "ins")))
    forms = (cases or {}).get(name) or _russian_name_cases(name)
    return Noun(name, *forms) if forms else Noun(name, name, name, name, name)


_RU_HUSHING = frozenset("жшчщц")


def _russian_name_cases(name: str) -> tuple[str, str, str, str] | None:
    """[gen, dat, acc, ins] of a one-word capitalised Russian name by the regular rules
    ("Жантык" → "Жантыка", "Айша" → "Айши"); None for anything else (it stays as written).

    Custom names come from the logline, so no table can list them. A name ending in a consonant
    is declined as a man's name (the logline does not say whose it is, and the masculine reading
    is the common one in the tales) unless it is a known woman's name («у Улпан», not «у Улпана»).
    """
    if " " in name or not name[:1].isupper() or not all("\u0400" <= c <= "\u04ff" or c == "-" for c in name):
        return None
    low = name[-1].lower()
    stem = name[:-1]
    if low == "а":
        soft = "и" if stem[-1:].lower() in "гкхжшчщ" else "ы"
        return stem + soft, stem + "е", stem + "у", stem + ("ей" if stem[-1:].lower() in _RU_HUSHING else "ой")
    if low == "я":
        return stem + "и", stem + "е", stem + "ю", stem + "ей"
    if low == "й":
        return stem + "я", stem + "ю", stem + "я", stem + "ем"
    if low in "бвгдзклмнпрстфхжшчщцқғңһ":
        if _feminine(name):  # a woman's name ending in a consonant does not decline: «у Улпан»
            return name, name, name, name
        return name + "а", name + "у", name + "а", name + ("ем" if low in _RU_HUSHING else "ом")
    return None


# Kazakh women's names that end in a consonant (and so would be declined as men's names), and
# the endings that mark one. Not exhaustive: a name missing here reads as a man's.
_FEMININE_NAMES = frozenset({
    "улпан", "ұлпан", "айгерим", "айгерім", "жибек", "жібек", "баян", "карлыгаш", "қарлығаш", "гульнар", "гүлнар",
    "айжан", "назым", "асем", "әсем", "аружан", "томирис", "тұмар", "шолпан", "акбота", "ақбота", "айман",
})  # fmt: skip
_FEMININE_ENDINGS = ("гуль", "гүл", "айым")


def _feminine(name: str) -> bool:
    low = name.lower()
    return low in _FEMININE_NAMES or low.endswith(_FEMININE_ENDINGS)


def _kazakh_case(phrase: str, case: str) -> str:
    """Attach a Kazakh case suffix to the last word of `phrase` (inside closing quotes)."""
    quote = "»" if phrase.endswith("»") else ""
    stem = phrase[:-1] if quote else phrase
    return stem + kazakh_suffix(stem, case) + quote


def kazakh_suffix(word: str, case: str) -> str:
    """The regular case suffix for `word`: genitive, dative, accusative or instrumental."""
    low = normalize(word)
    last = low[-1] if low else "а"
    vowels = [c for c in low if c in _KK_VOWELS]
    front = bool(vowels) and vowels[-1] in _KK_FRONT
    pick = (lambda back, fr: fr if front else back)  # noqa: E731
    if case == "gen":
        if last in _KK_VOWELS or last in "мнң":
            return pick("ның", "нің")
        if last in _KK_VOICELESS or last in "бвгд":
            return pick("тың", "тің")
        return pick("дың", "дің")
    if case == "dat":
        return pick("қа", "ке") if last in _KK_VOICELESS else pick("ға", "ге")
    if case == "acc":
        if last in _KK_VOWELS:
            return pick("ны", "ні")
        if last in _KK_VOICELESS or last in "бвгд":
            return pick("ты", "ті")
        return pick("ды", "ді")
    if case == "ins":
        if last in _KK_VOICELESS:
            return "пен"
        return "бен" if last in "жзбвгд" else "мен"
    raise ValueError(f"unknown case {case!r}")


def sentence_case(text: str) -> str:
    """Capitalise the first letter of `text` and of every sentence in it ("the Bai" → "The Bai")."""

    def upper(match: re.Match) -> str:
        return match.group(1) + match.group(2).upper()

    return re.sub(r"(^|[.!?…]\s+[«“\"(]?|^[«“\"(])([^\W\d_])", upper, text.strip())


# -- phrase tables ------------------------------------------------------------------


@cache
def phrases(language: Language | str) -> dict:
    """The writer's phrase table for `language` (`data/writer/<code>.yaml`)."""
    code = Language(language).value
    text = resources.files("autokose").joinpath(f"data/writer/{code}.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)
