"""Cast: a character's identity assets for the renderer (LoRA, reference images, card).

Training a LoRA from reference images lives in `autokose.cast.train`; this module only
gathers what the bible and character cards point to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from autokose.bible import Bible, resolve_paths
from autokose.fsio import read_json_object
from autokose.models import LoraRef
from autokose.story import Character, Story


@dataclass
class IdentityAssets:
    character_id: str
    trigger: str = ""
    lora: LoraRef | None = None
    references: list[Path] = field(default_factory=list)
    card: dict | None = None


def load_card(path: Path | str) -> dict:
    """A character card, its fields checked (one line naming a wrongly typed one)."""
    from autokose.cast.card import validate_card

    return validate_card(read_json_object(path, "character card"), path)


def card_file(path: Path | str) -> Path:
    """The card a user names: card.json itself, or the character folder training wrote it into."""
    from autokose.cast.card import CARD_NAME

    path = Path(path)
    return path / CARD_NAME if path.is_dir() else path


def identity_assets(story: Story, bible: Bible, root: Path | str | None = None) -> dict[str, IdentityAssets]:
    """Assets for every character in the story; a card fills in what story.json and the bible leave out.

    story.json is the board's contract: a LoRA, card, trigger or reference images named on its
    character win over the bible's, for a built-in id such as `aldar` as for any other, so an edit
    there is never silently ignored. Relative paths in story.json are read against `root`, the
    board folder (as the scorer reads them), where the file exists there: a board moved elsewhere
    or rendered from another working directory finds its own references.
    """
    out: dict[str, IdentityAssets] = {}
    for ch in story.characters:
        if root is not None:
            ch = Character.model_validate(resolve_paths(ch.model_dump(), Path(root)))
        entry = bible.characters.get(ch.id, ch)
        card_path = ch.card or entry.card
        card = load_card(card_path) if card_path else None
        root = Path(card_path).parent if card_path else Path(".")
        lora_spec = ch.lora or entry.lora or (str(root / card["lora"]) if card and card.get("lora") else None)
        refs = ch.references or entry.references or [str(root / r) for r in (card or {}).get("references", [])]
        out[ch.id] = IdentityAssets(
            character_id=ch.id,
            trigger=ch.trigger or entry.trigger or (card or {}).get("trigger", ""),
            lora=LoraRef.parse(lora_spec) if lora_spec else None,
            references=[Path(r) for r in refs],
            card=card,
        )
    return out
