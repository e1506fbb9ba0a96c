"""When each panel starts and ends, in frames: the one clock of the animatic, the timeline, the
shot list and the subtitles.

Editors count frames, not seconds. A 3 s panel is 71.928 frames at 23.976 fps, so rounding each
panel on its own drifts the cut by a frame every few panels. Instead every cut is placed at the
rounded *running* time (`cuts`): a panel is a frame longer or shorter than its duration where the
rounding falls, but no cut is ever more than half a frame from where the durations put it, and
the whole board lasts `round(sum(durations) * fps)` frames, whatever the number of panels. Every
export reads these same frame numbers, so an EDL, an FCP7 XML, the animatic and the SRT agree to
the frame.

Frame rates are exact fractions: 23.976 is 24000/1001 and 29.97 is 30000/1001, as the NTSC
rates they name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from autokose.story import Story

# The rates an edit suite offers, by the name people type; the drop-frame NTSC ones as exact fractions.
FRAME_RATES: dict[str, Fraction] = {
    "23.976": Fraction(24000, 1001), "24": Fraction(24), "25": Fraction(25), "29.97": Fraction(30000, 1001),
    "30": Fraction(30), "50": Fraction(50), "59.94": Fraction(60000, 1001), "60": Fraction(60),
}


def frame_rate(name: str | float) -> Fraction:
    """'23.976' (or 23.976, '24000/1001') as the exact rate; ValueError naming the rates offered."""
    text = str(name).strip()
    if text.endswith(".0"):
        text = text[:-2]
    if text in FRAME_RATES:
        return FRAME_RATES[text]
    for rate in FRAME_RATES.values():
        if "/" in text and Fraction(text) == rate:
            return rate
    raise ValueError(f"frame rate {name!r} is not offered (rates: {', '.join(FRAME_RATES)})")


def rate_name(rate: Fraction) -> str:
    """The name of one of FRAME_RATES ('23.976' for 24000/1001)."""
    return next(name for name, r in FRAME_RATES.items() if r == rate)


@dataclass(frozen=True)
class Cut:
    """One panel on the clock: scene `index` holds frames [start, start + frames)."""

    index: int
    start: int
    frames: int

    @property
    def end(self) -> int:
        return self.start + self.frames


def _nearest(x: Fraction) -> int:
    """x rounded half up (Python's round() rounds half to even, which would make ties depend on parity)."""
    return math.floor(x + Fraction(1, 2))


def cuts(durations: list[float], rate: Fraction) -> list[Cut]:
    """Each panel's first frame and frame count at `rate`; cuts sit at the rounded running time.

    Durations are read as the decimals people type (`Fraction(str(3.2))` is exactly 16/5). A panel
    shorter than a frame still gets one frame (so every panel is seen), which pushes the next cut
    one frame on; the running-time rounding takes it back as soon as there is room.
    """
    out, start, elapsed = [], 0, Fraction(0)
    for n, duration in enumerate(durations, 1):
        elapsed += Fraction(str(duration))
        end = max(start + 1, _nearest(elapsed * rate))
        out.append(Cut(n, start, end - start))
        start = end
    return out


def story_cuts(story: Story, rate: Fraction) -> list[Cut]:
    """`cuts` for the story's scenes, with their indices."""
    found = cuts([scene.duration for scene in story.scenes], rate)
    return [Cut(scene.index, c.start, c.frames) for scene, c in zip(story.scenes, found)]


def seconds(frame: int, rate: Fraction) -> Fraction:
    """Frame number → exact time in seconds."""
    return Fraction(frame) / rate


def total_frames(story: Story, rate: Fraction) -> int:
    found = story_cuts(story, rate)
    return found[-1].end if found else 0


# Editors start a programme at one hour, not zero: room for bars, slate and countdown before it, and
# no timecode ever goes negative when something is put ahead of the first shot. The EDL's record
# timecodes, the FCP7 sequence, the .otio's global start and shots.csv all count from here.
TIMELINE_START = "01:00:00:00"


def drop_frame(rate: Fraction) -> bool:
    """Whether timecode at `rate` is drop-frame: 29.97 and 59.94, as OpenTimelineIO (and so the EDL) counts them.

    Drop-frame skips frame numbers 00 and 01 (00-03 at 59.94) each minute except every tenth, so the
    timecode stays on the wall clock; 23.976 has no drop-frame form and counts like 24.
    """
    return rate.denominator == 1001 and rate.numerator in (30000, 60000)


def timecode(frame: int, rate: Fraction) -> str:
    """Frame number → 'HH:MM:SS:FF' ('HH:MM:SS;FF' when drop_frame), the same string OpenTimelineIO writes."""
    nominal = math.ceil(rate)
    if drop_frame(rate):
        dropped = nominal // 15  # 2 at 29.97, 4 at 59.94
        per_minute, per_ten = nominal * 60 - dropped, nominal * 600 - dropped * 9
        tens, rest = divmod(frame, per_ten)
        frame += dropped * 9 * tens + (dropped * ((rest - dropped) // per_minute) if rest > dropped else 0)
    seconds_, ff = divmod(frame, nominal)
    minutes, ss = divmod(seconds_, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}{';' if drop_frame(rate) else ':'}{ff:02d}"


def timecode_frame(text: str, rate: Fraction) -> int:
    """'HH:MM:SS:FF' (or ';FF') → frame number at `rate`; the inverse of `timecode`."""
    hh, mm, ss, ff = (int(part) for part in text.replace(";", ":").split(":"))
    nominal = math.ceil(rate)
    frame = ((hh * 60 + mm) * 60 + ss) * nominal + ff
    if drop_frame(rate):
        minutes = hh * 60 + mm
        frame -= nominal // 15 * (minutes - minutes // 10)
    return frame


def timeline_start(rate: Fraction) -> int:
    """The frame number of TIMELINE_START at `rate` (107892 at 29.97, where 01:00:00;00 is drop-frame)."""
    return timecode_frame(TIMELINE_START, rate)
