"""The previz drawing kit: every animal drawn as itself, unknown kinds never as humans, props told apart,
and every figure and prop tagged (data-character, data-kind, data-prop) so tools can find it."""

from __future__ import annotations

import itertools
import logging
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from autokose.previz.animals import DRAWINGS as ANIMAL_DRAWINGS
from autokose.previz.animals import draw_animal
from autokose.previz.demo import make_story, scene
from autokose.previz.designs import design_for
from autokose.previz.props import DRAWINGS as PROP_DRAWINGS
from autokose.render import RenderSettings
from autokose.render.previz import PrevizRenderer, rasterise
from autokose.staging import ANIMAL_HEADS, ANIMALS, Figure, is_animal, stage_story
from autokose.story import Character, Scene, Story
from autokose.vocabulary import resolve_prop

SVG = "{http://www.w3.org/2000/svg}"
SMALL = RenderSettings(width=320, height=180)
KINDS = ["wolf", "camel", "sheep", "goat", "horse", "donkey", "dog", "eagle"]


def animal(kind: str) -> Character:
    return Character(id=f"{kind}1", name=kind.title(), kind=kind, appearance=f"a {kind}")


def story_with(*scenes: dict, extra: tuple[Character, ...] = ()) -> Story:
    base = make_story(scene(["aldar"]))
    return Story(title="t", logline="l", characters=[*base.characters, *extra],
                 scenes=[Scene(index=i, **s) for i, s in enumerate(scenes, 1)])


def render(story: Story):
    layouts = stage_story(story)
    frames = list(PrevizRenderer(SMALL).render(story, layouts, [s.index for s in story.scenes]))
    return layouts, frames


def groups(svg: str, attr: str, value: str | None = None) -> list[ET.Element]:
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{SVG}g") if g.get(attr) is not None and (value is None or g.get(attr) == value)]


def inner(group: ET.Element) -> str:
    """A drawing's markup without its placing transform."""
    return "".join(ET.tostring(child, encoding="unicode") for child in group)


@pytest.fixture(scope="module")
def shots():
    """Each kind at establishing and wide (beside Aldar) and in a close-up of its own."""
    specs = []
    for kind in KINDS:
        cid = f"{kind}1"
        specs += [scene(["aldar", cid], shot="establishing"), scene(["aldar", cid], shot="wide"),
                  scene([cid], shot="close_up")]
    story = story_with(*specs, extra=tuple(animal(k) for k in KINDS))
    layouts, frames = render(story)
    return {(kind, shot): (layouts[i * 3 + j], frames[i * 3 + j])
            for i, kind in enumerate(KINDS) for j, shot in enumerate(("establishing", "wide", "close_up"))}


@pytest.mark.parametrize("kind", KINDS)
def test_each_animal_is_an_animal_group_with_its_kind_inside_the_frame(shots, kind):
    assert is_animal(animal(kind)) and kind in ANIMALS and kind in ANIMAL_DRAWINGS
    for shot in ("establishing", "wide", "close_up"):
        layout, frame = shots[kind, shot]
        (g,) = groups(frame.svg, "data-character", f"{kind}1")
        assert g.get("data-kind") == kind and "animal" in g.get("class") and g.get("data-drawing") == kind
        assert not [e for e in g.iter(f"{SVG}g") if e.get("class") == "head"]  # no puppet head
        fig = next(f for f in layout.figures if f.id == f"{kind}1")
        assert not fig.keypoints
        x0, y0, x1, y1 = fig.box
        if shot == "close_up":  # big: the head end of the animal is in the frame, the rest may be cropped
            assert x1 - x0 > 0.5 and x0 < 0.5 and y0 < 0.4
        else:
            assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1


def test_close_up_frames_the_animals_head():
    """The head (ahead of the body, near the ear tips) lands inside the frame, off the top third line."""
    for kind in [*KINDS, "yak"]:
        story = story_with(scene([f"{kind}1"], shot="close_up"), extra=(animal(kind),))
        layout = stage_story(story)[0]
        fig = layout.figures[0]
        hx, hy = ANIMAL_HEADS.get(kind, (0.5, 0.34))
        head = (fig.x + fig.facing * hx * fig.height / layout.aspect, fig.box[1] + hy * fig.height)
        assert 0.1 < head[0] < 0.9 and 0.34 < head[1] < 0.6, (kind, head)
        assert fig.box[1] > -0.1, kind  # ear tips at most just above the frame


def test_animals_are_drawn_distinct_from_each_other(shots):
    markup = {k: inner(groups(shots[k, "wide"][1].svg, "data-character", f"{k}1")[0]) for k in KINDS}
    assert len(set(markup.values())) == len(KINDS)
    masks = {k: silhouette(k) for k in KINDS}
    for a, b in itertools.combinations(KINDS, 2):
        overlap = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert overlap < 0.85, (a, b, overlap)


def silhouette(kind: str, size: int = 200) -> np.ndarray:
    """The pixels one animal covers, drawn alone on white in the same box."""
    fig = Figure(id="x", kind=kind, x=0.5, ground=0.9, height=0.8, box=(0.1, 0.1, 0.9, 0.9))
    body = draw_animal(fig, design_for(animal(kind)), size, size, 1.0)
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {size} {size}">'
           f'<rect width="{size}" height="{size}" fill="#ffffff"/>{body}</svg>')
    return np.asarray(rasterise(svg)).min(axis=2) < 240


def test_animal_colours_follow_the_kind_unless_the_bible_says_otherwise():
    assert design_for(animal("wolf")).c("body") != design_for(animal("dog")).c("body")
    own = Character(id="w", name="W", kind="wolf", appearance="a white wolf", palette={"body": "#ffffff"})
    assert design_for(own).c("body") == "#ffffff"


def test_unknown_kind_warns_once_and_gets_a_neutral_silhouette_never_a_human(caplog):
    yak = animal("yak")
    assert is_animal(yak)
    story = story_with(scene(["aldar", "yak1"], shot="wide"), scene(["yak1"], shot="close_up"), extra=(yak,))
    with caplog.at_level(logging.WARNING, logger="autokose"):
        layouts, frames = render(story)
    warnings = [r for r in caplog.records if r.name == "autokose" and "'yak'" in r.getMessage()]
    assert len(warnings) == 1 and "neutral" in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="autokose"):
        render(story)  # another run (a server's next job) is told again
    assert len([r for r in caplog.records if "'yak'" in r.getMessage()]) == 1
    for layout, frame in zip(layouts, frames):
        fig = next(f for f in layout.figures if f.id == "yak1")
        assert not fig.keypoints and fig.kind == "yak"
        (g,) = groups(frame.svg, "data-character", "yak1")
        assert g.get("data-kind") == "yak" and g.get("data-drawing") == "unknown"
        assert not [e for e in g.iter() if e.get("class") == "head" or e.get("data-face")]
    assert inner(groups(frames[0].svg, "data-character", "yak1")[0]) not in {
        inner(groups(frames[0].svg, "data-character", "aldar")[0])}


def test_a_custom_wolf_is_staged_as_an_animal_not_a_man_in_a_robe():
    wolf = Character(id="kaskyr", name="Қасқыр", kind="wolf", appearance="a grey steppe wolf")
    story = story_with(scene(["aldar", "kaskyr"], shot="wide"), extra=(wolf,))
    layouts, (frame,) = render(story)
    fig = next(f for f in layouts[0].figures if f.id == "kaskyr")
    assert not fig.keypoints and fig.kind == "wolf"
    assert groups(frame.svg, "data-character", "kaskyr")[0].get("data-kind") == "wolf"


@pytest.mark.parametrize("kind,rides", [("camel", True), ("horse", True), ("donkey", True), ("wolf", False),
                                        ("sheep", False), ("eagle", False), ("yak", False)])
def test_a_rider_mounts_only_horse_donkey_or_camel(kind, rides):
    story = story_with(scene(["aldar", f"{kind}1"], {"aldar": ("ride",)}, shot="wide"), extra=(animal(kind),))
    aldar = next(f for f in stage_story(story)[0].figures if f.id == "aldar")
    assert (aldar.mount == f"{kind}1") is rides


def test_eagle_perches_or_flies():
    story = story_with(scene(["aldar", "eagle1"], {"eagle1": ("stand",)}, shot="wide"),
                       scene(["aldar", "eagle1"], {"eagle1": ("run",)}, shot="wide"), extra=(animal("eagle"),))
    _, (perched, flying) = render(story)
    a, b = (inner(groups(f.svg, "data-character", "eagle1")[0]) for f in (perched, flying))
    assert a != b


# -- props ---------------------------------------------------------------------------------------
def test_every_prop_kind_has_its_own_drawing():
    markup = {kind: draw() for kind, draw in PROP_DRAWINGS.items()}
    assert len(set(markup.values())) == len(markup)
    for kind in ("patched_coat", "fur_coat", "cauldron", "whip", "saddle", "purse", "golden_egg", "tymak"):
        assert kind in PROP_DRAWINGS


def test_patched_chapan_and_fur_coat_are_told_apart():
    assert resolve_prop("patched chapan") == "patched_coat" and resolve_prop("чапан") == "patched_coat"
    assert resolve_prop("fur coat") == "fur_coat" and resolve_prop("шуба") == "fur_coat"
    assert resolve_prop("saddle") == "saddle" and resolve_prop("седло") == "saddle"
    chapan, fur = PROP_DRAWINGS["patched_coat"](), PROP_DRAWINGS["fur_coat"]()
    assert chapan.count("<rect") >= 3  # the patches
    assert "#efe2c4" in fur and "#efe2c4" not in chapan  # the fur collar and trims


def test_figures_and_props_carry_data_attributes():
    story = story_with(
        scene(["aldar", "bai", "donkey"],
              {"aldar": ("hold", "sly", "patched chapan"), "bai": ("hold", "greedy", "fur coat")},
              shot="medium", props=["saddle", "whip", "purse", "golden egg", "cauldron"]),
        scene(["aldar", "bai", "horse"], shot="wide", props=["saddle", "cauldron"]),
    )
    _, frames = render(story)
    for frame in frames:
        figures = groups(frame.svg, "data-character")
        assert {g.get("data-kind") for g in figures} >= {"human"}
        assert all(g.get("data-kind") for g in figures)
        for g in groups(frame.svg, "data-prop"):
            assert g.get("data-kind") == g.get("data-prop") and g.get("data-name") and g.get("class") == "prop"
    first = frames[0].svg
    drawn = {g.get("data-prop") for g in groups(first, "data-prop")}
    assert {"patched_coat", "fur_coat", "saddle", "cauldron"} <= drawn
    (aldar,) = groups(first, "data-character", "aldar")
    assert aldar.get("data-kind") == "human"
    held = [g.get("data-prop") for g in aldar.iter(f"{SVG}g") if g.get("data-prop")]
    assert held == ["patched_coat"]  # the figure holds its prop: the prop is inside its group
    (bai,) = groups(first, "data-character", "bai")
    assert [g.get("data-prop") for g in bai.iter(f"{SVG}g") if g.get("data-prop")] == ["fur_coat"]
