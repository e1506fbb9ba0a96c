"""How a board is exported: the animatic's clock and look, the timeline's media, the PDF's pages.

Part of a run's settings (`RunConfig.export`), so it is saved in manifest.json like the render
settings: `autokose export BOARD --fps 25` once, and every later export of that board (a
`render` run's export stage included) keeps 25 fps until told otherwise.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from autokose.export.timing import frame_rate, rate_name

PANELS_PER_PAGE = (1, 2, 3, 4, 6, 9)
PAGE_SIZES = {"A4": (297.0, 210.0), "A3": (420.0, 297.0), "letter": (279.4, 215.9), "tabloid": (431.8, 279.4)}


class ExportSettings(BaseModel):
    """Every option of the exports; the defaults make a 24 fps 1080p animatic and an A4 board of six panels a page."""

    model_config = ConfigDict(extra="forbid")

    # animatic (and the clock of timeline, shot list and subtitles)
    fps: str = Field("24", description="Frame rate: 23.976, 24, 25, 29.97, 30, 50, 59.94 or 60.")
    resolution: int = Field(1080, ge=144, le=2160, description="Animatic height in pixels (1080 for 1080p); the width "
                                                              "follows the board's aspect (1920 for 16:9).")
    still: bool = Field(False, description="No camera move: every panel held still.")
    dissolve: float = Field(0.0, ge=0, le=2, description="Seconds of cross-dissolve at each cut, centred on it "
                                                         "(0: straight cuts). Cut points and length stay the same.")
    captions: Literal["burn", "track", "both", "off"] = Field(
        "burn", description="Captions burned into the picture, as a subtitle track of the MP4, both, or none.")
    scene_numbers: bool = Field(True, description="Scene number in the animatic's corner.")
    soundtrack: str | None = Field(None, description="Audio file for the whole animatic (under the panels' own "
                                                     "sounds); a relative path is read from the board folder.")
    narrate: bool = Field(False, description="Read the captions aloud with espeak-ng (offline) when it is installed.")
    voice: str | None = Field(None, description="espeak-ng voice (default: the story's language).")
    gif_width: int = Field(640, ge=64, le=1920, description="Width of animatic.gif.")
    # editorial timeline
    timeline_media: Literal["frames", "animatic"] = Field(
        "frames", description="What the timeline's clips point at: each panel's frame image, or the animatic.")
    edl_style: Literal["avid", "premiere"] = Field(
        "avid", description="CMX 3600 EDL flavour: avid, or premiere (Premiere-safe clip-name comments).")
    # PDF
    pdf_panels: int = Field(6, description="Panels per PDF page: 1, 2, 3, 4, 6 or 9.")
    page: Literal["A4", "A3", "letter", "tabloid"] = "A4"
    orientation: Literal["landscape", "portrait"] = "landscape"

    @field_validator("fps", mode="before")
    @classmethod
    def _known_rate(cls, v) -> str:
        return rate_name(frame_rate(v))

    @field_validator("soundtrack", "voice")
    @classmethod
    def _empty_is_none(cls, v: str | None) -> str | None:
        """`--soundtrack ""` clears a saved soundtrack (None would mean "not given": keep the saved one)."""
        return v if v and v.strip() else None

    @field_validator("pdf_panels")
    @classmethod
    def _known_layout(cls, v: int) -> int:
        if v not in PANELS_PER_PAGE:
            raise ValueError(f"{v} panels a page is not a layout (layouts: {', '.join(map(str, PANELS_PER_PAGE))})")
        return v

    @property
    def rate(self):
        """The frame rate as an exact Fraction (timing.FRAME_RATES)."""
        return frame_rate(self.fps)
