"""Consistent self-attention: the frames of one board keep the same faces and clothes.

Training-free, after StoryDiffusion (Zhou et al., 2024): in chosen UNet blocks, each frame's
self-attention (`attn1`) also attends to a random sample of the tokens of the *other* frames of
the board, so identity details flow between frames while each frame keeps its own layout.

- `rate` is the fraction of each other frame's tokens a frame sees (0 = off: the processor
  hands every call to the processor it replaced, so outputs are bit-identical to stock).
- Classifier-free guidance puts `[uncond frames..., cond frames...]` in one batch; tokens are
  shared within each half (`groups=2`), never across.
- Boards larger than one batch use a reference bank: the first batch runs in "write" mode and
  stores the sampled tokens of every layer and step, later batches run in "read" mode and
  attend to their own tokens plus the bank.
- Which tokens are lent is a hash of (seed, step, frame, position), so reruns are identical,
  on any device.
- Subject masks (ConsiStory, Tewel et al., 2024): with `set_subjects(labels)` a frame borrows
  only inside the same character's region of the other frames, so one character's face never
  flows into another's, and the background (label 0) neither lends nor borrows. `rate` is then
  the fraction of each character region that is lent (ConsiStory's "dropout" is 1 - rate).

Only self-attention processors are replaced; cross-attention (`attn2`, where IP-Adapter lives)
is left alone. Enable it *after* loading IP-Adapters: diffusers rebuilds every processor when
it loads one.

Typical use, one pipeline call per batch of frames::

    ctl = enable_consistent_attention(pipe.unet, 0.5, groups=2 if cfg > 1 else 1)
    for n, batch in enumerate(batches):
        ctl.write_bank() if n == 0 and len(batches) > 1 else (ctl.read_bank() if n else ctl.share())
        ctl.set_subjects(subject_labels(regions_of(batch), ids, latent_size) if masked else None)
        ctl.set_step(0, steps)
        pipe(..., callback_on_step_end=ctl.on_step_end)
    ctl.disable()
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from autokose.errors import InputError
from autokose.regions import token_grid
from autokose.render.diffusion.settings import CONSISTENCY_BLOCKS


class ConsistencyController:
    """Shared state of the consistent-attention processors of one UNet: mode, step, samples, bank.

    Everything that depends on the step (is sharing on, which tokens, which bank entries) is
    decided in `set_step`, outside the UNet call, so a `torch.compile`d UNet sees no Python
    integers that change per step and does not recompile.
    """

    def __init__(self, unet, rate: float, *, blocks: Iterable[str] = ("up",), step_range=(0.0, 1.0),
                 seed: int = 0, groups: int = 2):
        self.unet = unet
        self.step_range = check_step_range(step_range)
        self.seed = int(seed)
        self.groups = int(groups)
        self.mode = "share"
        self.step, self.steps = 0, None
        self.live = False  # whether the current step shares at all
        self.bank: dict[int, dict[str, torch.Tensor]] = {}  # step → layer → sampled tokens [groups, M, dim]
        self.offload_bank = False
        self.key = torch.zeros((), dtype=torch.int64)  # hashes (seed, step): which tokens are lent
        # The key on each device the layers ran on, refilled in place every step: copying it from the
        # CPU in every layer would wait for the GPU to finish its queue (a blocking copy) 9 times a step.
        self._keys: dict[str, torch.Tensor] = {}
        self._written: dict[str, torch.Tensor] = {}  # this step's bank entries, filed by set_step
        self._reading: dict[str, torch.Tensor] = {}  # the bank entries of this step, on the device
        self._device = None
        self.subjects: torch.Tensor | None = None  # [frames, H, W] int64 labels of the current call, on the CPU
        self.subject_ids: dict[str, int] = {}  # character → label, kept for every call of a board (the bank agrees)
        self.latent_size: tuple[int, int] | None = None
        self._plans: dict = {}  # (tokens, device) → SubjectPlan, for the current subjects and rate
        self.rate = rate
        self._original = dict(unet.attn_processors)
        self.layers = select_layers(self._original, blocks)
        unet.set_attn_processor({
            name: ConsistentAttnProcessor(self, name, proc) if name in self.layers else proc
            for name, proc in self._original.items()
        })

    @property
    def rate(self) -> float:
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self._rate = check_rate(value)
        self._plans.clear()
        self._update()

    # -- what the renderer drives ------------------------------------------------------------
    def set_step(self, step: int, steps: int | None = None) -> None:
        """The denoising step the next UNet call belongs to (0-based) and the total step count."""
        self._file_written()
        if steps is not None:
            self.steps = int(steps)
        self.step = int(step)
        self._update()

    def on_step_end(self, pipe, step: int, timestep, callback_kwargs: dict) -> dict:
        """`callback_on_step_end` for diffusers pipelines: advance to the next step."""
        self.set_step(step + 1, getattr(pipe, "num_timesteps", self.steps))
        return callback_kwargs

    def set_subjects(self, labels: torch.Tensor | None, latent_size: tuple[int, int] | None = None) -> None:
        """Subject masks of the next pipeline call's frames; None shares every token (the default).

        `labels` is an integer tensor [frames, H, W] at any resolution (e.g. from `subject_labels`):
        0 is background, k > 0 is character k, the same k in every frame and batch of a board.
        Each layer sees it resized (nearest) to its token grid, computed from `latent_size`
        (latent height, width; default the labels' own H, W) the way the UNet downsamples (ceil).
        It stays until set again or `reset()`: set it for every batch, the bank's batch included.
        """
        if labels is not None:
            labels = torch.as_tensor(labels)
            if labels.ndim != 3 or labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise ValueError(f"subject labels must be an integer tensor [frames, H, W], got {labels.dtype} "
                                 f"{tuple(labels.shape)}")
            if labels.numel() and int(labels.min()) < 0:
                raise ValueError("subject labels must be ≥ 0 (0 = background)")
            labels = labels.detach().to("cpu", torch.int64)
        self.subjects = labels
        self.latent_size = tuple(int(x) for x in latent_size) if latent_size is not None else (
            tuple(labels.shape[-2:]) if labels is not None else None)
        self._plans.clear()

    @property
    def masked(self) -> bool:
        """Whether frames share only inside same-character regions (subjects are set)."""
        return self.subjects is not None

    def share(self) -> None:
        """Frames of the current batch attend to each other (the default)."""
        self._file_written()
        self.mode = "share"
        self._update()

    def write_bank(self, offload: bool = False) -> None:
        """Share within the batch and store every layer's sampled tokens per step for later batches.

        `offload` keeps the bank in CPU memory (it grows with layers x steps x frames).
        """
        self._file_written()
        self.bank.clear()
        self.offload_bank = offload
        self.mode = "write"
        self._update()

    def read_bank(self) -> None:
        """Frames attend to their own tokens plus the bank written by an earlier batch."""
        self._file_written()
        if self.rate > 0 and not self.bank:
            raise RuntimeError("read_bank(): nothing was written; render the first batch after write_bank()")
        self.mode = "read"
        self._update()

    def reset(self) -> None:
        """Forget the bank, the step and the subjects; back to sharing within the batch."""
        self.set_subjects(None)
        self.bank.clear()
        self._written.clear()
        self.mode = "share"
        self.step, self.steps = 0, None
        self._update()

    def disable(self) -> None:
        """Put back the processors the UNet had before."""
        self.reset()
        self.unet.set_attn_processor(dict(self._original))

    def _update(self) -> None:
        fraction = self.step / self.steps if self.steps else 0.0
        self.live = self.rate > 0 and self.step_range[0] <= fraction < self.step_range[1]
        value = _mix(self.seed, self.step) & 0xFFFFFFFF
        for key in (self.key, *self._keys.values()):
            key.fill_(value)  # a kernel launch on a GPU: no wait
        self._reading.clear()
        if self.live and self.mode == "read":
            device = self._device or "cpu"
            self._reading.update({name: _to(t, device) for name, t in self.bank.get(self.step, {}).items()})

    def _file_written(self) -> None:
        if self._written:
            entries = {n: _to(t, "cpu") if self.offload_bank else t for n, t in self._written.items()}
            self.bank.setdefault(self.step, {}).update(entries)
            self._written.clear()

    # -- what the processors ask -------------------------------------------------------------
    def active(self, batch: int) -> bool:
        """Whether the current call mixes frames at all (else the stock processor runs)."""
        return self.live and (self.frames(batch) > 1 or self.mode != "share")

    def frames(self, batch: int) -> int:
        if batch % self.groups:
            raise RuntimeError(f"consistent attention: batch of {batch} does not split into {self.groups} groups "
                               "(set controller.groups to 1 without classifier-free guidance)")
        return batch // self.groups

    def key_on(self, device) -> torch.Tensor:
        """`key` on `device`: copied there once, then kept current by `_update`."""
        key = self._keys.get(str(device))
        if key is None:
            key = self._keys[str(device)] = self.key.to(device)
        return key

    def sample(self, tokens: int, frames: int, device) -> torch.Tensor:
        """Per frame, the positions of the tokens it lends to the others: [frames, k].

        Tokens are ranked by an integer hash of (seed, step, frame, position): no generator
        state, the same positions on every device, and nothing that breaks a compiled graph.
        """
        k = max(1, round(self.rate * tokens))
        position = torch.arange(frames * tokens, device=device, dtype=torch.int64).view(frames, tokens)
        self._device = device
        return _hash32(position * 0x9E3779B1 + self.key_on(device)).argsort(dim=1)[:, :k]

    def plan(self, tokens: int, frames: int, device) -> SubjectPlan:
        """The subject plan of a layer with `tokens` tokens per frame (cached per subjects and rate)."""
        cached = self._plans.get((tokens, str(device)))
        if cached is None:
            if self.subjects.shape[0] != frames:
                raise RuntimeError(f"consistent attention: subject labels for {self.subjects.shape[0]} frames, "
                                   f"the batch has {frames}")
            grid = token_grid(self.latent_size, tokens)
            if grid is None:
                raise RuntimeError(f"consistent attention: a layer of {tokens} tokens is no downsampling of the "
                                   f"{self.latent_size[0]}x{self.latent_size[1]} latents the subjects were set for")
            cached = subject_plan(resize_labels(self.subjects, grid), self.rate).to(device)
            self._plans[(tokens, str(device))] = cached
        return cached

    def prepare(self, frames: int, device, levels: int) -> None:
        """Plan every UNet level's subjects now (`levels` halvings of the latent, as the UNet does),
        before the call: made inside the attention processor, a compiled UNet would break its
        graph there."""
        if self.subjects is None or self.latent_size is None:
            return
        h, w = self.latent_size
        for _ in range(levels):
            self.plan(h * w, frames, torch.device(device))
            h, w = -(-h // 2), -(-w // 2)

    def lent(self, plan: SubjectPlan, device) -> dict[int, torch.Tensor]:
        """Per character, the positions each frame lends this step: label → [frames, k] (see `sample`)."""
        frames, tokens = plan.labels.shape
        self._device = device
        position = torch.arange(frames * tokens, device=device, dtype=torch.int64).view(frames, tokens)
        score = _hash32(position * 0x9E3779B1 + self.key_on(device)) + plan.labels * 2**32  # grouped by label
        order = score.argsort(dim=1, stable=True)
        return {c: order.gather(1, group.slots) for c, group in plan.lenders.items()}

    def store(self, name: str, tokens: torch.Tensor | dict[int, torch.Tensor]) -> None:
        self._written[name] = ({c: t.detach() for c, t in tokens.items()} if isinstance(tokens, dict)
                               else tokens.detach())

    def stored(self, name: str) -> torch.Tensor | dict[int, torch.Tensor]:
        if name not in self._reading:
            raise RuntimeError(f"consistent attention: no bank for {name} at step {self.step}; "
                               "read with the same steps and size the bank was written with")
        return self._reading[name]


class ConsistentAttnProcessor:
    """Self-attention whose keys/values include tokens sampled from the other frames.

    The math is diffusers' `AttnProcessor2_0` with extra key/value tokens; when the controller
    says sharing is off, the call goes to the processor this one replaced.
    """

    def __init__(self, controller: ConsistencyController, name: str, original):
        self.controller = controller
        self.name = name
        self.original = original

    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None, *args, **kwargs):
        ctl = self.controller
        if encoder_hidden_states is not None or not ctl.active(hidden_states.shape[0]):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)

        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch_size, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch_size, channel, height * width).transpose(1, 2)
        batch_size, sequence_length, _ = hidden_states.shape
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query, key, value = project_qkv(attn, hidden_states)
        if ctl.masked:
            if attention_mask is not None:
                raise RuntimeError("consistent attention: subject masks with an attention mask are not supported")
            hidden_states = self.masked_attention(attn, hidden_states, query, key, value)
            return self._out(attn, hidden_states, residual, input_ndim, (batch_size, channel, height, width)
                             if input_ndim == 4 else None)
        extra_key, extra_value = self.borrowed(attn, hidden_states, key, value)
        key = torch.cat([key, extra_key], dim=1)
        value = torch.cat([value, extra_value], dim=1)

        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
            keep = True if attention_mask.dtype == torch.bool else 0.0
            attention_mask = F.pad(attention_mask, (0, extra_key.shape[1]), value=keep)

        hidden_states = _attend(attn, query, key, value, attention_mask)
        return self._out(attn, hidden_states, residual, input_ndim, (batch_size, channel, height, width)
                         if input_ndim == 4 else None)

    @staticmethod
    def _out(attn, hidden_states, residual, input_ndim, shape4):
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(*shape4)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

    def masked_attention(self, attn, hidden_states, query, key, value) -> torch.Tensor:
        """Attention with subject masks, before `to_out`: [batch, tokens, inner dim].

        Queries are grouped by label (precomputed per layer, `SubjectPlan`): label 0 attends to
        its own frame only; label k to its own frame plus the tokens of label k the other
        frames (or the bank) lend. One attention call per label, each with only the keys it
        may see, so no [queries x keys] mask is built: the only mask is a key-padding one
        [batch, 1, 1, keys] for frames that lend fewer tokens than the most generous one.
        """
        ctl = self.controller
        batch, tokens, _ = hidden_states.shape
        groups, frames = ctl.groups, ctl.frames(batch)
        plan = ctl.plan(tokens, frames, hidden_states.device)
        if ctl.mode == "read":
            bank = ctl.stored(self.name)
            if not isinstance(bank, dict):
                raise RuntimeError("consistent attention: the bank was written without subject masks; "
                                   "set subjects for the first batch too")
            lent = None
        else:
            lent = ctl.lent(plan, hidden_states.device)
            if ctl.mode == "write":
                ctl.store(self.name, {c: _gather(hidden_states, groups, lent[c]).flatten(1, 2)[:, group.kept]
                                      for c, group in plan.lenders.items()})
        others = _others(frames, hidden_states.device)
        outs = []
        for c, queries in plan.queries.items():
            q, k, v, mask = _gather(query, groups, queries).flatten(0, 1), key, value, None
            if c and lent is not None and c in plan.lenders and frames > 1:
                extra_k = _from_others(_gather(key, groups, lent[c]), others)
                extra_v = _from_others(_gather(value, groups, lent[c]), others)
                k, v = torch.cat([key, extra_k], dim=1), torch.cat([value, extra_v], dim=1)
                valid = plan.lenders[c].valid
                if not plan.lenders[c].full:  # key padding: who lends fewer than the most
                    lend_mask = torch.cat([torch.ones_like(valid[:, :1]).expand(frames, tokens),
                                           valid[others].flatten(1)], dim=1)
                    mask = lend_mask.repeat(groups, 1)[:, None, None, :]
            elif c and lent is None and c in bank:
                _, bank_key, bank_value = project_qkv(attn, bank[c].to(hidden_states.dtype))
                k = torch.cat([key, _per_frame(bank_key, frames)], dim=1)
                v = torch.cat([value, _per_frame(bank_value, frames)], dim=1)
            outs.append(_attend(attn, q, k, v, mask))
        out = torch.cat(outs, dim=1) if len(outs) > 1 else outs[0]
        source = plan.source.repeat(groups, 1)[:, :, None].expand(batch, tokens, out.shape[-1])
        return out.gather(1, source)

    def borrowed(self, attn, hidden_states, key, value) -> tuple[torch.Tensor, torch.Tensor]:
        """Extra keys and values per frame: [batch, extra tokens, dim] each."""
        ctl = self.controller
        batch, tokens, _ = hidden_states.shape
        groups, frames = ctl.groups, ctl.frames(batch)
        if ctl.mode == "read":
            bank = ctl.stored(self.name).to(hidden_states.dtype)  # [groups, M, dim]
            if bank.shape[0] != groups:
                raise RuntimeError(f"consistent attention: bank has {bank.shape[0]} groups, batch has {groups}")
            _, bank_key, bank_value = project_qkv(attn, bank)
            return _per_frame(bank_key, frames), _per_frame(bank_value, frames)

        picks = ctl.sample(tokens, frames, hidden_states.device)  # [frames, k]
        if ctl.mode == "write":
            ctl.store(self.name, _gather(hidden_states, groups, picks).flatten(1, 2))
        others = _others(frames, hidden_states.device)  # [frames, frames - 1]
        return _from_others(_gather(key, groups, picks), others), _from_others(_gather(value, groups, picks), others)


def _attend(attn, query, key, value, mask) -> torch.Tensor:
    """Multi-head scaled dot-product attention of [batch, n, inner] tensors, as AttnProcessor2_0."""
    batch, inner = query.shape[0], key.shape[-1]
    head_dim = inner // attn.heads
    query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
    if attn.norm_q is not None:
        query = attn.norm_q(query)
    if attn.norm_k is not None:
        key = attn.norm_k(key)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False)
    return out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)


# --------------------------------------------------------------------------- subject masks
@dataclass
class Lender:
    """How the frames lend the tokens of one character: `slots` [frames, k] index the frame's
    tokens sorted by (label, hash), `valid` [frames, k] marks the real ones (frames lend
    round(rate x region) tokens, padded to the most), `kept` [m] the real ones of the
    flattened [frames * k] (what the bank stores), `full` whether none is padding."""

    slots: torch.Tensor
    valid: torch.Tensor
    kept: torch.Tensor
    full: bool


@dataclass
class SubjectPlan:
    """The layout of one layer's tokens under subject masks, fixed for a pipeline call.

    `labels` [frames, tokens]; `queries` label → [frames, n] positions of that label's tokens
    per frame (padded by repeating the last); `source` [frames, tokens] where each token's
    output lies in the concatenation of the per-label outputs; `lenders` per character > 0.
    """

    labels: torch.Tensor
    queries: dict[int, torch.Tensor]
    source: torch.Tensor
    lenders: dict[int, Lender]

    def to(self, device) -> SubjectPlan:
        return SubjectPlan(self.labels.to(device), {c: q.to(device) for c, q in self.queries.items()},
                           self.source.to(device),
                           {c: Lender(g.slots.to(device), g.valid.to(device), g.kept.to(device), g.full)
                            for c, g in self.lenders.items()})


def subject_plan(labels: torch.Tensor, rate: float) -> SubjectPlan:
    """Plan the grouped attention for labels [frames, tokens] (CPU) at sharing `rate`.

    Shapes depend only on the labels and the rate, never on the step, so they are computed
    once per call here, with no device synchronisation inside the UNet.
    """
    frames, tokens = labels.shape
    present = sorted(int(c) for c in labels.unique())
    counts = torch.stack([(labels == c).sum(1) for c in present], dim=1)  # [frames, labels]
    starts = counts.cumsum(1) - counts  # where each label's run begins in a frame's (label, hash) order
    queries, source, offset = {}, torch.empty(frames, tokens, dtype=torch.int64), 0
    for i, c in enumerate(present):
        n = int(counts[:, i].max())
        q = torch.zeros(frames, n, dtype=torch.int64)
        for f in range(frames):
            where = (labels[f] == c).nonzero().flatten()
            if len(where):
                q[f, :len(where)], q[f, len(where):] = where, where[-1]
                source[f, where] = offset + torch.arange(len(where))
        queries[c], offset = q, offset + n
    lenders = {}
    for i, c in enumerate(present):
        if c == 0:
            continue
        lend = torch.where(counts[:, i] > 0, (rate * counts[:, i].double()).round().long().clamp(min=1), 0)
        k = int(lend.max())
        j = torch.arange(k)[None, :]
        valid = j < lend[:, None]
        slots = (starts[:, i:i + 1] + torch.minimum(j, (lend[:, None] - 1).clamp(min=0))).clamp(max=tokens - 1)
        lenders[c] = Lender(slots, valid, valid.flatten().nonzero().flatten(), bool(valid.all()))
    return SubjectPlan(labels, queries, source, lenders)


def resize_labels(labels: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """[frames, H, W] labels → [frames, h * w] at a layer's token grid (nearest, centred)."""
    if tuple(labels.shape[-2:]) != tuple(grid):
        labels = F.interpolate(labels[:, None].double(), size=grid, mode="nearest-exact")[:, 0].long()
    return labels.flatten(1)


def subject_labels(frames: list[list[tuple[str, np.ndarray]]], ids: dict[str, int],
                   size: tuple[int, int]) -> torch.Tensor:
    """Label maps [frames, height, width] (int64) from each frame's (name, mask) regions.

    `mask` is [height, width], > 0.5 inside (`autokose.regions.box_mask`; other sizes are
    resized, nearest). `ids` maps a name to its label and is shared by all the batches of a
    board, so the bank's labels agree with later batches': names it lacks are added to it
    (next free number). A pixel inside two characters' regions is background: it belongs to
    neither, so overlapping boxes never pass one face to the other.
    """
    height, width = size
    out = torch.zeros(len(frames), height, width, dtype=torch.int64)
    for f, regions in enumerate(frames):
        areas: dict[int, torch.Tensor] = {}  # label → where it is (a name may own several regions)
        for name, mask in regions:
            if name not in ids:
                ids[name] = max(ids.values(), default=0) + 1
            label = ids[name]
            if not isinstance(label, int) or label <= 0:
                raise ValueError(f"subject {name}: label {label!r} must be a positive int (0 is background)")
            inside = torch.as_tensor(np.asarray(mask, dtype=np.float32))
            if inside.ndim != 2:
                raise ValueError(f"subject {name}: mask must be [height, width], got {tuple(inside.shape)}")
            if tuple(inside.shape) != (height, width):
                inside = F.interpolate(inside[None, None], size=(height, width), mode="nearest-exact")[0, 0]
            areas[label] = areas.get(label, torch.zeros(height, width, dtype=torch.bool)) | (inside > 0.5)
        if areas:
            owners = sum(a.long() for a in areas.values())
            out[f] = torch.where(owners == 1, sum(label * a.long() for label, a in areas.items()), 0)
    return out


def enable_consistent_attention(unet, rate: float, *, blocks: Iterable[str] = ("up",), step_range=(0.0, 1.0),
                                seed: int = 0, groups: int = 2) -> ConsistencyController:
    """Replace the self-attention processors of `blocks` ("down", "mid", "up" or name prefixes
    such as "up_blocks.1") with consistent ones; `step_range` is the fraction of denoising steps
    (start, end) in which frames share; `groups` is 2 with classifier-free guidance, else 1.
    """
    return ConsistencyController(unet, rate, blocks=blocks, step_range=step_range, seed=seed, groups=groups)


def project_qkv(attn, hidden_states: torch.Tensor):
    if getattr(attn, "fused_projections", False) and getattr(attn, "to_qkv", None) is not None:
        return attn.to_qkv(hidden_states).chunk(3, dim=-1)
    return attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)


def select_layers(processors: dict, blocks: Iterable[str]) -> list[str]:
    """Self-attention processor names under the chosen blocks."""
    if isinstance(blocks, str):
        blocks = (blocks,)
    prefixes = [CONSISTENCY_BLOCKS.get(b, b) for b in blocks]
    layers = [n for n in processors if n.endswith("attn1.processor") and n.startswith(tuple(prefixes))]
    if prefixes and not layers:
        raise InputError(f"consistency blocks {', '.join(blocks)}: no self-attention layers there "
                         "(use down, mid, up or a prefix such as up_blocks.1)")
    return layers


def check_rate(rate: float) -> float:
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise InputError(f"consistency {rate:g}: must be between 0 (off) and 1")
    return rate


def check_step_range(step_range) -> tuple[float, float]:
    start, end = (float(x) for x in step_range)
    if not 0.0 <= start < end <= 1.0:
        raise InputError(f"consistency step range {start:g}–{end:g}: needs 0 ≤ start < end ≤ 1")
    return start, end


def _mix(*values: int) -> int:
    """A deterministic seed from several integers (Python's hash() of ints is stable, but be explicit)."""
    out = 0
    for v in values:
        out = (out * 1_000_003 + int(v)) % (2**63 - 1)
    return out


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer mix (xor-shift-multiply) in int64 arithmetic that never overflows."""
    x = x & 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    x = ((x >> 16) ^ x) * 0x45D9F3B & 0xFFFFFFFF
    return (x >> 16) ^ x


def _gather(x: torch.Tensor, groups: int, picks: torch.Tensor) -> torch.Tensor:
    """[groups * frames, tokens, dim] → the picked tokens per frame, [groups, frames, k, dim]."""
    frames = picks.shape[0]
    x = x.view(groups, frames, x.shape[1], x.shape[2])
    return x[:, torch.arange(frames, device=x.device)[:, None], picks]


def _others(frames: int, device) -> torch.Tensor:
    """Row f lists every frame but f: [frames, frames - 1]."""
    others = torch.arange(frames - 1, device=device)[None, :]
    return others + (others >= torch.arange(frames, device=device)[:, None]).long()


def _from_others(sampled: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
    """[groups, frames, k, dim] → per frame the other frames' tokens, [groups * frames, (frames-1) * k, dim]."""
    groups, frames, k, dim = sampled.shape
    return sampled[:, others].reshape(groups * frames, (frames - 1) * k, dim)


def _to(entry, device):
    """A bank entry (a tensor, or label → tensor under subject masks) on `device`."""
    return {c: t.to(device) for c, t in entry.items()} if isinstance(entry, dict) else entry.to(device)


def _per_frame(bank: torch.Tensor, frames: int) -> torch.Tensor:
    """[groups, M, dim] → the same bank for every frame of its group, [groups * frames, M, dim]."""
    groups, m, dim = bank.shape
    return bank[:, None].expand(groups, frames, m, dim).reshape(groups * frames, m, dim)
