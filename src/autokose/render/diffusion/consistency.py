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

Only self-attention processors are replaced; cross-attention (`attn2`, where IP-Adapter lives)
is left alone. Enable it *after* loading IP-Adapters: diffusers rebuilds every processor when
it loads one.

Typical use, one pipeline call per batch of frames::

    ctl = enable_consistent_attention(pipe.unet, 0.5, groups=2 if cfg > 1 else 1)
    for n, batch in enumerate(batches):
        ctl.write_bank() if n == 0 and len(batches) > 1 else (ctl.read_bank() if n else ctl.share())
        ctl.set_step(0, steps)
        pipe(..., callback_on_step_end=ctl.on_step_end)
    ctl.disable()
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F

from autokose.errors import InputError

BLOCK_PREFIXES = {"down": "down_blocks.", "mid": "mid_block.", "up": "up_blocks."}


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
        self._written: dict[str, torch.Tensor] = {}  # this step's bank entries, filed by set_step
        self._reading: dict[str, torch.Tensor] = {}  # the bank entries of this step, on the device
        self._device = None
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
        """Forget the bank and the step; back to sharing within the batch."""
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
        self.key.fill_(_mix(self.seed, self.step) & 0xFFFFFFFF)
        self._reading.clear()
        if self.live and self.mode == "read":
            device = self._device or "cpu"
            self._reading.update({name: t.to(device) for name, t in self.bank.get(self.step, {}).items()})

    def _file_written(self) -> None:
        if self._written:
            entries = {n: t.to("cpu") if self.offload_bank else t for n, t in self._written.items()}
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

    def sample(self, tokens: int, frames: int, device) -> torch.Tensor:
        """Per frame, the positions of the tokens it lends to the others: [frames, k].

        Tokens are ranked by an integer hash of (seed, step, frame, position): no generator
        state, the same positions on every device, and nothing that breaks a compiled graph.
        """
        k = max(1, round(self.rate * tokens))
        position = torch.arange(frames * tokens, device=device, dtype=torch.int64).view(frames, tokens)
        self._device = device
        return _hash32(position * 0x9E3779B1 + self.key.to(device)).argsort(dim=1)[:, :k]

    def store(self, name: str, tokens: torch.Tensor) -> None:
        self._written[name] = tokens.detach()

    def stored(self, name: str) -> torch.Tensor:
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
        extra_key, extra_value = self.borrowed(attn, hidden_states, key, value)
        key = torch.cat([key, extra_key], dim=1)
        value = torch.cat([value, extra_value], dim=1)

        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, sequence_length, batch_size)
            attention_mask = attention_mask.view(batch_size, attn.heads, -1, attention_mask.shape[-1])
            keep = True if attention_mask.dtype == torch.bool else 0.0
            attention_mask = F.pad(attention_mask, (0, extra_key.shape[1]), value=keep)

        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch_size, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        hidden_states = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                       dropout_p=0.0, is_causal=False)
        hidden_states = hidden_states.transpose(1, 2).reshape(batch_size, -1, attn.heads * head_dim)
        hidden_states = hidden_states.to(query.dtype)
        hidden_states = attn.to_out[0](hidden_states)
        hidden_states = attn.to_out[1](hidden_states)
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch_size, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor

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


def enable_consistent_attention(unet, rate: float, *, blocks: Iterable[str] = ("up",), step_range=(0.0, 1.0),
                                seed: int = 0, groups: int = 2) -> ConsistencyController:
    """Replace the self-attention processors of `blocks` ("down", "mid", "up" or name prefixes
    such as "up_blocks.1") with consistent ones; `step_range` is the fraction of denoising steps
    (start, end) in which frames share; `groups` is 2 with classifier-free guidance, else 1.
    """
    return ConsistencyController(unet, rate, blocks=blocks, step_range=step_range, seed=seed, groups=groups)


def fuse_self_attention_qkv(model) -> int:
    """Fuse q/k/v of every self-attention of a UNet or ControlNet into one matmul.

    Call it after LoRAs are fused into the weights. Unlike diffusers' `fuse_qkv_projections()`
    it leaves cross-attention processors (IP-Adapter's) alone: stock self-attention processors
    become `FusedAttnProcessor2_0`, and the consistent processor uses the fused weights itself.
    Returns how many layers were fused.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0

    processors, fused = dict(model.attn_processors), 0
    for name in processors:
        attn = model.get_submodule(name.removesuffix(".processor"))
        if name.endswith("attn1.processor") and not attn.is_cross_attention:
            attn.fuse_projections(fuse=True)
            if type(processors[name]) is AttnProcessor2_0:
                processors[name] = FusedAttnProcessor2_0()
            fused += 1
    model.set_attn_processor(processors)
    return fused


def project_qkv(attn, hidden_states: torch.Tensor):
    if getattr(attn, "fused_projections", False) and getattr(attn, "to_qkv", None) is not None:
        return attn.to_qkv(hidden_states).chunk(3, dim=-1)
    return attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)


def select_layers(processors: dict, blocks: Iterable[str]) -> list[str]:
    """Self-attention processor names under the chosen blocks."""
    if isinstance(blocks, str):
        blocks = (blocks,)
    prefixes = [BLOCK_PREFIXES.get(b, b) for b in blocks]
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


def _per_frame(bank: torch.Tensor, frames: int) -> torch.Tensor:
    """[groups, M, dim] → the same bank for every frame of its group, [groups * frames, M, dim]."""
    groups, m, dim = bank.shape
    return bank[:, None].expand(groups, frames, m, dim).reshape(groups * frames, m, dim)
