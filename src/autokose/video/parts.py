"""A long clip in parts that workers draw in parallel, in any order: the plan and the join.

`stylize` draws frame t from stylised t-1, so one clip is one sequential job. To spread a long
clip over machines it is cut into parts by span position (0..n-1): part k owns [lo, hi). A part
cannot continue from the frames of the part before (they are not drawn yet, or are being drawn
elsewhere), so it starts like a span starts: no carried frame, fresh noise from the seed at its
first position. Two things keep the seam from showing:

- **one shared keyframe**: position 0, drawn once before any part, is the keyframe-attention
  anchor of every frame of every part, so all parts copy their details from the same picture;
- **a warm-up and a cross-fade**: part k > 0 first draws `warmup` positions before lo (its
  flow-guided init and fusion settle into the look over them), and over that window the
  finished frame fades from part k-1's own frame to part k's warm-up frame, the weight rising
  1/(w+1), 2/(w+1), ... w/(w+1), so at lo part k takes over from what the viewer just saw. One
  jump of size d between two independently drawn frames becomes w+1 steps of d/(w+1): the warp
  error (a squared difference) of the worst pair falls by about (w+1)².

A warm-up never reaches back to position 0 (the keyframe is drawn once, by `stylize.prepare`),
and `overlap` ≤ `part_frames`, so the join windows of different parts never meet. Everything
here is a function of (n, part_frames, overlap) alone: which worker draws which part, in what
order, changes no pixel. The steps that draw a clip this way are `stylize.prepare`, `draw_part`
and `finish` (and `stylize.stylize`, which runs them in one process).

Public API
    Part(number, lo, hi, warmup)         .first: the first position the part draws (lo - warmup)
    plan(n, part_frames, overlap) -> list[Part]     part_frames None: one part, no warm-up
    fades(parts) -> dict[int, tuple[Part, float]]   position → (the part fading in there, its weight)
    crossfade(own, warm, weight) -> frame           the finished frame of a join window
    seam_pairs(parts) -> list[range]     per seam, the frame pairs (t-1, t) its join spans, by t
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Part", "crossfade", "fades", "plan", "seam_pairs"]


@dataclass(frozen=True)
class Part:
    """Positions [lo, hi) of the span, drawn after `warmup` positions before lo (saved apart).

    Frozen and plain (ints only), so it travels to a worker as it is (pickle, or `Part(**json)`).
    """

    number: int
    lo: int
    hi: int
    warmup: int = 0

    @property
    def first(self) -> int:
        """The first position the part draws: its warm-up's start."""
        return self.lo - self.warmup


def plan(n: int, part_frames: int | None, overlap: int = 0) -> list[Part]:
    """The parts of a span of `n` frames: `part_frames` each (the last one what is left).

    Part k > 0 warms up over min(overlap, lo - 1) positions (never over the keyframe at 0).
    `part_frames` None: one part over the whole span, the plain single pass.
    """
    if n < 1:
        raise ValueError(f"plan(): a span of {n} frames")
    if part_frames is None:
        return [Part(0, 0, n, 0)]
    if part_frames < 1 or not 0 <= overlap <= part_frames:
        raise ValueError(f"plan(): parts of {part_frames} frames with an overlap of {overlap}")
    return [Part(k, lo, min(n, lo + part_frames), min(overlap, lo - 1) if lo else 0)
            for k, lo in enumerate(range(0, n, part_frames))]


def fades(parts: list[Part]) -> dict[int, tuple[Part, float]]:
    """Each position of a join window → (the part whose warm-up frame fades in there, its weight).

    The weight rises over the window, (j + 1) / (warmup + 1) at its j-th position, so neither
    end of the window repeats a frame: before it the viewer sees the part before alone, at lo
    the new part alone.
    """
    return {part.first + j: (part, (j + 1) / (part.warmup + 1)) for part in parts for j in range(part.warmup)}


def crossfade(own: np.ndarray, warm: np.ndarray, weight: float) -> np.ndarray:
    """(1 - weight) · own + weight · warm, rounded back to uint8 frames."""
    if own.shape != warm.shape:
        raise ValueError(f"crossfade(): frames differ in size: {own.shape} vs {warm.shape}")
    a = own.astype(np.float32)
    return np.clip(np.rint(a + np.float32(weight) * (warm.astype(np.float32) - a)), 0, 255).astype(np.uint8)


def seam_pairs(parts: list[Part]) -> list[range]:
    """Per part after the first, the pairs of consecutive frames its join changes, named by their
    second position t (pair (t-1, t)): from the pair entering the window to the one leaving it at lo.
    What a seam metric looks at: with no overlap, the one pair (lo-1, lo)."""
    return [range(max(1, part.first), part.lo + 1) for part in parts[1:]]
