"""Interrupted runs: the manifest keeps up with the frames, and --resume finishes the same board."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokose.app.cli import app
from autokose.config import RunConfig
from autokose.fsio import sha256_file
from autokose.pipeline import run
from autokose.render import RenderSettings
from autokose.render.previz import PrevizRenderer

LOGLINE = "Aldar Köse sells the Bai a golden egg."
AUTOKOSE = Path(sys.executable).parent / "autokose"
# Everything of a board but the manifest, which records timings and dates.
CONTENT = ("story.json", "frames/*", "control/*", "board.html", "board.pdf", "sheet.png")
runner = CliRunner()


def config() -> RunConfig:
    return RunConfig(logline=LOGLINE, scenes=4, render=RenderSettings(width=128, height=72),
                     stages=["write", "cast", "stage", "render"])


def manifest(root: Path) -> dict:
    return json.loads((root / "manifest.json").read_text(encoding="utf-8"))


def content(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for pattern in CONTENT for p in sorted(root.glob(pattern))}


def interrupt_after(monkeypatch, n: int) -> None:
    """Make the previz renderer die (like Ctrl-C) after it has yielded `n` frames."""
    original = PrevizRenderer.render

    def render(self, story, layouts, only, seeds=None):
        for k, frame in enumerate(original(self, story, layouts, only, seeds)):
            if k == n:
                raise KeyboardInterrupt
            yield frame

    monkeypatch.setattr(PrevizRenderer, "render", render)


def test_the_manifest_is_saved_after_every_frame(tmp_path: Path, monkeypatch):
    out = tmp_path / "board"
    interrupt_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        run(config(), out)
    early = manifest(out)["frames"]
    assert sorted(early) == ["01", "02"]
    for key, entry in early.items():
        assert entry["sha256"] == sha256_file(out / entry["file"]), key

    monkeypatch.undo()
    run(config(), out, resume=True)
    frames = manifest(out)["frames"]
    assert sorted(frames) == ["01", "02", "03", "04"]
    assert {k: frames[k] for k in early} == early, "the first run's seeds, hashes and timings are kept"


def test_resume_records_frames_the_manifest_missed(tmp_path: Path):
    out = tmp_path / "board"
    run(config(), out)
    story = json.loads((out / "story.json").read_text(encoding="utf-8"))
    data = manifest(out)
    del data["frames"]["02"]  # killed between writing the frame and saving the manifest
    data["frames"]["03"]["sha256"] = "0" * 64  # an entry of a frame that was rendered again since
    (out / "manifest.json").write_text(json.dumps(data), encoding="utf-8")

    run(config(), out, resume=True)
    frames = manifest(out)["frames"]
    assert sorted(frames) == ["01", "02", "03", "04"]
    for key in ("02", "03"):
        assert frames[key] == {"file": f"frames/{key}.png", "seed": story["scenes"][int(key) - 1]["seed"],
                               "sha256": sha256_file(out / f"frames/{key}.png")}


def test_resume_keeps_the_saved_settings_and_says_so(tmp_path: Path):
    out = tmp_path / "board"
    made = runner.invoke(app, ["story", LOGLINE, "--scenes", "2", "--width", "160", "--height", "90", "--out", str(out),
                               "--stages", "write,stage,render"])
    assert made.exit_code == 0, made.output
    original = (out / "frames/02.png").read_bytes()
    (out / "frames/02.png").unlink()

    result = runner.invoke(app, ["story", LOGLINE, "--scenes", "2", "--out", str(out), "--resume",
                                 "--stages", "stage,render"])
    assert result.exit_code == 0, result.output
    assert "warning: using the board's saved settings: --width 160 --height 90" in result.output
    assert (out / "frames/02.png").read_bytes() == original, "resumed at another size: a mixed board"
    assert manifest(out)["command"]["render"]["width"] == 160

    result = runner.invoke(app, ["render", str(out / "story.json"), "--only", "1", "--width", "192",
                                 "--stages", "render"])
    assert result.exit_code == 0, result.output
    assert "saved settings: --height 90 (" in result.output, "--width was given again: not a saved one"
    assert manifest(out)["command"]["render"] == {"renderer": "previz", "width": 192, "height": 90, "diffusion": {}}


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_uninterrupted_board(tmp_path: Path):
    args = [LOGLINE, "--scenes", "6", "--width", "320", "--height", "180"]
    reference = tmp_path / "reference"
    assert runner.invoke(app, ["story", *args, "--out", str(reference)]).exit_code == 0
    expected = content(reference)
    seeds = {k: e["seed"] for k, e in manifest(reference)["frames"].items()}

    interrupted = 0
    for trial, wait_for in enumerate(["story.json", "frames/01.png", "frames/03.png", "frames/05.svg"]):
        out = tmp_path / f"killed{trial}"
        proc = subprocess.Popen([str(AUTOKOSE), "story", *args, "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (out / wait_for).exists() and proc.poll() is None:
            time.sleep(0.005)
        proc.kill()
        proc.wait()
        interrupted += not (out / "sheet.png").exists()

        result = runner.invoke(app, ["story", *args, "--out", str(out), "--resume"])
        assert result.exit_code == 0, result.output
        assert content(out) == expected, f"trial {trial}: resumed board differs"
        frames = manifest(out)["frames"]
        assert {k: e["seed"] for k, e in frames.items()} == seeds
        assert all(e["sha256"] == sha256_file(out / e["file"]) for e in frames.values())
        assert [p.name for p in out.rglob(".*")] == [], "temp files left behind"
    assert interrupted >= 2, "the kills came too late to interrupt anything"


@pytest.mark.parametrize("damage", [{"frames": []}, {"timings": 5}, {"command": "x"}])
def test_a_damaged_manifest_is_one_line_and_deleting_it_recovers(tmp_path: Path, damage: dict):
    from autokose.errors import InputError

    out = tmp_path / "board"
    run(config(), out)
    frames = manifest(out)["frames"]
    (out / "manifest.json").write_text(json.dumps({**manifest(out), **damage}), encoding="utf-8")
    with pytest.raises(InputError, match="delete manifest.json"):
        run(config(), out, resume=True)
    (out / "manifest.json").unlink()
    run(config(), out, resume=True)
    assert {k: e["sha256"] for k, e in manifest(out)["frames"].items()} == {k: e["sha256"] for k, e in frames.items()}
