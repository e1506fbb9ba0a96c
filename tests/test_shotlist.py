"""shots.csv, captions.srt and captions.vtt: parsed with the standard library and checked against the clock."""

from __future__ import annotations

import csv
import html
import io
import re
from fractions import Fraction

import pytest

from autokose.export import export_board
from autokose.export.timing import story_cuts, timecode, timeline_start
from test_editorial import FPS, TWO_LINES, make_cut_board

TIMING = re.compile(r"^(\d\d):(\d\d):(\d\d)[,.](\d{3}) --> (\d\d):(\d\d):(\d\d)[,.](\d{3})$")


def parse_cues(text: str, vtt: bool) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) of each cue: blocks split at blank lines, an id line, a timing line, the text."""
    if vtt:
        header, _, text = text.partition("\n\n")
        assert header == "WEBVTT"
    cues = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        ident, timing, *lines = block.split("\n")
        assert ident.isdigit(), block
        m = TIMING.match(timing)
        assert m, timing
        h1, m1, s1, ms1, h2, m2, s2, ms2 = map(int, m.groups())
        body = "\n".join(lines)
        cues.append((((h1 * 60 + m1) * 60 + s1) * 1000 + ms1, ((h2 * 60 + m2) * 60 + s2) * 1000 + ms2,
                     html.unescape(body) if vtt else body))
    return cues


def ms(frame: int, rate: Fraction) -> int:
    return round(Fraction(frame) / rate * 1000)


@pytest.mark.parametrize("fps", FPS)
def test_subtitles_parse_and_match_the_cuts(tmp_path, fps):
    board, story, settings = make_cut_board(tmp_path / "b", n=40, fps=fps)
    story.scenes[4].caption = ""  # no caption, no dialogue: no cue
    story.scenes[6].caption = "Первая строка\n\n\nпосле пустых строк"
    paths = export_board(board, story, ["srt", "vtt"], settings)
    cuts = story_cuts(story, settings.rate)
    with_text = [c for s, c in zip(story.scenes, cuts) if s.caption or s.dialogue]
    srt = paths["srt"].read_text(encoding="utf-8")
    vtt = paths["vtt"].read_text(encoding="utf-8")
    assert [int(n) for n in re.findall(r"^(\d+)\n\d\d:", srt, re.M)] == list(range(1, 40))  # numbered 1..n
    for cues in (parse_cues(srt, vtt=False), parse_cues(vtt, vtt=True)):
        assert len(cues) == 39
        assert [(a, b) for a, b, _ in cues] == [(ms(c.start, settings.rate), ms(c.end, settings.rate))
                                               for c in with_text]
        texts = [t for _, _, t in cues]
        assert texts[0] == story.scenes[0].caption + "\n— " + story.scenes[0].dialogue
        assert texts[1] == TWO_LINES  # two lines, markup and an arrow, as written
        assert texts[5] == "Первая строка\nпосле пустых строк"  # scene 7; blank lines would end the cue
    assert "&lt;b&gt; &amp; --&gt;" in vtt and "<b> & -->" in srt
    total = ms(cuts[-1].end, settings.rate)
    assert abs(total - sum(Fraction(str(s.duration)) for s in story.scenes) * 1000) <= 1000 / settings.rate / 2


def test_csv_parses_and_matches_the_story(tmp_path):
    board, story, settings = make_cut_board(tmp_path / "b", n=6, missing=(2,), fps="29.97")
    story.scenes[3].caption = "=HYPERLINK(\"http://x\")"
    story.scenes[4].notes = "@SUM(A1)"
    data = export_board(board, story, ["csv"], settings)["csv"].read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert list(rows[0]) == ["scene", "start", "end", "duration", "beat", "shot", "angle", "characters", "setting",
                             "time", "caption", "dialogue", "notes", "frame"]
    assert [r["scene"] for r in rows] == ["1", "2", "3", "4", "5", "6"]
    start = timeline_start(settings.rate)
    cuts = story_cuts(story, settings.rate)
    assert [(r["start"], r["end"]) for r in rows] == [(timecode(start + c.start, settings.rate),
                                                       timecode(start + c.end, settings.rate)) for c in cuts]
    assert rows[0]["start"] == "01:00:00;00"
    assert [r["duration"] for r in rows] == ["2.5", "3.2", "1.7", "0.04", "4.1", "2"]
    first = rows[0]
    assert (first["shot"], first["angle"], first["setting"], first["time"]) == ("крупный план", "на уровне глаз",
                                                                                "юрта", "сумерки")
    assert first["characters"] == "Алдар Косе; Бай" and rows[1]["characters"] == "Алдар Косе"
    assert first["beat"] == "setup" and first["dialogue"] == "Это яйцо несёт золото!"
    assert rows[1]["caption"] == TWO_LINES and rows[2]["notes"] == "push in; sound: wind"
    assert [r["frame"] for r in rows] == ["frames/01.png", "", "frames/03.png", "frames/04.png", "frames/05.png",
                                          "frames/06.png"]
    assert rows[3]["caption"] == "'=HYPERLINK(\"http://x\")" and rows[4]["notes"] == "'@SUM(A1)"  # no formulas


def test_csv_times_are_the_edls_record_times(tmp_path):
    board, story, settings = make_cut_board(tmp_path / "b", n=12, fps="23.976")
    paths = export_board(board, story, ["csv", "edl"], settings)
    rows = list(csv.DictReader(io.StringIO(paths["csv"].read_text(encoding="utf-8-sig"), newline="")))
    events = re.findall(r"^\d{3} .* (\S+) (\S+)$", paths["edl"].read_text(encoding="utf-8"), re.M)
    assert [(r["start"], r["end"]) for r in rows] == events


def test_csv_in_english_board(tmp_path):
    board, story, settings = make_cut_board(tmp_path / "b", n=3)
    story.language = "en"
    rows = list(csv.DictReader(io.StringIO(
        export_board(board, story, ["csv"], settings)["csv"].read_text(encoding="utf-8-sig"), newline="")))
    assert rows[0]["shot"] == "close-up" and rows[0]["characters"] == "Aldar Köse; the Bai"
