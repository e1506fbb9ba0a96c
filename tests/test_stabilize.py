"""Face stabilisation (`--stabilize-face`): the face held still, then the camera motion put back.

On real footage (8 frames of ../shared's Hamilton clip, a close-up where the actor moves his
head, at short side 256) the face moves less between stabilised frames than between the input
frames, and restore(stabilize(x)) gives back x away from the borders, the actor's motion with it.
"""

import numpy as np
import pytest

from autokose import faces
from autokose.errors import InputError
from autokose.video import stabilize as st

pytestmark = pytest.mark.skipif(not faces.available(), reason="dlib / face_recognition_models not installed")

CLIP_START, CLIP_FRAMES = 150, 8  # the close-up: one face, moving, no cut


def clip_frames(path, start: int, count: int, short_side: int = 256) -> list[np.ndarray]:
    """`count` RGB frames from frame `start`, resized to `short_side` (OpenCV reads the MP4)."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        for index in range(start + count):
            ok, bgr = capture.read()
            if not ok:
                break
            if index >= start:
                h, w = bgr.shape[:2]
                size = (round(w * short_side / min(h, w)), round(h * short_side / min(h, w)))
                frames.append(cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if len(frames) < count:
        pytest.skip(f"could not read {count} frames from {path}")
    return frames


@pytest.fixture(scope="module")
def clip():
    from conftest import SHARED

    path = SHARED / "video" / "short_hamilton_clip.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is not beside this checkout")
    frames = clip_frames(path, CLIP_START, CLIP_FRAMES)
    return frames, st.track_face(frames)


def _jitter(frames) -> float:
    """Mean frame-to-frame movement (px) of the eye centres and nose tip, found again by dlib."""
    points = [st.face_points(f) for f in frames]
    assert all(p is not None for p in points), "the face was lost"
    return float(np.mean([np.abs(b - a).mean() for a, b in zip(points, points[1:])]))


@pytest.mark.slow
def test_track_finds_the_face_in_every_frame_of_the_close_up(clip):
    frames, track = clip
    assert len(track) == CLIP_FRAMES and track.found.all()
    assert set(track.segment) == {0}  # one shot: one segment
    assert track.size == (frames[0].shape[1], frames[0].shape[0])
    assert not np.isnan(track.points).any()


@pytest.mark.slow
def test_stabilize_moves_the_face_less_than_the_input(clip):
    frames, track = clip
    stable = st.stabilize(frames, track)
    assert [f.shape for f in stable] == [f.shape for f in frames] and stable[0].dtype == np.uint8
    before, after = _jitter(frames), _jitter(stable)
    assert after < 0.5 * before, (before, after)  # measured: 3.2 px -> 0.4 px


@pytest.mark.slow
def test_restore_gives_back_the_input_and_its_motion(clip):
    import cv2

    frames, track = clip
    restored = st.restore(st.stabilize(frames, track), track)
    coverage = st.restore_coverage(track)
    errors = []
    for source, back, cover in zip(frames, restored, coverage):
        assert cover.shape == source.shape[:2] and 0.0 <= cover.min() and cover.max() <= 1.0
        inside = cv2.erode((cover > 0.999).astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
        assert inside.mean() > 0.7  # most of the frame comes back
        errors.append(np.abs(source.astype(np.float64) - back)[inside].mean())
    assert np.mean(errors) < 3.0, errors  # two bilinear resamplings of 0..255 pixels; measured ~0.6
    # The face's path in the restored video is the input's (the camera motion is back).
    moved = [st.face_points(f) for f in restored]
    assert np.mean([np.abs(m - p).mean() for m, p in zip(moved, track.points)]) < 1.5
    assert _jitter(restored) == pytest.approx(_jitter(frames), abs=0.75)


def test_frames_without_a_face_are_left_as_they_are():
    frames = [np.full((64, 96, 3), v, dtype=np.uint8) for v in (10, 20, 30)]
    track = st.track_face(frames)
    assert not track.found.any() and (track.segment == -1).all()
    assert np.allclose(track.matrices, np.eye(3)[:2])
    for source, out in zip(frames, st.restore(st.stabilize(frames, track), track)):
        assert np.array_equal(source, out)


def _track(poses) -> st.FaceTrack:
    """A track whose face poses (cx, cy, log eye distance, roll) are given, as track_face builds it."""
    poses = np.asarray(poses, dtype=np.float64)
    found = np.ones(len(poses), dtype=bool)
    segment = st._segments(poses, found, max_gap=6, cut=1.0)
    matrices = np.tile(np.eye(3)[:2], (len(poses), 1, 1))
    for s in range(segment.max() + 1):
        idx = np.flatnonzero(segment == s)
        target = poses[idx].mean(axis=0)
        for t in idx:
            matrices[t] = st._similarity(poses[t], target, True)
    return st.FaceTrack(matrices, np.zeros((len(poses), 3, 2)), found, segment, (200, 100))


def test_a_shot_cut_starts_a_new_segment_held_at_its_own_pose():
    eye = np.log(20.0)
    track = _track([(50, 50, eye, 0.0), (52, 50, eye, 0.0), (150, 60, eye, 0.0), (151, 60, eye, 0.0)])
    assert list(track.segment) == [0, 0, 1, 1]
    # Within a segment the face goes to the segment's mean pose: small shifts, not across the cut.
    assert track.matrices[0][0, 2] == pytest.approx(1.0) and track.matrices[2][0, 2] == pytest.approx(0.5)


def test_similarity_moves_points_of_one_pose_onto_the_other_and_inverts():
    src = st._pose(np.array([[10.0, 10.0], [30.0, 12.0], [20.0, 25.0]]))
    dst = st._pose(np.array([[50.0, 40.0], [90.0, 40.0], [70.0, 70.0]]))
    m = st._similarity(src, dst, True)
    moved = st._pose((m[:, :2] @ np.array([[10.0, 10.0], [30.0, 12.0], [20.0, 25.0]]).T).T + m[:, 2])
    assert np.allclose(moved[[2, 3]], dst[[2, 3]])  # same eye distance and roll
    assert np.allclose(st._full(st.invert(m)) @ st._full(m), np.eye(3))


def test_transforms_follow_frames_of_another_size():
    track = _track([(50, 50, np.log(20.0), 0.0), (60, 55, np.log(22.0), 0.1)])
    small = track.matrix(1)
    big = track.matrix(1, 400, 200)  # the stylised frames are twice the tracked size
    def up(xy):  # a pixel centre of the tracked frames -> the same point of the doubled frames
        return 2 * np.asarray(xy) + 0.5

    p = np.array([37.0, 21.0])
    assert np.allclose(big @ [*up(p), 1.0], up(small @ [*p, 1.0]))
    assert np.allclose(track.matrix(1, 200, 100), small)


def test_bad_frames_are_refused_in_one_line():
    track = _track([(50, 50, np.log(20.0), 0.0)])
    with pytest.raises(InputError, match="2 frames but the face track has 1"):
        st.stabilize([np.zeros((100, 200, 3), np.uint8)] * 2, track)
    with pytest.raises(InputError, match="uint8 RGB"):
        st.stabilize([np.zeros((100, 200, 3), np.float32)], track)
    with pytest.raises(InputError, match="no frames"):
        st.track_face([])
