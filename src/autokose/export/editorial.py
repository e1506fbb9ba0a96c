"""The editorial timeline: the board as a sequence an editor opens in Premiere, Resolve, Final Cut or Avid.

One pure function (`build_timeline`) makes an OpenTimelineIO timeline: one clip per panel, placed
on the frames of `timing.story_cuts` (the animatic's clock, so nothing drifts at 23.976 or 29.97),
with the scene's shot, angle, caption and notes as metadata and a marker at its first frame. Each
writer serialises that timeline with an OTIO adapter and fixes what the adapter leaves out:

    timeline.otio    otio_json; media paths relative to the board (the folder can move)
    timeline.xml     FCP7 XML (fcp_xml); absolute file:// URLs (what Premiere and Resolve relink);
                     <format> filled in (Resolve refuses a sequence without its size and rate)
    timeline.fcpxml  FCPXML 1.8 (fcpx_xml); absolute URLs; exact NTSC frame durations
    timeline.edl     CMX 3600 (cmx_3600), avid or premiere style; FCM line; record from 01:00:00:00

Every timeline starts at timing.TIMELINE_START (01:00:00:00), as edit suites do. A panel whose frame
is not rendered yet is still a clip (MissingReference, red marker), so the cut can be timed early.
"""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

from autokose.board import Board, frame_key
from autokose.errors import InputError
from autokose.export import frame_files, picture_size
from autokose.export.labels import Labels
from autokose.export.settings import ExportSettings
from autokose.export.timing import drop_frame, story_cuts, timeline_start
from autokose.fsio import write_text
from autokose.story import Scene, Story

log = logging.getLogger("autokose")
EXTRA = "pip install 'autokose[edit]'"
# A still's media lasts this long (Scene.duration's upper bound), so an editor can stretch a panel in
# the cut without running out of media; its clip uses only the panel's own frames.
STILL_SECONDS = 60
TRACK_NAME = "V1"


def _otio(*adapters: str):
    """opentimelineio, with the named adapters present; InputError naming the extra to install otherwise."""
    try:
        import opentimelineio as otio
    except ImportError:
        raise InputError(f"the timeline export needs OpenTimelineIO: {EXTRA}") from None
    missing = [a for a in adapters if a not in otio.adapters.available_adapter_names()]
    if missing:
        raise InputError(f"the timeline export needs OpenTimelineIO's {', '.join(missing)} adapter: {EXTRA}")
    return otio


def check_otio(board: Board, story: Story, settings: ExportSettings) -> None:
    _otio("otio_json")


def check_fcp7(board: Board, story: Story, settings: ExportSettings) -> None:
    _otio("fcp_xml")


def check_edl(board: Board, story: Story, settings: ExportSettings) -> None:
    _otio("cmx_3600")


def check_fcpx(board: Board, story: Story, settings: ExportSettings) -> None:
    _otio("fcpx_xml")


def clip_name(labels: Labels, index: int) -> str:
    """'Сцена 03': zero-padded so a bin sorts the panels in order."""
    return f"{labels['scene']} {frame_key(index)}"


def one_line(text: str) -> str:
    """Text with its line breaks folded into spaces: marker names and EDL lines hold one line."""
    return " ".join(text.split())


def scene_metadata(scene: Scene, frame: str, missing: bool) -> dict:
    """The scene as a clip's "autokose" metadata: raw story values, for scripts that read the timeline."""
    return {"scene": scene.index, "shot": scene.shot.value, "angle": scene.angle.value, "beat": scene.beat.value,
            "setting": scene.setting, "time": scene.time.value, "characters": list(scene.characters),
            "caption": scene.caption, "dialogue": scene.dialogue or "", "notes": scene.notes,
            "duration": scene.duration, "frame": frame, "missing": missing}


def build_timeline(board: Board, story: Story, settings: ExportSettings, *, absolute: bool = False):
    """The board as an otio Timeline: clip k is scene k on its story_cuts frames, one video track.

    `absolute`: media as absolute file:// URLs (NLE XML) rather than paths relative to the board.
    Media follow settings.timeline_media: each panel's frame as a still, or its frames of animatic.mp4.
    """
    otio = _otio()
    rate = settings.rate
    fps = float(rate)

    def span(start: int, frames: int):
        return otio.opentime.TimeRange(otio.opentime.RationalTime(start, fps), otio.opentime.RationalTime(frames, fps))

    def url(rel: str) -> str:
        return (board.root.absolute() / rel).as_uri() if absolute else rel

    labels = Labels(story.language)
    found = story_cuts(story, rate)
    frames = frame_files(board, story)
    still_frames = round(STILL_SECONDS * rate)
    animatic = board.export_path("mp4")
    if settings.timeline_media == "animatic" and not animatic.is_file():
        log.warning("%s does not exist yet; the timeline points at it (export mp4 too)", animatic)
    width, height = picture_size(board, story, settings.resolution)
    timeline = otio.schema.Timeline(name=story.title, global_start_time=otio.opentime.RationalTime(
        timeline_start(rate), fps))
    timeline.metadata["autokose"] = {"fps": settings.fps, "media": settings.timeline_media,
                                     "width": width, "height": height}
    track = otio.schema.Track(name=TRACK_NAME, kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for scene, cut in zip(story.scenes, found):
        rel = board.frame_path(scene.index).relative_to(board.root).as_posix()
        missing = scene.index not in frames
        if settings.timeline_media == "animatic":
            ref = otio.schema.ExternalReference(target_url=url(animatic.name), available_range=span(0, found[-1].end))
            first = cut.start
        else:
            ref = otio.schema.MissingReference(name=rel) if missing else otio.schema.ExternalReference(
                target_url=url(rel), available_range=span(0, max(still_frames, cut.frames)))
            first = 0
        clip = otio.schema.Clip(name=clip_name(labels, scene.index), media_reference=ref,
                                source_range=span(first, cut.frames))
        clip.metadata["autokose"] = scene_metadata(scene, rel, missing)
        clip.markers.append(otio.schema.Marker(
            name=one_line(scene.caption) or clip.name, marked_range=span(first, 1),
            color=otio.schema.MarkerColor.RED if missing else otio.schema.MarkerColor.YELLOW,
            metadata={"autokose": {"caption": scene.caption, "notes": scene.notes}}))
        track.append(clip)
    return timeline


def write_otio(board: Board, story: Story, settings: ExportSettings) -> Path:
    otio = _otio("otio_json")
    text = otio.adapters.write_to_string(build_timeline(board, story, settings), "otio_json")
    return write_text(board.export_path("otio"), text)


# -- FCP7 XML -----------------------------------------------------------------------------------------

STILL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


def write_fcp7(board: Board, story: Story, settings: ExportSettings) -> Path:
    """timeline.xml: FCP7 XML (xmeml 4) for Premiere, Resolve and Final Cut 7; the adapter's output completed."""
    otio = _otio("fcp_xml")
    timeline = build_timeline(board, story, settings, absolute=True)
    _expected_media(otio, timeline, board, absolute=True)
    if drop_frame(settings.rate):  # the adapter writes the sequence timecode non-drop unless told
        timeline.metadata["fcp_xml"] = {"timecode": {"displayformat": "DF"}}
    for clip in timeline.find_clips():
        meta = clip.metadata["autokose"]
        # Master comments show in the bin's columns; the notes ride on the marker as its comment too.
        comments = {f"mastercomment{n}": meta[key] for n, key in enumerate(("caption", "dialogue", "notes"), 1)
                    if meta[key]}
        if comments:
            clip.metadata["fcp_xml"] = {"comments": comments}
        for marker in clip.markers:
            if meta["notes"]:
                marker.metadata["fcp_xml"] = {"comment": meta["notes"]}
    xml = otio.adapters.write_to_string(timeline, "fcp_xml")
    text = fcp7_completed(xml, *_size(timeline), settings.rate)
    return write_text(board.export_path("fcp7"), text)


def _size(timeline) -> tuple[int, int]:
    """The sequence's frame size, as build_timeline measured it (not read from the frames again)."""
    meta = timeline.metadata["autokose"]
    return meta["width"], meta["height"]


def _rate_element(rate: Fraction) -> ET.Element:
    """<rate><timebase>24</timebase><ntsc>TRUE</ntsc></rate> for 23.976, as FCP7 writes rates."""
    element = ET.Element("rate")
    ET.SubElement(element, "timebase").text = str(-(-rate.numerator // rate.denominator))
    ET.SubElement(element, "ntsc").text = "TRUE" if rate.denominator == 1001 else "FALSE"
    return element


def fcp7_completed(xml: str, width: int, height: int, rate: Fraction) -> str:
    """The adapter's FCP7 XML with what NLEs need and it leaves out.

    The adapter writes an empty <format/> (Resolve then refuses the file or guesses the size), so the
    sequence's samplecharacteristics (size, rate, square pixels, progressive) are filled in; and it
    gives every file an audio stream, which a still has not (Premiere then looks for it).
    """
    root = ET.fromstring(xml)
    for fmt in root.iter("format"):
        fmt.clear()
        chars = ET.SubElement(fmt, "samplecharacteristics")
        chars.append(_rate_element(rate))
        for tag, value in (("width", width), ("height", height), ("anamorphic", "FALSE"),
                           ("pixelaspectratio", "square"), ("fielddominance", "none"), ("colordepth", 24)):
            ET.SubElement(chars, tag).text = str(value)
    for file in root.iter("file"):
        path = file.findtext("pathurl") or ""
        media = file.find("media")
        if media is not None and media.find("audio") is not None and path.lower().endswith(STILL_SUFFIXES):
            media.remove(media.find("audio"))
    ET.indent(root, "  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE xmeml>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -- FCPXML -------------------------------------------------------------------------------------------

def _expected_media(otio, timeline, board: Board, absolute: bool) -> None:
    """Point clips of unrendered frames at where their frame will be, in the files an NLE opens.

    FCPXML needs an asset file for every clip (the adapter would invent file:///tmp/<name>), the EDL
    adapter's premiere style fails on a MissingReference, and an FCP7 file without a pathurl cannot
    relink. Pointing at frames/NN.png, the NLE shows the panel offline until the frame is rendered
    and finds it by itself once it is; the red marker and the metadata still say it is missing.
    """
    for clip in timeline.find_clips():
        if isinstance(clip.media_reference, otio.schema.MissingReference):
            rel = clip.metadata["autokose"]["frame"]
            clip.media_reference = otio.schema.ExternalReference(
                target_url=(board.root.absolute() / rel).as_uri() if absolute else rel,
                available_range=clip.source_range)


def write_fcpx(board: Board, story: Story, settings: ExportSettings) -> Path:
    """timeline.fcpxml for Final Cut Pro: stills as assets with a <video> in each clip (FCPX's own form)."""
    otio = _otio("fcpx_xml")
    timeline = build_timeline(board, story, settings, absolute=True)
    _expected_media(otio, timeline, board, absolute=True)
    xml = otio.adapters.write_to_string(timeline, "fcpx_xml")
    text = fcpx_completed(xml, *_size(timeline), settings.rate)
    return write_text(board.export_path("fcpx"), text)


def fcpx_completed(xml: str, width: int, height: int, rate: Fraction) -> str:
    """The adapter's FCPXML with exact formats and the sequence's start timecode.

    The adapter looks frame durations up by int(fps), so 23.976 and 29.97 get frameDuration="" (a file
    Final Cut refuses); it names formats by probing media with ffprobe (different per machine). Here
    every format gets the exact frameDuration (1001/24000s), the sequence size and no probed name, and
    the sequence starts at timing.TIMELINE_START. Clip times the adapter wrote are exact already.
    (OTIO issues #741 and #903; its reader still counts 23.976 as 23 fps, which Final Cut does not.)
    """
    head, _, body = xml.partition("<!DOCTYPE fcpxml>")
    root = ET.fromstring(body.strip() if body else head)
    for orphan in root.findall("asset-clip"):  # browser clips beside the project: Final Cut warns of edits
        root.remove(orphan)                    # without media for each; the project's clips are enough
    for fmt in root.iter("format"):
        fmt.attrib.pop("name", None)
        fmt.set("frameDuration", f"{rate.denominator}/{rate.numerator}s")
        fmt.set("width", str(width))
        fmt.set("height", str(height))
    start = Fraction(timeline_start(rate)) / rate
    for sequence in root.iter("sequence"):
        sequence.set("tcStart", f"{start.numerator}/{start.denominator}s" if start.denominator > 1 else f"{start}s")
        sequence.set("tcFormat", "DF" if drop_frame(rate) else "NDF")
    ET.indent(root, "    ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE fcpxml>\n' + ET.tostring(root, encoding="unicode") + "\n"


# -- CMX 3600 EDL -------------------------------------------------------------------------------------

def reel_name(path: str) -> str:
    """A reel name Avid accepts: the media's file stem, letters and digits only, at most 8 ('01', 'animatic')."""
    return re.sub(r"[^A-Za-z0-9]", "", Path(path).stem)[:8] or "AX"


def write_edl(board: Board, story: Story, settings: ExportSettings) -> Path:
    """timeline.edl: one event per panel, record timecode from 01:00:00:00, avid or premiere style.

    The adapter counts record time from the track's start and ignores the timeline's global start,
    so a gap as long as TIMELINE_START goes ahead of the first clip (gaps are no events in an EDL).
    premiere style (the adapter's): every reel is AX and clips are named by their file, since
    Premiere names clips UNKNOWN when an EDL carries FROM CLIP comments. Media paths are relative
    (an EDL names media, it does not link them).
    """
    otio = _otio("cmx_3600")
    rate = settings.rate
    timeline = build_timeline(board, story, settings)
    _expected_media(otio, timeline, board, absolute=False)
    timeline.name = one_line(story.title) or "AutoKose"
    track = timeline.tracks[0]
    for clip in track:
        clip.metadata["cmx_3600"] = {"reel": reel_name(clip.media_reference.target_url)}
    track.insert(0, otio.schema.Gap(duration=otio.opentime.RationalTime(timeline_start(rate), float(rate))))
    text = otio.adapters.write_to_string(timeline, "cmx_3600", style=settings.edl_style)
    title, _, events = text.partition("\n\n")
    fcm = "FCM: DROP FRAME" if drop_frame(rate) else "FCM: NON-DROP FRAME"
    return write_text(board.export_path("edl"), f"{title}\n{fcm}\n\n{events}")
