"""dlib face helpers: detection, landmarks and embeddings that tell people apart."""

import numpy as np
import pytest
from PIL import Image

from autokose import faces

pytestmark = pytest.mark.skipif(not faces.available(), reason="dlib / face_recognition_models not installed")


def _people(shared_data):
    people = {}
    for folder in sorted((shared_data / "faces").iterdir()):
        if folder.is_dir():
            people[folder.name] = [Image.open(p) for p in sorted(folder.iterdir())]
    if len(people) < 2:
        pytest.skip("need photos of at least two people in shared/data/faces")
    return people


def test_detects_one_face_per_portrait_in_image_pixels(shared_data):
    for images in _people(shared_data).values():
        for image in images:
            boxes = faces.detect_faces(image)
            assert len(boxes) >= 1
            box = boxes[0]
            assert 0 <= box.left < box.right <= image.width and 0 <= box.top < box.bottom <= image.height
            # A portrait's face is a sizeable part of the picture, not a speck.
            assert box.width > image.width * 0.1


def test_downscaled_search_finds_the_same_face(shared_data):
    image = next(iter(_people(shared_data).values()))[0]
    full = faces.detect_faces(image, max_side=max(image.size))[0]
    small = faces.detect_faces(image, max_side=400)[0]
    assert np.allclose(full, small, atol=0.1 * full.width)


def test_no_face_in_noise():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    assert faces.detect_faces(noise) == []
    assert faces.detect_faces(Image.new("L", (200, 100), 128)) == []


def test_embeddings_separate_people(shared_data):
    people = _people(shared_data)
    embeddings = {}
    for name, images in people.items():
        embeddings[name] = [faces.face_embedding(im, faces.detect_faces(im)[0]) for im in images]
        assert all(e.shape == (128,) and e.dtype == np.float64 for e in embeddings[name])
    names = list(embeddings)
    for name in names:
        if len(embeddings[name]) > 1:
            assert faces.face_distance(*embeddings[name][:2]) < faces.SAME_PERSON_DISTANCE
    for a in names:
        for b in names:
            if a < b:
                assert faces.face_distance(embeddings[a][0], embeddings[b][0]) > faces.SAME_PERSON_DISTANCE


def test_embedding_accepts_a_plain_tuple_box_and_arrays(shared_data):
    image = next(iter(_people(shared_data).values()))[0]
    box = faces.detect_faces(image)[0]
    from_pil = faces.face_embedding(image, box)
    from_array = faces.face_embedding(np.asarray(image.convert("RGB")), tuple(box))
    assert np.allclose(from_pil, from_array)


def test_landmarks_fall_inside_the_face(shared_data):
    image = next(iter(_people(shared_data).values()))[0]
    box = faces.detect_faces(image)[0]
    for points in (5, 68):
        marks = faces.face_landmarks(image, box, points=points)
        assert marks.shape == (points, 2)
        cx, cy = marks.mean(axis=0)
        assert box.left < cx < box.right and box.top < cy < box.bottom


def test_centroid():
    assert faces.embedding_centroid([]) is None
    c = faces.embedding_centroid([np.zeros(128), np.ones(128)])
    assert np.allclose(c, 0.5)
