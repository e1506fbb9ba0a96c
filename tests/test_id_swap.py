"""ID swaps (identity bleeding): a character's face that is another character's, in scores.json and the quality loop."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autokose.board import Board
from autokose.config import RunConfig
from autokose.render import Frame
from autokose.render.quality import QualitySettings, candidate_seed, render_frames
from autokose.score import FrameScore, IdentityScorer
from autokose.score.face import THRESHOLD
from autokose.score.swap import SWAP_MARGIN, frame_swaps, looks_like, swap_rate
from autokose.staging import staging_key
from test_quality_loop import run_loop

# --------------------------------------------------------------------------- the rule, on numbers


def test_a_swap_needs_the_other_within_the_same_person_line_and_the_margin():
    assert looks_like(0.8, {"bai": 0.4}) == "bai"
    assert looks_like(0.8, {"bai": 0.4, "wife": 0.3}) == "wife"  # whose face it is: the nearest other
    assert looks_like(0.4, {"bai": 0.8}) is None  # its own face
    assert looks_like(0.55, {"bai": 0.5}) is None  # closer, but not by SWAP_MARGIN: look-alikes, no verdict
    assert looks_like(0.5 + SWAP_MARGIN, {"bai": 0.5}) == "bai"
    assert looks_like(0.95, {"bai": 0.8}) is None  # nobody in particular: low identity, not a swap
    assert looks_like(1.0, {"bai": THRESHOLD}) is None
    assert looks_like(None, {"bai": 0.3}) is None and looks_like(0.9, {}) is None  # nothing to compare


def test_swap_rate_counts_faces_that_could_swap():
    frames = [{"aldar": (0.35, {"bai": 0.8}), "bai": (0.4, {"aldar": 0.8})},  # right faces
              {"aldar": (0.8, {"bai": 0.4}), "bai": (0.8, {"aldar": 0.35})},  # swapped
              {"aldar": (0.35, {})},  # nobody else has a reference: cannot swap
              {"kenzhe": (None, {"aldar": 0.3})}]  # no own reference: cannot swap
    assert frame_swaps(frames[1]) == [{"character": "aldar", "looks_like": "bai", "own": 0.8, "other": 0.4},
                                      {"character": "bai", "looks_like": "aldar", "own": 0.8, "other": 0.35}]
    assert frame_swaps(frames[0]) == []
    assert swap_rate(frames) == {"id_swaps": 2, "id_swap_faces": 4, "id_swap_rate": 0.5}
    assert swap_rate([frames[2], frames[3]]) == {"id_swaps": 0, "id_swap_faces": 0, "id_swap_rate": None}


# --------------------------------------------------------------------------- real photos
def _helpers():
    pytest.importorskip("dlib")
    import test_score

    return test_score


@pytest.mark.slow
def test_pasted_faces_are_swaps_and_right_faces_are_not(shared_data):
    """Obama is Aldar, Biden the Bai: each other's face in their box is a swap, with the right `looks_like`."""
    t = _helpers()
    faces = shared_data / "faces"
    story = t.story_of([["aldar", "bai"]], {"aldar": [str(faces / "obama/2.jpg")], "bai": [str(faces / "biden/2.jpg")],
                                            "rose": [str(faces / "rose_leslie/2.jpg")]})
    scorer = IdentityScorer(story)
    scene = story.scenes[0]
    right, left_box, right_box = t.side_by_side(t.photo(faces, "obama/1.jpg"), t.photo(faces, "biden/1.jpg"))
    wrong, _, _ = t.side_by_side(t.photo(faces, "biden/1.jpg"), t.photo(faces, "obama/1.jpg"))
    lay = t.layout(1, t.figure("aldar", left_box), t.figure("bai", right_box))

    ok = scorer.measure(right, scene, lay)
    assert ok.id_swaps() == []
    assert set(ok.characters["aldar"].others) == {"bai", "rose"}  # every other referenced character, in frame or not
    swapped = scorer.measure(wrong, scene, lay)
    assert [(s["character"], s["looks_like"]) for s in swapped.id_swaps()] == [("aldar", "bai"), ("bai", "aldar")]
    for s in swapped.id_swaps():
        assert s["other"] < THRESHOLD < s["own"] and s["own"] - s["other"] > SWAP_MARGIN

    # The loop's scorer hands the same verdict over with its score, from the one measurement.
    result = scorer.frame_score(Frame(1, wrong, 0), scene, lay)
    assert isinstance(result, FrameScore) and result.id_swaps == swapped.id_swaps()
    assert result.score == scorer(Frame(1, wrong, 0), scene, lay) < 0.5
    assert scorer.frame_score(Frame(1, right, 0), scene, lay).id_swaps == []

    # A one-character frame: its own face is no swap; the other referenced character's face is.
    solo = t.story_of([["aldar"]], {"aldar": [str(faces / "obama/2.jpg")], "bai": [str(faces / "biden/2.jpg")]})
    solo_scorer = IdentityScorer(solo)
    alone = t.layout(1)
    assert solo_scorer.frame_score(Frame(1, t.photo(faces, "obama/1.jpg"), 0), solo.scenes[0], alone).id_swaps == []
    bai_face = solo_scorer.frame_score(Frame(1, t.photo(faces, "biden/1.jpg"), 0), solo.scenes[0], alone)
    assert [(s["character"], s["looks_like"]) for s in bai_face.id_swaps] == [("aldar", "bai")]
    # ... and nobody else's reference, nobody to swap with: a stranger is low, never a swap.
    lone = t.story_of([["aldar"]], {"aldar": [str(faces / "obama/2.jpg")]})
    stranger = IdentityScorer(lone).frame_score(Frame(1, t.photo(faces, "biden/1.jpg"), 0), lone.scenes[0], alone)
    assert stranger.id_swaps == [] and stranger.score < 0.5


@pytest.mark.slow
def test_scores_json_has_character_rows_and_the_board_swap_rate(shared_data, tmp_path):
    """`pipeline.score` on a board of pasted photos: per-character rows, per-frame swaps, the board's rate."""
    from autokose.pipeline import score

    t = _helpers()
    faces = shared_data / "faces"
    refs = {"aldar": [str(faces / "obama/2.jpg")], "bai": [str(faces / "biden/2.jpg")]}
    story = t.story_of([["aldar", "bai"], ["aldar", "bai"], ["aldar"], ["bai"], ["kenzhe"]], refs)
    right, left_box, right_box = t.side_by_side(t.photo(faces, "obama/1.jpg"), t.photo(faces, "biden/1.jpg"))
    wrong, _, _ = t.side_by_side(t.photo(faces, "biden/1.jpg"), t.photo(faces, "obama/1.jpg"))
    board = t.write_frames(tmp_path / "board", [right, wrong, t.photo(faces, "obama/1.jpg"),
                                                t.photo(faces, "obama/1.jpg"), t.photo(faces, "rose_leslie/1.jpg")])
    pair = (t.figure("aldar", left_box), t.figure("bai", right_box))
    layouts = [t.layout(1, *pair), t.layout(2, *pair), t.layout(3), t.layout(4), t.layout(5)]
    for lay, scene in zip(layouts, story.scenes):
        lay.source = staging_key(story, scene)  # drawn from this story: pipeline.score keeps these layouts
    board.save_story(story)
    size = RunConfig().render
    board.save_layouts(layouts, size.width, size.height)

    scores = score(board.root)
    f = scores["frames"]
    assert f["01"]["id_swaps"] == [] and f["03"]["id_swaps"] == [] and f["05"]["id_swaps"] == []
    assert [(s["character"], s["looks_like"]) for s in f["02"]["id_swaps"]] == [("aldar", "bai"), ("bai", "aldar")]
    assert [(s["character"], s["looks_like"]) for s in f["04"]["id_swaps"]] == [("bai", "aldar")]

    aldar, bai = f["01"]["characters"]["aldar"], f["01"]["characters"]["bai"]
    assert aldar["looks_like"] is None and set(aldar["distance_to_others"]) == {"bai"}
    assert aldar["distance"] < THRESHOLD < aldar["distance_to_others"]["bai"]
    assert bai["distance"] < THRESHOLD < bai["distance_to_others"]["aldar"]
    left, top, r, bottom = aldar["face_box"]  # Obama's face, in the left half where Aldar stands
    assert 0 <= left < r <= left_box[2] * right.width and 0 <= top < bottom <= right.height
    assert bai["face_box"][0] >= right_box[0] * right.width
    swapped = f["02"]["characters"]["aldar"]
    assert swapped["looks_like"] == "bai" and swapped["distance_to_others"]["bai"] < THRESHOLD < swapped["distance"]
    assert f["02"]["id_swaps"][0] == {"character": "aldar", "looks_like": "bai", "own": swapped["distance"],
                                      "other": swapped["distance_to_others"]["bai"]}
    kenzhe = f["05"]["characters"]["kenzhe"]  # no reference of his own: distances to the others, never a swap
    assert kenzhe["distance"] is None and set(kenzhe["distance_to_others"]) == {"aldar", "bai"}
    assert kenzhe["looks_like"] is None and kenzhe["face_box"] is not None

    s = scores["summary"]
    # faces that could swap: 2 + 2 + 1 (Aldar alone) + 1 (the Bai alone); the stranger has no reference
    assert (s["id_swaps"], s["id_swap_faces"], s["id_swap_rate"]) == (3, 6, 0.5)
    assert s["id_swap_margin"] == SWAP_MARGIN
    assert json.loads(board.scores_path.read_text()) == scores
    from autokose.export.labels import Labels

    page = board.html_path.read_text(encoding="utf-8")  # the board page says it in words
    assert f"{Labels(story.language)['score.id_swaps']} 3/6" in page and "id_swap_margin" not in page


# --------------------------------------------------------------------------- the quality loop
class SwapScorer:
    """Brighter is better, but the seeds in `swapped` have Aldar wearing the Bai's face."""

    def __init__(self, swapped):
        self.swapped, self.calls = set(swapped), 0

    def __call__(self, frame, scene, layout):
        raise AssertionError("the loop asks frame_score: one measurement gives the score and the swaps")

    def frame_score(self, frame, scene, layout):
        self.calls += 1
        swaps = [{"character": "aldar", "looks_like": "bai", "own": 0.8, "other": 0.4}] \
            if frame.seed in self.swapped else []
        return FrameScore(float(np.asarray(frame.image).mean()) / 255, swaps)


def _story(n=1):
    from autokose.story import Character, Scene, Story

    return Story(title="t", logline="Aldar tricks the Bai",
                 characters=[Character(id="aldar", name="Aldar"), Character(id="bai", name="Bai")],
                 scenes=[Scene(index=i, characters=["aldar", "bai"], seed=100 + i, prompt=f"scene {i}")
                         for i in range(1, n + 1)])


def test_a_candidate_with_a_swap_ranks_below_one_without(tmp_path):
    story = _story()
    seeds = [candidate_seed(story.scenes[0].seed, k) for k in range(3)]
    brightest = max(range(3), key=lambda k: seeds[k] % 251)
    clean = max((k for k in range(3) if k != brightest), key=lambda k: seeds[k] % 251)
    scorer = SwapScorer({seeds[brightest]})
    meta, _ = run_loop(tmp_path / "a", story, scorer=scorer, best_of=3)
    entry = meta["01"]
    assert entry["kept"] == clean and entry["chosen"] == "best score without an ID swap"
    assert scorer.calls == 3
    record = json.loads((tmp_path / "a" / "candidates" / f"01_{brightest}.json").read_text())
    assert record["id_swaps"][0]["looks_like"] == "bai"
    assert [bool(c["id_swaps"]) for c in entry["candidates"]] == [k == brightest for k in range(3)]  # the manifest
    # Told not to mind swaps, the loop keeps the brightest.
    meta, _ = run_loop(tmp_path / "b", story, scorer=SwapScorer({seeds[brightest]}), best_of=3, reroll_on_swap=False)
    assert meta["01"]["kept"] == brightest and meta["01"]["chosen"] == "best score"


def test_a_swap_is_re_rolled_like_a_low_score(tmp_path):
    """Every score passes --min-identity 0; only the swap on candidate 0 asks for candidate 1."""
    story = _story(2)
    first = candidate_seed(story.scenes[0].seed, 0)
    meta, renderer = run_loop(tmp_path / "a", story, scorer=SwapScorer({first}), min_identity=0.0)
    assert meta["01"]["kept"] == 1 and [c["k"] for c in meta["01"]["candidates"]] == [0, 1]
    assert meta["01"]["chosen"] == "best score without an ID swap after 1 re-roll(s)"
    assert meta["02"]["kept"] == 0 and [c["k"] for c in meta["02"]["candidates"]] == [0]
    assert [sorted(c) for c in renderer.calls] == [[1, 2], [1]]
    # Without a threshold, best-of-K re-rolls a frame whose every candidate is a swap, within the budget.
    all_swapped = {candidate_seed(story.scenes[0].seed, k) for k in range(3)}
    meta, _ = run_loop(tmp_path / "b", story, scorer=SwapScorer(all_swapped), best_of=2, reroll_budget=4)
    assert meta["01"]["kept"] == 3 and meta["02"]["kept"] in (0, 1)
    assert [c["k"] for c in meta["01"]["candidates"]] == [0, 1, 2, 3]
    # A swap the budget cannot fix is kept and said so.
    meta, _ = run_loop(tmp_path / "c", story, scorer=SwapScorer(all_swapped), best_of=2, reroll_budget=1)
    assert meta["01"]["kept"] in (0, 1, 2) and "still an ID swap (aldar looks like bai)" in meta["01"]["chosen"]
    # reroll_on_swap off: the threshold alone decides, as before.
    meta, renderer = run_loop(tmp_path / "d", story, scorer=SwapScorer({first}), min_identity=0.0, reroll_on_swap=False)
    assert meta["01"]["kept"] == 0 and len(renderer.calls) == 1


@pytest.mark.slow
def test_the_identity_scorer_makes_the_loop_re_roll_a_pasted_swap(shared_data, tmp_path):
    """Real photos through the real scorer: candidate 0 has the faces swapped, candidate 1 not; 1 is kept."""
    t = _helpers()
    faces = shared_data / "faces"
    story = t.story_of([["aldar", "bai"]], {"aldar": [str(faces / "obama/2.jpg")],
                                            "bai": [str(faces / "biden/2.jpg")]})
    right, left_box, right_box = t.side_by_side(t.photo(faces, "obama/1.jpg"), t.photo(faces, "biden/1.jpg"))
    wrong, _, _ = t.side_by_side(t.photo(faces, "biden/1.jpg"), t.photo(faces, "obama/1.jpg"))
    layouts = [t.layout(1, t.figure("aldar", left_box), t.figure("bai", right_box))]
    first = story.scenes[0].seed

    class Pasted:
        name = "fake"

        def render(self, story, layouts, only, seeds=None):
            seed = (seeds or {}).get(1, first)
            yield Frame(index=1, image=wrong if seed == first else right, seed=seed)

    scorer = IdentityScorer(story, tmp_path)
    measured = []
    measure = scorer.measure
    scorer.measure = lambda *a: measured.append(1) or measure(*a)
    cfg = RunConfig(quality=QualitySettings(min_identity=0.0))
    meta = render_frames(Pasted(), story, layouts, [1], Board(tmp_path / "board"), cfg.quality, cfg.render,
                         lambda *a: None, scorer=scorer)
    assert meta["01"]["kept"] == 1 and meta["01"]["chosen"] == "best score without an ID swap after 1 re-roll(s)"
    assert len(measured) == 2  # each candidate measured once: the anchor's measurement is reused
    record = json.loads((tmp_path / "board" / "candidates" / "01_0.json").read_text())
    assert [(s["character"], s["looks_like"]) for s in record["id_swaps"]] == [("aldar", "bai"), ("bai", "aldar")]
