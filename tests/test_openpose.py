"""OpenPose controls: JSON in the OpenPose format with character ids, skeletons in annotator colours."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from autokose.openpose import COLOURS, JOINT_RADIUS, LIMB_SHADE, LIMBS, draw_pose, pose_json
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


# --------------------------------------------------------------------------- the board's skeletons reach the ControlNet
BW, BH = 96, 64  # multiples of 8: the generation size is the board size, so controls match pixel for pixel


def cli(*args):
    from typer.testing import CliRunner

    from autokose.app.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def skeleton_pixels_match_keypoints(image: np.ndarray, people: list[list[float]]) -> tuple[int, int, int]:
    """(joints whose colour is drawn around them, joints sitting on some joint colour, visible joints).

    A joint's disc may be partly covered by a later joint's (eyes and ears are close), so its own
    colour is looked for within the disc's radius.
    """
    h, w, _ = image.shape
    near = on_joint = total = 0
    for points in people:
        for k in range(18):
            x, y, c = points[3 * k: 3 * k + 3]
            if c > 0 and 0 <= int(x) < w and 0 <= int(y) < h:
                total += 1
                x, y = int(x), int(y)
                disc = image[max(0, y - JOINT_RADIUS): y + JOINT_RADIUS + 1, max(0, x - JOINT_RADIUS): x + JOINT_RADIUS + 1]
                near += bool((disc == COLOURS[k]).all(-1).any())
                on_joint += tuple(image[y, x]) in COLOURS
    return near, on_joint, total


@pytest.fixture(scope="module")
def staged_board(tmp_path_factory):
    out = tmp_path_factory.mktemp("pose-board") / "board"
    result = cli("story", "Aldar Köse sells the greedy Bai a magic coat", "--scenes", "3", "--out", out,
                 "--stages", "write,stage", "--width", 320, "--height", 180)
    assert result.exit_code == 0, result.output
    return out


def test_board_control_images_are_the_staged_skeletons(staged_board):
    """control/NN_pose.png: black ground, joints in the annotator colours at NN_pose.json's keypoints."""
    pngs = sorted((staged_board / "control").glob("*_pose.png"))
    assert len(pngs) == 3
    for png in pngs:
        data = json.loads(png.with_suffix(".json").read_text(encoding="utf-8"))
        image = np.asarray(Image.open(png).convert("RGB"))
        assert image.shape == (data["canvas_height"], data["canvas_width"], 3)
        assert (image.max(-1) > 0).mean() > 0.005, f"{png.name} is (nearly) black"
        people = [p["pose_keypoints_2d"] for p in data["people"]]
        near, on_joint, total = skeleton_pixels_match_keypoints(image, people)
        assert total >= 8 and near >= 0.9 * total and on_joint == total, (png.name, near, on_joint, total)
        # Every colour on the canvas is a joint colour or a limb's 60 % shade (or black, or anti-aliasing-free blends of none).
        palette = {(0, 0, 0), *COLOURS, *(tuple(int(c * LIMB_SHADE) for c in col) for col in COLOURS)}
        colours = {tuple(px) for px in image.reshape(-1, 3)}
        assert colours <= palette, colours - palette


@pytest.mark.slow
def test_controlnet_receives_the_boards_skeletons(tmp_path, monkeypatch):
    """Spy on the tiny ControlNet's forward: its conditioning image is control/NN_pose.png, per frame."""
    import tiny
    import torch
    from diffusers import ControlNetModel

    seen = []
    forward = ControlNetModel.forward

    def spy(self, sample, timestep, encoder_hidden_states, controlnet_cond, *args, **kwargs):
        seen.append(controlnet_cond.detach().float().clone())
        return forward(self, sample, timestep, encoder_hidden_states, controlnet_cond, *args, **kwargs)

    monkeypatch.setattr(ControlNetModel, "forward", spy)
    board = tmp_path / "board"
    result = cli("story", "Aldar Köse sells the greedy Bai a magic coat", "--scenes", "2", "--out", board,
                 "--model", tiny.tiny_sd15(tmp_path), "--controlnet", tiny.tiny_controlnet(tmp_path),
                 "--steps", 2, "--width", BW, "--height", BH, "--stages", "write,stage,render")
    assert result.exit_code == 0, result.output
    assert len(seen) >= 2  # at least one call per denoising step
    skeletons = {i: np.asarray(Image.open(board / "control" / f"{i:02d}_pose.png").convert("RGB")) for i in (1, 2)}
    assert all(sk.max() > 0 for sk in skeletons.values())
    matched = set()
    for cond in seen:
        rows = (cond * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy().astype(int)
        assert rows.shape[1:] == (BH, BW, 3) and len(rows) % 2 == 0
        half = len(rows) // 2  # [uncond frames, cond frames] with CFG: both halves see the same skeletons
        assert np.array_equal(rows[:half], rows[half:])
        for row in rows[:half]:
            frame = [i for i, sk in skeletons.items() if np.abs(row - sk).max() <= 1]
            assert len(frame) == 1, "the ControlNet got an image that is no frame's skeleton"
            matched.add(frame[0])
    assert matched == {1, 2}
