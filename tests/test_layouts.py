"""layouts.json: staging's output is saved on every board, and a re-render draws from it.

A layout a user moved by hand is kept while its scene is unchanged; a scene edited in
story.json, or another frame shape, is staged again; a broken layouts.json is refused
before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autokose.board import Board
from autokose.config import RunConfig
from autokose.errors import InputError
from autokose.pipeline import run, stage
from autokose.render import RenderSettings
from autokose.staging import stage_story
from autokose.story import Shot

LOGLINE = "Aldar Köse sells the Bai a golden egg."
STAGES = ["write", "cast", "stage", "render"]


def config(**render) -> RunConfig:
    return RunConfig(logline=LOGLINE, scenes=3, render=RenderSettings(**({"width": 128, "height": 72} | render)),
                     stages=STAGES)


def layouts_file(root: Path) -> dict:
    return json.loads((root / "layouts.json").read_text(encoding="utf-8"))


def rerender(root: Path, cfg: RunConfig, only: list[int] | None = None) -> Board:
    board = Board(root)
    return run(cfg.model_copy(update={"only": only, "stages": ["stage", "render"]}), root, story=board.load_story())


@pytest.fixture
def board(tmp_path) -> Path:
    run(config(), tmp_path / "b")
    return tmp_path / "b"


def test_every_board_saves_the_layouts_it_was_drawn_from(board):
    data = layouts_file(board)
    story = Board(board).load_story()
    assert (data["width"], data["height"]) == (128, 72)
    assert data["layouts"] == [lay.model_dump(mode="json") for lay in stage_story(story, 128 / 72)]
    assert all(lay["source"] for lay in data["layouts"]), "each layout names the scene it was staged from"


def test_a_figure_moved_by_hand_is_drawn_where_it_was_put(board):
    data = layouts_file(board)
    n, figure = next((n, f) for n, f in enumerate(data["layouts"][0]["figures"]) if f["keypoints"])
    before_pose = (board / "control" / "01_pose.json").read_bytes()
    before_frame = (board / "frames" / "01.png").read_bytes()
    figure["keypoints"] = [[x + 0.1, y, c] for x, y, c in figure["keypoints"]]
    figure["box"] = [figure["box"][0] + 0.1, figure["box"][1], figure["box"][2] + 0.1, figure["box"][3]]
    (board / "layouts.json").write_text(json.dumps(data), encoding="utf-8")

    rerender(board, config(), only=[1])
    assert layouts_file(board)["layouts"][0]["figures"][n] == figure, "the hand-made move is kept"
    assert (board / "control" / "01_pose.json").read_bytes() != before_pose
    assert (board / "frames" / "01.png").read_bytes() != before_frame


def test_an_edited_scene_is_staged_again_and_the_others_are_kept(board):
    data = layouts_file(board)
    moved = data["layouts"][0]
    moved["figures"][0]["box"] = [0.0, 0.0, 0.5, 0.5]  # a hand-made change to scene 1
    (board / "layouts.json").write_text(json.dumps(data), encoding="utf-8")
    story = Board(board).load_story()
    scene = story.scenes[1]
    edited = story.model_copy(update={"scenes": [story.scenes[0], scene.model_copy(update={"shot": Shot.wide}),
                                                 *story.scenes[2:]]})
    Board(board).save_story(edited)

    rerender(board, config(), only=[2])
    after = layouts_file(board)["layouts"]
    assert after[0] == moved, "scene 1 is unchanged: its saved layout stays"
    assert after[1]["shot"] == "wide" and after[1]["source"] != data["layouts"][1]["source"]
    assert after[2] == data["layouts"][2]


def test_editing_a_caption_keeps_the_saved_layout(board):
    story = Board(board).load_story()
    saved = Board(board).load_layouts()
    edited = story.model_copy(update={"scenes": [story.scenes[0].model_copy(update={"caption": "new words"}),
                                                 *story.scenes[1:]]})
    assert stage(edited, 128 / 72, saved) == saved[0]


def test_another_frame_shape_stages_every_scene_again(board):
    rerender(board, config(width=96, height=96))
    data = layouts_file(board)
    assert (data["width"], data["height"]) == (96, 96)
    assert {lay["aspect"] for lay in data["layouts"]} == {1.0}


def test_a_broken_layouts_file_is_refused_before_anything_is_written(board):
    (board / "layouts.json").write_text('{"version": 1, "width": 128, "height": 72, "layouts": [{"index": "x"}]}',
                                        encoding="utf-8")
    before = {p: p.read_bytes() for p in board.rglob("*") if p.is_file()}
    with pytest.raises(InputError, match=r"layouts\.json: not a layouts file"):
        rerender(board, config())
    assert {p: p.read_bytes() for p in board.rglob("*") if p.is_file()} == before


def test_force_stages_afresh_over_a_broken_layouts_file(board):
    (board / "layouts.json").write_text("[]", encoding="utf-8")
    run(config(), board, force=True)
    assert len(layouts_file(board)["layouts"]) == 3
