"""Temporal consistency for footage stylisation: optical flow, warping, occlusion, warped noise, deflicker.

A diffusion model stylises each frame on its own, so the same patch of footage is drawn a little
differently in every frame and the video flickers. The pieces here tie frame t to frame t-1 the
way Stable WarpFusion / Rerender-A-Video do, without any weights:

- `flow(a, b)`: dense optical flow of the *input* footage (OpenCV DIS on grey frames). The
  stylised frames are never used for flow: they are what flickers.
- `warp(image, flow)`: backward warping. With `f = flow(a, b)`, `warp(b, f)` is `b` pulled onto
  `a`'s pixel grid: ``warp(b, f)[y, x] = b[y + f[y, x, 1], x + f[y, x, 0]]`` (bilinear), so
  `warp(b, flow(a, b)) ≈ a` wherever `a`'s pixels are still visible in `b`.
- `occlusion(flow_fw, flow_bw)`: where that correspondence fails (the pixel is hidden in, or
  leaves, the other frame), by the forward–backward check of Sundaram et al. (2010) as used by
  Ruder et al. (2016) and Lai et al. (2018).
- `flow_guided_init`: the img2img init of frame t: stylised frame t-1 warped onto frame t, the
  input frame where that is occluded. Denoising it at a moderate strength keeps what was already
  drawn and redraws only what moved or appeared.
- `warped_noise` / `noise_for_clip`: the initial latent noise of frame t is frame t-1's noise
  moved along the flow, so the same surface point gets the same noise in every frame ("noise
  from the frames"); fresh noise fills what the flow cannot carry.
- `deflicker`: a light post-pass against the global brightness / colour wobble that remains.

Conventions: frames are HxWx3 uint8 RGB numpy arrays; flows are float32 HxWx2 (dx, dy) in
pixels of the frame they were computed on, defined on the grid of their *first* frame; masks
are bool HxW, True = occluded (no trustworthy correspondence).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import cv2
import numpy as np

__all__ = [
    "Motion", "colour_stats", "deflicker", "deflicker_frame", "flow", "flow_guided_init", "frame_seed", "motion_pair",
    "noise_for_clip", "occlusion", "resize_flow", "resize_mask", "warp", "warped_noise",
]

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}


# -- flow and warping ------------------------------------------------------------------------
def flow(a: np.ndarray, b: np.ndarray, *, preset: str = "medium") -> np.ndarray:
    """Optical flow from frame `a` to frame `b`: float32 HxWx2, `a[y, x]` ≈ `b[y + dy, x + dx]`.

    OpenCV's DIS (Kroeger et al., 2016) on grey frames: no weights, no GPU, and good enough for
    warping at the sizes SD renders at. "medium" is OpenCV's most accurate DIS preset (there is no
    "fine"): about 0.1 s per 640x360 pair on a busy 2-core machine; "fast" is ~4x quicker and a
    little less exact at motion edges.
    """
    _check_frame(a, "a")
    _check_frame(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"flow(): frames differ in size: {a.shape} vs {b.shape}")
    if preset not in PRESETS:
        raise ValueError(f"flow(): preset {preset!r}: expected one of {', '.join(PRESETS)}")
    dis = cv2.DISOpticalFlow_create(PRESETS[preset])
    grey_a = cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_RGB2GRAY)
    grey_b = cv2.cvtColor(np.ascontiguousarray(b), cv2.COLOR_RGB2GRAY)
    return dis.calc(grey_a, grey_b, None).astype(np.float32, copy=False)


def warp(image: np.ndarray, flow: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """Backward-warp `image` by `flow`: ``out[y, x] = image[y + flow[y, x, 1], x + flow[y, x, 0]]``.

    The flow lives on the *output's* grid: to move frame b onto frame a, pass `flow(a, b)`.
    Bilinear (or nearest) sampling, edge pixels repeated outside the image (those samples are
    flagged by `occlusion` anyway). Works for any dtype cv2.remap takes (uint8 frames, float
    flows and noise), any channel count; the output has the image's dtype and shape.
    """
    _check_flow(flow)
    if image.shape[:2] != flow.shape[:2]:
        raise ValueError(f"warp(): image {image.shape[:2]} and flow {flow.shape[:2]} differ in size")
    h, w = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    map_x = grid_x + flow[..., 0]
    map_y = grid_y + flow[..., 1]
    out = cv2.remap(np.ascontiguousarray(image), map_x, map_y,
                    cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(image.shape)


def occlusion(flow_fw: np.ndarray, flow_bw: np.ndarray, *, motion_boundaries: bool = True) -> np.ndarray:
    """Pixels of frame a without a trustworthy match in frame b: bool HxW on a's grid, True = occluded.

    `flow_fw` = flow(a, b), `flow_bw` = flow(b, a). Following a pixel to b and back should end
    where it started; where it does not (it is hidden in b, or the flow is wrong there) the
    correspondence is dropped (Sundaram et al. 2010; Ruder et al. 2016, eq. 5):

        |w_f + w_b(x + w_f)|² > 0.01 (|w_f|² + |w_b(x + w_f)|²) + 0.5

    Pixels whose match falls outside b (they leave the frame) are occluded too. With
    `motion_boundaries` (on by default, as in Ruder's and Lai's code), the second test also marks
    pixels where the flow changes sharply, |∇u|² + |∇v|² > 0.01 |w_f|² + 0.002: along the edge
    of a moving object the flow is smeared and a warped pixel would bleed across the edge. On
    the test clip (640x360) it raises the occluded share from 8 % to 12 % of the pixels.
    """
    _check_flow(flow_fw, "flow_fw")
    _check_flow(flow_bw, "flow_bw")
    if flow_fw.shape != flow_bw.shape:
        raise ValueError(f"occlusion(): flows differ in size: {flow_fw.shape} vs {flow_bw.shape}")
    back = warp(flow_bw, flow_fw)  # w_b(x + w_f(x)), on a's grid
    mismatch = np.sum((flow_fw + back) ** 2, axis=-1)
    scale = np.sum(flow_fw ** 2, axis=-1) + np.sum(back ** 2, axis=-1)
    occluded = mismatch > 0.01 * scale + 0.5
    h, w = flow_fw.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    tx, ty = grid_x + flow_fw[..., 0], grid_y + flow_fw[..., 1]
    occluded |= (tx < -0.5) | (tx > w - 0.5) | (ty < -0.5) | (ty > h - 0.5)
    if motion_boundaries:
        gradient = np.zeros((h, w), np.float32)
        for c in range(2):
            gy, gx = np.gradient(flow_fw[..., c])
            gradient += gx ** 2 + gy ** 2
        occluded |= gradient > 0.01 * np.sum(flow_fw ** 2, axis=-1) + 0.002
    return occluded


class Motion(NamedTuple):
    """How frame a maps onto frame b: `flow` = flow(a, b) on a's grid (float32 HxWx2) and
    `occluded` = its occlusion mask (bool HxW, True where a's pixel has no match in b)."""

    flow: np.ndarray
    occluded: np.ndarray


def motion_pair(a: np.ndarray, b: np.ndarray, *, preset: str = "medium",
                motion_boundaries: bool = True) -> tuple[Motion, Motion]:
    """(a → b on a's grid, b → a on b's grid) from one forward and one backward flow.

    Both directions need both flows, so one pair of DIS runs per frame pair serves the warp
    error (forward: output t+1 pulled onto t) and the init and noise of the next frame
    (backward: frame t pulled onto t+1).
    """
    forward = flow(a, b, preset=preset)
    backward = flow(b, a, preset=preset)
    return (Motion(forward, occlusion(forward, backward, motion_boundaries=motion_boundaries)),
            Motion(backward, occlusion(backward, forward, motion_boundaries=motion_boundaries)))


def resize_flow(flow: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`flow` resampled to `size` = (height, width), its vectors rescaled to the new pixels.

    Area averaging when shrinking (a latent cell moves as the mean of its 8x8 pixels), bilinear
    when growing.
    """
    _check_flow(flow)
    h, w = flow.shape[:2]
    new_h, new_w = (int(s) for s in size)
    if (new_h, new_w) == (h, w):
        return flow.astype(np.float32, copy=True)
    shrink = new_h * new_w < h * w
    out = cv2.resize(flow, (new_w, new_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    out[..., 0] *= new_w / w
    out[..., 1] *= new_h / h
    return out.astype(np.float32, copy=False)


def resize_mask(mask: np.ndarray, size: tuple[int, int], *, threshold: float = 0.0) -> np.ndarray:
    """A bool mask at `size` = (height, width): a cell is True if more than `threshold` of its area was.

    The default (any of it) is the conservative choice: a cell only partly occluded has no clean
    source. The noise uses a majority (0.5): a fresh sample changes the picture wherever it
    lands, so a cell keeps its noise unless most of it is really uncovered.
    """
    mask = np.asarray(mask, dtype=bool)
    new_h, new_w = (int(s) for s in size)
    if mask.shape == (new_h, new_w):
        return mask.copy()
    area = cv2.resize(mask.astype(np.float32), (new_w, new_h), interpolation=cv2.INTER_AREA)
    return area > max(float(threshold), 1e-6)


# -- the img2img init ------------------------------------------------------------------------
def flow_guided_init(prev_stylised: np.ndarray, flow_back: np.ndarray, current: np.ndarray,
                     occluded: np.ndarray, blend: float = 1.0) -> np.ndarray:
    """The img2img init image of frame t: stylised frame t-1 carried onto frame t.

    `flow_back` = flow(current input frame, previous input frame), on the current frame's grid
    (the flow of the input footage at the stylised size; see `resize_flow`); `occluded` = its
    `occlusion(flow_back, flow(previous, current))`, bool or a soft float mask in [0, 1]. Both
    are `motion_pair(previous, current)[1]`.
    Where a pixel is visible in both frames the init is the previous stylised frame warped there;
    where it is occluded (newly revealed, or the flow is unsure) it is the current input frame.
    `blend` then mixes that with the current input frame: 1 keeps the warped frame as it is,
    0 ignores the previous frame (plain img2img of the input).

        init = current + blend * (1 - occluded) * (warp(prev_stylised, flow_back) - current)
    """
    _check_frame(prev_stylised, "prev_stylised")
    _check_frame(current, "current")
    if prev_stylised.shape != current.shape:
        raise ValueError(f"flow_guided_init(): previous {prev_stylised.shape} and current {current.shape} "
                         "frames differ in size")
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"flow_guided_init(): blend {blend} is outside [0, 1]")
    occluded = np.asarray(occluded)
    if occluded.shape != current.shape[:2]:
        raise ValueError(f"flow_guided_init(): mask {occluded.shape} does not match the frame {current.shape[:2]}")
    warped = warp(prev_stylised, flow_back).astype(np.float32)
    keep = blend * (1.0 - np.clip(np.asarray(occluded, dtype=np.float32), 0.0, 1.0))[..., None]
    base = current.astype(np.float32)
    return np.clip(np.rint(base + keep * (warped - base)), 0, 255).astype(np.uint8)


# -- noise from the frames -------------------------------------------------------------------
def frame_seed(seed: int, index: int) -> int:
    """The seed of the fresh noise of clip frame `index`: a function of (seed, index) only, so a
    chunk or a resumed run draws the same fresh noise for a frame as one uninterrupted run."""
    x = (int(seed) * 0x9E3779B97F4A7C15 + int(index) * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & (2 ** 64 - 1)
    x ^= x >> 31
    x = (x * 0xD6E8FEB86659FD93) & (2 ** 64 - 1)
    x ^= x >> 32
    return x & (2 ** 63 - 1)


def warped_noise(prev_noise, flow_back: np.ndarray, occluded: np.ndarray | None, generator, *,
                 unique: bool = True, stay: bool = True):
    """Latent noise of frame t: frame t-1's noise moved along the flow, fresh where it cannot be.

    `prev_noise` is a torch tensor [C, h, w] (or [1, C, h, w]) at latent resolution;
    `flow_back` = flow(frame t, frame t-1) resized to (h, w) with `resize_flow`; `occluded` is
    its occlusion mask at (h, w) (`resize_mask`), or None. `generator` is a torch.Generator or
    an int seed; fresh noise for the whole tensor is drawn from it every call, so the result is
    deterministic and does not depend on how many cells are occluded.

    Sampling is nearest-neighbour: every cell gets one previous sample unchanged, so the noise
    stays N(0, 1) (bilinear averages would shrink its variance and blur it). Cells whose source
    lies outside the frame or is occluded get fresh noise; with `unique`, so do all but the first
    (in raster order) of the cells that read the same source cell, because copies of one sample
    side by side are spatial correlation the diffusion model would draw as blotches. Carried
    cells keep their sample exactly (no re-standardisation: rescaling every cell by a little
    would change every pixel a little, which is flicker); every sample is N(0, 1) either way.
    With `stay`, a cell that carries nothing keeps the sample that was at its own place, as long
    as no carried cell took that sample (else it is fresh): what appears from behind an
    occluder has no noise of its own, and the one that was on screen there changes the picture
    least (each fresh sample redraws its neighbourhood; no sample is ever used twice).
    A float32 CPU tensor shaped like `prev_noise`.
    """
    import torch

    prev = torch.as_tensor(prev_noise)
    batched = prev.ndim == 4
    if batched:
        if prev.shape[0] != 1:
            raise ValueError(f"warped_noise(): one frame's noise expected, got a batch of {prev.shape[0]}")
        prev = prev[0]
    if prev.ndim != 3:
        raise ValueError(f"warped_noise(): noise must be [C, h, w] or [1, C, h, w], got {tuple(prev_noise.shape)}")
    channels, h, w = prev.shape
    _check_flow(flow_back, "flow_back")
    if flow_back.shape[:2] != (h, w):
        raise ValueError(f"warped_noise(): flow {flow_back.shape[:2]} is not at the noise's size {(h, w)}; "
                         "use resize_flow()")
    if occluded is not None and occluded.shape != (h, w):
        raise ValueError(f"warped_noise(): mask {occluded.shape} is not at the noise's size {(h, w)}; "
                         "use resize_mask()")
    if not isinstance(generator, torch.Generator):
        generator = torch.Generator("cpu").manual_seed(int(generator))
    fresh = torch.randn((channels, h, w), generator=generator, dtype=torch.float32)

    grid_y, grid_x = np.mgrid[0:h, 0:w]
    src_x = np.rint(grid_x + flow_back[..., 0]).astype(np.int64)
    src_y = np.rint(grid_y + flow_back[..., 1]).astype(np.int64)
    carried = (src_x >= 0) & (src_x < w) & (src_y >= 0) & (src_y < h)
    if occluded is not None:
        carried &= ~np.asarray(occluded, dtype=bool)
    source = np.where(carried, src_y * w + src_x, -1).ravel()
    if unique:
        firsts = np.zeros(source.shape, dtype=bool)
        _, first_index = np.unique(source, return_index=True)
        firsts[first_index] = True
        carried &= firsts.reshape(h, w)
        source = np.where(carried.ravel(), source, -1)

    flat_prev = prev.detach().to("cpu", torch.float32).reshape(channels, h * w)
    take = torch.from_numpy(np.maximum(source, 0))
    moved = flat_prev[:, take].reshape(channels, h, w)
    out = torch.where(torch.from_numpy(carried)[None], moved, fresh)
    if stay:  # uncovered cells keep the sample at their own place unless a carried cell took it
        taken = np.zeros(h * w, dtype=bool)
        taken[source[source >= 0]] = True
        keep = (~carried.ravel() & ~taken).reshape(h, w)
        out = torch.where(torch.from_numpy(keep)[None], prev.detach().to("cpu", torch.float32), out)
    return out[None] if batched else out


def noise_for_clip(frames: Sequence[np.ndarray], latent_shape: tuple[int, int, int], seed: int, *,
                   start: int = 0, first=None, flows: Sequence | None = None, preset: str = "medium") -> list:
    """Initial latent noise for every frame of a clip or chunk: torch float32 tensors `latent_shape`.

    `frames` are the input frames (any size; the flow is computed on them and resized to the
    latent grid); `latent_shape` is (C, h, w), e.g. (4, H/8, W/8) for SD. Frame 0's noise is
    `first` when given (the noise the previous chunk used for this same, shared frame), else
    fresh; every later frame is `warped_noise` of the one before. `frames[i]` is clip frame
    `start + i`, and the fresh noise of clip frame k comes from `frame_seed(seed, k)`, so
    chunks that share a frame and pass its noise on produce exactly the noise of one whole run.
    `flows`, if given, holds for each i ≥ 1 the backward `Motion` (flow(frames[i], frames[i-1])
    and its occlusion, on frames[i]'s grid: `motion_pair(frames[i-1], frames[i])[1]`), e.g.
    already computed for the init.
    """
    import torch

    channels, h, w = (int(s) for s in latent_shape)
    if not frames:
        return []
    if flows is not None and len(flows) != len(frames) - 1:
        raise ValueError(f"noise_for_clip(): {len(flows)} flows for {len(frames)} frames (expected one per pair)")
    if first is None:
        gen = torch.Generator("cpu").manual_seed(frame_seed(seed, start))
        noise = _standardise(torch.randn((channels, h, w), generator=gen, dtype=torch.float32))
    else:
        noise = torch.as_tensor(first).detach().to("cpu", torch.float32).reshape(channels, h, w).clone()
    out = [noise]
    for i in range(1, len(frames)):
        if flows is not None:
            back, occluded = flows[i - 1]
        else:
            back, occluded = motion_pair(frames[i - 1], frames[i], preset=preset)[1]
        noise = warped_noise(noise, resize_flow(back, (h, w)), resize_mask(occluded, (h, w), threshold=0.5),
                             frame_seed(seed, start + i))
        out.append(noise)
    return out


def _standardise(noise):
    flat = noise.reshape(noise.shape[0], -1)
    mean = flat.mean(dim=1, keepdim=True)
    std = flat.std(dim=1, keepdim=True).clamp_min(1e-6)
    return ((flat - mean) / std).reshape(noise.shape)


# -- post-pass -------------------------------------------------------------------------------
def deflicker(frames: Sequence[np.ndarray], strength: float = 1.0, *, radius: int = 3) -> list[np.ndarray]:
    """Frames with their global brightness / colour wobble evened out.

    For each frame, per channel, the mean and standard deviation are moved toward the temporal
    median of those statistics over the `radius` frames on either side: a frame that came out
    darker, brighter, warmer or flatter than its neighbours is matched back to them. `strength`
    1 matches fully, 0 changes nothing. Only global statistics are touched, so moving content
    cannot ghost (no pixel is mixed with another frame's pixel); local flicker is left to the
    flow-guided init and warped noise upstream. A median, not a mean, so a cut or a flash that
    lasts a few frames is not smeared over its neighbours.
    """
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"deflicker(): strength {strength} is outside [0, 1]")
    if radius < 1:
        raise ValueError(f"deflicker(): radius {radius} must be at least 1")
    for i, frame in enumerate(frames):
        _check_frame(frame, f"frames[{i}]")
    if not frames or strength == 0:
        return [np.array(f, copy=True) for f in frames]
    stats = np.array([colour_stats(f) for f in frames])  # [T, 2, 3]
    return [deflicker_frame(frame, t, stats, strength, radius=radius) for t, frame in enumerate(frames)]


def colour_stats(frame: np.ndarray) -> np.ndarray:
    """Per channel mean and standard deviation of a frame, [2, 3] float64: what `deflicker` evens out.
    Computed once per frame, so a long clip is deflickered from files without holding its frames."""
    _check_frame(frame)
    flat = frame.reshape(-1, 3)
    return np.array([flat.mean(axis=0), flat.std(axis=0)], dtype=np.float64)


def deflicker_frame(frame: np.ndarray, t: int, stats: np.ndarray, strength: float = 1.0, *,
                    radius: int = 3) -> np.ndarray:
    """Frame `t` of a clip deflickered (see `deflicker`), given every frame's `colour_stats` [T, 2, 3]."""
    lo, hi = max(0, t - radius), min(len(stats), t + radius + 1)
    mean_t, std_t = stats[t]
    target_mean, target_std = np.median(stats[lo:hi], axis=0)
    gain = np.where(std_t > 1e-3, target_std / np.maximum(std_t, 1e-3), 1.0)
    gain = 1.0 + strength * (gain - 1.0)
    mean = mean_t + strength * (target_mean - mean_t)
    fixed = (frame.astype(np.float32) - mean_t) * gain.astype(np.float32) + mean.astype(np.float32)
    return np.clip(np.rint(fixed), 0, 255).astype(np.uint8)


# -- checks ----------------------------------------------------------------------------------
def _check_frame(frame: np.ndarray, name: str = "frame") -> None:
    if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        got = f"{frame.dtype} {frame.shape}" if isinstance(frame, np.ndarray) else type(frame).__name__
        raise ValueError(f"{name}: expected an HxWx3 uint8 RGB frame, got {got}")


def _check_flow(flow: np.ndarray, name: str = "flow") -> None:
    if not isinstance(flow, np.ndarray) or flow.ndim != 3 or flow.shape[2] != 2:
        got = f"{flow.dtype} {flow.shape}" if isinstance(flow, np.ndarray) else type(flow).__name__
        raise ValueError(f"{name}: expected an HxWx2 float flow, got {got}")
