"""Atomic writes: a writer that fails or is killed mid-write leaves the old file intact.

Each of `autokose.fsio`'s writers is made to fail after it has written part of the new
content; the old file must still be there, byte for byte, with no temporary file left. A
child process killed with SIGKILL mid-write must leave the old file as well.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from autokose import fsio

OLD = b"the old content, complete\n"


class Cut(Exception):
    """The failure injected halfway through a write."""


@pytest.fixture
def target(tmp_path) -> Path:
    path = tmp_path / "out" / "file.json"
    path.parent.mkdir()
    path.write_bytes(OLD)
    return path


def half_then_fail(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
    raise Cut(f"cut after {len(data) // 2} bytes")


def assert_old_file_intact(path: Path) -> None:
    assert path.read_bytes() == OLD
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name], "a temporary file was left behind"


def test_write_bytes_cut_halfway(target, monkeypatch):
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: half_then_fail(self, data))
    with pytest.raises(Cut):
        fsio.write_bytes(target, b"x" * 10_000)
    monkeypatch.undo()
    assert_old_file_intact(target)


def test_write_json_cut_halfway(target, monkeypatch):
    monkeypatch.setattr(Path, "write_bytes", lambda self, data: half_then_fail(self, data))
    with pytest.raises(Cut):
        fsio.write_json(target, {"frames": list(range(2000))})
    monkeypatch.undo()
    assert_old_file_intact(target)


def test_write_with_cut_halfway(target):
    with pytest.raises(Cut):
        fsio.write_with(target, lambda tmp: half_then_fail(tmp, b"y" * 10_000))
    assert_old_file_intact(target)


def test_save_image_cut_halfway(tmp_path):
    target = tmp_path / "frames" / "01.png"
    target.parent.mkdir()
    target.write_bytes(OLD)

    class FailingImage:
        """Writes the start of a real PNG, then fails as a full disk would."""

        def save(self, path):
            png = tmp_path / "whole.png"
            Image.new("RGB", (64, 64), "red").save(png)
            half_then_fail(Path(path), png.read_bytes())

    with pytest.raises(Cut):
        fsio.save_image(target, FailingImage())
    assert_old_file_intact(target)


def test_successful_writes_replace_the_file_whole(target):
    fsio.write_json(target, {"a": 1})
    assert target.read_text() == '{\n  "a": 1\n}\n'
    fsio.save_image(target.with_suffix(".png"), Image.new("RGB", (8, 8), "blue"))
    with Image.open(target.with_suffix(".png")) as im:
        assert im.size == (8, 8)
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]


KILLED_WRITER = """
import sys, time
from autokose.fsio import write_with

def slowly(tmp):
    with open(tmp, "wb") as f:
        for _ in range(10_000):
            f.write(b"n" * 65536)
            f.flush()
            time.sleep(0.001)

write_with(sys.argv[1], slowly)
"""


def test_writer_killed_mid_write_leaves_the_old_file(target):
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target)])
    try:
        deadline = time.monotonic() + 60
        while not any(p.stat().st_size > 1 << 20 for p in target.parent.iterdir() if p != target):
            assert child.poll() is None, "the writer ended before it was killed"
            assert time.monotonic() < deadline, "the writer wrote nothing in 60 s"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert target.read_bytes() == OLD
    leftovers = [p for p in target.parent.iterdir() if p != target]
    assert leftovers and all(p.name.startswith(".") for p in leftovers)  # a hidden temp, never the final name
