"""Prompt embeddings: text → what the SD 1.5 / SDXL UNet attends to, for rendering and training.

One path for both: the renderer (`encode_prompts`, a pipeline in hand) and LoRA training
(`token_windows` once per caption, then `encode_windows` every step when the text encoders
train) cut and encode text the same way, so a LoRA learns on the conditioning it is used with.

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


def token_windows(tokenizers: list, text: str, windows: int = 1) -> list[list[list[int]]]:
    """`text` as token-id windows for each tokenizer: [tokenizer][window][77].

    Every tokenizer gets the same number of windows (at least `windows`, as many as the longest
    needs), since SDXL joins the two encoders' hidden states along the feature axis.
    """
    n = max([windows] + [count_windows(tok, text) for tok in tokenizers])
    return [_windows(tok, text, n) for tok in tokenizers]


def encode_windows(text_encoders: list, ids: list[list[list[list[int]]]], device=None):
    """Token-id windows → (hidden states [prompt, 77 * windows, dim], pooled [prompt, dim] or None).

    `ids` is [encoder][prompt][window][77] (see `token_windows`). One encoder is SD 1.5: its
    last hidden state, no pooled embedding. Two are SDXL: both encoders' penultimate hidden
    states side by side, and the second encoder's projected pooled output of the first window,
    as the SDXL pipelines condition. No `torch.no_grad` here: training the text encoders needs
    the gradients, so the caller decides (`encode_prompts` and frozen-encoder training disable them).
    """
    import torch

    sdxl = len(text_encoders) == 2
    hidden, pooled = [], None
    for enc, per_encoder in zip(text_encoders, ids):
        h, p = _encode(enc, per_encoder, sdxl, device)
        hidden.append(h)
        pooled = p if p is not None else pooled
    return torch.cat(hidden, dim=-1), pooled


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
    """Encode a batch of prompts and negatives with every text encoder the pipeline has (each distinct text once).

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
    # A board's frames share their negative (a video's frames their prompt too): each text is encoded once.
    unique = {t: i for i, t in enumerate(dict.fromkeys(texts))}
    ids = [[_windows(tok, t, n) for t in unique] for tok, _ in encoders]
    with torch.no_grad():
        embeds, pooled = encode_windows([enc for _, enc in encoders], ids, pipe._execution_device)
    rows = torch.tensor([unique[t] for t in texts], device=embeds.device)
    embeds = embeds[rows].to(pipe.unet.dtype)
    pooled = pooled[rows] if pooled is not None else None
    k = len(prompts)
    if not sdxl:
        return Embeddings(embeds[:k], embeds[k:])
    pooled = pooled.to(pipe.unet.dtype)
    return Embeddings(embeds[:k], embeds[k:], pooled[:k], pooled[k:])
