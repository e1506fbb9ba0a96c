"""dlib face helpers: detection, landmarks and embeddings that tell people apart."""

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autokose import faces

# Two people, two photos each, cropped to 200 px from ../shared/data/faces: the ok/low line is
# tested on every checkout, with or without ../shared.
SHIPPED = Path(__file__).parent / "data" / "faces"

pytestmark = pytest.mark.skipif(not faces.available(), reason="dlib / face_recognition_models not installed")


@pytest.fixture
def face_photos() -> Path:
    """../shared/data/faces when it is beside this checkout, else the photos shipped in tests/data."""
    from conftest import SHARED

    return SHARED / "faces" if (SHARED / "faces").is_dir() else SHIPPED


def _people(photos: Path):
    people = {}
    for folder in sorted(photos.iterdir()):
        if folder.is_dir():
            people[folder.name] = [Image.open(p) for p in sorted(folder.iterdir())]
    if len(people) < 2:
        pytest.skip(f"need photos of at least two people in {photos}")
    return people


def test_detects_one_face_per_portrait_in_image_pixels(face_photos):
    for images in _people(face_photos).values():
        for image in images:
            boxes = faces.detect_faces(image)
            assert len(boxes) >= 1
            box = boxes[0]
            assert 0 <= box.left < box.right <= image.width and 0 <= box.top < box.bottom <= image.height
            # A portrait's face is a sizeable part of the picture, not a speck.
            assert box.width > image.width * 0.1


def test_downscaled_search_finds_the_same_face(face_photos):
    image = next(iter(_people(face_photos).values()))[0]
    full = faces.detect_faces(image, max_side=max(image.size))[0]
    small = faces.detect_faces(image, max_side=400)[0]
    assert np.allclose(full, small, atol=0.1 * full.width)


def test_no_face_in_noise():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    assert faces.detect_faces(noise) == []
    assert faces.detect_faces(Image.new("L", (200, 100), 128)) == []


def test_embeddings_separate_people(face_photos):
    people = _people(face_photos)
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


def test_embedding_accepts_a_plain_tuple_box_and_arrays(face_photos):
    image = next(iter(_people(face_photos).values()))[0]
    box = faces.detect_faces(image)[0]
    from_pil = faces.face_embedding(image, box)
    from_array = faces.face_embedding(np.asarray(image.convert("RGB")), tuple(box))
    assert np.allclose(from_pil, from_array)


def test_landmarks_fall_inside_the_face(face_photos):
    image = next(iter(_people(face_photos).values()))[0]
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


# --------------------------------------------------------------------------- ok / low on shipped data


def _board(root: Path, *frames: Image.Image):
    from autokose.board import Board

    (root / "frames").mkdir(parents=True)
    for n, frame in enumerate(frames, 1):
        frame.save(root / "frames" / f"{n:02d}.png")
    return Board(root)


def _story(cast: list[str], **fields):
    from autokose.story import Character, Scene, Story

    return Story(title="t", logline="Aldar tricks the Bai",
                 characters=[Character(id=c, name=c, **fields.get(c, {})) for c in cast],
                 scenes=[Scene(index=1, characters=cast, prompt="aldarkose on the steppe")])


def _layout(*figures):
    from autokose.staging import Figure, Layout
    from autokose.story import Shot

    return [Layout(index=1, shot=Shot.medium, setting="steppe", figures=[
        Figure(id=cid, x=(box[0] + box[2]) / 2, ground=box[3], height=box[3] - box[1], box=box, keypoints=[])
        for cid, box in figures])]


def test_shipped_photos_separate_two_people_at_the_threshold():
    photos = {p.relative_to(SHIPPED).as_posix(): Image.open(p) for p in sorted(SHIPPED.glob("*/*.jpg"))}
    assert len(photos) == 4 and all(max(im.size) <= 256 for im in photos.values())
    emb = {name: faces.face_embedding(im, faces.detect_faces(im)[0]) for name, im in photos.items()}
    for a, b in itertools.combinations(emb, 2):
        same = a.split("/")[0] == b.split("/")[0]
        assert (faces.face_distance(emb[a], emb[b]) < faces.SAME_PERSON_DISTANCE) == same, (a, b)


@pytest.mark.slow
def test_score_board_says_ok_for_the_right_reference_and_low_for_the_wrong_one(tmp_path):
    """One frame, Obama left and Rose Leslie right; references from their other photos, then swapped."""
    from autokose.score import score_board
    from autokose.score.face import THRESHOLD

    left, right = Image.open(SHIPPED / "obama/1.jpg"), Image.open(SHIPPED / "rose_leslie/1.jpg")
    frame = Image.new("RGB", (left.width + right.width, left.height), "white")
    frame.paste(left, (0, 0))
    frame.paste(right, (left.width, 0))
    board = _board(tmp_path / "board", frame)
    layouts = _layout(("aldar", (0.0, 0.0, 0.5, 1.0)), ("bai", (0.5, 0.0, 1.0, 1.0)))
    refs = {"aldar": str(SHIPPED / "obama/2.jpg"), "bai": str(SHIPPED / "rose_leslie/2.jpg")}

    right_refs = score_board(board, _story(["aldar", "bai"], **{c: {"references": [r]} for c, r in refs.items()}), layouts)
    entry = right_refs["frames"]["01"]
    assert entry["status"] == "ok" and entry["method"] == "face" and entry["faces"] == 2
    assert all(c["distance"] < THRESHOLD and c["identity"] > 0.5 for c in entry["characters"].values())

    swapped = {"aldar": {"references": [refs["bai"]]}, "bai": {"references": [refs["aldar"]]}}
    wrong = score_board(board, _story(["aldar", "bai"], **swapped), layouts)
    entry = wrong["frames"]["01"]
    assert entry["status"] == "low" and wrong["summary"]["frames_low"] == 1
    assert all(c["distance"] > THRESHOLD and c["identity"] < 0.5 for c in entry["characters"].values())


@pytest.mark.parametrize("distance, status", [(0.0, "ok"), (0.59, "ok"), (0.61, "low"), (1.3, "low")])
def test_status_flips_at_the_face_threshold(tmp_path, monkeypatch, distance, status):
    """Synthetic embeddings at a known distance from the card's centroid: ok below 0.6, low above."""
    import autokose.score as score
    import autokose.score.identity as identity
    from autokose.score.face import Face, identity_from_distance

    centroid = np.zeros(128)
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"face_centroid": centroid.tolist()}))
    embedding = np.zeros(128)
    embedding[7] = distance
    monkeypatch.setattr(identity, "find_faces", lambda image, **kw: [Face(faces.FaceBox(10, 10, 60, 60), embedding)])
    board = _board(tmp_path / "board", Image.new("RGB", (120, 90), "grey"))
    scores = score.score_board(board, _story(["aldar"], aldar={"card": str(card)}), _layout(("aldar", (0, 0, 1, 1))))
    entry = scores["frames"]["01"]
    assert entry["method"] == "face" and entry["status"] == status
    assert entry["characters"]["aldar"]["distance"] == pytest.approx(distance, abs=1e-3)  # rounded for scores.json
    assert entry["identity"] == pytest.approx(identity_from_distance(distance), abs=1e-3)
