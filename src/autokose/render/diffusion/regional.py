"""Regional prompts and regional LoRA: each character's words and LoRA act inside its own figure.

Attention couple. Every cross-attention layer (`attn2`) of the UNet computes its output once per
*slot*: slot 0 is the frame's shared prompt (style, setting, light), slot 1.. one per region of
the frame (the shared prompt joined with the character's own words). The outputs are blended
with per-token weights that form a partition of unity: outside every region the shared slot
has weight 1; inside a region the shared slot keeps `base` and the region's slot gets the rest
(overlapping regions split it by their mask values). Frames with fewer regions than the call's
widest are padded with zero-weight slots. The unconditional rows of classifier-free guidance get
the negative prompt in every slot, so guidance stays what it was.

The wrapped processor is whatever `attn2` had (the stock one, or the IP-Adapter's): every
processor output is affine in its attention result, so blending with weights that sum to 1
keeps the IP-Adapter's additive, masked part exactly as one call would give it.

Regional LoRA. A LoRA owned by a character is kept out of peft's active set
(`controls.apply_loras(..., regional=True)`); forward hooks on its peft layers add its delta
only where the character is: spatial inputs (tokens [B, h*w, C] or convolutions [B, C, h, w])
get delta x the owner's mask at that resolution per batch row; the text inputs of
cross-attention (`attn2.to_k` / `attn2.to_v`, told by module name) get it while the couple
computes the owner's slot; the text encoders get it while the owner's slot prompts are encoded.
Inputs with no token grid (time embeddings) get no delta. A frame without the character gets
none of its LoRA.

Everything is installed for one pipeline call (`RegionalController.active`) and removed after
it, so a call without regions runs the stock processors, bit for bit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autokose.errors import InputError
from autokose.regions import token_grid

_KV = ("attn2.to_k", "attn2.to_v")


@dataclass
class OwnedLora:
    """A peft adapter confined to its owner's regions; `weight` is the user's LoRA weight."""

    adapter: str
    owner: str
    weight: float


@dataclass
class CallState:
    """What one pipeline call's regional processors and hooks read.

    `texts`: [slots, rows, tokens, dim] slot encoder states (rows as the UNet sees them: with
    guidance the unconditional rows first). `weights`: [slots, rows, h, w] at the latent size,
    summing to 1 over slots. `owners[s][row]`: the character whose LoRA K/V acts in slot s of that
    row. `masks`: owner → [rows, h, w] where its LoRA acts (latent size).
    """

    texts: torch.Tensor
    weights: torch.Tensor
    owners: list[list[str | None]]
    masks: dict[str, torch.Tensor]


def slot_weights(frames: Sequence[Sequence[torch.Tensor]], base: float, slots: int,
                 size: tuple[int, int]) -> torch.Tensor:
    """Couple weights [slots, frames, h, w] from each frame's region masks ([h, w] = `size`, 0..1).

    Shared slot: 1 - (1 - base) * cover, cover = min(1, sum of masks); region i: the rest, split
    by mask value. They sum to 1 at every pixel; padding slots are 0.
    """
    out = []
    for masks in frames:
        stacked = torch.stack(list(masks)) if masks else torch.zeros(0, *size)
        total = stacked.sum(0)
        cover = total.clamp(max=1.0)
        shared = 1.0 - (1.0 - base) * cover
        share = (1.0 - base) * cover / total.clamp(min=1e-6)
        regions = stacked * share
        pad = torch.zeros(slots - 1 - len(masks), *shared.shape)
        out.append(torch.cat([shared[None], regions, pad]))
    return torch.stack(out, dim=1)


def pool(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[..., H, W] averaged onto an h x w grid (the UNet's grids are ceil-halvings of the latent)."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    lead = maps.shape[:-2]
    flat = maps.reshape(-1, 1, *maps.shape[-2:])
    return F.adaptive_avg_pool2d(flat, size).reshape(*lead, *size)


class RegionalController:
    """Holds one call's `CallState` and installs the couple processors and LoRA hooks around it."""

    def __init__(self, unet, text_encoders: Sequence = (), owned: Sequence[OwnedLora] = ()):
        self.unet = unet
        self.text_encoders = [e for e in text_encoders if e is not None]
        self.owned = {o.adapter: o for o in owned}
        self.state: CallState | None = None
        self.latent: tuple[int, int] = (0, 0)
        self.slot: int | None = None  # the slot the couple is computing now
        self.live: list[bool] = []
        self.text_owner: str | None = None  # whose slot prompts are being encoded
        self._grids: dict[tuple, torch.Tensor] = {}
        self._unet_layers = lora_layers(unet, self.owned)
        self._text_layers = [m for enc in self.text_encoders for m in lora_layers(enc, self.owned)]

    def acts(self, region) -> bool:
        """Whether a region changes anything regionally: words of its own, or a LoRA its name owns.

        A call whose regions all do not is left to the stock processors (bit-identical), and such
        a region's share of a regional call goes to the shared slot.
        """
        return bool(region.prompt.strip()) or region.name in self.owners

    @property
    def owners(self) -> set[str]:
        return {o.owner for o in self.owned.values()}

    # -- text encoding -----------------------------------------------------------------------
    @contextmanager
    def encoding(self, owner: str | None) -> Iterator[None]:
        """Encode slot prompts with `owner`'s text-encoder LoRA (if it has one) switched on."""
        handles = [m.register_forward_hook(self._text_hook(m, kinds)) for _, m, kinds in self._text_layers]
        self.text_owner = owner
        try:
            yield
        finally:
            self.text_owner = None
            for h in handles:
                h.remove()

    # -- one pipeline call -------------------------------------------------------------------
    @contextmanager
    def active(self, state: CallState, latent: tuple[int, int]) -> Iterator[None]:
        """Couple processors on every `attn2` and LoRA hooks on owned layers, for one call."""
        self.state, self.latent, self._grids = state, latent, {}
        # which slots hold weight anywhere in the call, asked once here rather than per layer (a GPU sync)
        self.live = (state.weights.flatten(1) > 0).any(1).tolist()
        original = dict(self.unet.attn_processors)
        self.unet.set_attn_processor({name: RegionalAttnProcessor(self, proc) if ".attn2." in name else proc
                                      for name, proc in original.items()})
        handles = [m.register_forward_hook(self._unet_hook(name, m, kinds)) for name, m, kinds in self._unet_layers]
        try:
            yield
        finally:
            for h in handles:
                h.remove()
            self.unet.set_attn_processor(original)
            self.state, self.slot, self._grids = None, None, {}

    # -- what processors and hooks ask -------------------------------------------------------
    def weights(self, grid: tuple[int, int]) -> torch.Tensor:
        """[slots, rows, h*w] couple weights on a layer's token grid."""
        key = ("weights", grid)
        if key not in self._grids:
            self._grids[key] = pool(self.state.weights, grid).flatten(2)
        return self._grids[key]

    def mask(self, owner: str, grid: tuple[int, int]) -> torch.Tensor | None:
        """[rows, h, w] where `owner`'s LoRA acts on a grid, or None when nowhere in this call."""
        if owner not in self.state.masks:
            return None
        key = ("mask", owner, grid)
        if key not in self._grids:
            self._grids[key] = pool(self.state.masks[owner], grid)
        return self._grids[key]

    def gate(self, owner: str, like: torch.Tensor) -> torch.Tensor | None:
        """[rows, 1, 1]: 1 for the rows whose current slot `owner` holds, or None when none does.

        Made once per call and slot: a list turned into a GPU tensor is a blocking copy, and the
        LoRA'd key/value layers ask for it at every step."""
        key = ("gate", self.slot, owner, like.dtype, str(like.device))
        if key not in self._grids:
            rows = [o == owner for o in self.state.owners[self.slot]]
            self._grids[key] = torch.tensor(rows, dtype=like.dtype, device=like.device).view(-1, 1, 1) \
                if any(rows) else None
        return self._grids[key]

    def _unet_hook(self, name: str, module, kinds: list[OwnedLora]):
        kv = name.endswith(_KV)

        def hook(mod, args, output):
            x = args[0]
            for lora in kinds:
                if kv:
                    if self.slot is None:
                        continue
                    gate = self.gate(lora.owner, output)
                    if gate is None:
                        continue
                elif x.ndim == 3:
                    grid = token_grid(self.latent, x.shape[1])
                    m = self.mask(lora.owner, grid) if grid is not None else None
                    if m is None or m.shape[0] != x.shape[0]:  # not the frame's own tokens: no place to confine to
                        continue
                    gate = m.flatten(1)[..., None]
                elif x.ndim == 4:
                    m = self.mask(lora.owner, tuple(x.shape[-2:]))
                    if m is None or m.shape[0] != x.shape[0]:
                        continue
                    gate = m[:, None]
                else:  # no token grid (time embeddings): a region cannot confine it
                    continue
                output = output + delta(mod, lora, x) * gate.to(output.device, output.dtype)
            return output

        return hook

    def _text_hook(self, module, kinds: list[OwnedLora]):
        def hook(mod, args, output):
            for lora in kinds:
                if lora.owner == self.text_owner:
                    output = output + delta(mod, lora, args[0])
            return output

        return hook


def delta(module, lora: OwnedLora, x: torch.Tensor) -> torch.Tensor:
    """What peft's LoRA layer would add for `lora` (B(A(dropout(x))) x scaling x weight)."""
    name = lora.adapter
    a, b = module.lora_A[name], module.lora_B[name]
    x = x.to(a.weight.dtype)
    return b(a(module.lora_dropout[name](x))) * (module.scaling[name] * lora.weight)


def lora_layers(model, owned: dict[str, OwnedLora]) -> list[tuple[str, object, list[OwnedLora]]]:
    """(name, peft LoRA layer, owned adapters in it) for every layer of `model` that has one."""
    out = []
    for name, m in model.named_modules():
        adapters = getattr(m, "lora_A", None)
        if not isinstance(adapters, torch.nn.ModuleDict):
            continue
        here = [owned[a] for a in adapters.keys() if a in owned]
        if not here:
            continue
        for lora in here:
            if getattr(m, "use_dora", {}).get(lora.adapter):
                raise InputError(f"{lora.owner}'s LoRA is a DoRA, which regional LoRA cannot confine to a figure; "
                                 "use a plain LoRA or --no-regional")
            if type(m.lora_A[lora.adapter]).__name__ not in ("Linear", "Conv2d"):
                raise InputError(f"{lora.owner}'s LoRA has {type(m.lora_A[lora.adapter]).__name__} layers, which "
                                 "regional LoRA cannot confine to a figure; use --no-regional")
        out.append((name, m, here))
    return out


class RegionalAttnProcessor:
    """Wraps an `attn2` processor: one call per slot, outputs blended by the couple weights."""

    def __init__(self, controller: RegionalController, original):
        self.controller = controller
        self.original = original

    # diffusers passes a processor only the keyword arguments its signature names
    def __call__(self, attn, hidden_states: torch.Tensor, encoder_hidden_states=None, attention_mask=None,
                 temb=None, ip_adapter_masks=None, *args, **kwargs):
        ctl = self.controller
        extra = dict(kwargs)
        if ip_adapter_masks is not None:
            extra["ip_adapter_masks"] = ip_adapter_masks
        if ctl.state is None or encoder_hidden_states is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **extra)
        spatial = hidden_states.ndim == 4
        grid = tuple(hidden_states.shape[-2:]) if spatial else token_grid(ctl.latent, hidden_states.shape[1])
        if grid is None:
            raise RuntimeError(f"regional attention: {hidden_states.shape[1]} tokens are no grid of the latent")
        weights = ctl.weights(grid)  # [slots, rows, h*w]
        ip = None
        if isinstance(encoder_hidden_states, tuple):
            encoder_hidden_states, ip = encoder_hidden_states
        out = None
        try:
            for s, live in enumerate(ctl.live):
                if not live:
                    continue
                w = weights[s]
                ctl.slot = s
                text = ctl.state.texts[s].to(encoder_hidden_states.device, encoder_hidden_states.dtype)
                states = (text, ip) if ip is not None else text
                y = self.original(attn, hidden_states, states, attention_mask, temb, *args, **extra)
                w = w.view(w.shape[0], 1, *grid) if spatial else w[..., None]
                y = y * w.to(y.device, y.dtype)
                out = y if out is None else out + y
        finally:
            ctl.slot = None
        return out
