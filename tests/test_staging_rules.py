"""Staging rules as measurements: each rule sees its own planted defect, and written boards break none."""

from __future__ import annotations

import dataclasses
import re

import pytest

from autokose.bible import builtin_bible
from autokose.poses import K
from autokose.previz.demo import board_story, make_story, scene
from autokose.previz.designs import design_for
from autokose.previz.heads import head
from autokose.staging import Figure, Layout, layout_scene, stage_story, staging_key
from autokose.staging_rules import RULES, check_board, check_layout
from autokose.story import Angle
from autokose.writers import get_writer

DEMO = ("Алдар Косе держит в руках блестящее «золотое яйцо». Бай наклоняется вперёд, глаза широко раскрыты от "
        "удивления. Слуги Бая переглядываются позади.")
LOGLINES = (
    DEMO,
    "Алдар Көсе қолында жылтыраған «алтын жұмыртқаны» ұстап тұр. Бай таңданып, алға еңкейеді.",
    "Aldar Köse holds up a shining “golden egg”. The Bai leans forward, eyes wide with amazement.",
    "Алдар Көсе қасқыр мен түйені алдап, байдың отарын құтқарады.",
    "Жантык и Улпан ведут верблюда на базар, а Алдар Косе обманывает жадного бая.",
    "Aldar sells the Bai a magic shuba.",
    "Aldar Köse tricks the greedy Bai out of his fur coat.",
    "Алдар Косе выменивает у бая шубу на дырявый чапан.",
    "Алдар Көсе байдан тонын алады.",
    "A wolf steals a sheep and Aldar Köse chases it across the steppe on his horse.",
    "Алдар Косе продаёт купцу на базаре волшебный котёл.",
    "Aldar Köse and the merchant argue over a purse of coins at the bazaar.",
    "Мулла и шайтан спорят, кто из них хитрее, а Алдар смеётся.",
    "Aldar rides his donkey to the aul and bows to the Bai's wife.",
    "Алдар Көсе есегіне мініп, ауылға келеді.",
    "Бай жалғыз ешкісін базарға апарады, Алдар оны алдайды.",
    "The Bai's servants carry a cauldron while Aldar tells them it cooks by itself.",
    "Алдар Косе учит орла говорить и продаёт его баю.",
    "A dog guards the Bai's yurt at night; Aldar sneaks in for the whip.",
    "Aldar trades his patched chapan for the merchant's saddle.",
    "Байбише угощает Алдара чаем, а бай сердится.",
    "Алдар Көсе түйе сатып алып, қасқырдан қашады.",
    "Aldar Köse and a camel cross the desert to the well.",
    "Алдар Косе встречает волка у колодца и уговаривает его уйти.",
    "The Bai demands a sheep from every shepherd; Aldar teaches him a lesson.",
    "Aldar Köse sells the greedy merchant a whip that makes a horse fly.",
    "Алдар ведёт барана на базар и меняет его на золотое яйцо.",
    "Ұлпан мен Жантық Алдар Көсеге көмектеседі.",
    "Aldar Köse rests by the river; a goat eats his carpet.",
    "В горах Алдар Косе находит мешок монет и возвращает его хозяину.",
    "Бай сидит на ковре и пересчитывает деньги, Алдар стучится в юрту.",
    "The mullah points at Aldar and shouts that he stole the golden egg.",
)


@pytest.fixture(scope="module")
def bible():
    return builtin_bible()


def rules(violations) -> list[str]:
    return sorted(v.rule for v in violations)


def only(story_scene: dict) -> tuple[Layout, object]:
    story = make_story(story_scene)
    return layout_scene(story, story.scenes[0]), story.scenes[0]


def figure(layout: Layout, cid: str):
    return next(f for f in layout.figures if f.id == cid)


def replace(layout: Layout, cid: str, **update) -> Layout:
    figures = [f.model_copy(update=update) if f.id == cid else f for f in layout.figures]
    return layout.model_copy(update={"figures": figures})


def with_point(f, name: str, conf: float | None = None, dy: float = 0.0):
    points = list(f.keypoints)
    x, y, c = points[K[name]]
    points[K[name]] = (x, y + dy, c if conf is None else conf)
    return points


# -- every rule sees its own defect, and nothing else ---------------------------------------------
def test_rules_are_named_and_the_demo_board_breaks_none():
    story = board_story()
    assert set(RULES) == {"face_occluded", "gesture_target", "close_up_eyes", "floating_hand", "back_of_head",
                          "repeat_framing", "angle_label"}
    assert check_board(stage_story(story), story.scenes) == []


def test_a_face_behind_another_figure_is_a_violation():
    layout, sc = only(scene(["aldar", "bai"], shot="medium"))
    assert check_layout(layout, sc) == []
    aldar = figure(layout, "aldar")
    cover = aldar.model_copy(update={"id": "bai"})  # the Bai drawn right over Aldar
    bad = layout.model_copy(update={"figures": [aldar, cover]})
    found = check_layout(bad, sc)
    assert rules(found) == ["face_occluded"] and found[0].figure == "aldar"


def test_the_near_shoulder_may_cover_a_body_but_never_the_far_face():
    layout, sc = only(scene(["bai", "aldar"], {"aldar": ("talk",)}, shot="over_the_shoulder"))
    assert check_layout(layout, sc) == []
    near = next(f for f in layout.figures if f.view == "back")
    far = next(f for f in layout.figures if f.view == "front" and f.id != near.id)
    dx = far.keypoints[K["Nose"]][0] - near.keypoints[K["Neck"]][0]
    dy = far.keypoints[K["Nose"]][1] - near.keypoints[K["Neck"]][1]
    moved = [(x + dx, y + dy, c) for x, y, c in near.keypoints]
    bad = replace(layout, near.id, keypoints=moved)
    assert "face_occluded" in rules(check_layout(bad, sc))
    assert {v.figure for v in check_layout(bad, sc) if v.rule == "face_occluded"} == {far.id}


def test_a_bow_turned_away_from_its_target_is_a_violation():
    layout, sc = only(scene(["aldar", "bai"], {"aldar": ("bow",)}, shot="wide"))
    assert check_layout(layout, sc) == []
    aldar = figure(layout, "aldar")
    found = check_layout(replace(layout, "aldar", facing=-aldar.facing), sc)
    assert rules(found) == ["gesture_target"] and found[0].figure == "aldar"


def test_a_gesture_in_the_middle_of_a_row_faces_its_target_not_the_crowd():
    # Aldar (the key character) stands right of the Bai's wife and the mullah and bows to the Bai,
    # his counterpart on his right, though most of the crowd is on his left.
    layout, sc = only(scene(["aldar", "bai", "baibishe", "mullah"],
                            {"aldar": ("bow",), "baibishe": ("stand", "neutral", None, "left"),
                             "mullah": ("point", "neutral", None, "left")}, shot="wide"))
    assert [f.id for f in sorted(layout.figures, key=lambda f: f.x)] == ["baibishe", "mullah", "aldar", "bai"]
    aldar, bai = figure(layout, "aldar"), figure(layout, "bai")
    assert (bai.x - aldar.x) * aldar.facing > 0
    assert check_layout(layout, sc) == []


def test_a_close_up_that_crops_the_eyes_is_a_violation():
    layout, sc = only(scene(["bai", "aldar"], {"bai": ("stand", "surprise")}, shot="close_up"))
    assert check_layout(layout, sc) == []
    bai = figure(layout, "bai")
    up = 0.4  # raise the head above the top third; the horizon follows so the angle still reads
    points = [(x, y - up, c) for x, y, c in bai.keypoints]
    bad = replace(layout, "bai", keypoints=points).model_copy(update={"horizon": layout.horizon - up})
    assert rules(check_layout(bad, sc)) == ["close_up_eyes", "close_up_eyes"]
    down = [(x, y + 0.4, c) for x, y, c in bai.keypoints]  # the chin (the beard) cut by the bottom edge
    bad = replace(layout, "bai", keypoints=down).model_copy(update={"horizon": layout.horizon + 0.4})
    assert rules(check_layout(bad, sc)) == ["close_up_eyes"]


def test_close_up_eyes_sit_below_the_top_third_and_inside_the_frame():
    for pose in ("stand", "bow", "sit", "talk", "laugh"):
        for cid in ("bai", "aldar", "baibishe", "shaitan"):
            layout, _ = only(scene([cid, "merchant"], {cid: (pose,)}, shot="close_up"))
            f = figure(layout, cid)
            for eye in ("REye", "LEye"):
                x, y, c = f.keypoints[K[eye]]
                assert c > 0 and 1 / 3 <= y <= 1 and 0 <= x <= 1, (cid, pose, eye, x, y)


def test_a_hand_without_its_arm_is_a_violation():
    layout, sc = only(scene(["aldar", "bai"], {"aldar": ("point",)}, shot="wide"))
    assert check_layout(layout, sc) == []
    aldar = figure(layout, "aldar")
    bad = replace(layout, "aldar", keypoints=with_point(aldar, "LElbow", conf=0.0))
    found = check_layout(bad, sc)
    assert rules(found) == ["floating_hand"] and found[0].figure == "aldar"
    # An arm cut by the frame edge is not a floating hand: the elbow is out of the frame.
    cut = with_point(aldar, "LElbow", conf=0.0, dy=2.0)
    assert check_layout(replace(layout, "aldar", keypoints=cut), sc) == []
    # A figure drawn over the forearm but not the hand leaves the hand floating in front of it.
    (ex, ey, _), (wx, wy, _) = aldar.keypoints[K["LElbow"]], aldar.keypoints[K["LWrist"]]
    reach = ((wx - ex) * layout.aspect) ** 2 + (wy - ey) ** 2
    r = 0.65 * reach ** 0.5
    lamb = Figure(id="lamb", kind="sheep", x=ex, ground=ey + r, height=2 * r,
                  box=(ex - r / layout.aspect, ey - r, ex + r / layout.aspect, ey + r))
    found = check_layout(layout.model_copy(update={"figures": [*layout.figures, lamb]}), sc)
    assert rules(found) == ["floating_hand"] and "hidden" in found[0].detail


def test_an_over_the_shoulder_without_a_readable_back_of_the_head_is_a_violation():
    layout, sc = only(scene(["bai", "aldar"], {"aldar": ("talk",)}, shot="over_the_shoulder"))
    near = next(f for f in layout.figures if f.view == "back")
    no_ears = with_point(near.model_copy(update={"keypoints": with_point(near, "REar", conf=0.0)}), "LEar", conf=0.0)
    assert rules(check_layout(replace(layout, near.id, keypoints=no_ears), sc)) == ["back_of_head"]
    faceless = layout.model_copy(update={"figures": [f.model_copy(update={"view": "front"}) if f.id == near.id else f
                                                     for f in layout.figures]})
    assert "back_of_head" in rules(check_layout(faceless, sc))


def test_the_back_of_the_head_is_hair_ears_and_nape_not_a_mask_over_a_chin():
    for cid in ("aldar", "bai", "baibishe", "merchant"):
        design = design_for(builtin_bible()[cid])
        back = head(design, "neutral", view="back")
        skull = re.search(r'<ellipse [^>]*class="skull"[^>]*/>', back).group(0)
        assert f'fill="{design.c("hair")}"' in skull, cid  # hair over the whole skull, down to the nape
        assert 'class="back-hair"' in back and 'class="nape"' in back and back.count("<ellipse") >= 3  # + 2 ears
        assert 'class="skull"' not in head(design, "neutral")
    bald = dataclasses.replace(design_for(builtin_bible()["aldar"]), hat="none")
    skull = re.search(r'<ellipse [^>]*class="skull"[^>]*/>', head(bald, "neutral", view="back")).group(0)
    assert f'fill="{bald.c("skin")}"' in skull  # a shaved head shows its scalp


def test_two_frames_framed_the_same_are_a_violation():
    layout, sc = only(scene(["aldar", "bai"], shot="medium"))
    again = layout.model_copy(update={"index": 2})
    assert rules(check_layout(again, sc, previous=layout)) == ["repeat_framing"]
    moved = replace(again, "aldar", x=figure(layout, "aldar").x - 0.05)
    assert check_layout(moved, sc, previous=layout) == []
    nudged = replace(again, "aldar", height=figure(layout, "aldar").height * 1.1)  # a jump cut, not a new framing
    assert rules(check_layout(nudged, sc, previous=layout)) == ["repeat_framing"]


def test_staging_varies_a_repeated_shot():
    sc = scene(["aldar", "bai"], {"aldar": ("talk",)}, shot="medium", setting="bazaar")
    story = make_story(sc, dict(sc), dict(sc))
    layouts = stage_story(story)
    assert check_board(layouts, story.scenes) == []
    assert figure(layouts[0], "aldar").height != figure(layouts[1], "aldar").height
    # Restaging one scene (a board resumed with a changed scene) frames it as staging the story did,
    # and its saved layout goes stale when the scene before it stops repeating the setup.
    assert layout_scene(story, story.scenes[1]) == layouts[1]
    changed = make_story({**sc, "shot": "wide"}, dict(sc), dict(sc))
    assert staging_key(changed, changed.scenes[1]) != staging_key(story, story.scenes[1])
    assert layout_scene(changed, changed.scenes[1]).figures[0].height < layouts[1].figures[0].height


def test_an_angle_label_the_frame_does_not_show_is_a_violation():
    layout, sc = only(scene(["aldar", "bai"], shot="medium"))
    assert layout.angle == Angle.eye_level and check_layout(layout, sc) == []
    found = check_layout(layout.model_copy(update={"angle": Angle.high}), sc)
    assert rules(found) == ["angle_label"]


@pytest.mark.parametrize("shot", ["establishing", "wide", "medium", "close_up", "over_the_shoulder"])
@pytest.mark.parametrize("angle", ["eye_level", "low", "high"])
def test_every_angle_is_drawn_as_labelled(shot, angle):
    layout, sc = only(scene(["aldar", "bai"], {"aldar": ("talk",)}, shot=shot, angle=angle))
    assert layout.angle == Angle(angle)
    assert check_layout(layout, sc) == []


# -- written boards ----------------------------------------------------------------------------
def board_violations(bible, loglines, seeds) -> list[str]:
    writer = get_writer("offline")
    out = []
    for logline in loglines:
        for seed in seeds:
            story = writer.write(logline, scenes=8, seed=seed, bible=bible)
            out += [f"{logline[:30]!r} seed {seed}: {v}" for v in check_board(stage_story(story), story.scenes)]
    return out


def test_written_boards_break_no_staging_rule(bible):
    """32 loglines (ru/kk/en, the demo's and the issue's) x 4 seeds: about 3 s, so not marked slow."""
    assert len(LOGLINES) >= 30
    assert board_violations(bible, LOGLINES, seeds=(0, 1, 2, 7)) == []


# Issue 10: the fidelity benchmark's loglines whose frames hid a face (at 16:9, seed 0).
HIDDEN_FACE_LOGLINES = {
    "bowing-bai-beside-a-horse": "Бай гонится за Алдаром Косе верхом на коне, но теряет свою камчу.",
    "sarsen-beside-a-camel": "Алдар Косе верхом на верблюде въезжает в аул Сарсена.",
    "merchant-beside-a-camel": "Aldar Köse rides a camel into the bazaar and sells the merchant a magic whip.",
    "servant-behind-a-bowing-bai": "The Bai's servants chase Aldar Köse and his donkey through the aul at night.",
}


@pytest.mark.parametrize("logline", HIDDEN_FACE_LOGLINES.values(), ids=HIDDEN_FACE_LOGLINES.keys())
def test_no_face_is_hidden_behind_an_animal_or_a_bow(bible, logline):
    """A person on foot is drawn over the animal beside them (its rider stays on top), and a back-row
    face keeps clear of where a front figure's bow leans."""
    story = get_writer("offline").write(logline, scenes=8, seed=0, bible=bible)
    assert [str(v) for v in check_board(stage_story(story, 128 / 72), story.scenes)] == []
