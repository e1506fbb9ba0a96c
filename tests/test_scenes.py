"""`autokose scenes`: move, insert, delete, duplicate keep the board consistent and draw nothing."""

from __future__ import annotations

import csv
import json
import os
from html import escape
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokose import scenes
from autokose.app.cli import app
from autokose.board import EDIT_DIR, Board
from autokose.config import RunConfig
from autokose.errors import InputError
from autokose.fsio import sha256_file
from autokose.pipeline import run
from autokose.render import RenderSettings
from autokose.render.previz import PrevizRenderer

runner = CliRunner()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    """A 5-scene previz board (frames, controls, layouts, manifest, exports), made once."""
    out = tmp_path_factory.mktemp("scenes") / "board"
    cfg = RunConfig(logline="Aldar Köse sells the Bai a golden egg.", scenes=5,
                    render=RenderSettings(width=128, height=72), exports=["html", "csv"])
    run(cfg, out)
    return out


@pytest.fixture
def board(made, tmp_path) -> Path:
    out = tmp_path / "board"
    os.system(f"cp -a '{made}' '{out}'")
    # two candidates of scene 2, as the quality loop leaves them
    for k in (0, 1):
        png = out / "candidates" / f"02_{k}.png"
        png.parent.mkdir(exist_ok=True)
        png.write_bytes((out / "frames" / "02.png").read_bytes())
        (out / "candidates" / f"02_{k}.json").write_text(json.dumps({"k": k, "file": f"candidates/02_{k}.png"}))
    return out


def frames_by_seed(out: Path) -> dict[int, str]:
    """Scene index → (seed, frame hash), and the manifest's record of each frame matching the file."""
    story = json.loads((out / "story.json").read_text(encoding="utf-8"))
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    found = {}
    for scene in story["scenes"]:
        key = f"{scene['index']:02d}"
        path = out / "frames" / f"{key}.png"
        entry = manifest["frames"].get(key)
        if path.exists():
            assert entry is not None and entry["file"] == f"frames/{key}.png"
            assert entry["sha256"] == sha256_file(path), f"manifest entry of {key} is not its frame"
            assert (out / "frames" / f"{key}.svg").exists()
        else:
            assert entry is None
        assert (out / "control" / f"{key}_pose.json").exists(), f"no controls for scene {key}"
        found[scene["index"]] = (scene["seed"], sha256_file(path) if path.exists() else None)
    layouts = json.loads((out / "layouts.json").read_text(encoding="utf-8"))
    assert [lay["index"] for lay in layouts["layouts"]] == list(found)
    assert manifest["story_sha256"] == sha256_file(out / "story.json")
    return found


def no_render(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("a scene edit drew a frame")

    monkeypatch.setattr(PrevizRenderer, "render", fail)


def test_move_renumbers_every_file_and_draws_nothing(board, monkeypatch):
    no_render(monkeypatch)
    before = frames_by_seed(board)
    result = runner.invoke(app, ["scenes", str(board), "move", "4", "--to", "1"])
    assert result.exit_code == 0, result.output
    after = frames_by_seed(board)
    assert [after[i] for i in range(1, 6)] == [before[4], before[1], before[2], before[3], before[5]]
    # candidates of old scene 2 are now scene 3's, their records pointing at their new names
    assert sorted(p.name for p in (board / "candidates").iterdir()) == ["03_0.json", "03_0.png", "03_1.json",
                                                                        "03_1.png"]
    assert json.loads((board / "candidates" / "03_1.json").read_text())["file"] == "candidates/03_1.png"
    # the exports on disk are written again in the new order
    html = (board / "board.html").read_text(encoding="utf-8")
    story = json.loads((board / "story.json").read_text(encoding="utf-8"))
    first, second = (html.index(escape(s["caption"])) for s in story["scenes"][:2])
    assert first < second
    rows = list(csv.DictReader((board / "shots.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert [r["caption"] for r in rows] == [s["caption"] for s in story["scenes"]]
    assert not (board / EDIT_DIR).exists()


def test_delete_and_duplicate(board, monkeypatch):
    no_render(monkeypatch)
    before = frames_by_seed(board)
    scenes.edit_board(board, lambda s: scenes.delete(s, 2))
    after = frames_by_seed(board)
    assert list(after.values()) == [before[1], before[3], before[4], before[5]]
    assert not (board / "frames" / "05.png").exists() and not (board / "control" / "05_pose.png").exists()
    assert not list((board / "candidates").iterdir())  # scene 2's candidates went with it
    scenes.edit_board(board, lambda s: scenes.duplicate(s, 1))
    dup = frames_by_seed(board)
    assert list(dup.values()) == [before[1], before[1], before[3], before[4], before[5]]


def test_insert_adds_a_scene_without_a_frame_and_render_only_draws_it(board, monkeypatch):
    before = frames_by_seed(board)
    _, edit, _ = scenes.edit_board(board, lambda s: scenes.insert(s, 3, {"caption": "Бай считает монеты.",
                                                                       "shot": "close_up"}))
    assert edit.new == [3]
    after = frames_by_seed(board)
    assert after[3][1] is None and after[3][0] not in {seed for seed, _ in before.values()}
    story = json.loads((board / "story.json").read_text(encoding="utf-8"))
    new = story["scenes"][2]
    assert new["caption"] == "Бай считает монеты." and new["shot"] == "close_up" and new["prompt"]
    assert new["setting"] == story["scenes"][1]["setting"]  # continues the scene before
    drawn = []
    original = PrevizRenderer.render

    def render(self, story, layouts, only, seeds=None):
        drawn.extend(only)
        yield from original(self, story, layouts, only, seeds)

    monkeypatch.setattr(PrevizRenderer, "render", render)
    result = runner.invoke(app, ["render", str(board / "story.json"), "--only", "3"])
    assert result.exit_code == 0, result.output
    assert drawn == [3]
    final = frames_by_seed(board)
    assert [final[i] for i in (1, 2, 4, 5, 6)] == [before[i] for i in range(1, 6)]


def test_bad_edits_are_one_line_and_change_nothing(board):
    before = {p: p.read_bytes() for p in sorted(board.rglob("*")) if p.is_file()}
    for args in (["move", "9", "--to", "1"], ["move", "1", "--to", "0"], ["delete", "6"],
                 ["insert", "--at", "8"], ["insert", "--at", "2", "--characters", "nobody"],
                 ["insert", "--at", "2", "--duration", "-1"]):
        result = runner.invoke(app, ["scenes", str(board), *args])
        assert result.exit_code == 2, (args, result.output)
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert {p: p.read_bytes() for p in sorted(board.rglob("*")) if p.is_file()} == before


def test_an_edit_killed_midway_is_finished_by_the_next_claim(board, monkeypatch):
    before = frames_by_seed(board)
    calls = {"n": 0}
    real = os.replace

    def dying(src, dst):
        swapping = EDIT_DIR in str(src) and EDIT_DIR not in str(dst)
        calls["n"] += swapping
        if swapping and calls["n"] == 4:
            raise KeyboardInterrupt  # the swap is under way: some files in place, some still staged
        return real(src, dst)

    monkeypatch.setattr(os, "replace", dying)
    with pytest.raises(KeyboardInterrupt):
        scenes.edit_board(board, lambda s: scenes.move(s, 5, 1), export=False)
    monkeypatch.setattr(os, "replace", real)
    assert (board / EDIT_DIR / "ready").exists()
    with Board(board).claim(fresh=False):  # any command's claim finishes it
        pass
    after = frames_by_seed(board)
    assert [after[i] for i in range(1, 6)] == [before[5], before[1], before[2], before[3], before[4]]


def test_an_edit_killed_before_it_was_ready_changes_nothing(board, monkeypatch):
    before = {p.relative_to(board): p.read_bytes() for p in sorted(board.rglob("*")) if p.is_file()}

    def dying(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("autokose.board.write_json", dying)  # the plan, written after the stage, before `ready`
    with pytest.raises(KeyboardInterrupt):
        scenes.edit_board(board, lambda s: scenes.delete(s, 1), export=False)
    monkeypatch.undo()
    with Board(board).claim(fresh=False):
        pass
    assert not (board / EDIT_DIR).exists()
    assert {p.relative_to(board): p.read_bytes() for p in sorted(board.rglob("*")) if p.is_file()} == before


def test_story_edits_are_pure():
    from autokose.story import Story

    story = Story.model_validate({"title": "t", "logline": "l", "characters": [{"id": "a", "name": "A"}],
                                  "scenes": [{"index": i, "caption": f"c{i}", "characters": ["a"]}
                                             for i in (1, 2, 3)]})
    edit = scenes.move(story, 3, 1)
    assert [s.caption for s in edit.story.scenes] == ["c3", "c1", "c2"] and edit.order == [3, 1, 2]
    assert [s.index for s in edit.story.scenes] == [1, 2, 3]
    assert [s.caption for s in story.scenes] == ["c1", "c2", "c3"]  # the input is left alone
    assert scenes.duplicate(story, 2).order == [1, 2, 2, 3]
    assert scenes.insert(story, 4, {}).order == [1, 2, 3, None]
    with pytest.raises(InputError, match="only scene"):
        scenes.delete(Story.model_validate({**story.model_dump(), "scenes": [story.scenes[0].model_dump()]}), 1)


def test_scores_follow_their_frames():
    from autokose.score.report import renumber_scores

    frames = {k: {"identity": v, "status": s}
              for k, v, s in (("01", 0.9, "ok"), ("02", 0.3, "low"), ("03", None, "none"))}
    matrix = {"character": "aldar", "metric": "face", "frames": ["01", "02"], "values": [[1.0, 0.4], [0.4, 1.0]]}
    scores = {"version": 1, "frames": frames, "summary": {"frames": 3, "id_swaps": 0}, "matrix": matrix}
    moved = renumber_scores(scores, ["02", None, "01", "01"])  # 2 first, a new scene, 1 twice; 3 deleted
    assert moved["frames"] == {"01": frames["02"], "03": frames["01"], "04": frames["01"]}
    assert moved["matrix"]["frames"] == ["01", "03", "04"]
    assert moved["matrix"]["values"] == [[1.0, 0.4, 0.4], [0.4, 1.0, 1.0], [0.4, 1.0, 1.0]]
    summary = moved["summary"]
    assert (summary["frames"], summary["frames_ok"], summary["frames_low"], summary["frames_none"]) == (4, 2, 1, 1)
    assert summary["worst_frame"] == "01" and summary["min_identity"] == 0.3 and summary["id_swaps"] == 0
    assert renumber_scores(scores, ["03", "01"])["matrix"] is None  # one frame of the matrix left: no matrix


def test_a_scene_moved_to_where_it_is_writes_nothing(board):
    stamps = {p: p.stat().st_mtime_ns for p in board.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["scenes", str(board), "move", "2", "--to", "2"])
    assert result.exit_code == 0, result.output
    assert {p: p.stat().st_mtime_ns for p in board.rglob("*") if p.is_file()} == stamps


def test_a_bad_new_scene_names_the_field(board):
    result = runner.invoke(app, ["scenes", str(board), "insert", "--at", "2", "--duration", "-3"])
    assert result.exit_code == 2 and "duration" in result.stderr, result.stderr
