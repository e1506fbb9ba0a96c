"""How much a video flickers: the warp error of Lai et al. (2018), and the metrics file beside an output.

Warp error ("Learning Blind Video Temporal Consistency", Lai et al., ECCV 2018, eq. 8): follow
each pixel of the *input* video from frame t to frame t+1 by optical flow, and measure how much
the *output* video changes along that path where the pixel stays visible:

    E = 1/(T-1) · Σ_t  Σ_x M_t(x) · ‖O_t(x) − Ô_{t+1}(x)‖²  /  Σ_x M_t(x)

with Ô_{t+1} = O_{t+1} warped onto frame t by the flow F_t = flow(I_t, I_{t+1}) of the input,
M_t = 1 − occlusion(F_t, flow(I_{t+1}, I_t)), pixels in [0, 1] and the sum over x also running
over the 3 colour channels (so it is the masked mean squared difference per pixel and channel,
as in the authors' evaluation code). The flow comes from the input, never the output: the
output's own flow would follow its flicker. A still video scores 0; per-frame redraws score
high; the same number for the input itself is the floor a stylisation can hope for (warping
and occlusions are not perfect).

Beside flicker, whether the video stays the character: `identity_per_frame` measures each output
frame's face against the character's reference photos with the same dlib embedding, centroid and
threshold the storyboard's scoring uses (`autokose.score.face`), and `clip_similarity` the CLIP
image-embedding cosine of consecutive frames (`autokose.score.clip`'s offline loader) when a
CLIP model is given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from autokose.video.temporal import Motion, _check_frame, motion_pair, warp

__all__ = ["Motion", "clip_similarity", "identity_per_frame", "iter_temporal_flows", "metrics_json",
           "temporal_flows", "warp_error", "warp_errors"]


def iter_temporal_flows(frames: Iterable[np.ndarray], *, preset: str = "medium",
                        motion_boundaries: bool = True) -> Iterator[Motion]:
    """`Motion` for each consecutive pair of input frames, one at a time (frames may stream)."""
    prev = None
    for frame in frames:
        if prev is not None:
            yield motion_pair(prev, frame, preset=preset, motion_boundaries=motion_boundaries)[0]
        prev = frame


def temporal_flows(frames: Iterable[np.ndarray], *, preset: str = "medium",
                   motion_boundaries: bool = True) -> list[Motion]:
    """`Motion` for each consecutive pair of input frames (T-1 of them), computed once and then
    reused for the input, the output and the baseline. About 9 bytes per pixel per frame: at
    512x896 and 300 frames, 1.2 GB; stream `iter_temporal_flows` into `warp_errors` for long clips."""
    return list(iter_temporal_flows(frames, preset=preset, motion_boundaries=motion_boundaries))


def warp_error(frames: Sequence[np.ndarray], motions: Iterable[Motion]) -> float:
    """Lai et al.'s warp error of `frames` along the input's `motions` (see the module docstring).

    `frames` are HxWx3 uint8 at the size the motions were computed at; one Motion per pair.
    A pair whose mask hides every pixel is measured unmasked, as the authors' code does.
    """
    return warp_errors({"frames": frames}, motions)["frames"]


def warp_errors(videos: dict[str, Sequence[np.ndarray]], motions: Iterable[Motion]) -> dict[str, float]:
    """`warp_error` of several videos of the same input at once (e.g. input, output, baseline),
    walking the motions once: they may be a generator (`iter_temporal_flows`), never all held."""
    lengths = {name: len(frames) for name, frames in videos.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"warp_errors(): the videos differ in length: {lengths}")
    count = next(iter(lengths.values()), 0)
    totals = dict.fromkeys(videos, 0.0)
    pairs = 0
    for t, motion in enumerate(motions):
        if t + 1 >= count:
            raise ValueError(f"warp_errors(): more motions than frame pairs ({count} frames)")
        visible = ~np.asarray(motion.occluded, dtype=bool)
        n = int(visible.sum())
        for name, frames in videos.items():
            a, b = frames[t], frames[t + 1]
            _check_frame(a, f"{name}[{t}]")
            if a.shape[:2] != motion.flow.shape[:2]:
                raise ValueError(f"warp_errors(): {name}[{t}] is {a.shape[:2]}, the flow {motion.flow.shape[:2]}; "
                                 "compute the flows at the video's size")
            warped = warp(b, motion.flow).astype(np.float32) / 255.0
            squared = np.sum((warped - a.astype(np.float32) / 255.0) ** 2, axis=-1)  # over channels
            if n:
                totals[name] += float(squared[visible].sum()) / (3 * n)
            else:
                totals[name] += float(squared.mean()) / 3
        pairs += 1
    if count >= 2 and pairs != count - 1:
        raise ValueError(f"warp_errors(): {pairs} motions for {count} frames (expected {count - 1})")
    return {name: total / pairs if pairs else 0.0 for name, total in totals.items()}


def metrics_json(*, input: float | None, output: float | None, baseline: float | None = None, frames: int,
                 fps: float | Fraction, **more) -> dict:
    """The metrics written beside an output video (`OUT.metrics.json`) and printed.

    {"warp_error": {"input", "output", "baseline", "ratio"}, "frames", "fps", ...more}:
    warp errors of the input footage, our output and the per-frame baseline (None when it was
    not rendered); "ratio" is output / baseline, the improvement in one number (< 1 is better),
    None without a baseline. `more` adds other measurements (face identity, CLIP similarity,
    seconds per frame) as they are, so they must be JSON values.
    """
    for name, value in (("input", input), ("output", output), ("baseline", baseline)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise ValueError(f"metrics_json(): warp error {name} must be a finite number ≥ 0, got {value!r}")
    ratio = output / baseline if baseline and output is not None else None
    return {
        "warp_error": {
            "input": None if input is None else float(input),
            "output": None if output is None else float(output),
            "baseline": None if baseline is None else float(baseline),
            "ratio": None if ratio is None else float(ratio),
        },
        "frames": int(frames),
        "fps": round(float(fps), 6),
        **more,
    }


def _reference_images(references: Sequence) -> tuple[list, list[str]]:
    """Reference photos as RGB images (paths are read), and a note for each that cannot be read.

    A bad reference is noted, not raised: the metrics are measured after the video is drawn,
    and an unreadable photo must not lose the render (the IP-Adapter read them already).
    """
    from autokose.images import Unreadable, open_rgb

    images, notes = [], []
    for ref in references:
        if isinstance(ref, (str, Path)):
            try:
                images.append(open_rgb(ref))
            except Unreadable as e:
                notes.append(f"reference {ref}: {e}")
        else:
            images.append(ref)
    return images, notes


def identity_per_frame(frames: Iterable, references: Sequence, *, threshold: float | None = None) -> dict | None:
    """Does every frame still show the character? Face distance of each frame to the references.

    Each reference's largest face is embedded (dlib ResNet) and averaged into a centroid, as the
    storyboard's scoring does (`score.face.reference_centroid`); in each frame the largest face
    is found (detector upsampled once, as for board frames: faces down to ~40 px) and its
    Euclidean distance to the centroid taken. A frame is "within" when it has a face at most
    `threshold` (default `score.face.THRESHOLD`, dlib's same-person 0.6) from the centroid:

        {"threshold", "frames", "frames_with_face",
         "within":        share of ALL frames with a face within the threshold (a lost face fails),
         "mean_distance": over the frames with a face (None without any),
         "mean_identity": the same as the storyboard's identity score (0.5 at the threshold),
         "per_frame":     [distance or None], "skipped": None, "notes": [...]}

    When nothing can be measured (dlib missing, no reference has a face) the numbers are None
    and "skipped" says why. None when no references are given (nothing to measure against).
    `frames` are HxWx3 uint8 arrays or PIL images, any iterable (a generator streams: one frame
    is held at a time); `references` paths or images. Cost: one face search per frame, ~0.1-1 s
    on a CPU core depending on the frame's size.
    """
    from autokose.faces import available, face_distance
    from autokose.score.face import THRESHOLD, find_faces, identity_from_distance, reference_centroid

    if not references:
        return None
    threshold = THRESHOLD if threshold is None else float(threshold)
    if not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"identity_per_frame(): threshold must be a positive number, got {threshold!r}")
    result = {"threshold": threshold, "frames": None, "frames_with_face": 0, "within": None,
              "mean_distance": None, "mean_identity": None, "per_frame": None, "skipped": None, "notes": []}
    if not available():
        result["skipped"] = "face: skipped — dlib or face-recognition-models not installed"
        return result
    images, result["notes"] = _reference_images(references)
    centroid, found = reference_centroid(images)
    if found < len(images):
        result["notes"].append(f"no face found in {len(images) - found} of {len(images)} reference images")
    if centroid is None:
        result["skipped"] = "face: skipped — no face found in the reference images"
        return result
    distances: list[float | None] = []
    for frame in frames:
        faces = find_faces(frame, upsample=1)
        distances.append(None if not faces else round(face_distance(faces[0].embedding, centroid), 4))
    measured = [d for d in distances if d is not None]
    result.update(frames_with_face=len(measured), frames=len(distances), per_frame=distances)
    if not measured:  # nothing to judge: not "0% within"
        if distances:
            result["skipped"] = f"face: no face found in any of the {len(distances)} frames"
        return result
    result.update(
        within=sum(d <= threshold for d in measured) / len(distances),
        mean_distance=round(float(np.mean(measured)), 4),
        mean_identity=round(float(np.mean([identity_from_distance(d, threshold) for d in measured])), 4),
    )
    return result


def clip_similarity(frames: Iterable, clip_model: str | None, *, batch: int = 16) -> dict:
    """CLIP image-embedding cosine similarity of consecutive frames: does the content hold still?

    A per-frame redraw changes what CLIP sees from frame to frame; a consistent video keeps it
    (1.0 for identical frames). The model is loaded offline by `score.clip.load_clip` (a local
    folder or a cached hub id; validate the name up front with `score.clip.check_clip_model`).

        {"model", "pairs", "mean", "min", "per_pair": [cosine of frame t and t+1], "skipped": None}

    Without a model, or when it cannot be loaded, the numbers are None and "skipped" says why
    (the frames are then not read). `frames` are HxWx3 uint8 arrays or PIL images, any iterable:
    they are embedded `batch` at a time, so only the embeddings of a long clip are held.
    """
    from PIL import Image

    from autokose.score.clip import load_clip

    result = {"model": clip_model, "pairs": None, "mean": None, "min": None, "per_pair": None, "skipped": None}
    clip, note = load_clip(clip_model)
    if clip is None:
        result["skipped"] = note
        return result
    embeddings, pending = [], []
    for frame in frames:
        pending.append(frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame)))
        if len(pending) == batch:
            embeddings.append(clip.image_embeddings(pending))
            pending = []
    if pending:
        embeddings.append(clip.image_embeddings(pending))
    rows = np.concatenate(embeddings).astype(np.float64) if embeddings else np.zeros((0, 1))  # L2-normalised
    result["pairs"] = max(len(rows) - 1, 0)
    if len(rows) < 2:
        return result
    cosines = np.clip(np.sum(rows[:-1] * rows[1:], axis=1), -1.0, 1.0)
    result.update(mean=round(float(cosines.mean()), 6), min=round(float(cosines.min()), 6),
                  per_pair=[round(float(c), 6) for c in cosines])
    return result
