"""Staging: who stands where, how big, facing whom, in which pose, holding what."""

from __future__ import annotations

import pytest

from autokose.poses import KEYPOINT_NAMES, POSES, K, place, resolve_pose
from autokose.previz.demo import board_story, make_story, scene
from autokose.staging import Layout, layout_scene, stage_story, staging_key
from autokose.story import Blocking


def lay(*scenes: dict) -> list[Layout]:
    return stage_story(make_story(*scenes))


def fig(layout: Layout, cid: str):
    return next(f for f in layout.figures if f.id == cid)


def kp(figure, name: str) -> tuple[float, float, float]:
    return figure.keypoints[K[name]]


def test_one_figure_per_character_humans_have_18_keypoints_animals_none():
    for story_scene, layout in zip(board_story().scenes, stage_story(board_story())):
        assert sorted(f.id for f in layout.figures) == sorted(story_scene.characters)
        for f in layout.figures:
            if f.kind in ("donkey", "horse"):
                assert f.keypoints == []
                x0, y0, x1, y1 = f.box
                assert x1 > x0 and y1 > y0
            else:
                assert len(f.keypoints) == len(KEYPOINT_NAMES) == 18


def test_shot_size_changes_figure_scale():
    heights = {}
    for shot in ("establishing", "wide", "medium", "close_up"):
        (layout,) = lay(scene(["aldar", "bai"], shot=shot))
        heights[shot] = fig(layout, "aldar").height
    assert heights["close_up"] > heights["medium"] > heights["wide"] > heights["establishing"]


def test_close_up_fills_the_frame_with_the_key_characters_head():
    (layout,) = lay(scene(["aldar", "bai"], shot="close_up"))
    aldar, bai = fig(layout, "aldar"), fig(layout, "bai")
    assert layout.focus == "aldar"
    nose_x, nose_y, conf = kp(aldar, "Nose")
    assert conf > 0 and 0.25 < nose_x < 0.75 and 0.2 < nose_y < 0.7
    assert kp(aldar, "RAnkle")[2] == 0  # feet far below the frame: not visible
    assert all(c == 0 for _, _, c in bai.keypoints)  # the other character is out of shot


def test_left_to_right_order_follows_the_scene():
    (a,) = lay(scene(["aldar", "bai", "merchant"], shot="wide"))
    (b,) = lay(scene(["merchant", "bai", "aldar"], shot="wide"))
    assert fig(a, "aldar").x < fig(a, "bai").x < fig(a, "merchant").x
    assert fig(b, "merchant").x < fig(b, "bai").x < fig(b, "aldar").x


def test_characters_face_each_other():
    (layout,) = lay(scene(["aldar", "bai"], shot="wide"))
    assert fig(layout, "aldar").facing == 1 and fig(layout, "bai").facing == -1
    (alone,) = lay(scene(["aldar"], {"aldar": ("walk",)}, shot="wide"))
    assert fig(alone, "aldar").facing == 1  # travellers go left to right
    (party,) = lay(scene(["aldar", "donkey"], {"aldar": ("walk",), "donkey": ("walk",)}, shot="wide"))
    assert [f.facing for f in party.figures] == [1, 1]  # ... together


def test_mirroring_keeps_a_front_view():
    """Facing either way, the right shoulder stays on the viewer's left (an OpenPose front view)."""
    (layout,) = lay(scene(["aldar", "bai"], shot="wide"))
    for cid in ("aldar", "bai"):
        f = fig(layout, cid)
        assert kp(f, "RShoulder")[0] < kp(f, "LShoulder")[0]
        nose_ahead = (kp(f, "Nose")[0] - kp(f, "Neck")[0]) * f.facing
        assert nose_ahead > 0  # the face points the way the figure faces


BEHIND = ("stand", "neutral", None, "behind")


@pytest.mark.parametrize("cast", [["aldar", "bai", "servant1", "servant2"],
                                  ["aldar", "bai", "baibishe", "servant1", "servant2"]])
def test_behind_puts_characters_in_a_smaller_higher_back_row_drawn_first(cast):
    (layout,) = lay(scene(cast, {"servant1": BEHIND, "servant2": BEHIND}, shot="wide"))
    bai, aldar = fig(layout, "bai"), fig(layout, "aldar")
    assert not bai.behind and not aldar.behind
    order = [f.id for f in layout.figures]
    for cid in ("servant1", "servant2"):
        servant = fig(layout, cid)
        assert servant.behind
        assert servant.height < aldar.height and servant.ground < bai.ground
        assert order.index(cid) < order.index("bai")
        # They flank the key character's counterpart (the one they serve), facing him.
        assert abs(servant.x - bai.x) < abs(servant.x - aldar.x)
        assert servant.facing == (1 if bai.x >= servant.x else -1)


def test_without_behind_everyone_stands_in_one_row():
    (layout,) = lay(scene(["aldar", "bai", "servant1"], shot="wide", action="Aldar greets the Bai and his servant."))
    assert not any(f.behind for f in layout.figures)
    assert len({f.ground for f in layout.figures}) == 1


def test_staging_reads_place_never_the_action_prose():
    """"Позади" in the prose moves nobody; editing the prose keeps a saved layout (action is unstaged)."""
    prose = "Бай сидит на ковре. Слуги стоят позади Бая. Behind the Bai stand his servants."
    story = make_story(scene(["aldar", "bai", "servant1", "servant2"], shot="wide", action=prose))
    (layout,) = stage_story(story)
    assert not any(f.behind for f in layout.figures)
    edited = story.scenes[0].model_copy(update={"action": "Something else entirely."})
    assert staging_key(story, edited) == staging_key(story, story.scenes[0])
    placed = edited.model_copy(update={"blocking": {"servant1": Blocking(place="behind")}})
    assert staging_key(story, placed) != staging_key(story, edited)


def test_everyone_behind_means_nobody_is_and_left_right_pick_the_ends_of_the_row():
    (all_back,) = lay(scene(["aldar", "bai"], {"aldar": BEHIND, "bai": BEHIND}, shot="wide"))
    assert not any(f.behind for f in all_back.figures) and len({f.ground for f in all_back.figures}) == 1
    left, right = ("stand", "neutral", None, "left"), ("stand", "neutral", None, "right")
    (layout,) = lay(scene(["aldar", "bai", "merchant"], {"merchant": left, "aldar": right}, shot="wide"))
    assert fig(layout, "merchant").x < fig(layout, "bai").x < fig(layout, "aldar").x
    (front,) = lay(scene(["aldar", "bai"], {"aldar": ("stand", "neutral", None, "front")}, shot="wide"))
    (plain,) = lay(scene(["aldar", "bai"], shot="wide"))
    assert front.figures == plain.figures


def test_pose_changes_keypoints_and_unknown_pose_is_an_error():
    stand, point = (
        fig(lay(scene(["aldar", "bai"], {"aldar": (pose,)}, shot="wide"))[0], "aldar") for pose in ("stand", "point")
    )
    assert stand.keypoints != point.keypoints
    with pytest.raises(ValueError, match="unknown pose 'juggle'.*stand"):  # issue 10: never a silent "stand"
        scene(["aldar", "bai"], {"aldar": ("juggle",)}, shot="wide")
    wrist_reach = lambda f: max(abs(kp(f, w)[0] - kp(f, "Neck")[0]) for w in ("RWrist", "LWrist"))
    assert wrist_reach(point) > wrist_reach(stand) * 2
    assert point.emotion == "neutral"
    (angry,) = lay(scene(["aldar"], {"aldar": ("stand", "angry")}))
    assert fig(angry, "aldar").emotion == "angry"


def test_pose_library_is_complete_and_aliases_resolve():
    for name in ("stand", "walk", "point", "hold", "bow", "sit", "ride", "run", "argue", "laugh"):
        assert name in POSES and len(POSES[name]) == 18
    assert resolve_pose("Running") == "run" and resolve_pose(None) == "stand" and resolve_pose("flee") == "run"


def test_keypoints_outside_the_frame_have_zero_confidence():
    points = place("stand", x=0.02, ground=1.3, height=1.2, facing=1, aspect=16 / 9)
    for (x, y, c), name in zip(points, KEYPOINT_NAMES):
        inside = 0 <= x <= 1 and 0 <= y <= 1
        assert (c > 0) == (inside and name != "LEar"), name


def test_ride_puts_the_rider_on_the_animal():
    (layout,) = lay(scene(["aldar", "donkey"], {"aldar": ("ride",)}, shot="wide"))
    aldar, donkey = fig(layout, "aldar"), fig(layout, "donkey")
    assert aldar.mount == "donkey" and aldar.pose == "ride"
    x0, y0, x1, y1 = donkey.box
    hip_x, hip_y, _ = kp(aldar, "RHip")
    assert x0 < hip_x < x1 and y0 < hip_y < y1  # sitting on its back
    assert layout.figures.index(donkey) < layout.figures.index(aldar)  # the rider is drawn over it
    (on_foot,) = lay(scene(["aldar"], {"aldar": ("ride",)}, shot="wide"))
    assert fig(on_foot, "aldar").mount is None


def test_held_prop_sits_at_the_hand():
    (layout,) = lay(scene(["aldar", "bai"], {"bai": ("argue", "angry", "whip"), "aldar": ("hold", "sly", "golden egg")}))
    whip = next(p for p in layout.props if p.holder == "bai")
    bai = fig(layout, "bai")
    wrist = kp(bai, "LWrist" if bai.facing > 0 else "RWrist")  # argue shakes the far hand
    assert whip.kind == "whip" and whip.grip == "one"
    assert (whip.x, whip.y) == pytest.approx(wrist[:2], abs=1e-4)
    egg = next(p for p in layout.props if p.holder == "aldar")
    aldar = fig(layout, "aldar")
    mid = [(kp(aldar, "RWrist")[i] + kp(aldar, "LWrist")[i]) / 2 for i in (0, 1)]
    assert egg.kind == "golden_egg" and egg.grip == "both" and (egg.x, egg.y) == pytest.approx(mid, abs=1e-4)


def test_loose_props_rest_between_the_figures():
    (layout,) = lay(scene(["aldar", "bai"], shot="wide", props=["казан"]))
    (cauldron,) = layout.props
    assert cauldron.kind == "cauldron" and cauldron.holder is None
    assert fig(layout, "aldar").x < cauldron.x < fig(layout, "bai").x


def test_insert_shows_the_key_prop_large_in_the_middle():
    (layout,) = lay(scene(["aldar", "bai"], {"aldar": ("stand", "sly", "golden egg")}, shot="insert",
                          props=["golden egg"]))
    (egg,) = layout.props
    assert egg.size > 0.3 and abs(egg.x - 0.5) < 0.05 and 0.3 < egg.y < 0.7
    assert egg.holder == "aldar" and fig(layout, "aldar").pose == "hold"
    assert all(c == 0 for _, _, c in fig(layout, "bai").keypoints)


def test_over_the_shoulder_shows_one_back_large_at_the_side():
    (layout,) = lay(scene(["aldar", "bai"], shot="over_the_shoulder"))
    aldar, bai = fig(layout, "aldar"), fig(layout, "bai")
    assert aldar.view == "front" and bai.view == "back"
    assert bai.height > 1.5 * aldar.height and abs(bai.x - 0.5) > abs(aldar.x - 0.5)
    assert kp(bai, "Nose")[2] == 0  # the face is turned away
    assert kp(bai, "RShoulder")[0] > kp(bai, "LShoulder")[0]  # seen from behind
    assert (aldar.facing > 0) == (bai.x > aldar.x)
    assert layout.figures[-1].id == "bai"  # foreground, drawn last


def test_staging_is_deterministic_and_round_trips():
    story = board_story()
    first, second = stage_story(story), stage_story(story)
    assert [a.model_dump() for a in first] == [b.model_dump() for b in second]
    assert Layout.model_validate_json(first[1].model_dump_json()) == first[1]
    assert layout_scene(story, story.scenes[2]) == first[2]


def test_aspect_ratio_keeps_figures_in_proportion():
    story = make_story(scene(["aldar"], shot="wide"))
    wide, square = (fig(layout_scene(story, story.scenes[0], a), "aldar") for a in (16 / 9, 1.0))
    shoulders = lambda f: kp(f, "LShoulder")[0] - kp(f, "RShoulder")[0]
    assert shoulders(square) == pytest.approx(shoulders(wide) * 16 / 9, rel=1e-3)


def test_shots_that_cannot_be_framed_fall_back_to_medium():
    lone_ots, bare_insert = lay(scene(["aldar", "donkey"], shot="over_the_shoulder"), scene(["aldar"], shot="insert"))
    assert lone_ots.shot == bare_insert.shot == "medium"
    assert not any(f.view == "back" for f in lone_ots.figures) and bare_insert.props == []


def test_a_rider_framed_on_their_own_dismounts():
    (close,) = lay(scene(["aldar", "horse"], {"aldar": ("ride", "happy")}, shot="close_up"))
    aldar = fig(close, "aldar")
    assert aldar.mount is None and aldar.pose == "stand" and kp(aldar, "Nose")[2] > 0


def test_medium_shot_keeps_a_riders_head_in_frame():
    (layout,) = lay(scene(["aldar", "bai", "horse"], {"bai": ("ride",)}, shot="medium"))
    bai = fig(layout, "bai")
    assert bai.mount == "horse" and kp(bai, "Nose")[1] > 0.12
