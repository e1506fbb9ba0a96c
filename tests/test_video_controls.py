"""Controls from footage: OpenPose skeletons from mediapipe, lineart, person / key / mouth masks.

Real footage: 8 frames of ../shared's Hamilton clip (a close-up of the singer, at short side 256).
The pose detector finds him in every frame and the JSON it writes is the board's control/ format.
"""

import importlib.util
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from autokose import faces, fsio
from autokose.errors import InputError
from autokose.openpose import pose_json
from autokose.poses import KEYPOINT_NAMES, K
from autokose.video import controls

needs_mediapipe = pytest.mark.skipif(importlib.util.find_spec("mediapipe") is None,
                                     reason="mediapipe not installed (pip install 'autokose[footage]')")
needs_dlib = pytest.mark.skipif(not faces.available(), reason="dlib / face_recognition_models not installed")

CLIP_START, CLIP_FRAMES = 150, 8


@pytest.fixture(scope="module")
def frames():
    from conftest import SHARED
    from test_stabilize import clip_frames

    path = SHARED / "video" / "short_hamilton_clip.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is not beside this checkout")
    return clip_frames(path, CLIP_START, CLIP_FRAMES)


# --------------------------------------------------------------------------- pose
def _landmarks(**visible) -> list:
    """33 fake mediapipe landmarks: landmark i at (i/100, i/50), visibility 0.9 unless given."""
    return [SimpleNamespace(x=i / 100, y=i / 50, visibility=visible.get(f"v{i}", 0.9)) for i in range(33)]


def test_mediapipe_landmarks_map_onto_the_openpose_18():
    points = controls.from_mediapipe(_landmarks())
    assert len(points) == len(KEYPOINT_NAMES) == 18
    # The person's right shoulder is mediapipe's 12, left 11; the neck is their midpoint.
    assert points[K["RShoulder"]] == (0.12, 0.24, 0.9) and points[K["LShoulder"]] == (0.11, 0.22, 0.9)
    assert points[K["Neck"]] == pytest.approx((0.115, 0.23, 0.9))
    assert points[K["Nose"]][:2] == (0.0, 0.0) and points[K["RHip"]][:2] == (0.24, 0.48)
    assert points[K["REye"]][:2] == (0.05, 0.1) and points[K["LEar"]][:2] == (0.07, 0.14)


def test_landmarks_mediapipe_only_guesses_are_absent():
    points = controls.from_mediapipe(_landmarks(v24=0.2, v11=0.1))
    assert points[K["RHip"]] == (0.0, 0.0, 0.0)
    assert points[K["LShoulder"]] == (0.0, 0.0, 0.0) and points[K["Neck"]] == (0.0, 0.0, 0.0)
    assert points[K["RShoulder"]][2] == 0.9


def test_pose_image_and_json_are_the_storyboards():
    points = controls.from_mediapipe(_landmarks())
    image = controls.pose_image(points, 320, 180)
    assert image.shape == (180, 320, 3) and image.dtype == np.uint8 and image.any()
    data = controls.openpose_json(points, 320, 180, person="aldar")
    (person,) = data["people"]
    assert person["character_id"] == "aldar" and len(person["pose_keypoints_2d"]) == 54
    assert person["pose_keypoints_2d"][3:6] == [pytest.approx(0.115 * 320), pytest.approx(0.23 * 180), 0.9]
    # Same keys as the board's control/NN_pose.json, which autokose.openpose writes from a layout.
    from autokose.staging import Layout
    from autokose.story import Shot

    board = pose_json(Layout(index=0, shot=Shot.wide, setting="steppe"), 320, 180)
    assert data.keys() == board.keys() and data["keypoint_names"] == list(KEYPOINT_NAMES)
    empty = controls.openpose_json(None, 320, 180)
    assert empty["people"] == [] and not controls.pose_image(None, 32, 18).any()
    with pytest.raises(InputError, match="18 OpenPose keypoints"):
        controls.pose_image(points[:5], 32, 18)


@needs_mediapipe
@pytest.mark.slow
def test_pose_detector_finds_the_person_and_writes_openpose_json(frames, tmp_path):
    height, width = frames[0].shape[:2]
    with controls.PoseDetector() as detect:
        found = [detect(f) for f in frames]
    assert all(k is not None for k in found), "mediapipe lost the person"
    for keypoints in found:
        for name in ("Nose", "Neck", "RShoulder", "LShoulder", "REye", "LEye"):
            x, y, c = keypoints[K[name]]
            assert c > 0.5 and 0 <= x <= 1 and 0 <= y <= 1, name
        nose, neck = keypoints[K["Nose"]], keypoints[K["Neck"]]
        assert nose[1] < neck[1]  # upright: the head above the shoulders
    # Written as the board writes control/NN_pose.json, then read back.
    path = fsio.write_json(tmp_path / "control" / "150_pose.json", controls.openpose_json(found[0], width, height))
    data = json.loads(path.read_text())
    (person,) = data["people"]
    xs, ys = person["pose_keypoints_2d"][0::3], person["pose_keypoints_2d"][1::3]
    assert max(xs) <= width and max(ys) <= height and data["canvas_width"] == width
    image = controls.pose_image(found[0], width, height)
    nx, ny, _ = found[0][K["Nose"]]
    assert tuple(image[int(ny * height), int(nx * width)]) == (255, 0, 0)  # the nose's disc, OpenPose red


@needs_mediapipe
@pytest.mark.slow
def test_pose_detector_in_video_mode_tracks_every_frame(frames):
    with controls.PoseDetector(video=True) as detect:
        found = [detect(f) for f in frames]
    assert all(k is not None for k in found)
    necks = np.array([k[K["Neck"]][:2] for k in found])
    assert np.abs(np.diff(necks, axis=0)).max() < 0.1  # steady from frame to frame


def test_missing_mediapipe_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe -> ImportError
    with pytest.raises(InputError, match=r"autokose\[footage\]"):
        controls.PoseDetector()
    with pytest.raises(InputError, match=r"autokose\[footage\]"):
        controls.PersonSegmenter()


# --------------------------------------------------------------------------- lineart
def test_lineart_is_white_lines_on_black(frames):
    lines = controls.lineart(frames[0])
    assert lines.shape == frames[0].shape and lines.dtype == np.uint8
    assert set(np.unique(lines)) <= {0, 255} and (lines[..., 0] == lines[..., 2]).all()
    assert 0.01 < (lines[..., 0] > 0).mean() < 0.25  # outlines, not noise
    assert not controls.lineart(np.full((64, 64, 3), 90, np.uint8)).any()  # a flat frame has no lines
    thick = controls.lineart(frames[0], thickness=3)
    assert (thick > 0).mean() > (lines > 0).mean()


def test_a_bad_frame_is_refused_in_one_line():
    with pytest.raises(InputError, match="HxWx3 uint8"):
        controls.lineart(np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="HxWx3 uint8"):
        controls.key_mask(np.zeros((8, 8, 3), np.float32))


# --------------------------------------------------------------------------- masks
@needs_mediapipe
@pytest.mark.slow
def test_person_mask_covers_the_singer(frames):
    with controls.PoseDetector() as detect:
        keypoints = detect(frames[0])
    mask = controls.person_mask(frames[0])
    height, width = frames[0].shape[:2]
    assert mask.shape == (height, width) and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0
    for name in ("Nose", "Neck"):
        x, y, _ = keypoints[K[name]]
        assert mask[int(y * height), int(x * width)] > 0.5, name
    assert 0.05 < (mask > 0.5).mean() < 0.8
    assert mask[:, : width // 10].mean() < 0.2  # the curtain at the left edge is background


def test_key_mask_keys_out_the_screen_and_keeps_the_actor(frames):
    actor = frames[0]
    height, width = actor.shape[:2]
    screen = np.zeros((height + 40, width + 40, 3), np.uint8)
    screen[:] = (20, 170, 70)  # a real green screen is not the key's exact colour
    screen[20:-20, 20:-20] = actor
    mask = controls.key_mask(screen, "green")
    assert mask.shape == screen.shape[:2] and mask.dtype == np.float32
    assert mask[:10].max() < 0.05 and mask[:, -10:].max() < 0.05
    assert mask[20:-20, 20:-20].mean() > 0.95
    blue = controls.key_mask(screen, "#0047bb")  # the same frame keyed for blue keeps the green
    assert blue[:10].min() > 0.95
    assert np.array_equal(controls.key_mask(screen, (0, 177, 64)), mask)


@pytest.mark.parametrize("colour", ["chartreuse-ish", "#12345", (0, 300, 0), (1, 2), "#808080"])
def test_bad_key_colours_are_refused(colour):
    with pytest.raises(InputError, match="key colour"):
        controls.key_mask(np.zeros((8, 8, 3), np.uint8), colour)


def test_key_tolerance_must_be_a_fraction():
    with pytest.raises(InputError, match="tolerance"):
        controls.key_mask(np.zeros((8, 8, 3), np.uint8), "green", tolerance=0)


@needs_dlib
def test_mouth_mask_sits_on_the_mouth(frames):
    frame = frames[0]
    mask = controls.mouth_mask(frame)
    assert mask.shape == frame.shape[:2] and mask.dtype == np.float32
    assert mask.max() > 0.9 and mask.min() == 0.0
    assert 0.0005 < (mask > 0.5).mean() < 0.05  # the mouth, not the face
    box = faces.detect_faces(frame)[0]
    marks = faces.face_landmarks(frame, box, points=68)
    ys, xs = np.nonzero(mask > 0.5)
    assert marks[33, 1] < ys.mean() < marks[8, 1]  # between the nose's base and the chin
    assert marks[48, 0] < xs.mean() < marks[54, 0]  # between the mouth's corners
    # Soft edge: values between 0 and 1 ring the mouth.
    assert ((mask > 0.05) & (mask < 0.95)).sum() > (mask >= 0.95).sum() * 0.3
    assert not controls.mouth_mask(np.zeros((64, 64, 3), np.uint8)).any()  # no face: zeros
