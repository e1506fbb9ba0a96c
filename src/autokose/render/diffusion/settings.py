"""Diffusion renderer settings: the `RenderSettings.diffusion` dict, validated, with defaults.

Only the options a user gave are stored in the manifest; defaults live here, so a rerun with
the same autokose version gets the same pixels.

Frame size. `RenderSettings.width/height` are honoured exactly; each must be a multiple of 8
(the VAE's factor), else the run fails before anything is written, rather than drawing a
frame of another size than the manifest records. Its defaults (960x540, the previz size) are
a poor fit for diffusion models, so when they are left as they are a model-native 16:9 size
is used instead: 768x432 for SD 1.5 (about the 512x512 area it was trained on) and 1344x768
for SDXL (its 16:9 training bucket).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autokose.errors import InputError
from autokose.story import format_validation_error

SCHEDULERS = ("dpmpp_2m_karras", "euler_a", "ddim", "lcm")
NATIVE_SIZE = {"sd15": (768, 432), "sdxl": (1344, 768)}


class DiffusionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field(description="HF repo id, diffusers folder or single .safetensors file.")
    model_config_dir: str | None = Field(None, description="Diffusers config folder for a single-file model.")
    sdxl: bool | None = Field(None, description="Force the architecture (default: detected).")
    vae: str | None = None
    loras: list[str] = Field(default_factory=list, description="LoRA files as path[:weight].")
    ip_adapter: str | None = None
    ip_adapter_scale: float = Field(0.6, ge=0.0, le=2.0)
    controlnet: str | None = None
    controlnet_scale: float = Field(0.8, ge=0.0, le=2.0)
    lineart: str | None = Field(None, description="Lineart ControlNet driven by the previz frame's ink lines.")
    lineart_scale: float = Field(0.6, ge=0.0, le=2.0)
    consistency: float = Field(0.0, ge=0.0, le=1.0, description="Consistent self-attention rate (0 = off).")
    scheduler: Literal["dpmpp_2m_karras", "euler_a", "ddim", "lcm"] = "dpmpp_2m_karras"
    steps: int = Field(25, ge=1, le=200)
    cfg: float = Field(7.0, ge=0.0, le=30.0)
    negative: str = Field("", description="Terms added to every frame's negative prompt.")
    device: str | None = None
    dtype: str | None = None
    low_vram: bool = False
    batch_size: int | None = Field(None, ge=1, le=64, description="Frames per denoising batch (default: the whole board).")
    cache_dir: str | None = Field(None, description="Reference-embedding cache (default ~/.cache/autokose).")

    @field_validator("loras", mode="before")
    @classmethod
    def _one_or_many(cls, v):
        return [v] if isinstance(v, str) else v

    @classmethod
    def from_render(cls, diffusion: dict) -> DiffusionSettings:
        data = dict(diffusion or {})
        if "model_config" in data:  # the CLI's name for it
            data["model_config_dir"] = data.pop("model_config")
        if not data.get("model"):
            raise InputError("the diffusion renderer needs --model (a HF repo id, a diffusers folder or a .safetensors file)")
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise InputError(f"diffusion settings: {format_validation_error(e)}") from None


def frame_size(width: int, height: int, arch: str) -> tuple[int, int]:
    """The generation size for a board of `width` x `height` (see the module docstring)."""
    from autokose.render import RenderSettings

    defaults = (RenderSettings.model_fields["width"].default, RenderSettings.model_fields["height"].default)
    if (width, height) == defaults:
        return NATIVE_SIZE[arch]
    for option, value in (("width", width), ("height", height)):
        if value % 8:
            lower = value - value % 8
            raise InputError(f"--{option} {value} must be a multiple of 8 for diffusion "
                             f"(e.g. {lower} or {lower + 8}; the frame is drawn at exactly this size)")
    if width < 64 or height < 64:
        raise InputError(f"frame size {width}x{height} is too small for a diffusion model (at least 64x64)")
    return width, height
