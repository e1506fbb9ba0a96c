"""The board folder under stress: locks, failed runs, leftovers, --force, symlinks and bad folders."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from autokose.board import Board
from autokose.app.cli import app
from autokose.errors import InputError
from autokose.export import export_board

LOGLINE = "Aldar Köse sells the Bai a golden egg."
SMALL = ("--scenes", "3", "--width", "160", "--height", "90")
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in result.output
    for needle in needles:
        assert needle in result.output, result.output


def snapshot(root: Path) -> dict:
    """Every path under `root` with its bytes and mtime: what "left as it was" means."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def small_board(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("boards") / "small"
    result = cli("story", LOGLINE, *SMALL, "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def board(small_board: Path, tmp_path: Path) -> Path:
    """A private copy of the small board."""
    copy = tmp_path / "board"
    subprocess.run(["cp", "-a", str(small_board), str(copy)], check=True)
    return copy


# -- the lock ---------------------------------------------------------------------------------
def test_a_second_run_on_a_busy_board_fails_with_one_line(board: Path):
    before = snapshot(board)
    with Board(board).lock():
        assert_user_error(cli("story", LOGLINE, *SMALL, "--out", board, "--resume"), "board is busy")
        assert_user_error(cli("story", LOGLINE, *SMALL, "--out", board, "--force"), "board is busy")
        assert_user_error(cli("render", board / "story.json", "--only", "2"), "board is busy")
        assert_user_error(cli("score", board), "board is busy")
    assert snapshot(board) == before, "a refused run wrote into the board"
    assert cli("render", board / "story.json", "--only", "2").exit_code == 0, "the lock outlived its holder"


@pytest.mark.slow
def test_kill_9_never_leaves_a_stale_lock(board: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom autokose.board import Board\n"
                               "with Board(sys.argv[1]).lock():\n    print('held', flush=True); time.sleep(120)",
         str(board)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert_user_error(cli("render", board / "story.json", "--only", "1"), "board is busy")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    result = cli("render", board / "story.json", "--only", "1")
    assert result.exit_code == 0, result.output


# -- failed runs leave the folder as it was ------------------------------------------------------
def test_a_failed_first_run_leaves_no_folder_behind(tmp_path: Path):
    out = tmp_path / "new" / "deeper" / "board"
    # fails after the run has made and locked its folder: no story and the write stage is off
    assert_user_error(cli("story", LOGLINE, "--out", out, "--stages", "stage,render"), "write stage is off")
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_user_error(cli("story", LOGLINE, "--out", empty, "--stages", "stage,render"))
    assert empty.is_dir() and not any(empty.iterdir()), "an existing folder is kept, and stays empty"


@pytest.mark.slow
def test_renderer_check_sees_the_cast_before_anything_is_written(board: Path, monkeypatch):
    """The renderer is checked with the characters' identity assets, before the first write."""
    from autokose.render.diffusion import DiffusionRenderer

    seen = {}

    def refuse(self):
        seen["assets"] = sorted(self.assets)
        raise InputError("bad IP-Adapter (planted)")

    monkeypatch.setattr(DiffusionRenderer, "check", refuse)
    (board / "frames" / "03.png").unlink()
    before = snapshot(board)
    assert_user_error(cli("story", LOGLINE, *SMALL, "--out", board, "--resume", "--model", "some/model"), "planted")
    assert snapshot(board) == before
    assert "aldar" in seen["assets"]


def test_a_failure_after_the_first_write_keeps_what_was_done(tmp_path: Path, monkeypatch):
    from autokose.render.previz import PrevizRenderer

    def broken(self, story, layouts, only, seeds=None):
        raise RuntimeError("GPU fell off")

    monkeypatch.setattr(PrevizRenderer, "render", broken)
    out = tmp_path / "board"
    with pytest.raises(RuntimeError):
        runner.invoke(app, ["story", LOGLINE, *SMALL, "--out", str(out)], catch_exceptions=False)
    assert (out / "story.json").is_file(), "a started board stays for --resume"


# -- leftovers of kill -9 and --force -------------------------------------------------------------
def test_taking_a_board_removes_our_temp_files_and_nothing_else(board: Path):
    ours = ["frames/.02.k3j_x9a2.png", "frames/.02.abcdefgh.svg", "control/.01_pose.zz9z8y7x.json",
            ".manifest.a1b2c3d4.json", ".sheet.q1w2e3r4.png", ".write-test-4242"]
    theirs = ["frames/.notes.abcdefgh.txt", "frames/notes.txt", ".hidden", "control/.01_pose.json",
              ".backup.abcdefgh.png", "frames/.02.short.png"]
    for rel in ours + theirs:
        (board / rel).write_bytes(b"")
    assert cli("story", LOGLINE, *SMALL, "--out", board, "--resume").exit_code == 0
    assert [rel for rel in ours if (board / rel).exists()] == []
    assert [rel for rel in theirs if not (board / rel).exists()] == []


def test_force_removes_the_previous_boards_files_but_not_the_users(board: Path):
    (board / "candidates").mkdir()
    orphans = ["candidates/03_1.png", "candidates/03_1.json", "scores.json", "scores_heatmap.png"]
    for rel in orphans:
        (board / rel).write_bytes(b"old")
    (board / "frames" / "notes.txt").write_text("mine")
    (board / "my_sketch.png").write_bytes(b"mine")
    result = cli("story", LOGLINE, "--scenes", "2", "--width", "160", "--height", "90", "--out", board, "--force",
                 "--stages", "write,stage,render")
    assert result.exit_code == 0, result.output
    left = {p.relative_to(board).as_posix() for p in board.rglob("*") if p.is_file()}
    assert left == {"story.json", "manifest.json", "layouts.json", "frames/01.png", "frames/01.svg", "frames/02.png",
                    "frames/02.svg", "control/01_pose.png", "control/01_pose.json", "control/02_pose.png",
                    "control/02_pose.json", "frames/notes.txt", "my_sketch.png"}
    assert set(json.loads((board / "manifest.json").read_text())["frames"]) == {"01", "02"}


# -- symlinks and folders that are files ----------------------------------------------------------
@pytest.mark.parametrize("name", ["frames", "control", "story.json", "manifest.json"])
def test_a_symlink_leaving_the_board_is_refused(board: Path, tmp_path: Path, name: str):
    outside = tmp_path / "elsewhere"
    (board / name).rename(outside)
    (board / name).symlink_to(outside)
    before = snapshot(outside) if outside.is_dir() else outside.read_bytes()
    assert_user_error(cli("story", LOGLINE, *SMALL, "--out", board, "--resume"), name, "leaves the board")
    assert_user_error(cli("render", board / "story.json", "--only", "1") if name != "story.json"
                      else cli("story", LOGLINE, *SMALL, "--out", board, "--force"), "leaves the board")
    assert (snapshot(outside) if outside.is_dir() else outside.read_bytes()) == before, "wrote through the link"


def test_a_symlink_inside_the_board_is_fine(board: Path):
    (board / "frames").rename(board / "real_frames")
    (board / "frames").symlink_to("real_frames")
    result = cli("render", board / "story.json", "--only", "1")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("name", ["frames", "control"])
def test_a_file_where_a_board_folder_belongs_is_one_line(board: Path, name: str):
    subprocess.run(["rm", "-r", str(board / name)], check=True)
    (board / name).write_text("not a folder")
    assert_user_error(cli("story", LOGLINE, *SMALL, "--out", board, "--resume"), name, "not a folder")
    assert (board / name).read_text() == "not a folder"


def test_a_symlinked_frame_from_outside_is_not_embedded(board: Path, tmp_path: Path, caplog):
    secret = tmp_path / "secret.png"
    Image.new("RGB", (160, 90), (255, 0, 0)).save(secret)
    frame = board / "frames" / "02.png"
    frame.unlink()
    frame.symlink_to(secret)
    from autokose.story import Story

    story = Story.load(board / "story.json")
    with caplog.at_level(logging.WARNING, logger="autokose"):
        export_board(Board(board), story, ["html", "pdf", "sheet"])
    assert "02.png is a symlink that leaves the board" in caplog.text
    html = (board / "board.html").read_text(encoding="utf-8")
    assert html.count("data:image/") == 2, "only frames 01 and 03 are embedded"
    red = Image.open(board / "sheet.png").convert("RGB").getcolors(1 << 20)
    assert not any(rgb == (255, 0, 0) and n > 100 for n, rgb in red), "the outside image reached sheet.png"


# -- settings that change nothing -----------------------------------------------------------------
def test_pick_on_a_previz_board_says_it_changes_nothing(board: Path):
    frames = {p.name: p.read_bytes() for p in (board / "frames").glob("*.png")}
    result = cli("render", board / "story.json", "--pick", "2=1")
    assert result.exit_code == 0, result.output
    assert "warning: --pick changes nothing on a previz board" in result.output
    assert not (board / "candidates").exists()
    assert {p.name: p.read_bytes() for p in (board / "frames").glob("*.png")} == frames


def test_a_lora_in_story_json_on_a_previz_board_says_it_changes_nothing(board: Path):
    story = json.loads((board / "story.json").read_text(encoding="utf-8"))
    story["characters"][0]["lora"] = "loras/[x].safetensors:0.8"
    (board / "story.json").write_text(json.dumps(story, ensure_ascii=False), encoding="utf-8")
    result = cli("render", board / "story.json", "--only", "1")
    assert result.exit_code == 0, result.output
    cid = story["characters"][0]["id"]
    assert f"warning: story.json gives {cid} the LoRA loras/[x].safetensors:0.8: the previz renderer draws no LoRA" \
        in result.output


def test_empty_stage_lists_are_refused(board: Path):
    assert_user_error(cli("story", LOGLINE, "--out", board, "--resume", "--stages", ""), "no stage given")
    assert_user_error(cli("render", board / "story.json", "--stages", " , "), "no stage given")


def test_lock_is_per_board_not_per_process(tmp_path: Path):
    a, b = Board(tmp_path / "a"), Board(tmp_path / "b")
    for board in (a, b):
        board.root.mkdir()
    with a.lock(), b.lock():
        with pytest.raises(InputError, match="busy"):
            with Board(tmp_path / "a").lock():
                pass
    assert os.listdir(tmp_path / "a") == [], "the lock leaves no file in the board"


@pytest.mark.slow
def test_a_bad_clip_model_fails_before_anything_is_written(board: Path, tmp_path: Path):
    (board / "frames" / "03.png").unlink()
    before = snapshot(board)
    not_clip = tmp_path / "not-clip"
    not_clip.mkdir()
    result = cli("story", LOGLINE, *SMALL, "--out", board, "--resume", "--clip-model", not_clip)
    assert_user_error(result, "--clip-model")
    assert snapshot(board) == before


# -- broken frames and folders where files belong ------------------------------------------------
def test_resume_draws_a_frame_that_does_not_decode_again(board: Path, small_board: Path):
    (board / "frames" / "02.png").write_bytes((small_board / "frames" / "02.png").read_bytes()[:200])
    result = cli("story", LOGLINE, *SMALL, "--out", board, "--resume")
    assert result.exit_code == 0, result.output
    assert "02.png: unreadable image (" in result.output and "drawing it again" in result.output
    assert (board / "frames" / "02.png").read_bytes() == (small_board / "frames" / "02.png").read_bytes()


@pytest.mark.parametrize("command", [["render", "{story}", "--only", "1"], ["score", "{board}"]])
def test_a_kept_frame_that_does_not_decode_is_refused_before_any_write(board: Path, command):
    (board / "frames" / "02.png").write_bytes(b"this is not a picture")
    before = snapshot(board)
    args = [a.format(story=board / "story.json", board=board) for a in command]
    assert_user_error(cli(*args), "02.png: not an image", "--only 2")
    assert snapshot(board) == before


@pytest.mark.parametrize("name", ["board.html", "story.json", "frames/01.png", "control/02_pose.json"])
def test_a_folder_where_the_board_keeps_a_file_is_refused(board: Path, name: str):
    subprocess.run(["rm", "-f", str(board / name)], check=True)
    (board / name).mkdir()
    before = snapshot(board)
    assert_user_error(cli("render", board / "story.json", "--only", "3") if name != "story.json"
                      else cli("story", LOGLINE, *SMALL, "--out", board, "--resume"), name, "is a folder")
    assert snapshot(board) == before


def test_a_pick_of_a_scene_the_story_lacks_is_refused(board: Path):
    assert_user_error(cli("render", board / "story.json", "--pick", "9=1"), "--pick: no scene 9")


def test_an_output_name_the_system_refuses_is_one_line(tmp_path: Path):
    assert_user_error(cli("story", LOGLINE, "--out", tmp_path / ("n" * 300)), "not writable")
