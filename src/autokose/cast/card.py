"""The character card: what a trained character folder holds, for the renderer and for scoring.

`card.json` sits beside the LoRA files; every path in it is relative to the card, so the
folder can be moved or shared as a whole. Keys `trigger`, `lora` and `references` are read
by `autokose.cast.identity_assets`; `face_centroid` (the mean 128-d dlib embedding of the
reference faces, or null) is the identity anchor for scoring.

    {
      "card_version": 1,
      "character": "aldar", "name": "Aldar Köse", "trigger": "aldarkose",
      "lora": "pytorch_lora_weights.safetensors",       # diffusers/peft format
      "lora_kohya": "aldar_kohya.safetensors",          # kohya format (A1111, ComfyUI)
      "base_model": {"spec": ..., "arch": "sd15", "source": "hub|folder|file",
                     "sha256": ..., "hashed": "file" | "configs"},
      "training": {...every TrainConfig field..., "seconds": ..., "final_loss": ...},
      "caption": "a photo of aldarkose, ...",
      "references": ["references/00.png", ...],         # the training crops
      "sources": [{"file": "/abs/path/01.jpg", "caption": ..., "face": [l, t, r, b] | null}],
      "skipped": [{"file": ..., "reason": ...}],
      "face_centroid": [128 floats] | null, "faces_found": 9,
      "validation": ["validation/step-000500_00.png", ...],
      "created": "2025-01-01T00:00:00+00:00", "autokose": "0.1.0"
    }
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from autokose import __version__
from autokose.cast.dataset import TrainingSet
from autokose.errors import InputError, format_validation_error
from autokose.faces import embedding_centroid
from autokose.fsio import save_image, sha256_file, write_json

CARD_NAME = "card.json"
CARD_VERSION = 1
REFERENCES = "references"


class _Skipped(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)

    file: str = ""
    reason: str = ""


class CardFields(BaseModel):
    """The types of the card fields anything reads (the renderer, scoring, `character show`).

    Cards are JSON users can edit; a wrongly typed field must be one clear line, not a
    traceback wherever it is first used. Other keys are kept as they are.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    character: str = ""
    name: str = ""
    trigger: str = ""
    lora: str | None = None
    lora_kohya: str | None = None
    caption: str = ""
    base_model: dict = {}
    training: dict = {}
    references: list[str] = []
    skipped: list[_Skipped] = []
    validation: list[str] = []
    faces_found: int = 0
    face_centroid: list[float] | None = None


def validate_card(card: dict, path: Path | str) -> dict:
    """`card` as read, once its fields have the types readers rely on; InputError naming the first bad one."""
    try:
        CardFields.model_validate(card)
    except ValidationError as e:
        raise InputError(f"{path}: character card field {format_validation_error(e)}") from None
    return card


def base_model_fingerprint(spec: str, config: str | None = None) -> dict:
    """Identify the base model: sha256 of a single file, or of a folder's/hub repo's configs.

    Hashing a folder's weights (several GB) would cost more than it tells: its configs name
    the architecture and, with the spec, the release.
    """
    from autokose.models import detect_arch, hub_file, locate

    source = locate(spec)
    info = {"spec": spec, "arch": detect_arch(spec, config), "source": source.kind}
    if source.kind == "file":
        info.update(sha256=sha256_file(source.location), hashed="file")
        return info
    names = ["model_index.json", "unet/config.json", "text_encoder/config.json", "scheduler/scheduler_config.json"]
    digest = hashlib.sha256()
    for name in names:
        if source.kind == "folder":
            path = Path(source.location) / name
        else:
            try:
                folder, _, filename = name.rpartition("/")
                path = hub_file(source.location, filename, subfolder=folder or None)
            except InputError:  # an optional config missing from the cache
                continue
        if path.is_file():
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    info.update(sha256=digest.hexdigest(), hashed="configs")
    return info


def save_references(out: Path, dataset: TrainingSet) -> list[str]:
    """Save the training crops as `references/NN.png`; paths relative to the card."""
    paths = []
    for n, item in enumerate(dataset.images):
        rel = f"{REFERENCES}/{n:02d}.png"
        save_image(Path(out) / rel, item.image)
        paths.append(rel)
    return paths


def build_card(*, character, trigger: str, caption: str, dataset: TrainingSet, references: list[str],
               lora: str, lora_kohya: str, base_model: dict, training: dict, validation: list[str]) -> dict:
    centroid = embedding_centroid(dataset.face_embeddings)
    return {
        "card_version": CARD_VERSION,
        "character": character.id,
        "name": character.name,
        "trigger": trigger,
        "lora": lora,
        "lora_kohya": lora_kohya,
        "base_model": base_model,
        "training": training,
        "caption": caption,
        "references": references,
        "sources": [
            {"file": str(Path(item.source).resolve()), "caption": item.caption,
             "face": list(item.face) if item.face else None}
            for item in dataset.images
        ],
        "skipped": [{"file": str(Path(s.path).resolve()), "reason": s.reason} for s in dataset.skipped],
        "face_centroid": [round(float(v), 6) for v in centroid] if centroid is not None else None,
        "faces_found": len(dataset.face_embeddings),
        "validation": validation,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "autokose": __version__,
    }


def write_card(out: Path, card: dict) -> Path:
    return write_json(Path(out) / CARD_NAME, card)


def card_summary(card: dict) -> list[tuple[str, str]]:
    """(label, value) rows for `autokose character show`."""
    training = card.get("training", {})
    base = card.get("base_model", {})
    return [
        ("character", f"{card.get('name', '?')} ({card.get('character', '?')})"),
        ("trigger", card.get("trigger", "")),
        ("base model", f"{base.get('spec', '?')} [{base.get('arch', '?')}]"),
        ("LoRA", f"{card.get('lora')} (diffusers), {card.get('lora_kohya')} (kohya)"),
        ("rank / alpha", f"{training.get('rank')} / {training.get('alpha')}"),
        ("steps", f"{training.get('steps')} (final loss {training.get('final_loss')})"),
        ("references", f"{len(card.get('references', []))} images, {card.get('faces_found', 0)} with a face"),
        ("skipped", ", ".join(f"{Path(s['file']).name} ({s['reason']})" for s in card.get("skipped", [])) or "-"),
        ("validation", ", ".join(card.get("validation", [])) or "-"),
    ]


def dump(card: dict) -> str:
    return json.dumps(card, ensure_ascii=False, indent=2)
