"""Render: turn each scene's layout into a frame.

Every renderer takes the whole board at once (the diffusion renderer couples frames through
consistent self-attention and batches them) and returns only the frames asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from collections.abc import Iterator
from typing import Literal, Protocol

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from autokose.staging import Layout
from autokose.story import Story


MIN_SIDE, MAX_SIDE = 64, 4096  # frame size bounds, in pixels


class RenderSettings(BaseModel):
    """Everything that decides the pixels; stored in manifest.json for exact reruns."""

    model_config = ConfigDict(extra="forbid")

    renderer: Literal["previz", "diffusion"] = "previz"
    width: int = Field(960, ge=MIN_SIDE, le=MAX_SIDE)
    height: int = Field(540, ge=MIN_SIDE, le=MAX_SIDE)
    # Diffusion options live in their own model (autokose.render.diffusion); kept as a dict
    # here so previz runs never import torch.
    diffusion: dict = Field(default_factory=dict)


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


def check_renderer(settings: RenderSettings, assets: dict | None = None) -> None:
    """Raise InputError now if the renderer cannot use its models or the identity `assets`.

    The pipeline calls it before writing anything: a bad model, LoRA, IP-Adapter or reference
    image fails while the board folder is still as it was. Previz needs none.
    """
    if settings.renderer == "diffusion":
        from autokose.render.diffusion import DiffusionRenderer

        DiffusionRenderer(settings, assets=assets).check()


def get_renderer(settings: RenderSettings, assets: dict | None = None, progress=None) -> Renderer:
    """The renderer `settings` name; `progress(stage, done, total)` hears about long inner work."""
    if settings.renderer == "previz":
        from autokose.render.previz import PrevizRenderer

        return PrevizRenderer(settings)
    from autokose.render.diffusion import DiffusionRenderer

    return DiffusionRenderer(settings, assets=assets, progress=progress)
