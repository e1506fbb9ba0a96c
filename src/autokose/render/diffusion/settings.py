"""Diffusion settings: `RenderSettings.diffusion`, typed, with its defaults and JSON Schema.

This module imports no torch (previz runs load it through `RenderSettings`). Only the options a
user gave are stored in the manifest (`RenderSettings` dumps this model with `exclude_unset`);
defaults live here, so a rerun with the same autokose version gets the same pixels, and a
default changed in code reaches old boards that never chose it.

Frame size. `RenderSettings.width/height` are honoured exactly; each must be a multiple of 8
(the VAE's factor), else the run fails before anything is written, rather than drawing a
frame of another size than the manifest records. Its defaults (960x540, the previz size) are
a poor fit for diffusion models, so when they are left as they are a model-native 16:9 size
is used instead: 768x432 for SD 1.5 (about the 512x512 area it was trained on) and 1344x768
for SDXL (its 16:9 training bucket).
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from autokose.errors import InputError, format_validation_error

SCHEDULERS = ("dpmpp_2m_karras", "euler_a", "ddim", "lcm", "tcd")
COMPILE = ("off", "blocks", "full")
ATTENTION = ("auto", "flash", "cudnn", "efficient", "math")
# --fast: the UNet runs whole every FAST_DEEP_CACHE-th step, and only its outer blocks in between.
FAST_DEEP_CACHE = 3
# Speed settings that compute the same frames with other kernels (the last bits may differ, never
# what a frame shows): frames drawn without them still hold when a resume turns them on.
PICTURE_NEUTRAL = frozenset({"compile", "channels_last", "fused_qkv", "attention"})
# The UNet blocks consistent self-attention can share in, by name → the prefix of their layers.
CONSISTENCY_BLOCKS = {"down": "down_blocks.", "mid": "mid_block.", "up": "up_blocks."}
NATIVE_SIZE = {"sd15": (768, 432), "sdxl": (1344, 768)}
# RenderSettings' default width x height (the previz size); left as it is, diffusion draws at NATIVE_SIZE.
DEFAULT_SIZE = (960, 540)
MIN_DIFFUSION_SIDE = 64
NEEDS_MODEL = "the diffusion renderer needs --model (a HF repo id, a diffusers folder or a .safetensors file)"


class DiffusionSettings(BaseModel):
    """The `--model ...` options of a diffusion run (field names are the manifest's keys)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(min_length=1, description="HF repo id, diffusers folder or single .safetensors file.")
    # `model_config` is the CLI's name (and old manifests'); pydantic reserves it for the class config.
    model_config_dir: str | None = Field(None, validation_alias=AliasChoices("model_config_dir", "model_config"),
                                         description="Diffusers config folder for a single-file model.")
    sdxl: bool | None = Field(None, description="Force the architecture (default: detected).")
    vae: str | None = Field(None, description="VAE to use instead of the model's own.")
    loras: list[str] = Field(default_factory=list, description="LoRA files as path[:weight].")
    ip_adapter: str | None = Field(None, description="IP-Adapter (h94 weight name, file or folder) for references.")
    ip_adapter_scale: float = Field(0.6, ge=0.0, le=2.0, description="IP-Adapter strength.")
    controlnet: str | None = Field(None, description="OpenPose ControlNet driven by the staged poses.")
    controlnet_scale: float = Field(0.8, ge=0.0, le=2.0, description="OpenPose ControlNet conditioning scale.")
    lineart: str | None = Field(None, description="Lineart ControlNet driven by the previz frame's ink lines.")
    lineart_scale: float = Field(0.6, ge=0.0, le=2.0, description="Lineart ControlNet conditioning scale.")
    consistency: float = Field(0.0, ge=0.0, le=1.0, description="Consistent self-attention rate (0 = off).")
    consistency_masked: bool = Field(True, description="Frames share self-attention tokens only inside the same "
                                     "character's box (when figures are staged); off: every token is shared.")
    consistency_steps: tuple[float, float] = Field((0.0, 1.0), description="Fraction of the denoising steps "
                                                   "(start, end) in which frames share self-attention.")
    consistency_blocks: list[str] = Field(default_factory=lambda: ["up"], description="UNet blocks whose "
                                          "self-attention is shared: down, mid, up or a prefix such as up_blocks.1.")
    regional: bool = Field(True, description="Each character's words, LoRA and trigger act inside its figure's box.")
    regional_base: float = Field(0.25, ge=0.0, le=1.0,
                                 description="Share of the shared prompt inside a character's box (regional).")
    scheduler: Literal["dpmpp_2m_karras", "euler_a", "ddim", "lcm", "tcd"] = Field(
        "dpmpp_2m_karras", description="Sampler (lcm and tcd: with an LCM or TCD LoRA/model, 4-8 steps, low cfg).")
    steps: int = Field(25, ge=1, le=200, description="Denoising steps.")
    cfg: float = Field(7.0, ge=0.0, le=30.0, description="Classifier-free guidance scale.")
    negative: str = Field("", description="Terms added to every frame's negative prompt.")
    device: str | None = Field(None, description="Torch device (default: cuda, mps, else cpu).")
    dtype: str | None = Field(None, description="Weight dtype (default: float16 on GPU, float32 on CPU).")
    low_vram: bool = Field(False, description="Offload parts to the CPU and decode in tiles.")
    batch_size: int | None = Field(None, ge=1, le=64, description="Frames per denoising batch (default: 8).")
    cache_dir: str | None = Field(None, description="Reference-embedding cache (default ~/.cache/autokose).")
    # Speed (speed.py, docs/BENCHMARKS.md). Only `fast` and `deep_cache` change what a frame shows.
    fast: bool = Field(False, description="Trade a little detail for speed: DeepCache every "
                       f"{FAST_DEEP_CACHE} steps unless deep_cache is given.")
    deep_cache: int | None = Field(None, ge=1, le=10, description="Run the whole UNet (and ControlNets) every N-th "
                                   "step; in between only their outermost blocks, on the deeper features kept from "
                                   f"the last whole step (DeepCache). 1 = off (default; {FAST_DEEP_CACHE} with fast).")
    compile: Literal["off", "blocks", "full"] = Field("off", description="torch.compile the UNet and ControlNets: "
                                                      "blocks = their repeated transformer and resnet blocks "
                                                      "(quicker to compile), full = whole models.")
    channels_last: bool = Field(False, description="UNet, ControlNets and VAE in channels_last memory format.")
    fused_qkv: bool = Field(False, description="Self-attention query/key/value projections as one matmul "
                            "(layers a character's own LoRA acts on stay unfused).")
    attention: Literal["auto", "flash", "cudnn", "efficient", "math"] = Field(
        "auto", description="Scaled-dot-product attention kernel tried first (auto: PyTorch's choice).")

    @field_validator("loras", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("consistency_steps", "consistency_blocks", mode="before")
    @classmethod
    def _comma_separated(cls, v):
        """The CLI's "0,0.6" and "down,up" forms."""
        return [part.strip() for part in v.split(",")] if isinstance(v, str) else v

    @field_validator("consistency_steps")
    @classmethod
    def _step_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        start, end = v
        if not 0.0 <= start < end <= 1.0:
            raise ValueError(f"{start:g},{end:g} needs 0 ≤ start < end ≤ 1 (fractions of the denoising steps)")
        return v

    @field_validator("consistency_blocks")
    @classmethod
    def _blocks(cls, v: list[str]) -> list[str]:
        """The vocabulary only; whether the model has such layers is checked when it is loaded."""
        if not v:
            raise ValueError("name at least one block: down, mid, up or a prefix such as up_blocks.1")
        for block in v:
            if block not in CONSISTENCY_BLOCKS and not block.startswith((*CONSISTENCY_BLOCKS.values(), "mid_block")):
                raise ValueError(f"{block!r} is no UNet block (down, mid, up or a prefix such as up_blocks.1)")
        return v

    @classmethod
    def from_render(cls, diffusion: DiffusionSettings | dict | None) -> DiffusionSettings:
        """The settings of a diffusion render; InputError (one line) when absent or invalid."""
        if isinstance(diffusion, DiffusionSettings):
            return diffusion
        if not diffusion or not diffusion.get("model"):
            raise InputError(NEEDS_MODEL)
        try:
            return cls.model_validate(diffusion)
        except ValidationError as e:
            raise InputError(f"diffusion settings: {format_validation_error(e)}") from None

    @property
    def deep_cache_interval(self) -> int:
        """Steps between whole UNet passes (1: every step is whole)."""
        if self.deep_cache is not None:
            return self.deep_cache
        return FAST_DEEP_CACHE if self.fast else 1

    def picture(self, *, given: bool = False) -> dict:
        """The settings that decide the frames (what a resume compares with what drew the saved ones),
        less PICTURE_NEUTRAL. `given`: only the options set, as the manifest holds them (the frame
        keys); else every field, with `fast`/`deep_cache` only when set, so the video recipes of runs
        from before they existed still match."""
        if given:
            data = self.model_dump(mode="json", exclude_unset=True)
        else:
            data = self.model_dump(mode="json", exclude={f for f in ("fast", "deep_cache")
                                                          if f not in self.model_fields_set})
        return {k: v for k, v in data.items() if k not in PICTURE_NEUTRAL}

    def given(self) -> dict:
        """The options set explicitly (what the manifest stores), under their field names."""
        return self.model_dump(exclude_unset=True)


def check_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) if a diffusion model can draw exactly that size, else InputError."""
    for option, value in (("width", width), ("height", height)):
        if value % 8:
            lower = value - value % 8
            raise InputError(f"--{option} {value} must be a multiple of 8 for diffusion "
                             f"(e.g. {lower} or {lower + 8}; the frame is drawn at exactly this size)")
    if width < MIN_DIFFUSION_SIDE or height < MIN_DIFFUSION_SIDE:
        raise InputError(f"frame size {width}x{height} is too small for a diffusion model (at least 64x64)")
    return width, height


def frame_size(width: int, height: int, arch: str) -> tuple[int, int]:
    """The generation size for a board of `width` x `height` (see the module docstring)."""
    if (width, height) == DEFAULT_SIZE:
        return NATIVE_SIZE[arch]
    return check_size(width, height)
