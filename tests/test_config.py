"""Settings of a run: a board's saved settings meet the command line in `autokose.config.resolve`."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from autokose.board import Board
from autokose.config import RunConfig, resolve, saved
from autokose.errors import InputError

DIFFUSION = RunConfig.model_validate({
    "logline": "Aldar and the Bai", "characters_file": "cast.yaml",
    "render": {"renderer": "diffusion", "width": 512, "height": 288,
               "diffusion": {"model": "some/model", "steps": 4, "loras": ["a.safetensors:0.8"]}},
    "quality": {"best_of": 3, "picks": {2: 1}}, "stages": ["stage", "render"], "only": [2],
})


def test_a_new_board_takes_what_is_given_and_defaults():
    cfg = resolve(None, {"logline": "x", "model": "m", "lora": ["l.safetensors"], "width": None, "best_of": None})
    assert cfg.render.renderer == "diffusion"
    assert cfg.render.diffusion.given() == {"model": "m", "loras": ["l.safetensors"]}
    assert (cfg.render.width, cfg.quality.best_of, cfg.stages) == (960, 1, list(RunConfig().stages))


def test_a_resume_keeps_every_saved_setting_not_given_again(caplog):
    with caplog.at_level(logging.WARNING, logger="autokose"):
        cfg = resolve(DIFFUSION, {"logline": "Aldar and the Bai", "model": None, "steps": 8, "stages": None})
    assert cfg.render.renderer == "diffusion", "a resume without --model stays a diffusion board"
    assert cfg.render.diffusion.given() == {"model": "some/model", "steps": 8, "loras": ["a.safetensors:0.8"]}
    assert (cfg.render.width, cfg.render.height, cfg.quality.best_of, cfg.characters_file) == (512, 288, 3, "cast.yaml")
    assert cfg.only is None and cfg.stages == list(RunConfig().stages), "--only and --stages are this run's alone"
    notice = caplog.text
    for flag in ("--model some/model", "--lora a.safetensors:0.8", "--width 512", "--height 288", "--best-of 3",
                 "--characters cast.yaml"):
        assert flag in notice, flag
    assert "--steps" not in notice, "steps was given again"


def test_picks_add_to_the_saved_ones():
    assert resolve(DIFFUSION, {"picks": {3: 2}}).quality.picks == {2: 1, 3: 2}
    assert resolve(DIFFUSION, {"picks": {2: 0}}).quality.picks == {2: 0}


def test_nothing_saved_means_nothing_to_announce(caplog):
    with caplog.at_level(logging.WARNING, logger="autokose"):
        resolve(RunConfig(), {"logline": "x"})
        resolve(None, {"logline": "x", "width": 320})
    assert caplog.text == ""


@pytest.mark.parametrize("overrides, needle", [
    ({"steps": 4}, "need --model"),
    ({"width": 0}, "render.width"),
    ({"width": 65536}, "render.width"),
    ({"stages": []}, "no stage given"),
    ({"stages": ["write", ""]}, "unknown stage"),
    ({"stages": ["render", "paint"]}, "'paint'"),
    ({"best_of": 0}, "quality.best_of"),
])
def test_settings_that_cannot_work_are_one_line_input_errors(overrides, needle):
    with pytest.raises(InputError, match=needle) as err:
        resolve(None, overrides)
    assert "\n" not in str(err.value)


def test_run_config_refuses_unknown_and_empty_stage_lists():
    with pytest.raises(ValidationError, match="no stage given"):
        RunConfig(stages=[" "])


def test_saved_reads_the_manifest_and_names_a_broken_one(tmp_path):
    board = Board(tmp_path)
    assert saved(board) is None
    board.save_manifest({"command": DIFFUSION.model_dump(mode="json")})
    assert saved(board) == DIFFUSION
    (tmp_path / "manifest.json").write_text(json.dumps({"command": {"scenes": "many"}}))
    with pytest.raises(InputError, match="manifest.json: unreadable saved settings"):
        saved(board)


def test_a_deeply_nested_manifest_is_one_line(tmp_path):
    (tmp_path / "manifest.json").write_text('{"command": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(InputError, match="manifest.json: unreadable manifest .nested too deeply"):
        saved(Board(tmp_path))


@pytest.mark.parametrize(("given", "size"), [
    ({"width": 768}, (768, 432)),       # one side given: the other keeps the default 16:9, in 8s
    ({"height": 512}, (912, 512)),
    ({"width": 1920}, (1920, 1080)),
    ({"height": 4096}, (4096, 4096)),   # the derived side stays inside the bounds
    ({"width": 100, "height": 100}, (100, 100)),
    ({}, (960, 540)),
])
def test_one_frame_side_given_derives_the_other(given, size):
    render = resolve(None, given).render
    assert (render.width, render.height) == size


def test_a_saved_side_is_kept_when_the_other_is_given():
    base = resolve(None, {"width": 800, "height": 600})
    render = resolve(base, {"width": 400}).render
    assert (render.width, render.height) == (400, 600)


def test_saved_switches_and_ranges_are_announced_as_the_options_that_give_them(caplog):
    """Off switches and comma-separated settings come back as flags a user can paste."""
    first = resolve(None, {"logline": "x", "model": "m", "regional": False, "consistency_masked": False,
                           "consistency_steps": "0,0.6", "consistency_blocks": "down,up", "reroll_on_swap": False})
    d = first.render.diffusion
    assert (d.regional, d.consistency_masked, d.consistency_steps, d.consistency_blocks) == (
        False, False, (0.0, 0.6), ["down", "up"])
    assert first.quality.reroll_on_swap is False
    again = RunConfig.model_validate(json.loads(first.model_dump_json()))  # as the manifest stores it
    with caplog.at_level(logging.WARNING, logger="autokose"):
        cfg = resolve(again, {"logline": "x"})
    assert cfg.render.diffusion.consistency_steps == (0.0, 0.6) and cfg.quality.reroll_on_swap is False
    for flag in ("--no-regional", "--consistency-all", "--consistency-steps 0.0,0.6", "--consistency-blocks down,up",
                 "--no-reroll-on-swap"):
        assert flag in caplog.text, flag
