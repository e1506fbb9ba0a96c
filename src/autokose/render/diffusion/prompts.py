"""Prompts for a frame: the scene's own prompt, with this run's trigger tokens, encoded in full.

The writer stores each scene's SD prompt in story.json (`scenes[].prompt`: style, framing,
place and light, then every character as trigger token + bible appearance + pose and
expression). The renderer uses that prompt exactly as written, so a user's edit to it is what
gets drawn; a scene whose prompt is empty (hand-written story.json, or cleared to rebuild it
after editing the scene's fields) gets one from the writer's own `scene_prompt`, so there is
one prompt vocabulary. Trigger tokens from the cast stage (a character card from training)
go only into prompts built this way.

CLIP reads 77 tokens; a scene with two or three characters runs past that. Instead of
truncating, `encode_prompts` cuts the token ids into 75-token windows, wraps each in
BOS … EOS (padded to 77), encodes the windows separately and concatenates the hidden states
along the sequence axis; the UNet's cross-attention accepts any sequence length. This is the
scheme of A1111/compel, written out here (about 40 lines) rather than adding compel as a
dependency: we need no weighting syntax, prompts are generated, and it must also cover both
SDXL text encoders and their pooled embedding. Prompts of 75 tokens or fewer encode exactly
as the diffusers pipelines encode them (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

from autokose.story import Scene, Story


def _cast(story: Story, triggers: dict[str, str]) -> dict:
    return {c.id: c.model_copy(update={"trigger": triggers.get(c.id) or c.trigger}) for c in story.characters}


def build_prompt(story: Story, scene: Scene, triggers: dict[str, str] | None = None) -> str:
    """The positive prompt of one frame.

    A scene's own prompt is used exactly as written: no trigger token is added or swapped in,
    so what the user wrote is what is drawn (the renderer warns when a LoRA's trigger is
    missing). An empty prompt is built from the bible, with `triggers` (character id → token,
    e.g. a card's) overriding the bible's tokens.
    """
    from autokose.writers.common import scene_prompt

    if scene.prompt.strip():
        return scene.prompt
    triggers = {cid: t for cid, t in (triggers or {}).items() if t}
    return scene_prompt(scene, _cast(story, triggers), story.style)


def build_negative(story: Story, scene: Scene, extra: str = "") -> str:
    """The scene's negative prompt (the writer's when empty) plus `extra`, without repeated terms."""
    from autokose.writers.common import negative_prompt

    base = scene.negative_prompt.strip() or negative_prompt(scene, _cast(story, {}))
    terms: list[str] = []
    for term in (t.strip() for t in f"{base},{extra}".split(",")):
        if term and term.lower() not in (t.lower() for t in terms):
            terms.append(term)
    return ", ".join(terms)


# --------------------------------------------------------------------------- encoding
@dataclass
class Embeddings:
    """What the pipelines take instead of prompt strings (pooled ones only for SDXL)."""

    prompt: object
    negative: object
    pooled: object = None
    negative_pooled: object = None


def _windows(tokenizer, text: str, n_windows: int | None = None) -> list[list[int]]:
    """Token ids of `text` in BOS + 75 + EOS windows, padded to the tokenizer's length."""
    size = tokenizer.model_max_length
    body = tokenizer(text, add_special_tokens=False, truncation=False, verbose=False).input_ids
    inner = size - 2
    chunks = [body[i:i + inner] for i in range(0, len(body), inner)] or [[]]
    if n_windows is not None:
        chunks += [[] for _ in range(n_windows - len(chunks))]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return [[tokenizer.bos_token_id, *c, tokenizer.eos_token_id] + [pad] * (inner - len(c)) for c in chunks]


def count_windows(tokenizer, text: str) -> int:
    return len(_windows(tokenizer, text))


def _encode(text_encoder, windows: list[list[list[int]]], penultimate: bool, device):
    """windows: [prompt][window][77] → (hidden [prompt, 77*n, dim], pooled of the first window)."""
    import torch

    n_prompts, n_windows = len(windows), len(windows[0])
    ids = torch.tensor([w for per_prompt in windows for w in per_prompt], device=device)
    out = text_encoder(ids, output_hidden_states=penultimate)
    hidden = out.hidden_states[-2] if penultimate else out[0]
    hidden = hidden.reshape(n_prompts, n_windows * hidden.shape[1], hidden.shape[-1])
    pooled = out[0].reshape(n_prompts, n_windows, -1)[:, 0] if penultimate and out[0].ndim == 2 else None
    return hidden, pooled


def _encoders(pipe) -> list:
    encoders = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        encoders.append((pipe.tokenizer_2, pipe.text_encoder_2))
    return encoders


def windows_needed(pipe, texts: list[str]) -> int:
    """How many 77-token windows the longest of `texts` takes with the pipeline's tokenizers."""
    return max(count_windows(tok, t) for tok, _ in _encoders(pipe) for t in texts)


def encode_prompts(pipe, prompts: list[str], negatives: list[str], windows: int = 1) -> Embeddings:
    """Encode a batch of prompts and negatives with every text encoder the pipeline has.

    One batch needs one sequence length, so every prompt gets the same number of windows: at
    least `windows`, more if one needs it. Padding windows are not neutral in cross-attention,
    so the renderer batches together only frames that need the same count
    (`renderer.denoise_calls`): a frame's conditioning then depends on its own prompt alone.
    """
    import torch

    encoders = _encoders(pipe)
    sdxl = len(encoders) == 2
    texts = list(prompts) + list(negatives)
    n = max(windows, windows_needed(pipe, texts))
    hidden, pooled = [], None
    with torch.no_grad():
        for tok, enc in encoders:
            h, p = _encode(enc, [_windows(tok, t, n) for t in texts], sdxl, pipe._execution_device)
            hidden.append(h)
            pooled = p if p is not None else pooled
    embeds = torch.cat(hidden, dim=-1).to(pipe.unet.dtype)
    k = len(prompts)
    if not sdxl:
        return Embeddings(embeds[:k], embeds[k:])
    pooled = pooled.to(pipe.unet.dtype)
    return Embeddings(embeds[:k], embeds[k:], pooled[:k], pooled[k:])
