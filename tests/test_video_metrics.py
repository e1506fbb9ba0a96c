"""Footage metrics beyond flicker: face identity per frame (dlib, real photos) and CLIP frame-to-frame similarity.

The identity metric is checked on real people: "frames" cut from one person's photo stay within
dlib's threshold of that person's other photo, frames of another person do not, and a frame
without a face counts against the share. CLIP is checked on a tiny random CLIPModel saved as a
folder: the numbers are cosines, identical frames give 1, and no model means skipped, not an error.
(The warp-error tests live in tests/test_temporal.py.)
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from autokose.video.metrics import clip_similarity, identity_per_frame


def photo(shared_data, name: str, long_side: int = 400) -> np.ndarray:
    """A real photo as a video frame would be: RGB uint8, a few hundred pixels."""
    with Image.open(shared_data / "faces" / name) as im:
        im = im.convert("RGB")
        im.thumbnail((long_side, long_side))
        return np.asarray(im).copy()


@pytest.fixture
def faces():
    pytest.importorskip("dlib")
    from autokose.faces import available

    if not available():
        pytest.skip("dlib's face models are not installed")


@pytest.mark.slow
def test_identity_frames_of_the_person_are_within_others_are_not(shared_data, faces):
    reference = [shared_data / "faces" / "obama" / "1.jpg"]
    same = photo(shared_data, "obama/2.jpg")
    blank = np.full_like(same, 128)
    own = identity_per_frame(iter([same, same[:, ::-1].copy(), blank]), reference)  # frames may stream
    print(json.dumps(own))
    assert own["skipped"] is None and own["threshold"] == 0.6
    assert own["frames"] == 3 and own["frames_with_face"] == 2
    assert own["per_frame"][2] is None
    assert all(d < 0.6 for d in own["per_frame"][:2])
    assert own["within"] == pytest.approx(2 / 3)  # the faceless frame counts against the share
    assert own["mean_identity"] > 0.5

    other = identity_per_frame([photo(shared_data, "biden/2.jpg"), photo(shared_data, "rose_leslie/2.jpg")], reference)
    print(json.dumps(other))
    assert other["frames_with_face"] == 2 and other["within"] == 0.0
    assert min(other["per_frame"]) > 0.6 > max(own["per_frame"][:2])
    assert other["mean_identity"] < 0.5
    assert json.loads(json.dumps(own)) == own  # JSON values, as metrics.json needs

    # A stricter threshold is the caller's to give; the distances do not change.
    strict = identity_per_frame([same], reference, threshold=0.05)
    assert strict["within"] == 0.0 and strict["per_frame"][0] == own["per_frame"][0]


def test_identity_skips_without_a_reference_face(tmp_path, faces):
    blank = np.full((64, 64, 3), 200, np.uint8)
    result = identity_per_frame([blank], [Image.fromarray(blank), tmp_path / "missing.png"])
    assert result["within"] is None and result["per_frame"] is None
    assert "no face found in the reference" in result["skipped"]
    assert any("missing.png" in n and "not found" in n for n in result["notes"])
    assert identity_per_frame([blank], []) is None  # nothing to measure against


def test_identity_skips_without_dlib(monkeypatch):
    import autokose.faces

    monkeypatch.setattr(autokose.faces, "available", lambda: False)
    result = identity_per_frame([np.zeros((8, 8, 3), np.uint8)], ["ref.png"])
    assert result["within"] is None and "dlib" in result["skipped"]


def tiny_clip_folder(store):
    from test_score import tiny_clip

    return tiny_clip(store)


@pytest.mark.slow
def test_clip_similarity_of_frames(store):
    pytest.importorskip("transformers")
    folder = str(tiny_clip_folder(store))
    rng = np.random.default_rng(0)
    a, b, c = (rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3))
    same = clip_similarity([a, a.copy(), Image.fromarray(a)], folder)
    assert same["skipped"] is None and same["pairs"] == 2
    assert same["mean"] == pytest.approx(1.0, abs=1e-5) and same["min"] == pytest.approx(1.0, abs=1e-5)

    mixed = clip_similarity((f for f in [a, b, c, a]), folder, batch=3)  # streamed, across a batch boundary
    assert mixed["pairs"] == 3 and len(mixed["per_pair"]) == 3
    assert all(-1.0 <= x <= 1.0 for x in mixed["per_pair"])
    assert -1.0 <= mixed["min"] <= mixed["mean"] <= 1.0
    assert mixed["min"] < 1.0 - 1e-4
    json.dumps(mixed)

    one = clip_similarity([a], folder)
    assert one["pairs"] == 0 and one["mean"] is None and one["skipped"] is None


def test_clip_similarity_without_a_model_is_skipped(tmp_path):
    none = clip_similarity([np.zeros((8, 8, 3), np.uint8)] * 2, None)
    assert none["mean"] is None and none["pairs"] is None and "no model" in none["skipped"]
    (tmp_path / "empty").mkdir()
    empty = clip_similarity([np.zeros((8, 8, 3), np.uint8)] * 2, str(tmp_path / "empty"))
    assert empty["mean"] is None and "not a CLIP model folder" in empty["skipped"]
