"""Regions: where each character is in a frame, as boxes and masks at a pixel size.

Staging places every figure with a normalised box (x0, y0, x1, y1, in 0..1 of the frame).
Everything that acts on "this character's part of the frame" reads it from here: the
IP-Adapter masks of the diffusion renderer (a character's reference conditions its own
figure), the scorer's figure crops (CLIP-I compares a character's figure, not the frame)
and, later, regional prompts. One module, so they all agree on which box is whose and
what a missing box means. Pure data in, data out: numpy and PIL only (no torch), since
scoring uses it too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from autokose.staging import Layout

Box = tuple[float, float, float, float]


def has_box(box: Box | None) -> bool:
    """True for a box with an area (staging leaves (0, 0, 0, 0) for a figure it did not place)."""
    return bool(box) and box[2] > box[0] and box[3] > box[1]


def figure_boxes(layout: Layout | None) -> dict[str, Box]:
    """Character id → its figure's normalised box, for every figure of `layout` (none without one)."""
    return {f.id: tuple(f.box) for f in layout.figures} if layout is not None else {}


def box_mask(box: Box | None, width: int, height: int) -> np.ndarray:
    """A float32 [height, width] mask: 1 inside the normalised box, 0 elsewhere.

    Without a box (or an empty one) the whole frame is 1: a character that was not placed
    still gets its reference, everywhere, rather than nowhere. The box is widened to at
    least one pixel, so a thin figure never drops out at a small size.
    """
    mask = np.zeros((height, width), dtype=np.float32)
    if not has_box(box):
        return mask + 1
    x0, y0 = max(0, int(box[0] * width)), max(0, int(box[1] * height))
    x1, y1 = min(width, max(x0 + 1, round(box[2] * width))), min(height, max(y0 + 1, round(box[3] * height)))
    mask[y0:y1, x0:x1] = 1
    return mask


def region_masks(layout: Layout | None, ids: list[str], width: int, height: int) -> dict[str, np.ndarray]:
    """`box_mask` of each of `ids` in `layout` (the whole frame for an id it does not place)."""
    boxes = figure_boxes(layout)
    return {cid: box_mask(boxes.get(cid), width, height) for cid in ids}


def token_grid(latent: tuple[int, int], tokens: int) -> tuple[int, int] | None:
    """The h x w grid of a UNet layer with `tokens` positions, for a latent of `latent` (h, w).

    Diffusers halves the latent with ceil at each down block (27 -> 14 -> 7), so the grid is
    found by halving until the count fits; None when `tokens` is no grid of it (e.g. tokens
    lent by consistent self-attention). Region masks and subject labels are resized to it.
    """
    h, w = latent
    while h * w > tokens and (h, w) != (1, 1):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
    return (h, w) if h * w == tokens else None


def crop_box(image, box: Box, margin: float = 0.05):
    """The part of a PIL `image` inside a normalised box, enlarged by `margin` of its size; None if
    under 2 pixels a side (nothing a model could measure)."""
    width, height = image.size
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    left, top = max(0, int((x0 - mx) * width)), max(0, int((y0 - my) * height))
    right, bottom = min(width, int(math.ceil((x1 + mx) * width))), min(height, int(math.ceil((y1 + my) * height)))
    if right - left < 2 or bottom - top < 2:
        return None
    return image.crop((left, top, right, bottom))
