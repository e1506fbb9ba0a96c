"""The shot list (shots.csv) and the captions as subtitles (captions.srt, captions.vtt).

All three read the one clock (timing.story_cuts), so a row's start and end are the EDL's record
timecodes (from timing.TIMELINE_START) and a cue's times are the animatic's frames, to the
millisecond. No library: CSV from the standard library, SRT and VTT by hand.

shots.csv is UTF-8 with a BOM (Excel opens Cyrillic and Kazakh right only with it); its header is
English (scripts read it), its shot, angle, time and setting in the story's language (crews read
them), as the board and the PDF print them. The beat stays the story's word (it has no crew term).
"""

from __future__ import annotations

import csv
import io
from fractions import Fraction
from pathlib import Path

from autokose.board import Board
from autokose.export import frame_files
from autokose.export.labels import Labels
from autokose.export.settings import ExportSettings
from autokose.export.timing import Cut, seconds, story_cuts, timecode, timeline_start
from autokose.fsio import write_bytes, write_text
from autokose.story import Scene, Story

COLUMNS = ("scene", "start", "end", "duration", "beat", "shot", "angle", "characters", "setting", "time",
           "caption", "dialogue", "notes", "frame")
# A cell starting with one of these is a formula to Excel and LibreOffice (CSV injection): a caption
# like "=HYPERLINK(...)" would run. A leading apostrophe makes it text; it is shown, not hidden.
FORMULA_START = ("=", "+", "@", "\t", "\r")


def _cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_START) else text


def shot_rows(board: Board, story: Story, settings: ExportSettings) -> list[dict[str, str]]:
    """One row per scene, keyed by COLUMNS."""
    labels = Labels(story.language)
    rate = settings.rate
    offset = timeline_start(rate)
    frames = frame_files(board, story)
    rows = []
    for scene, cut in zip(story.scenes, story_cuts(story, rate)):
        names = [story.character(cid).display_name(story.language) for cid in scene.characters]
        rows.append({
            "scene": str(scene.index), "start": timecode(offset + cut.start, rate),
            "end": timecode(offset + cut.end, rate), "duration": f"{scene.duration:g}", "beat": scene.beat.value,
            "shot": labels.term(scene.shot), "angle": labels.term(scene.angle), "characters": "; ".join(names),
            "setting": labels.setting(scene.setting), "time": labels.term(scene.time),
            "caption": scene.caption, "dialogue": scene.dialogue or "", "notes": scene.notes,
            "frame": frames[scene.index].relative_to(board.root).as_posix() if scene.index in frames else "",
        })
    return rows


def shots_csv(rows: list[dict[str, str]]) -> bytes:
    """The rows as CSV bytes: utf-8-sig, CRLF rows (RFC 4180, what Excel writes), formulas defused."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    writer.writerows({key: _cell(value) for key, value in row.items()} for row in rows)
    return out.getvalue().encode("utf-8-sig")


def write_csv(board: Board, story: Story, settings: ExportSettings) -> Path:
    return write_bytes(board.export_path("csv"), shots_csv(shot_rows(board, story, settings)))


# -- subtitles ------------------------------------------------------------------------------------------

def cue_text(scene: Scene) -> str:
    """What a panel's subtitle says: its caption, then its dialogue as a '— ' line (as the PDF prints it).

    Line breaks are kept; blank lines are dropped, since a blank line ends a cue in SRT and VTT.
    """
    parts = [scene.caption] + ([f"— {scene.dialogue}"] if scene.dialogue and scene.dialogue.strip() else [])
    return "\n".join(line.rstrip() for part in parts for line in part.splitlines() if line.strip())


def cues(story: Story, rate: Fraction) -> list[tuple[int, int, str]]:
    """(start ms, end ms, text) for every panel with something to say, timed to its frames of the animatic."""
    def ms(frame: int) -> int:
        return round(seconds(frame, rate) * 1000)

    found: list[Cut] = story_cuts(story, rate)
    return [(ms(cut.start), ms(cut.end), text) for scene, cut in zip(story.scenes, found) if (text := cue_text(scene))]


def clock(ms: int, separator: str) -> str:
    """Milliseconds as 'HH:MM:SS,mmm' (SRT: ',') or 'HH:MM:SS.mmm' (VTT: '.')."""
    secs, millis = divmod(ms, 1000)
    minutes, ss = divmod(secs, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}{separator}{millis:03d}"


def srt(story: Story, rate: Fraction) -> str:
    """SubRip: numbered cues, text as written (SRT has no escapes; players read <b> as bold)."""
    return "".join(f"{n}\n{clock(a, ',')} --> {clock(b, ',')}\n{text}\n\n"
                   for n, (a, b, text) in enumerate(cues(story, rate), 1))


def vtt(story: Story, rate: Fraction) -> str:
    """WebVTT: & < > escaped (a caption's '<b>' or '-->' stays text); each cue's id is its running number."""
    def escape(text: str) -> str:
        return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    return "WEBVTT\n\n" + "".join(f"{n}\n{clock(a, '.')} --> {clock(b, '.')}\n{escape(text)}\n\n"
                                  for n, (a, b, text) in enumerate(cues(story, rate), 1))


def write_srt(board: Board, story: Story, settings: ExportSettings) -> Path:
    return write_text(board.export_path("srt"), srt(story, settings.rate))


def write_vtt(board: Board, story: Story, settings: ExportSettings) -> Path:
    return write_text(board.export_path("vtt"), vtt(story, settings.rate))
