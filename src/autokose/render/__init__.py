"""Render: turn each scene's layout into a frame.

Every renderer takes the whole board at once (the diffusion renderer couples frames through
consistent self-attention and batches them) and returns only the frames asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, Protocol

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

from autokose.render.diffusion.settings import DEFAULT_SIZE, DiffusionSettings

if TYPE_CHECKING:  # annotations only: the diffusion engine below this package needs no Story
    from autokose.cast import IdentityAssets
    from autokose.staging import Layout
    from autokose.story import Story


MIN_SIDE, MAX_SIDE = 64, 4096  # frame size bounds, in pixels


class RenderSettings(BaseModel):
    """Everything that decides the pixels; stored in manifest.json for exact reruns."""

    model_config = ConfigDict(extra="forbid")

    renderer: Literal["previz", "diffusion"] = "previz"
    width: int = Field(DEFAULT_SIZE[0], ge=MIN_SIDE, le=MAX_SIDE, description="Frame width in pixels.")
    height: int = Field(DEFAULT_SIZE[1], ge=MIN_SIDE, le=MAX_SIDE, description="Frame height in pixels.")
    diffusion: DiffusionSettings | None = Field(None, description="The diffusion renderer's options (--model ...).")

    @field_validator("diffusion", mode="before")
    @classmethod
    def _none_when_empty(cls, value):
        """Manifests store a previz run's diffusion options as `{}`."""
        return None if value == {} else value

    @field_serializer("diffusion")
    def _given_only(self, value: DiffusionSettings | None) -> dict:
        """Only the options the user gave: the defaults stay defined in code (see DiffusionSettings)."""
        return {} if value is None else value.given()


@dataclass
class Frame:
    """One rendered frame and what is needed to reproduce and explain it."""

    index: int
    image: Image.Image
    seed: int
    svg: str | None = None
    meta: dict = field(default_factory=dict)


class Renderer(Protocol):
    name: str

    def render(
        self, story: Story, layouts: list[Layout], only: list[int], seeds: dict[int, int] | None = None
    ) -> Iterator[Frame]:
        """Yield frames for the scenes whose index is in `only`, as each is ready (any order).

        `seeds` overrides a scene's seed (the quality loop draws candidates this way).
        """
        ...


def check_renderer(settings: RenderSettings, assets: dict[str, IdentityAssets] | None = None) -> None:
    """Raise InputError now if the renderer cannot use its models or the identity `assets`.

    The pipeline calls it before writing anything: a bad model, LoRA, IP-Adapter or reference
    image fails while the board folder is still as it was. Previz needs none.
    """
    if settings.renderer == "diffusion":
        from autokose.render.diffusion import DiffusionRenderer

        DiffusionRenderer(settings, assets=assets).check()


def get_renderer(settings: RenderSettings, assets: dict[str, IdentityAssets] | None = None,
                 progress=None, cancel=None) -> Renderer:
    """The renderer `settings` name; `progress(stage, done, total)` hears about long inner work,
    and `cancel()` may stop it within a frame (the diffusion renderer asks after every step)."""
    if settings.renderer == "previz":
        from autokose.render.previz import PrevizRenderer

        return PrevizRenderer(settings)
    from autokose.render.diffusion import DiffusionRenderer

    return DiffusionRenderer(settings, assets=assets, progress=progress, cancel=cancel)
