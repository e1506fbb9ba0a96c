"""Faces with dlib: find them, place their landmarks, embed them (128-d) for identity checks.

Shared by training (face-aware crops, the card's identity centroid) and scoring (identity
consistency across frames). The models are the ones `face_recognition_models` ships:
dlib's HOG frontal-face detector, the 5- and 68-point shape predictors and the ResNet face
recognition model, whose 128-d embeddings of one person lie within ~0.6 of each other
(Euclidean distance).

Public API
    FaceBox(left, top, right, bottom)             pixel box, a NamedTuple
    available() -> bool                           dlib and the model files can be loaded
    detect_faces(image, *, upsample=None, max_side=1024) -> list[FaceBox]   largest first
    face_landmarks(image, box, *, points=68) -> np.ndarray (points, 2)      x, y pixels
    face_embedding(image, box, *, jitters=1) -> np.ndarray (128,) float64
    face_distance(a, b) -> float                  Euclidean; < SAME_PERSON_DISTANCE: same person
    embedding_centroid(embeddings) -> np.ndarray | None

`image` is a PIL image (any mode) or an RGB/greyscale uint8 array of shape (H, W[, 3]).
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

SAME_PERSON_DISTANCE = 0.6  # dlib's threshold for its face recognition model

_MODEL_FILES = {
    "landmarks_5": "shape_predictor_5_face_landmarks.dat",
    "landmarks_68": "shape_predictor_68_face_landmarks.dat",
    "recognition": "dlib_face_recognition_resnet_model_v1.dat",
}


class FaceBox(NamedTuple):
    """A face's box in pixels of the image it was found in (right/bottom exclusive)."""

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    @property
    def area(self) -> int:
        return max(self.width, 0) * max(self.height, 0)

    @property
    def center(self) -> tuple[float, float]:
        return (self.left + self.right) / 2, (self.top + self.bottom) / 2


def _models_folder() -> Path:
    # face_recognition_models' __init__ imports pkg_resources, which newer setuptools lack:
    # find its folder without importing it.
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("face detection needs `face-recognition-models` (pip install 'autokose[score]')")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def _dlib():
    try:
        import dlib
    except ImportError:
        raise ImportError("face detection needs dlib (pip install 'autokose[score]', which installs dlib-bin)") from None
    return dlib


@cache
def _detector():
    return _dlib().get_frontal_face_detector()


@cache
def _model(name: str):
    dlib = _dlib()
    path = _models_folder() / _MODEL_FILES[name]
    if not path.is_file():
        raise ImportError(f"dlib model file missing: {path}")
    if name == "recognition":
        return dlib.face_recognition_model_v1(str(path))
    return dlib.shape_predictor(str(path))


def available() -> bool:
    """True when dlib and its model files are installed (faces are optional for training)."""
    try:
        _detector()
        _model("landmarks_5")
        _model("recognition")
    except (ImportError, RuntimeError):
        return False
    return True


def as_rgb_array(image) -> np.ndarray:
    """A C-contiguous uint8 RGB array, as dlib wants (PIL images in any mode, arrays)."""
    if hasattr(image, "convert"):  # PIL image
        image = image.convert("RGB")
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image, got an array of shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"expected uint8 pixels, got {array.dtype}")
    return np.ascontiguousarray(array[..., :3])


def detect_faces(image, *, upsample: int | None = None, max_side: int = 1024) -> list[FaceBox]:
    """Frontal faces found by dlib's HOG detector, largest first, in the image's own pixels.

    Large images are searched at `max_side` (HOG time grows with area; faces that matter for
    a character are not tiny). `upsample` (None: 1 for images under 600 px, else 0) lets the
    detector find faces smaller than its 80 px window.
    """
    array = as_rgb_array(image)
    height, width = array.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        from PIL import Image

        small = Image.fromarray(array).resize((max(1, round(width * scale)), max(1, round(height * scale))),
                                              Image.Resampling.BILINEAR)
        array = np.ascontiguousarray(np.asarray(small))
    if upsample is None:
        upsample = 1 if max(array.shape[:2]) < 600 else 0
    boxes = []
    for r in _detector()(array, upsample):
        box = FaceBox(
            max(0, round(r.left() / scale)), max(0, round(r.top() / scale)),
            min(width, round((r.right() + 1) / scale)), min(height, round((r.bottom() + 1) / scale)),
        )
        if box.area > 0:
            boxes.append(box)
    return sorted(boxes, key=lambda b: b.area, reverse=True)


def _rect(box):
    left, top, right, bottom = (int(v) for v in box)
    return _dlib().rectangle(left, top, right - 1, bottom - 1)


def face_landmarks(image, box, *, points: int = 68) -> np.ndarray:
    """(points, 2) landmark coordinates (x, y) in pixels; `points` is 5 or 68."""
    if points not in (5, 68):
        raise ValueError("points must be 5 or 68")
    shape = _model(f"landmarks_{points}")(as_rgb_array(image), _rect(box))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.int64)


def face_embedding(image, box, *, jitters: int = 1) -> np.ndarray:
    """The 128-d dlib embedding of the face in `box` (any 4-sequence left, top, right, bottom).

    The face is aligned with the 5-point landmarks first, as dlib's model expects.
    """
    array = as_rgb_array(image)
    shape = _model("landmarks_5")(array, _rect(box))
    descriptor = _model("recognition").compute_face_descriptor(array, shape, jitters)
    return np.array(descriptor, dtype=np.float64)


def face_distance(a, b) -> float:
    """Euclidean distance between two embeddings; below SAME_PERSON_DISTANCE means the same person."""
    return float(np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)))


def embedding_centroid(embeddings) -> np.ndarray | None:
    """The mean embedding (an identity's anchor for scoring); None when there are none."""
    embeddings = [np.asarray(e, dtype=np.float64) for e in embeddings]
    if not embeddings:
        return None
    return np.mean(np.stack(embeddings), axis=0)
