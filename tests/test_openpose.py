"""OpenPose controls: JSON in the OpenPose format with character ids, skeletons in annotator colours."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autokose.openpose import COLOURS, LIMB_SHADE, LIMBS, draw_pose, pose_json
from autokose.poses import K
from autokose.previz.demo import make_story, scene
from autokose.staging import stage_story

W, H = 320, 180


@pytest.fixture(scope="module")
def layout():
    (layout,) = stage_story(make_story(scene(["aldar", "donkey", "bai"], {"bai": ("point",)}, shot="wide")))
    return layout


def test_pose_json_format_and_character_ids(layout):
    data = json.loads(json.dumps(pose_json(layout, W, H)))  # plain JSON types only
    assert data["canvas_width"] == W and data["canvas_height"] == H and "version" in data
    assert [p["character_id"] for p in data["people"]] == ["aldar", "bai"]  # the donkey has no skeleton
    for person in data["people"]:
        points = person["pose_keypoints_2d"]
        assert len(points) == 18 * 3
        figure = next(f for f in layout.figures if f.id == person["character_id"])
        for i, (x, y, c) in enumerate(figure.keypoints):
            if c > 0:
                assert points[3 * i: 3 * i + 3] == pytest.approx([x * W, y * H, c], abs=0.01)
            else:
                assert points[3 * i: 3 * i + 3] == [0, 0, 0]


def test_pose_json_leaves_out_people_with_nothing_in_frame():
    (close,) = stage_story(make_story(scene(["aldar", "bai"], shot="close_up")))
    assert [p["character_id"] for p in pose_json(close, W, H)["people"]] == ["aldar"]


def test_draw_pose_uses_the_annotator_colours(layout):
    image = draw_pose(layout, W, H)
    assert image.size == (W, H) and image.mode == "RGB"
    pixels = np.asarray(image)
    assert tuple(pixels[0, 0]) == (0, 0, 0)
    bai = next(f for f in layout.figures if f.id == "bai")
    # A joint is a disc in its full colour (drawn after the limbs).
    nx, ny, _ = bai.keypoints[K["Neck"]]
    assert tuple(pixels[int(ny * H), int(nx * W)]) == COLOURS[K["Neck"]]
    # A limb is drawn in 60 % of its colour: check the middle of the right thigh (hip → knee).
    limb = LIMBS.index((K["RHip"], K["RKnee"]))
    (x0, y0, _), (x1, y1, _) = bai.keypoints[K["RHip"]], bai.keypoints[K["RKnee"]]
    mid = pixels[int((y0 + y1) / 2 * H), int((x0 + x1) / 2 * W)]
    assert tuple(mid) == tuple(int(c * LIMB_SHADE) for c in COLOURS[limb])


def test_draw_pose_changes_with_the_pose():
    a, b = (stage_story(make_story(scene(["aldar"], {"aldar": (pose,)})))[0] for pose in ("stand", "argue"))
    assert draw_pose(a, W, H).tobytes() != draw_pose(b, W, H).tobytes()
    assert draw_pose(a, W, H).tobytes() == draw_pose(a, W, H).tobytes()
