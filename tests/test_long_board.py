"""A 120-panel board end to end on previz: scenes past 99 get three-digit files ("100.png"), and
everything stays in scene order (01 … 99, 100 … 120), never in string order ("100" < "11"):
the manifest, board.html, board.pdf and sheet.png; --resume, `render --only 110` and --force
handle the three-digit files like the others.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps
from test_export import pdf_text
from typer.testing import CliRunner

from autokose.app.cli import app
from autokose.board import Board, frame_key, frame_order
from autokose.export.sheet import MAX_WIDTH, sheet_layout

LOGLINE = "Алдар Косе продаёт жадному баю «золотое яйцо»."
N = 120
SIZE = (128, 72)
KEYS = [frame_key(i) for i in range(1, N + 1)]


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def stamp(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns


def manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def long_board(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("long") / "board"
    result = cli("story", LOGLINE, "--scenes", N, "--width", SIZE[0], "--height", SIZE[1], "--out", out)
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def copy(long_board, tmp_path) -> Path:
    return shutil.copytree(long_board, tmp_path / "board")


def test_frame_keys_sort_by_number():
    assert [frame_key(i) for i in (1, 9, 10, 99, 100, 300)] == ["01", "09", "10", "99", "100", "300"]
    assert sorted(["100", "11", "02", "notes"], key=frame_order) == ["02", "11", "100", "notes"]


@pytest.mark.slow  # a 120-scene board with every export: 15–50 s
def test_frames_and_manifest_run_from_01_to_120(long_board):
    names = {p.name for p in (long_board / "frames").iterdir()}
    assert names == {f"{k}.{ext}" for k in KEYS for ext in ("png", "svg")}
    assert {p.name for p in (long_board / "control").iterdir()} == {f"{k}_pose.{e}" for k in KEYS for e in ("png", "json")}
    frames = manifest(long_board)["frames"]
    assert list(frames) == KEYS  # in scene order, not sorted as strings
    assert frames["100"]["file"] == "frames/100.png"
    with Image.open(long_board / "frames" / "120.png") as im:
        assert im.size == SIZE
    assert len(json.loads((long_board / "layouts.json").read_text())["layouts"]) == N


@pytest.mark.slow
def test_html_and_pdf_show_the_panels_in_scene_order(long_board):
    html = (long_board / "board.html").read_text(encoding="utf-8")
    assert re.findall(r'<article class="panel" id="scene-(\d+)">', html) == KEYS
    assert [int(n) for n in re.findall(r'alt="Сцена (\d+)"', html)] == list(range(1, N + 1))
    text = pdf_text((long_board / "board.pdf").read_bytes())
    assert [int(n) for n in re.findall(r"Сцена (\d+) —", text)] == list(range(1, N + 1))
    assert "стр. 20 / 20" in text  # six panels a page


@pytest.mark.slow
def test_the_sheet_is_one_capped_grid_in_scene_order(long_board):
    with Image.open(long_board / "sheet.png") as im:
        sheet = im.convert("RGB")
    geo = sheet_layout([scene.caption for scene in Board(long_board).load_story().scenes], SIZE[1] / SIZE[0])
    cols, thumb_w, thumb_h = geo.cols, geo.thumb_w, geo.thumb_h
    assert cols > 4 and sheet.width <= MAX_WIDTH and sheet.height < 1.2 * sheet.width  # not a 30-row strip
    assert sheet.size == (geo.width, geo.height)  # rows as tall as their captions (wrapped in full)

    def cell(n: int) -> np.ndarray:  # the lower half of slot n (below the number tag)
        x, y = geo.cell(n)
        return np.asarray(sheet.crop((x + 2, y + thumb_h // 2, x + thumb_w - 2, y + thumb_h - 2)), dtype=float)

    def thumb(index: int) -> np.ndarray:
        with Image.open(long_board / "frames" / f"{frame_key(index)}.png") as im:
            t = ImageOps.pad(im.convert("RGB"), (thumb_w, thumb_h), Image.Resampling.LANCZOS)
        return np.asarray(t.crop((2, thumb_h // 2, thumb_w - 2, thumb_h - 2)), dtype=float)

    for slot in (9, 10, 98, 99, 100, 119):
        own = np.abs(cell(slot) - thumb(slot + 1)).mean()
        assert own < 1.0, (slot, own)
    assert np.abs(thumb(10) - thumb(100)).mean() > 5  # the check above can tell frames apart


@pytest.mark.slow
def test_resume_draws_only_the_missing_frames_and_keeps_scene_order(long_board, copy):
    frames = copy / "frames"
    gone = (99, 100, 101, 120)
    for i in gone:
        (frames / f"{frame_key(i)}.png").unlink()
    data = manifest(copy)
    del data["frames"]["100"]  # killed between the entry and saving the manifest
    (copy / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    leftover = frames / ".100.k3j_x9a2.png"  # a temp file of a write cut short
    leftover.write_bytes(b"half a png")
    kept = {i: stamp(frames / f"{frame_key(i)}.png") for i in (1, 11, 98, 102, 119)}

    result = cli("story", LOGLINE, "--scenes", N, "--out", copy, "--resume")
    assert result.exit_code == 0, result.output
    assert not leftover.exists()
    for i in gone:
        name = f"{frame_key(i)}.png"
        assert (frames / name).read_bytes() == (long_board / "frames" / name).read_bytes()
    assert {i: stamp(frames / f"{frame_key(i)}.png") for i in kept} == kept
    assert list(manifest(copy)["frames"]) == KEYS


@pytest.mark.slow
def test_render_only_110_rewrites_that_frame_alone(long_board, copy):
    frames = copy / "frames"
    before = {p.name: stamp(p) for p in frames.iterdir()}
    result = cli("render", copy / "story.json", "--only", 110, "--stages", "stage,render")
    assert result.exit_code == 0, result.output
    after = {p.name: stamp(p) for p in frames.iterdir()}
    changed = {name for name in before if after[name] != before[name]}
    assert changed == {"110.png", "110.svg"}
    assert (frames / "110.png").read_bytes() == (long_board / "frames" / "110.png").read_bytes()
    assert list(manifest(copy)["frames"]) == KEYS


@pytest.mark.slow
def test_force_clears_three_digit_files_and_nothing_of_the_users(copy):
    board = Board(copy)
    (copy / "candidates").mkdir()
    (copy / "candidates" / "100_0.png").write_bytes(b"")
    (copy / "frames" / "notes.txt").write_text("mine")
    (copy / "frames" / "1000.png").write_bytes(b"")  # no scene of any board: not the board's
    owned = {p.relative_to(copy).as_posix() for p in board.owned_files()}
    assert {"frames/100.png", "frames/120.svg", "control/120_pose.json", "candidates/100_0.png"} <= owned
    board.clear()
    assert sorted(p.name for p in (copy / "frames").iterdir()) == ["1000.png", "notes.txt"]
    assert not any((copy / "control").iterdir()) and not any((copy / "candidates").iterdir())
