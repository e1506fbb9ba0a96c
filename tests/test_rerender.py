"""`autokose render story.json --only N` rewrites frame N and leaves every other frame's file alone.

Bytes alone cannot tell "left alone" from "rendered again to the same pixels": the checks use
each file's inode and mtime_ns, which change whenever a file is rewritten (atomic writes
replace the file, so the inode changes even within one clock tick).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokose.app.cli import app

LOGLINE = "Aldar Köse sells the greedy Bai a magic coat"


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def stamps(folder: Path, pattern: str) -> dict[str, tuple[int, int, bytes]]:
    """name → (inode, mtime_ns, bytes) of the files matching `pattern`."""
    out = {}
    for p in sorted(folder.glob(pattern)):
        st = os.stat(p)
        out[p.name] = (st.st_ino, st.st_mtime_ns, p.read_bytes())
    return out


@pytest.fixture(scope="module")
def previz_board(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rerender") / "board"
    result = cli("story", LOGLINE, "--scenes", "4", "--out", out, "--stages", "write,stage,render")
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def board(previz_board, tmp_path) -> Path:
    copy = tmp_path / "board"
    shutil.copytree(previz_board, copy)
    return copy


def test_render_only_rewrites_just_that_frame(board):
    before = stamps(board / "frames", "*.*")
    assert len(before) == 8  # 01-04, png and svg
    result = cli("render", board / "story.json", "--only", "2", "--stages", "stage,render")
    assert result.exit_code == 0, result.output
    after = stamps(board / "frames", "*.*")
    assert after.keys() == before.keys()
    for name, (inode, mtime, data) in before.items():
        if name.startswith("02."):
            assert after[name][0] != inode, f"{name} was not rewritten"
            assert after[name][2] == data  # same story, same seed: the same picture
        else:
            assert after[name][:2] == (inode, mtime), f"{name} was rewritten by --only 2"


def test_unchanged_controls_are_not_rewritten_and_an_edited_scene_gets_new_ones(board):
    """Controls that come out the same keep their files; an edited scene's skeleton is redrawn."""
    before = stamps(board / "control", "*.*")
    story = json.loads((board / "story.json").read_text(encoding="utf-8"))
    scene = story["scenes"][1]
    scene["blocking"] = {cid: {"pose": "bow" if scene["blocking"].get(cid, {}).get("pose") != "bow" else "stand"}
                         for cid in scene["characters"]}
    (board / "story.json").write_text(json.dumps(story, ensure_ascii=False), encoding="utf-8")
    result = cli("render", board / "story.json", "--only", "2", "--stages", "stage,render")
    assert result.exit_code == 0, result.output
    after = stamps(board / "control", "*.*")
    assert after.keys() == before.keys()
    for name, (inode, mtime, data) in before.items():
        if name.startswith("02_"):
            assert after[name][2] != data, f"{name} did not follow the edited pose"
        else:
            assert after[name][:2] == (inode, mtime), f"{name} was rewritten by --only 2"


def test_render_only_keeps_the_other_frames_in_the_manifest(board):
    manifest = json.loads((board / "manifest.json").read_text(encoding="utf-8"))
    result = cli("render", board / "story.json", "--only", "3", "--stages", "stage,render")
    assert result.exit_code == 0, result.output
    again = json.loads((board / "manifest.json").read_text(encoding="utf-8"))
    assert again["frames"].keys() == manifest["frames"].keys()
    for key in ("01", "02", "04"):
        assert again["frames"][key] == manifest["frames"][key]
    assert again["frames"]["03"]["sha256"] == manifest["frames"]["03"]["sha256"]
