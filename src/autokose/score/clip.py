"""CLIP-I and CLIP-T: image–image and prompt–image cosine similarity with a CLIP model the user names.

The model is read locally only (a folder, or a Hugging Face repo id already in the cache) from
safetensors weights; when there is none, scoring says so and skips CLIP rather than guessing.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np

SKIPPED_NO_MODEL = "clip: skipped — no model given"


class Clip:
    """A loaded CLIPModel + CLIPProcessor; embeddings come back L2-normalised (rows)."""

    def __init__(self, name: str, model, processor, device: str):
        self.name = name
        self.model = model
        self.processor = processor
        self.device = device

    def _normalised(self, features) -> np.ndarray:
        # transformers 5 returns a model output whose pooler_output is the projected embedding.
        features = getattr(features, "pooler_output", features)
        features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return features.float().cpu().numpy()

    def image_embeddings(self, images: list) -> np.ndarray:
        import torch

        if not images:
            return np.zeros((0, self.model.config.projection_dim), dtype=np.float32)
        inputs = self.processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
        with torch.inference_mode():
            return self._normalised(self.model.get_image_features(pixel_values=inputs["pixel_values"].to(self.device)))

    def text_embeddings(self, texts: list[str]) -> np.ndarray:
        import torch

        inputs = self.processor(text=texts, padding=True, truncation=True, return_tensors="pt")
        with torch.inference_mode():
            return self._normalised(self.model.get_text_features(
                input_ids=inputs["input_ids"].to(self.device), attention_mask=inputs["attention_mask"].to(self.device)))

    def text_image_similarity(self, text: str, image) -> float:
        """CLIP-T: cosine between a prompt and an image (raw cosine, not the ×100 CLIPScore)."""
        return float(self.text_embeddings([text])[0] @ self.image_embeddings([image])[0])


def check_clip_model(spec: str | None) -> None:
    """Fail before anything is written when `--clip-model` names nothing `load_clip` could load.

    Cheap: the folder's (or cached hub repo's) config.json and the weights' safetensors
    headers; nothing is loaded and nothing is fetched.
    """
    from autokose.errors import InputError
    from autokose.models import check_folder_weights, looks_like_repo_id

    if not spec:
        return
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise InputError("--clip-model needs the diffusion extra: pip install 'autokose[diffusion]' "
                         "(install a torch build first)") from None
    path = Path(spec).expanduser()
    if path.is_dir():
        folder = path
    elif path.exists() or not looks_like_repo_id(spec):
        raise InputError(f"--clip-model {spec}: not a CLIP model folder, and not a Hugging Face repo id")
    else:
        folder = _cached_repo(spec)
    if not (folder / "config.json").is_file():
        raise InputError(f"--clip-model {spec}: no config.json (give a CLIP model folder: a saved CLIPModel "
                         "with its CLIPProcessor)")
    try:
        model_type = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        raise InputError(f"--clip-model {spec}: unreadable config.json") from None
    if model_type != "clip":
        raise InputError(f"--clip-model {spec}: not a CLIP model (its config says model_type {model_type!r})")
    check_folder_weights(folder, "clip-model")


def _cached_repo(repo_id: str) -> Path:
    """The local snapshot folder of a hub repo id, from the cache only (scoring never downloads)."""
    from huggingface_hub import try_to_load_from_cache

    from autokose.errors import InputError

    found = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(found, str):
        raise InputError(f"--clip-model {repo_id}: not in the local Hugging Face cache; run "
                         f"`huggingface-cli download {repo_id}` on a connected machine, or give a local folder")
    return Path(found).parent


def load_clip(spec: str | None) -> tuple[Clip | None, str | None]:
    """(Clip, None) or (None, why CLIP is skipped), e.g. 'clip: skipped — not found offline: <id>'."""
    if not spec:
        return None, SKIPPED_NO_MODEL
    return _load(str(spec))


@lru_cache(maxsize=2)
def _load(spec: str) -> tuple[Clip | None, str | None]:
    import torch
    from transformers import CLIPModel, CLIPProcessor

    path = Path(spec).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        return None, f"clip: skipped — {spec} is not a CLIP model folder (no config.json)"
    where = str(path) if path.exists() else spec
    try:
        model = CLIPModel.from_pretrained(where, local_files_only=True, use_safetensors=True)
        processor = CLIPProcessor.from_pretrained(where, local_files_only=True)
    except OSError:
        return None, f"clip: skipped — not found offline: {spec}"
    except (ValueError, KeyError) as e:  # a folder of something else, or a config CLIPModel cannot read
        return None, f"clip: skipped — {spec} is not a CLIP model ({str(e).splitlines()[0][:120]})"
    device = "cuda" if torch.cuda.is_available() else "cpu"
    return Clip(spec, model.eval().to(device), processor, device), None
