"""The quality loop: best-of-K candidates, re-rolls below a threshold, picks, and their record."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from PIL import Image

from autokose.board import Board
from autokose.config import RunConfig
from autokose.render import Frame
from autokose.render.quality import QualitySettings, candidate_seed, render_frames
from autokose.staging import Layout
from autokose.story import Character, Scene, Shot, Story


class SeedRenderer:
    """Draws a flat grey frame whose brightness is a function of the seed; records its calls."""

    name = "fake"

    def __init__(self):
        self.calls: list[dict[int, int]] = []

    def render(self, story, layouts, only, seeds=None):
        seeds = seeds or {}
        self.calls.append({i: seeds.get(i, story.scenes[i - 1].seed) for i in only})
        for i in reversed(only):  # any order is allowed
            seed = seeds.get(i, story.scenes[i - 1].seed)
            yield Frame(index=i, image=Image.new("RGB", (16, 12), (brightness(seed),) * 3), seed=seed,
                        meta={"renderer": "fake"})


def brightness(seed: int) -> int:
    return seed % 251


def bright_scorer(frame, scene, layout) -> float:
    """Prefers brighter frames: the score is the mean pixel value / 255."""
    return float(np.asarray(frame.image).mean()) / 255


def make_story(n: int = 3) -> Story:
    return Story(title="t", logline="Aldar tricks the Bai", characters=[Character(id="aldar", name="Aldar")],
                 scenes=[Scene(index=i, characters=["aldar"], seed=100 + i, prompt=f"scene {i}")
                         for i in range(1, n + 1)])


def layouts_for(story: Story) -> list[Layout]:
    return [Layout(index=s.index, shot=Shot.medium, setting="steppe") for s in story.scenes]


def loop(renderer, story, root, cfg, scorer, indices=None) -> dict:
    return render_frames(renderer, story, layouts_for(story), indices or [s.index for s in story.scenes],
                         Board(root), cfg.quality, cfg.render, lambda *a: None, scorer=scorer)


def run_loop(root, story, renderer=None, scorer=bright_scorer, indices=None, **quality):
    renderer = renderer or SeedRenderer()
    return loop(renderer, story, root, RunConfig(quality=QualitySettings(**quality)), scorer, indices), renderer


def test_candidate_seeds_are_deterministic_and_k0_is_the_scene_seed():
    assert candidate_seed(1234, 0) == 1234
    seeds = [candidate_seed(1234, k) for k in range(8)]
    assert seeds == [candidate_seed(1234, k) for k in range(8)]
    assert len(set(seeds)) == 8 and all(0 <= s < 2**32 for s in seeds)
    assert candidate_seed(1235, 1) != candidate_seed(1234, 1)


def test_best_of_keeps_the_best_scoring_candidate_and_records_all(tmp_path):
    story = make_story()
    meta, renderer = run_loop(tmp_path, story, best_of=4)
    assert len(renderer.calls) == 4  # one batched call per candidate round
    for scene in story.scenes:
        entry = meta[f"{scene.index:02d}"]
        cands = entry["candidates"]
        assert [c["k"] for c in cands] == [0, 1, 2, 3]
        assert [c["seed"] for c in cands] == [candidate_seed(scene.seed, k) for k in range(4)]
        best = max(cands, key=lambda c: brightness(c["seed"]))
        assert entry["kept"] == best["k"] and entry["seed"] == best["seed"]
        assert entry["score"] == pytest.approx(brightness(best["seed"]) / 255, abs=1e-5)
        for c in cands:
            assert (tmp_path / c["file"]).is_file() and c["file"] == f"candidates/{scene.index:02d}_{c['k']}.png"
            assert c["score"] == pytest.approx(brightness(c["seed"]) / 255, abs=1e-5)
        kept = np.asarray(Image.open(tmp_path / entry["file"]))
        assert kept.mean() == brightness(best["seed"])


def test_scorer_preference_decides_the_pick(tmp_path):
    """The same candidates with the opposite preference keep a different candidate."""
    story = make_story(1)
    bright, _ = run_loop(tmp_path / "a", story, best_of=4)
    dark, _ = run_loop(tmp_path / "b", story, best_of=4, scorer=lambda f, s, l: 1 - bright_scorer(f, s, l))
    seeds = [candidate_seed(101, k) for k in range(4)]
    assert bright["01"]["seed"] == max(seeds, key=brightness)
    assert dark["01"]["seed"] == min(seeds, key=brightness)


def test_rerun_is_identical_and_reuses_candidates(tmp_path):
    story = make_story(2)
    first, _ = run_loop(tmp_path, story, best_of=3)
    second, renderer = run_loop(tmp_path, story, best_of=3)
    strip = lambda m: {k: {f: v for f, v in e.items() if f != "seconds"} for k, e in m.items()}
    assert strip(first) == strip(second)
    assert renderer.calls == []  # every candidate came from candidates/


def test_editing_a_scene_invalidates_its_candidates(tmp_path):
    story = make_story(2)
    run_loop(tmp_path, story, best_of=2)
    story.scenes[1].prompt = "a different prompt"
    _, renderer = run_loop(tmp_path, story, best_of=2)
    assert [sorted(c) for c in renderer.calls] == [[2], [2]]


def test_min_identity_rerolls_up_to_the_budget(tmp_path):
    story = make_story(2)
    meta, renderer = run_loop(tmp_path, story, best_of=2, min_identity=2.0, reroll_budget=3,
                              scorer=lambda f, s, l: 0.1)
    for entry in meta.values():
        assert [c["k"] for c in entry["candidates"]] == [0, 1, 2, 3, 4]
        assert "still below --min-identity" in entry["chosen"]
    assert len(renderer.calls) == 2 + 3


def test_rerolls_stop_once_a_frame_passes(tmp_path):
    story = make_story(2)
    good_seed = candidate_seed(story.scenes[0].seed, 2)  # scene 1 passes on its first re-roll

    def scorer(frame, scene, layout):
        return 0.9 if frame.seed == good_seed else 0.2

    meta, renderer = run_loop(tmp_path, story, best_of=2, min_identity=0.5, reroll_budget=4, scorer=scorer)
    assert meta["01"]["kept"] == 2 and meta["01"]["seed"] == good_seed
    assert [c["k"] for c in meta["01"]["candidates"]] == [0, 1, 2]
    assert [c["k"] for c in meta["02"]["candidates"]] == [0, 1, 2, 3, 4, 5]
    assert [sorted(c) for c in renderer.calls[2:]] == [[1, 2], [2], [2], [2]]


def test_no_rerolls_without_budget(tmp_path):
    meta, renderer = run_loop(tmp_path, make_story(1), best_of=1, min_identity=0.99, reroll_budget=0)
    assert len(renderer.calls) == 1 and meta["01"]["kept"] == 0


def test_unscorable_frames_get_no_more_candidates(tmp_path):
    story = make_story(2)

    def scorer(frame, scene, layout):
        return None if scene.index == 2 else bright_scorer(frame, scene, layout)

    meta, _ = run_loop(tmp_path, story, best_of=3, min_identity=0.99, scorer=scorer)
    assert [c["k"] for c in meta["02"]["candidates"]] == [0]
    assert meta["02"]["score"] is None and meta["02"]["seed"] == story.scenes[1].seed
    assert "unscored" in meta["02"]["chosen"]
    assert len(meta["01"]["candidates"]) > 1


def test_scorer_sees_the_first_round_before_scoring(tmp_path):
    """`anchor` gets the first candidate of every frame (and picked frames) before any score."""
    story = make_story(3)
    events = []

    class Anchored:
        def anchor(self, frames):
            events.append(("anchor", sorted((f.index, f.seed) for f, scene, layout in frames)))

        def __call__(self, frame, scene, layout):
            events.append(("score", frame.index))
            return bright_scorer(frame, scene, layout)

    run_loop(tmp_path, story, best_of=2, picks={3: 1}, scorer=Anchored())
    first = [(1, 101), (2, 102), (3, candidate_seed(103, 1))]
    assert events[0] == ("anchor", first)
    assert [e for e in events if e[0] == "anchor"] == [events[0]]  # once, not every round
    assert sorted(e[1] for e in events[1:]) == [1, 1, 2, 2]


def test_pick_reuses_the_candidate_file_without_rendering(tmp_path):
    story = make_story(2)
    run_loop(tmp_path, story, best_of=4)
    meta, renderer = run_loop(tmp_path, story, best_of=4, picks={2: 1})
    assert renderer.calls == []
    assert meta["02"]["kept"] == 1 and meta["02"]["seed"] == candidate_seed(story.scenes[1].seed, 1)
    assert meta["02"]["chosen"] == "picked: candidate 1"
    assert len(meta["02"]["candidates"]) == 4  # the earlier candidates stay listed
    picked = Image.open(tmp_path / "candidates" / "02_1.png")
    assert np.array_equal(np.asarray(Image.open(tmp_path / "frames" / "02.png")), np.asarray(picked))


def test_pick_renders_a_missing_candidate_from_its_seed(tmp_path):
    story = make_story(2)
    meta, renderer = run_loop(tmp_path, story, best_of=1, picks={1: 5}, indices=[1])
    assert renderer.calls == [{1: candidate_seed(story.scenes[0].seed, 5)}]
    assert meta["01"]["kept"] == 5 and (tmp_path / "candidates" / "01_5.png").is_file()
    assert np.asarray(Image.open(tmp_path / "frames" / "01.png")).mean() == brightness(candidate_seed(101, 5))


def test_changed_candidate_file_is_rendered_again(tmp_path):
    story = make_story(1)
    run_loop(tmp_path, story, best_of=2)
    Image.new("RGB", (16, 12), "red").save(Board(tmp_path).candidate_path(1, 1))
    _, renderer = run_loop(tmp_path, story, best_of=2)
    assert renderer.calls == [{1: candidate_seed(101, 1)}]


def test_plain_render_writes_no_candidates(tmp_path):
    story = make_story(2)
    renderer = SeedRenderer()
    meta = render_frames(renderer, story, layouts_for(story), [1, 2], Board(tmp_path), QualitySettings(),
                         RunConfig().render, lambda *a: None)
    assert len(renderer.calls) == 1 and not (tmp_path / "candidates").exists()
    assert "candidates" not in meta["01"] and meta["01"]["seed"] == 101


def test_pipeline_render_frames_goes_through_the_loop(tmp_path, monkeypatch):
    """render_frames with --best-of uses the loop; its default scorer is the identity scorer."""
    from autokose import score

    seen = []

    class Recording:
        def __init__(self, story, root, clip_model=None):
            seen.append(clip_model)

        def __call__(self, frame, scene, layout):
            return bright_scorer(frame, scene, layout)

    monkeypatch.setattr(score, "IdentityScorer", Recording)
    story = make_story(1)
    cfg = RunConfig(quality=QualitySettings(best_of=3, clip_model="some/clip"))
    meta = render_frames(SeedRenderer(), story, layouts_for(story), [1], Board(tmp_path), cfg.quality, cfg.render,
                         lambda *a: None)
    assert seen == ["some/clip"]
    assert meta["01"]["seed"] == max((candidate_seed(101, k) for k in range(3)), key=brightness)
    json.dumps(meta)  # the manifest entry is JSON


def test_the_real_identity_scorer_leaves_faceless_frames_unscored(tmp_path):
    """No references, no face, no CLIP model: the loop keeps candidate 0 and says why."""
    pytest.importorskip("dlib")
    story = make_story(1)
    meta = loop(SeedRenderer(), story, tmp_path, RunConfig(quality=QualitySettings(best_of=3)), None)
    assert meta["01"]["kept"] == 0 and meta["01"]["score"] is None
    assert [c["k"] for c in meta["01"]["candidates"]] == [0]


@pytest.mark.slow
def test_diffusion_candidates_follow_their_seeds(tmp_path):
    """With the real renderer (tiny SD 1.5): k = 0 is the plain frame, a pick re-renders its candidate."""
    from tiny import tiny_sd15

    from autokose.render import RenderSettings, get_renderer

    story = make_story(2)
    settings = RenderSettings(renderer="diffusion", width=64, height=64,
                              diffusion={"model": str(tiny_sd15(tmp_path / "models")), "steps": 2})
    cfg = RunConfig(render=settings, quality=QualitySettings(best_of=2))
    renderer = get_renderer(settings, assets={})
    meta = loop(renderer, story, tmp_path / "board", cfg, bright_scorer)
    plain = {f.index: np.asarray(f.image) for f in renderer.render(story, layouts_for(story), [1, 2])}
    cands = tmp_path / "board" / "candidates"
    for i in (1, 2):
        c0, c1 = (np.asarray(Image.open(cands / f"{i:02d}_{k}.png")) for k in (0, 1))
        assert np.array_equal(c0, plain[i]) and not np.array_equal(c0, c1)
        best = max((0, 1), key=lambda k: meta[f"{i:02d}"]["candidates"][k]["score"])
        assert meta[f"{i:02d}"]["kept"] == best
    before, other = (np.asarray(Image.open(cands / f"01_{k}.png")).astype(int) for k in (1, 0))
    (cands / "01_1.png").unlink()
    cfg = RunConfig(render=settings, quality=QualitySettings(best_of=2, picks={1: 1}))
    meta = loop(renderer, story, tmp_path / "board", cfg, bright_scorer, indices=[1])
    # Drawn alone, not in its round's batch of two: CPU kernels may round by one level (README).
    again = np.asarray(Image.open(tmp_path / "board" / "frames" / "01.png")).astype(int)
    assert np.abs(again - before).max() <= 1 < np.abs(again - other).max()
    assert meta["01"]["kept"] == 1 and meta["01"]["chosen"] == "picked: candidate 1"


def test_best_of_with_nothing_to_score_by_warns_at_the_start(tmp_path, caplog):
    """Previz puppets have no faces: with no CLIP model, --best-of says so before the first frame."""
    pytest.importorskip("dlib")
    warned_before_render = []

    class Previz(SeedRenderer):
        name = "previz"

        def render(self, story, layouts, only, seeds=None):
            warned_before_render.append(len(caplog.records))
            yield from super().render(story, layouts, only, seeds)

    with caplog.at_level(logging.WARNING, logger="autokose"):
        loop(Previz(), make_story(2), tmp_path, RunConfig(quality=QualitySettings(best_of=3)), None)
    assert [r.getMessage() for r in caplog.records] == [
        "--best-of 3: nothing to score candidates by (previz puppets have no faces and no --clip-model was given); "
        "every frame keeps its first candidate"]
    assert warned_before_render[0] == 1


def test_best_of_says_so_when_no_first_candidate_could_be_scored(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="autokose"):
        run_loop(tmp_path, make_story(2), scorer=lambda frame, scene, layout: None, best_of=2)
    assert [r.getMessage() for r in caplog.records] == [
        "--best-of 2: nothing to score candidates by (no frame's first candidate had a face or anything else to "
        "measure); every frame keeps its first candidate"]
