"""Stage: per scene, a layout of who stands where, at what scale, in what pose.

Coordinates are normalised to the frame (x right, y down, 0..1) so one layout serves every
renderer size; `Layout.keypoints_px` gives pixels for a given canvas.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from autokose.story import Angle, Shot, Story, TimeOfDay


class Figure(BaseModel):
    """One character placed in a frame."""

    id: str
    kind: str = "human"
    x: float = Field(description="Centre of the figure, fraction of frame width.")
    ground: float = Field(description="Where the feet touch the ground, fraction of frame height.")
    height: float = Field(description="Standing height as a fraction of frame height (>1 when cropped).")
    facing: int = Field(1, description="1 faces right, -1 faces left.")
    pose: str = "stand"
    emotion: str = "neutral"
    holds: str | None = None
    keypoints: list[tuple[float, float, float]] = Field(
        default_factory=list, description="18 OpenPose body keypoints (x, y, confidence), normalised; conf 0 = absent."
    )
    box: tuple[float, float, float, float] = Field(
        (0.0, 0.0, 0.0, 0.0), description="Figure bounding box x0, y0, x1, y1, normalised."
    )


class PropPlacement(BaseModel):
    name: str
    x: float
    y: float
    size: float = Field(description="Fraction of frame height.")


class Layout(BaseModel):
    index: int
    shot: Shot
    angle: Angle = Angle.eye_level
    setting: str
    time: TimeOfDay = TimeOfDay.day
    horizon: float = Field(0.6, description="Horizon line, fraction of frame height.")
    figures: list[Figure] = Field(default_factory=list)
    props: list[PropPlacement] = Field(default_factory=list)

    def keypoints_px(self, width: int, height: int) -> list[list[tuple[float, float, float]]]:
        return [[(x * width, y * height, c) for x, y, c in f.keypoints] for f in self.figures]


def stage_story(story: Story) -> list[Layout]:
    """Lay out every scene of the story."""
    return [layout_scene(story, scene) for scene in story.scenes]


def layout_scene(story: Story, scene) -> Layout:
    raise NotImplementedError("staging: to be built")
