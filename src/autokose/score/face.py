"""Face identity: is the face in a frame the character's face? (dlib ResNet embeddings)

Faces are found and embedded by `autokose.faces` (dlib's HOG detector and its ResNet face
recognition model, 128-d). Two faces are compared by the Euclidean distance of their
embeddings; the score users see maps a distance `d` to

    identity = clip(1 - d / (2 * THRESHOLD), 0, 1)

so identical embeddings score 1.0, a distance exactly at the same/different-person threshold
scores 0.5 and twice the threshold scores 0. `--min-identity 0.5` therefore asks for "dlib
calls it the same person"; `--min-identity 0.6` asks for d <= 0.48.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autokose.faces import FaceBox, detect_faces, embedding_centroid, face_embedding

FACE_MODEL = "dlib_face_recognition_resnet_model_v1"

# Same/different-person distance threshold. benchmarks/bench_face_roc.py on ../shared/data/faces
# (4 people x 2 photos: 4 same-person and 24 different-person pairs) measured same-person
# distances 0.35-0.53 and different-person 0.76-1.02: ROC AUC 1.0. Youden's J puts the cut at
# 0.64; dlib's standard 0.6 also separates every pair and is kept (docs/BENCHMARKS.md,
# "Identity scoring").
THRESHOLD = 0.6
# Identity at the threshold: below it a frame's character is "low" (probably someone else).
LOW_IDENTITY = 0.5
EMBEDDING_SIZE = 128

# OpenPose body keypoints that sit on the face: nose, eyes, ears.
_FACE_KEYPOINTS = (0, 14, 15, 16, 17)


def identity_from_distance(distance: float, threshold: float = THRESHOLD) -> float:
    """Distance → identity score in [0, 1]; 0.5 at `threshold` (see the module docstring)."""
    return float(np.clip(1.0 - distance / (2.0 * threshold), 0.0, 1.0))


@dataclass
class Face:
    box: FaceBox
    embedding: np.ndarray


def find_faces(image, *, upsample: int | None = None) -> list[Face]:
    """Every frontal face in `image`, embedded, largest first.

    Frames need `upsample=1`: in a medium shot at 960x540 a face is ~60 px, under the
    detector's 80 px window.
    """
    return [Face(box, face_embedding(image, box)) for box in detect_faces(image, upsample=upsample)]


def _head_point(figure, width: int, height: int) -> tuple[float, float] | None:
    """Where the figure's face should be, in pixels: face keypoints, else the top of its box."""
    points = [figure.keypoints[i] for i in _FACE_KEYPOINTS if i < len(figure.keypoints) and figure.keypoints[i][2] > 0]
    if points:
        return (float(np.mean([p[0] for p in points])) * width, float(np.mean([p[1] for p in points])) * height)
    x0, y0, x1, y1 = figure.box
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0 + x1) / 2 * width, (y0 + 0.15 * (y1 - y0)) * height


def assign_faces(faces: Sequence[Face], cast: Sequence[str], figures: Sequence,
                 size: tuple[int, int]) -> dict[str, Face]:
    """Which detected face belongs to which character of `cast` (ids, left to right).

    One character: the largest face. Several: faces are matched to the staged figures (their
    face keypoints or the top of their box) by an optimal assignment; a face whose centre is
    outside a figure's box cannot be that figure's. Without staging boxes, faces are matched
    left to right when their number equals the cast's; otherwise nobody is assigned.
    """
    if not faces or not cast:
        return {}
    if len(cast) == 1:
        return {cast[0]: max(faces, key=lambda f: f.box.area)}
    width, height = size
    placed = {f.id: f for f in figures if f.id in cast}
    heads = {cid: _head_point(placed[cid], width, height) for cid in cast if cid in placed}
    heads = {cid: p for cid, p in heads.items() if p is not None}
    if not heads:
        if len(faces) != len(cast):
            return {}
        return dict(zip(cast, sorted(faces, key=lambda f: f.box.center[0])))
    from scipy.optimize import linear_sum_assignment

    ids = list(heads)
    far = 1e6
    cost = np.full((len(faces), len(ids)), far)
    for a, face in enumerate(faces):
        cx, cy = face.box.center
        for b, cid in enumerate(ids):
            x0, y0, x1, y1 = placed[cid].box
            inside = x0 * width <= cx <= x1 * width and y0 * height <= cy <= y1 * height
            if inside or x1 <= x0:  # no box: trust the keypoints alone
                hx, hy = heads[cid]
                cost[a, b] = np.hypot(cx - hx, cy - hy) / max(face.box.width, 1)
    rows, cols = linear_sum_assignment(cost)
    return {ids[b]: faces[a] for a, b in zip(rows, cols) if cost[a, b] < far}


def card_centroid(card: dict | None) -> tuple[np.ndarray | None, str | None]:
    """The identity centroid a trained character card carries (`face_centroid`), if well-formed."""
    value = (card or {}).get("face_centroid")
    if value is None:
        return None, None
    try:
        vector = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        vector = None
    if vector is None or vector.shape != (EMBEDDING_SIZE,) or not np.all(np.isfinite(vector)):
        return None, f"card face_centroid is not {EMBEDDING_SIZE} numbers; ignored"
    return vector, None


def reference_centroid(images: Sequence) -> tuple[np.ndarray | None, int]:
    """Centroid of the largest face of each reference image; (None, 0) when none has a face."""
    embeddings = []
    for image in images:
        faces = find_faces(image)
        if faces:
            embeddings.append(faces[0].embedding)
    return embedding_centroid(embeddings), len(embeddings)

