"""Words for settings and props, in every story language, mapped to what previz can draw.

Writers (offline templates or an LLM) name settings and props freely ("the Bai's yurt",
"казан", "golden egg"); staging and the previz renderer both need the drawable kind.
"""

from __future__ import annotations

import re

# Checked in order: the first kind with a matching word wins.
SETTINGS: dict[str, tuple[str, ...]] = {
    "yurt": ("yurt", "interior", "inside", "юрт", "киіз үй", "үйде", "үйі", "внутри", "kerege"),
    "courtyard": ("courtyard", "house", "bai", "palace", "estate", "двор", "дом", "бай", "аула бая", "ауласы", "сарай"),
    "bazaar": ("bazaar", "market", "fair", "city", "town", "базар", "рынок", "ярмарк", "город", "сауда", "қала"),
    "mountains": ("mountain", "hill", "gorge", "pass", "гор", "скал", "тау", "жота"),
    "river": ("river", "lake", "water", "well", "stream", "рек", "озер", "колод", "өзен", "көл", "құдық"),
    "road": ("road", "path", "way", "journey", "caravan", "дорог", "путь", "тропа", "жол"),
    "aul": ("aul", "village", "camp", "аул", "ауыл", "стойбищ", "кочев"),
    "steppe": ("steppe", "field", "pasture", "степ", "дала", "поле", "жайлау"),
}
DEFAULT_SETTING = "steppe"
INTERIORS = frozenset({"yurt"})

PROPS: dict[str, tuple[str, ...]] = {
    "golden_egg": ("egg", "яйц", "яич", "жұмыртқа"),
    "cauldron": ("cauldron", "kazan", "pot", "казан", "котел", "котёл", "қазан"),
    "fur_coat": ("coat", "fur", "шуб", "тулуп", "тон", "шапан", "chapan"),
    "coins": ("coin", "gold", "money", "монет", "деньг", "золот", "ақша", "тенге", "теңге", "алтын"),
    "purse": ("purse", "pouch", "wallet", "кошел", "кисет", "мешоч", "әмиян"),
    "tea_bowl": ("tea", "bowl", "kese", "cup", "пиал", "чай", "кесе", "шай", "кумыс", "qymyz", "kumis"),
    "whip": ("whip", "kamcha", "камч", "кнут", "плет", "қамшы"),
    "staff": ("staff", "stick", "cane", "посох", "палк", "таяқ", "hassa", "асатаяқ"),
    "sack": ("sack", "bag", "мешок", "мешк", "сумк", "қап", "дорба"),
    "carpet": ("carpet", "rug", "ковер", "ковр", "кілем", "сырмақ", "текемет"),
}
GENERIC_PROP = "bundle"


def _match(text: str, table: dict[str, tuple[str, ...]]) -> str | None:
    text = text.strip().lower().replace("_", " ")
    words = re.findall(r"\w+", text)
    for kind, stems in table.items():
        for stem in stems:
            if " " in stem:
                if stem in text:
                    return kind
            elif any(w.startswith(stem) for w in words):
                return kind
    return None


def resolve_setting(setting: str) -> str:
    """The drawable setting for a scene's setting text; anything unknown is the open steppe."""
    return _match(setting, SETTINGS) or DEFAULT_SETTING


def resolve_prop(name: str) -> str:
    """The drawable prop for a prop name; unknown things become a wrapped bundle."""
    return _match(name, PROPS) or GENERIC_PROP
