"""Faster denoising: what the engine switches on when it loads a pipeline, and around each call.

At load (`tune`, from the settings the load key covers):
1. `channels_last`: UNet, ControlNets and VAE in NHWC memory format;
2. `fused_qkv`: each self-attention's q/k/v projections as one matmul;
3. `compile`: `torch.compile` of the UNet and ControlNets, either their repeated blocks
   (`blocks`: BasicTransformerBlock and ResnetBlock2D, the "regional compilation" recipe; one
   graph serves every block of a shape, so it compiles in a fraction of the time) or the
   whole models (`full`). Inductor's caches go under the AutoKöse cache folder of the first
   engine that compiles in a process (unless TORCHINDUCTOR_CACHE_DIR is set), so a second
   process compiles from a warm cache.

Around a call (`during_call`):
4. `attention`: the scaled-dot-product-attention kernel tried first (flash, cuDNN, memory-
   efficient, math); the others stay as fallbacks, so no shape is refused;
5. DeepCache (`deep_cache`, the `--fast` preset): the UNet and each ControlNet run whole every
   N-th step; in between only their outer blocks run (conv_in, the outer down and up blocks
   down to the first level with attention: one level in SD 1.5, two in SDXL), on the deeper
   blocks' outputs kept from the last whole step. Deep features
   change slowly between adjacent steps, so this keeps most of the picture for about a third
   of the UNet's work on those steps (Ma et al., "DeepCache: Accelerating Diffusion Models for
   Free", CVPR 2024). Written on diffusers' own hook registry: the DeepCache package is pinned
   to diffusers 0.21 and knows neither ControlNet nor IP-Adapter.

Steps 1-4 compute the same function with other kernels: frames may differ in the last bits
from an untuned run, never in what they show. Step 5 changes frames a little; it is opt-in.
A run is repeatable with any of them: same settings and seed, same bytes (tests/test_speed.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

from diffusers.hooks import HookRegistry, ModelHook

if TYPE_CHECKING:
    from autokose.render.diffusion.settings import DiffusionSettings

# Submodules `compile="blocks"` compiles, by class name: the repeated work of SD UNets and ControlNets.
COMPILED_BLOCKS = ("BasicTransformerBlock", "ResnetBlock2D")
# torch.compile backend; tests use "eager" (dynamo traces, no code generation).
COMPILE_BACKEND = "inductor"
HOOK = "autokose_deep_cache"


def controlnets(pipe) -> list:
    """The pipeline's ControlNet models (a MultiControlNetModel's nets), or []."""
    net = getattr(pipe, "controlnet", None)
    if net is None:
        return []
    return list(getattr(net, "nets", [net]))


# --------------------------------------------------------------------------- at load
def tune(pipe, settings: DiffusionSettings, cache_dir: Path) -> dict:
    """Apply the load-time switches of `settings` to `pipe`; returns what was done (for logs and benchmarks)."""
    done: dict = {}
    if settings.channels_last:
        set_channels_last(pipe)
        done["channels_last"] = True
    if settings.fused_qkv:
        done["fused_qkv_layers"] = fuse_qkv(pipe)
    if settings.compile != "off":
        done["compiled"] = compile_models(pipe, settings.compile, cache_dir=cache_dir)
    return done


def set_channels_last(pipe, on: bool = True) -> None:
    import torch

    fmt = torch.channels_last if on else torch.contiguous_format
    for part in (pipe.unet, *controlnets(pipe), pipe.vae):
        part.to(memory_format=fmt)


def fuse_qkv(pipe) -> int:
    """Fuse the self-attention q/k/v of the UNet and every ControlNet; how many layers were fused."""
    return sum(fuse_self_attention_qkv(m) for m in (pipe.unet, *controlnets(pipe)))


def fuse_self_attention_qkv(model) -> int:
    """Fuse q/k/v of every self-attention of a UNet or ControlNet into one matmul.

    Unlike diffusers' `fuse_qkv_projections()` it leaves cross-attention processors
    (IP-Adapter's) alone: stock self-attention processors become `FusedAttnProcessor2_0`, and
    the consistent processor uses the fused weights itself (`consistency.project_qkv`). A layer
    a LoRA acts on (a peft layer around q, k or v) stays unfused: the fused weight would drop
    the LoRA. Returns how many layers were fused.
    """
    from diffusers.models.attention_processor import AttnProcessor2_0, FusedAttnProcessor2_0

    processors, fused = dict(model.attn_processors), 0
    for name in processors:
        attn = model.get_submodule(name.removesuffix(".processor"))
        if not name.endswith("attn1.processor") or attn.is_cross_attention:
            continue
        if any(hasattr(getattr(attn, p), "base_layer") for p in ("to_q", "to_k", "to_v")):
            continue
        attn.fuse_projections(fuse=True)
        if type(processors[name]) is AttnProcessor2_0:
            processors[name] = FusedAttnProcessor2_0()
        fused += 1
    model.set_attn_processor(processors)
    return fused


def compile_models(pipe, how: str, *, cache_dir: Path | None = None, mode: str | None = None) -> list[str]:
    """`torch.compile` the UNet and ControlNets: their repeated blocks (`blocks`) or whole (`full`).

    Compilation happens on the first call (minutes for a whole SDXL UNet, cold); Inductor's
    on-disk caches make later processes quick. Returns the names of what was compiled.
    """
    if cache_dir is not None:  # the user's own TORCHINDUCTOR_CACHE_DIR wins
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(cache_dir) / "inductor"))
    import torch._inductor.config as inductor

    inductor.conv_1x1_as_mm = True  # the 1x1 convs of SD's resnets as matmuls (the diffusers/PyTorch recipe)
    kwargs = {"backend": COMPILE_BACKEND, **({"mode": mode} if mode else {})}
    compiled = []
    for label, model in (("unet", pipe.unet), *((f"controlnet{i}", m) for i, m in enumerate(controlnets(pipe)))):
        if how == "full":
            model.compile(**kwargs)
            compiled.append(label)
            continue
        for name, sub in model.named_modules():
            if type(sub).__name__ in COMPILED_BLOCKS:
                sub.compile(**kwargs)
                compiled.append(f"{label}.{name}")
    return compiled


# --------------------------------------------------------------------------- around a call
@contextmanager
def during_call(settings: DiffusionSettings, deep_cache: DeepCache | None) -> Iterator[None]:
    """The call-time switches of `settings` around one pipeline call (see the module docstring)."""
    with ExitStack() as stack:
        stack.enter_context(attention(settings.attention))
        if deep_cache is not None:
            stack.enter_context(deep_cache.running(settings.deep_cache_interval))
        yield


def attention(name: str):
    """A context preferring SDPA backend `name` ("auto": PyTorch's own order, nothing changed)."""
    if name == "auto":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    first = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
             "efficient": SDPBackend.EFFICIENT_ATTENTION, "math": SDPBackend.MATH}[name]
    rest = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    order = [first] + [b for b in rest if b != first]
    try:
        return sdpa_kernel(order, set_priority=True)
    except TypeError:  # torch < 2.6 has no priority order: all stay allowed, PyTorch's order decides
        return nullcontext()


class DeepCache:
    """DeepCache over a pipeline's UNet and ControlNets, attached once, active inside `running()`.

    The hooks stay on the blocks for the session (re-registering them would make a compiled
    UNet recompile); outside `running()`, and on whole steps, they pass every call through.
    Which step a call is at comes from the engine's `callback_on_step_end` (`step_end`): a
    step's ControlNets run before its UNet, so both see the same step.
    """

    def __init__(self, pipe):
        self.interval = 1
        # What the hooks read: two bools, so a compiled UNet guards on them alone (two graphs),
        # not on the step number (a recompile every step).
        self.reuse = False  # this step reuses the deep blocks' kept outputs
        self.keep = False  # whole steps keep their outputs (inside `running` with an interval > 1)
        self.hooks: list[_ReuseOutput] = []
        fresh = fresh_levels(pipe.unet)
        for model, is_unet in ((pipe.unet, True), *((m, False) for m in controlnets(pipe))):
            for block in deep_blocks(model, is_unet, fresh):
                hook = _ReuseOutput(self)
                HookRegistry.check_if_exists_or_initialize(block).register_hook(hook, HOOK)
                self.hooks.append(hook)

    @contextmanager
    def running(self, interval: int) -> Iterator[DeepCache]:
        self.interval, self.keep = interval, interval > 1
        self.step_end(-1)
        try:
            yield self
        finally:
            self.interval, self.keep, self.reuse = 1, False, False
            for hook in self.hooks:  # the kept outputs are a whole batch of activations
                hook.kept = None

    def step_end(self, step: int) -> None:
        """The pipeline finished step `step` (0-based): the next call is step + 1."""
        self.reuse = self.keep and (step + 1) % self.interval != 0


class _ReuseOutput(ModelHook):
    """On reused steps, a block returns its output of the last whole step instead of running."""

    _is_stateful = True

    def __init__(self, cache: DeepCache):
        super().__init__()
        self.cache = cache
        self.kept = None

    def new_forward(self, module, *args, **kwargs):
        if self.cache.reuse and self.kept is not None:
            return self.kept
        out = self.fn_ref.original_forward(*args, **kwargs)
        if self.cache.keep:
            self.kept = out
        return out

    def reset_state(self, module):
        self.kept = None
        return module


def fresh_levels(unet) -> int:
    """How many outer levels of the UNet run on every step: down to the first whose up block has
    attention (SD 1.5: 1; SDXL, whose last up block has none: 2). So consistent attention,
    IP-Adapter and regional prompts act on every step in at least one level."""
    ups = list(unet.up_blocks)
    for n in range(1, len(ups)):
        if getattr(ups[-n], "attentions", None):
            return n
    return 1


def deep_blocks(model, is_unet: bool, fresh: int) -> list:
    """The blocks DeepCache skips on reused steps: the down blocks below the `fresh` outer levels,
    the mid block and (a UNet) the up blocks below them. The outer down blocks' skip connections
    and the outer up blocks stay fresh every step; the outermost deep up block hands them its
    kept output."""
    blocks = list(model.down_blocks)[fresh:] + [model.mid_block]
    if is_unet:
        blocks += list(model.up_blocks)[:-fresh]
    return [b for b in blocks if b is not None]
