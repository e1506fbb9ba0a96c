"""`autokose export` and the export stage's formats: settings resolved like a run's and saved with the board."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokose.app.cli import app
from autokose.config import RunConfig
from autokose.pipeline import run
from autokose.render import RenderSettings

runner = CliRunner()
LOGLINE = "Aldar Köse sells the Bai a golden egg."


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export-cli") / "board"
    run(RunConfig(logline=LOGLINE, scenes=3, render=RenderSettings(width=128, height=72), exports=["html"]), out)
    return out


@pytest.fixture
def board(made, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(made, tmp_path / "board"))


def srt_starts(path: Path) -> list[str]:
    return [line.split(" --> ")[0] for line in path.read_text(encoding="utf-8").splitlines() if " --> " in line]


def test_export_writes_the_formats_asked_and_saves_its_settings(board: Path):
    result = runner.invoke(app, ["export", str(board), "--format", "csv,srt", "--fps", "25", "--pdf-panels", "4"])
    assert result.exit_code == 0, result.output
    assert (board / "shots.csv").is_file() and (board / "captions.srt").is_file()
    assert not (board / "animatic.mp4").exists()
    saved = json.loads((board / "manifest.json").read_text(encoding="utf-8"))["command"]["export"]
    assert saved["fps"] == "25" and saved["pdf_panels"] == 4
    # a later export keeps 25 fps without being told; a render run's export stage too
    first = srt_starts(board / "captions.srt")
    (board / "captions.srt").unlink()
    assert runner.invoke(app, ["export", str(board), "--format", "srt"]).exit_code == 0
    assert srt_starts(board / "captions.srt") == first
    result = runner.invoke(app, ["render", str(board / "story.json"), "--export", "srt"])
    assert result.exit_code == 0, result.output
    assert srt_starts(board / "captions.srt") == first


def test_story_writes_the_export_formats_it_is_given(tmp_path: Path):
    out = tmp_path / "b"
    result = runner.invoke(app, ["story", LOGLINE, "--scenes", "2", "--out", str(out), "--width", "128",
                                 "--export", "sheet,csv"])
    assert result.exit_code == 0, result.output
    assert (out / "sheet.png").is_file() and (out / "shots.csv").is_file() and not (out / "board.html").exists()


@pytest.mark.parametrize(("args", "needle"), [
    (["--format", "csv,docx"], "unknown export format 'docx'"),
    (["--format", "csv", "--fps", "23"], "frame rate"),
    (["--format", "pdf", "--pdf-panels", "5"], "5 panels a page"),
    (["--format", "csv", "--captions", "loud"], "captions"),
])
def test_bad_export_options_are_one_line_and_write_nothing(board: Path, args, needle):
    before = {p: p.read_bytes() for p in board.rglob("*") if p.is_file()}
    result = runner.invoke(app, ["export", str(board), *args])
    assert result.exit_code == 2, result.output
    assert needle in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert {p: p.read_bytes() for p in board.rglob("*") if p.is_file()} == before


def test_a_format_that_cannot_be_written_stops_all_before_the_first_file(board: Path, monkeypatch):
    from autokose.errors import InputError
    from autokose.export import editorial

    def missing(*args):
        raise InputError("the timeline needs OpenTimelineIO: pip install 'autokose[edit]'")

    monkeypatch.setattr(editorial, "check_otio", missing)
    result = runner.invoke(app, ["export", str(board), "--format", "csv,otio"])
    assert result.exit_code == 2 and "OpenTimelineIO" in result.stderr
    assert not (board / "shots.csv").exists()


def test_export_of_a_folder_without_a_story_is_refused(tmp_path: Path):
    result = runner.invoke(app, ["export", str(tmp_path)])
    assert result.exit_code == 2 and "no story.json" in result.stderr


def test_every_export_the_board_holds_is_written_again_with_the_others(board: Path):
    assert runner.invoke(app, ["export", str(board), "--format", "vtt"]).exit_code == 0
    vtt = (board / "captions.vtt").read_text(encoding="utf-8")
    result = runner.invoke(app, ["export", str(board), "--format", "srt", "--fps", "23.976"])
    assert result.exit_code == 0, result.output
    assert (board / "captions.vtt").read_text(encoding="utf-8") != vtt  # retimed at 23.976 with the SRT
    srt = srt_starts(board / "captions.srt")
    vtt_starts = [line.split(" --> ")[0].replace(".", ",") for line in
                  (board / "captions.vtt").read_text(encoding="utf-8").splitlines() if " --> " in line]
    assert vtt_starts == srt and srt[1] != "00:00:03,000"  # 3 s at 23.976 is 71.928 frames: the cut is on 72


def test_a_saved_soundtrack_is_cleared_with_an_empty_value_and_a_lost_one_does_not_stop_a_scene_edit(
        board: Path, tmp_path: Path, caplog):
    import logging

    from autokose.scenes import edit_board, move

    song = tmp_path / "song.wav"
    write_tone(song)
    result = runner.invoke(app, ["export", str(board), "--format", "mp4", "--resolution", "144",
                                 "--soundtrack", str(song)])
    assert result.exit_code == 0, result.output
    song.unlink()
    before = (board / "animatic.mp4").read_bytes()
    with caplog.at_level(logging.WARNING, logger="autokose"):
        edit_board(board, lambda story: move(story, 2, 1))
    assert any("animatic.mp4 is left as it was" in r.getMessage() for r in caplog.records)
    assert (board / "animatic.mp4").read_bytes() == before
    result = runner.invoke(app, ["export", str(board), "--format", "csv"])
    assert result.exit_code == 2 and "soundtrack" in result.stderr  # the animatic would be rewritten: refused
    result = runner.invoke(app, ["export", str(board), "--format", "csv", "--soundtrack", ""])
    assert result.exit_code == 0, result.output
    saved = json.loads((board / "manifest.json").read_text(encoding="utf-8"))["command"]["export"]
    assert saved["soundtrack"] is None and (board / "animatic.mp4").read_bytes() != before


def write_tone(path: Path, seconds: float = 2.0) -> None:
    import math
    import struct
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(48000)
        w.writeframes(b"".join(struct.pack("<h", int(8000 * math.sin(i / 20))) for i in range(int(48000 * seconds))))
