"""The editorial timeline (.otio, FCP7 XML, FCPXML, CMX 3600 EDL), each read back with OTIO and checked to the frame."""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET
from fractions import Fraction

import opentimelineio as otio
import pytest

from autokose.errors import InputError
from autokose.export import check_exports, export_board
from autokose.export.editorial import build_timeline, check_edl, check_fcp7, check_fcpx, check_otio, reel_name
from autokose.export.settings import ExportSettings
from autokose.export.timing import FRAME_RATES, story_cuts, timecode, timecode_frame, timeline_start
from test_export import make_board

DURATIONS = [2.5, 3.2, 1.7, 0.04, 4.1, 2.0, 0.5, 3.33, 1.25, 2.7]  # 0.04 s is less than a frame at 23.976
FPS = ["23.976", "24", "25", "29.97"]
TWO_LINES = "Бай кричит:\n<b> & --> «нет!»"
ADAPTERS = {"otio": "timeline.otio", "fcp7": "timeline.xml", "fcpx": "timeline.fcpxml", "edl": "timeline.edl"}


def make_cut_board(root, n: int = 40, missing: tuple[int, ...] = (), **settings):
    """A board of n tiny panels of mixed durations (a two-line caption with markup in scene 2, notes in 3)."""
    board, story = make_board(root, n=n, missing=missing, size=(32, 18))
    for scene in story.scenes:
        scene.duration = DURATIONS[(scene.index - 1) % len(DURATIONS)]
    story.scenes[1].caption = TWO_LINES
    if n > 2:
        story.scenes[2].notes = "push in; sound: wind"
    return board, story, ExportSettings(**settings)


def read_back(path, rate: Fraction):
    kwargs = {"rate": float(rate)} if path.suffix == ".edl" else {}
    timeline = otio.adapters.read_from_file(str(path), **kwargs)
    return timeline, list(timeline.find_clips())


def record(clip) -> tuple[int, int]:
    """A read-back clip's first frame and frame count on its track."""
    placed = clip.range_in_parent()
    return round(placed.start_time.value), round(placed.duration.value)


def fcpx_records(text: str, rate: Fraction) -> list[tuple[int, int]]:
    """(first frame, frames) of each spine clip, from FCPXML's rational seconds, exactly."""
    def frames(value: str) -> Fraction:
        return Fraction(value.removesuffix("s") or 0) * rate

    root = ET.fromstring(text.split("<!DOCTYPE fcpxml>")[1])
    out = [(frames(c.get("offset")), frames(c.get("duration"))) for c in root.iter("clip")]
    assert all(f.denominator == 1 for pair in out for f in pair), "a time that is not on a frame"
    return [(int(a), int(b)) for a, b in out]


@pytest.mark.parametrize("fps", FPS)
@pytest.mark.parametrize("fmt", list(ADAPTERS))
def test_round_trip_has_no_drift(tmp_path, fmt, fps):
    board, story, settings = make_cut_board(tmp_path / "b", fps=fps)
    rate = settings.rate
    path = export_board(board, story, [fmt], settings)[fmt]
    assert path == board.root / ADAPTERS[fmt]
    timeline, clips = read_back(path, rate)
    cuts = story_cuts(story, rate)
    assert len(clips) == len(story.scenes) == 40
    assert [c.name for c in clips] == [f"Сцена {i:02d}" for i in range(1, 41)]
    expected = [(c.start, c.frames) for c in cuts]
    if fmt == "edl":  # records from 01:00:00:00, which OTIO reads as the track starting there
        assert -timeline.tracks[0].source_range.start_time.value == timeline_start(rate)
    if fmt == "fcpx":
        # OTIO's FCPXML reader counts 23.976 and 29.97 as 23 and 29 fps, so read those times exactly.
        assert fcpx_records(path.read_text(encoding="utf-8"), rate) == expected
        if rate.denominator == 1:
            assert [record(c) for c in clips] == expected
    else:
        assert [record(c) for c in clips] == expected
    assert cuts[-1].end == round(sum(Fraction(str(d)) for d in (s.duration for s in story.scenes)) * rate)
    if fmt in ("otio", "fcp7"):
        assert timeline.name == "Золотое яйцо"
        assert timeline.global_start_time.to_timecode() == timecode(timeline_start(rate), rate)
        assert timecode(timeline_start(rate), rate) in ("01:00:00:00", "01:00:00;00")


def test_timecode_matches_otio():
    for name, rate in FRAME_RATES.items():
        for frame in [*range(0, 40000, 997), *range(17975, 18025), 107892, 108000, 215784, 10 ** 6]:
            tc = timecode(frame, rate)
            assert tc == otio.opentime.to_timecode(otio.opentime.RationalTime(frame, float(rate)), float(rate)), name
            assert timecode_frame(tc, rate) == frame
    assert timeline_start(FRAME_RATES["29.97"]) == 107892 and timeline_start(FRAME_RATES["25"]) == 90000


@pytest.mark.parametrize("fps", ["24", "29.97"])
def test_fcp7_carries_duration_and_format(tmp_path, fps):
    board, story, settings = make_cut_board(tmp_path / "b", n=5, missing=(4,), fps=fps, resolution=720)
    text = export_board(board, story, ["fcp7"], settings)["fcp7"].read_text(encoding="utf-8")
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>')
    sequence = ET.fromstring(text.split("<!DOCTYPE xmeml>")[1]).find("./project/children/sequence")
    assert int(sequence.findtext("duration")) == story_cuts(story, settings.rate)[-1].end
    chars = sequence.find("./media/video/format/samplecharacteristics")
    assert (chars.findtext("width"), chars.findtext("height")) == ("1280", "720")  # 720p at the frames' 16:9
    assert chars.findtext("rate/timebase") == ("30" if fps == "29.97" else "24")
    assert chars.findtext("rate/ntsc") == ("TRUE" if fps == "29.97" else "FALSE")
    clipitems = list(sequence.iter("clipitem"))
    assert len(clipitems) == 5 and all(c.findtext("duration") for c in clipitems)
    tc = sequence.find("timecode")
    assert tc.findtext("string") == ("01:00:00;00" if fps == "29.97" else "01:00:00:00")
    assert tc.findtext("displayformat") == ("DF" if fps == "29.97" else "NDF")
    urls = [f.findtext("pathurl") for f in sequence.iter("file")]
    assert urls == [(board.root.absolute() / f"frames/{i:02d}.png").as_uri() for i in range(1, 6)]
    assert all(f.find("media/audio") is None for f in sequence.iter("file"))  # stills have no sound
    assert clipitems[2].findtext("comments/mastercomment3") == "push in; sound: wind"
    assert clipitems[2].findtext("marker/comment") == "push in; sound: wind"
    assert clipitems[1].findtext("marker/name") == "Бай кричит: <b> & --> «нет!»"  # one line, escaped by XML
    assert clipitems[1].findtext("comments/mastercomment1") == TWO_LINES


@pytest.mark.parametrize("style", ["avid", "premiere"])
def test_edl_styles_parse(tmp_path, style):
    board, story, settings = make_cut_board(tmp_path / "b", n=12, missing=(5,), fps="29.97", edl_style=style)
    path = export_board(board, story, ["edl"], settings)["edl"]
    text = path.read_text(encoding="utf-8")
    assert text.startswith("TITLE: Золотое яйцо\nFCM: DROP FRAME\n\n")
    events = re.findall(r"^(\d{3})  (\S+)\s+V\s+C\s+(\S+) (\S+) (\S+) (\S+)$", text, re.M)
    assert [int(e[0]) for e in events] == list(range(1, 13))
    assert events[0][4] == "01:00:00;00"
    cuts = story_cuts(story, settings.rate)
    start = timeline_start(settings.rate)
    assert [(e[4], e[5]) for e in events] == [(timecode(start + c.start, settings.rate),
                                               timecode(start + c.end, settings.rate)) for c in cuts]
    timeline, clips = read_back(path, settings.rate)
    assert len(clips) == 12
    if style == "avid":
        assert all(re.fullmatch(r"[A-Za-z0-9]{1,8}", e[1]) for e in events)
        assert [e[1] for e in events[:2]] == ["01", "02"]
        assert [c.name for c in clips][:2] == ["Сцена 01", "Сцена 02"]
        assert "* FROM CLIP: frames/05.png" in text  # the missing frame, named where it will be
    else:  # Premiere: reel AX and no FROM CLIP comment (it would name every clip UNKNOWN)
        assert {e[1] for e in events} == {"AX"}
        assert "FROM CLIP:" not in text
        assert [c.name for c in clips][:2] == ["01.png", "02.png"]
    assert all(len(line) < 300 and "\r" not in line for line in text.splitlines())
    assert "* LOC: 00:00:00;00 YELLOW  БАЙ КРИЧИТ: <B> & --> «НЕТ!»" in text  # the two lines on one


def test_fcpx_formats_are_exact(tmp_path):
    board, story, settings = make_cut_board(tmp_path / "b", n=4, missing=(2,), fps="23.976")
    text = export_board(board, story, ["fcpx"], settings)["fcpx"].read_text(encoding="utf-8")
    root = ET.fromstring(text.split("<!DOCTYPE fcpxml>")[1])
    formats = list(root.iter("format"))
    assert [f.attrib for f in formats] == [{"id": "r1", "frameDuration": "1001/24000s", "width": "1920",
                                            "height": "1080"}]
    assert root.findall("asset-clip") == [] and len(root.findall("project")) == 1  # no orphan browser clips
    sequence = root.find(".//sequence")
    assert Fraction(sequence.get("tcStart").removesuffix("s")) * Fraction(24000, 1001) == 86400
    assert sequence.get("tcFormat") == "NDF"
    srcs = [a.get("src") for a in root.iter("asset")]
    assert srcs == [(board.root.absolute() / f"frames/{i:02d}.png").as_uri() for i in range(1, 5)]
    markers = [m for m in root.iter("marker")]
    assert markers[1].get("completed") == "0" and markers[0].get("completed") is None  # missing: a to-do


def test_timeline_clips_metadata_and_markers(tmp_path):
    board, story, settings = make_cut_board(tmp_path / "b", n=4, missing=(3,))
    timeline, clips = read_back(export_board(board, story, ["otio"], settings)["otio"], settings.rate)
    assert [type(c.media_reference).__name__ for c in clips] == ["ExternalReference", "ExternalReference",
                                                                  "MissingReference", "ExternalReference"]
    assert clips[0].media_reference.target_url == "frames/01.png"  # relative: the board folder can move
    assert clips[0].media_reference.available_range.duration.value >= 60 * 24  # a still: room to stretch
    meta = clips[2].metadata["autokose"]
    assert meta["scene"] == 3 and meta["shot"] == "wide" and meta["notes"] == "push in; sound: wind"
    assert meta["missing"] is True and meta["frame"] == "frames/03.png" and list(meta["characters"]) == ["aldar", "bai"]
    assert clips[1].metadata["autokose"]["caption"] == TWO_LINES
    for clip in clips:
        (marker,) = clip.markers
        assert marker.marked_range.start_time.value == clip.source_range.start_time.value
    assert clips[1].markers[0].name == "Бай кричит: <b> & --> «нет!»"
    assert [c.markers[0].color for c in clips] == ["YELLOW", "YELLOW", "RED", "YELLOW"]


def test_animatic_media(tmp_path):
    board, story, settings = make_cut_board(tmp_path / "b", n=6, timeline_media="animatic", fps="25")
    paths = export_board(board, story, ["otio", "fcp7", "edl"], settings)
    cuts = story_cuts(story, settings.rate)
    _, clips = read_back(paths["otio"], settings.rate)
    assert {c.media_reference.target_url for c in clips} == {"animatic.mp4"}
    assert [(round(c.source_range.start_time.value), round(c.source_range.duration.value)) for c in clips] == \
        [(c.start, c.frames) for c in cuts]
    xml = paths["fcp7"].read_text(encoding="utf-8")
    assert xml.count("<pathurl>") == 1 and xml.count('<file id="file-1"') == 6  # one file, referenced by id
    _, clips = read_back(paths["fcp7"], settings.rate)
    assert [round(c.source_range.start_time.value) for c in clips] == [c.start for c in cuts]
    assert " animatic V " in paths["edl"].read_text(encoding="utf-8").replace("  ", " ")


def test_output_is_deterministic(tmp_path):
    first, story, settings = make_cut_board(tmp_path / "a" / "b", n=5, missing=(2,), fps="29.97")
    second, _, _ = make_cut_board(tmp_path / "c" / "b", n=5, missing=(2,), fps="29.97")
    one = {f: p.read_bytes() for f, p in export_board(first, story, list(ADAPTERS), settings).items()}
    again = {f: p.read_bytes() for f, p in export_board(first, story, list(ADAPTERS), settings).items()}
    assert one == again
    other = {f: p.read_bytes() for f, p in export_board(second, story, list(ADAPTERS), settings).items()}
    assert one["otio"] == other["otio"] and one["edl"] == other["edl"]  # relative paths: same bytes anywhere


def test_reel_names():
    assert reel_name("frames/01.png") == "01" and reel_name("file:///x/animatic.mp4") == "animatic"
    assert reel_name("Сцена.png") == "AX" and reel_name("a_very-long name.png") == "averylon"


def test_missing_opentimelineio_is_input_error(tmp_path, monkeypatch):
    board, story, settings = make_cut_board(tmp_path / "b", n=2)
    monkeypatch.setitem(sys.modules, "opentimelineio", None)
    for check in (check_otio, check_fcp7, check_edl, check_fcpx):
        with pytest.raises(InputError, match=r"needs OpenTimelineIO: pip install 'autokose\[edit\]'"):
            check(board, story, settings)
    with pytest.raises(InputError, match="OpenTimelineIO"):
        export_board(board, story, ["csv", "otio"], settings)
    assert not (board.root / "shots.csv").exists()  # checked before the first file was written


def test_missing_adapter_is_input_error(tmp_path, monkeypatch):
    board, story, settings = make_cut_board(tmp_path / "b", n=2)
    monkeypatch.setattr(otio.adapters, "available_adapter_names", lambda: ["otio_json", "fcp_xml"])
    with pytest.raises(InputError, match=r"cmx_3600 adapter: pip install 'autokose\[edit\]'"):
        check_exports(board, story, ["edl"], settings)
    with pytest.raises(InputError, match="fcpx_xml"):
        check_exports(board, story, ["fcpx"], settings)
    check_exports(board, story, ["otio", "fcp7"], settings)  # each format asks only for its own adapter


def test_build_timeline_is_data(tmp_path):
    board, story, settings = make_cut_board(tmp_path / "b", n=3, fps="24")
    timeline = build_timeline(board, story, settings)
    assert list(board.root.glob("timeline.*")) == []  # builds, writes nothing
    assert timeline.global_start_time.value == 86400 and timeline.tracks[0].duration().value == sum(
        c.frames for c in story_cuts(story, settings.rate))
