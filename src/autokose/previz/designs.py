"""One fixed puppet design per character, read from the character bible.

The design comes from the bible alone (palette, build, kind and the words of the appearance
text), never from the scene, so a character looks the same in every frame, and a user's own
character gets a fitting puppet without code changes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from autokose.story import Character

DEFAULT_COLOURS = {
    "skin": "#e0b088", "hat": "#7d6b57", "hat_fur": "#7d6b57", "robe": "#8c7a64", "trim": "#6b5a45",
    "sash": "#5a4a38", "boots": "#4a3320", "hair": "#1f1a17", "beard": "#1f1a17", "patch": "#e0a030",
    "patch2": "#c0392b", "trousers": "#3b3430",
    # animals
    "body": "#8e8e8e", "muzzle": "#e8e8e8", "mane": "#4a4a4a", "blanket": "#c0392b", "hooves": "#333333",
}  # fmt: skip

# Colours of each kind where the bible gives none (merged under the bible palette).
KIND_COLOURS = {
    "camel": {"body": "#c9a46a", "muzzle": "#e6cfa0", "mane": "#9a7440", "blanket": "#2f4f8f", "hooves": "#6b5232"},
    "wolf": {"body": "#8a8c92", "muzzle": "#e4e0d8", "mane": "#55565b"},
    "dog": {"body": "#b07a3e", "muzzle": "#f0e2c8", "blanket": "#c0392b"},
    "sheep": {"body": "#f2ead8", "muzzle": "#3a302a", "hooves": "#2b2420"},
    "goat": {"body": "#e8e2d6", "muzzle": "#c8bca8", "hooves": "#3a302a"},
    "eagle": {"body": "#5a3d24", "mane": "#c89a40", "muzzle": "#e8c040"},
}  # fmt: skip

WIDTH = {"slim": 0.9, "average": 1.0, "stout": 1.45, "small": 0.95, "animal": 1.0}


@dataclass(frozen=True)
class PuppetDesign:
    """Everything that decides how one character's puppet looks."""

    hat: str = "hair"  # tymak, round_cap, saukele, turban, pointed, skullcap, horns, hair, none (shaved)
    beard: str = "none"  # none, long, short, moustache
    robe: str = "plain"  # plain, patched, trimmed, striped, dress, ragged
    width: float = 1.0  # body width factor
    belly: float = 0.0  # forward bulge of the belly (stout)
    face: str = "neutral"  # resting expression: neutral, sly, stern, grin
    female: bool = False
    eyes: str = "#2b2420"  # iris colour
    ears: str = "round"  # round or pointed
    tail: bool = False
    colours: dict[str, str] = field(default_factory=dict)

    def c(self, name: str) -> str:
        return self.colours.get(name) or DEFAULT_COLOURS[name]


def _has(text: str, *words: str) -> bool:
    return any(re.search(rf"\b{w}", text) for w in words)


def design_for(character: Character) -> PuppetDesign:
    """The puppet for a bible entry. Rules are checked in order; the first that matches wins."""
    text = f"{character.appearance} {character.role}".lower()
    colours = {**DEFAULT_COLOURS, **KIND_COLOURS.get(character.kind, {}), **character.palette}
    colours.setdefault("trousers", DEFAULT_COLOURS["trousers"])
    if "beard" not in character.palette:
        colours["beard"] = colours["hair"]

    if _has(text, "tymak", "ear flap", "ear-flap"):
        hat = "tymak"
    elif _has(text, "saukele", "headdress"):
        hat = "saukele"
    elif re.search(r"\bturban\b(?!-like)", text):
        hat = "turban"
    elif _has(text, "horn"):
        hat = "horns"
    elif _has(text, "pointed hat", "tall hat", "conical"):
        hat = "pointed"
    elif _has(text, "skullcap", "tubeteika", "takiya", "cap"):
        hat = "skullcap"
    elif _has(text, "shaved", "bald", "bare-headed", "bareheaded"):
        hat = "none"
    elif _has(text, "hat"):
        hat = "round_cap"
    else:
        hat = "hair"

    if _has(text, "beardless", "clean-shaven", "clean shaven") or _has(text, "woman", "girl", "wife", "female"):
        beard = "none"
    elif _has(text, "long [a-z ]*beard", "long beard", "white beard"):
        beard = "long"
    elif _has(text, "beard") or "beard" in character.palette:
        beard = "short"
    elif _has(text, "moustache", "mustache"):
        beard = "moustache"
    else:
        beard = "none"

    if _has(text, "patch"):
        robe = "patched"
    elif _has(text, "stripe"):
        robe = "striped"
    elif _has(text, "dress", "gown"):
        robe = "dress"
    elif _has(text, "ragged", "cloak", "tattered"):
        robe = "ragged"
    elif _has(text, "embroider", "trim", "gold", "silk", "rich"):
        robe = "trimmed"
    else:
        robe = "plain"

    width = WIDTH.get(character.build, 1.0)
    if _has(text, "stocky", "broad"):
        width = max(width, 1.18)
    if _has(text, "thin", "skinny", "lean"):
        width = min(width, 0.88)
    belly = 0.55 if _has(text, "big belly", "fat", "plump", "pot-bell") else (0.3 if character.build == "stout" else 0.0)

    if _has(text, "sly", "cunning", "trickster"):
        face = "sly"
    elif _has(text, "mischiev", "demon", "devil"):
        face = "grin"
    elif _has(text, "greedy", "pompous", "stern", "strict"):
        face = "stern"
    else:
        face = "neutral"

    eyes = "#e8b820" if _has(text, "yellow eye") else "#2b2420"
    return PuppetDesign(
        hat=hat, beard=beard, robe=robe, width=width, belly=belly, face=face,
        female=_has(text, "woman", "girl", "wife", "female", "lady"), eyes=eyes,
        ears="pointed" if _has(text, "pointed ear") or character.kind == "spirit" else "round",
        tail=character.kind == "spirit", colours=colours,
    )  # fmt: skip
