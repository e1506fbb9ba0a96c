"""animatic.mp4 and animatic.gif: each panel held for its duration, with a gentle camera move, captions,
scene numbers and sound, so the cut can be timed before a single shot is animated.

The clock is timing.story_cuts: panel i covers exactly its frames there, so the animatic, the
timeline, the shot list and the subtitles agree to the frame, and the MP4 holds exactly
`timing.total_frames` frames at the exact rate (23.976 is 24000/1001, not 23.976).

Why it is fast (a 100-panel 1080p animatic on two cores): most frames of an animatic repeat the one
before. x264 spends ~6-10 ms on a 1080p frame even when nothing changed (it still analyses every
macroblock), so a held picture is not sent to x264 frame by frame. x264 encodes the picture once;
every repeat is a P slice whose macroblocks are all skipped (one `mb_skip_run`, ~10 bytes), which
a decoder turns into an exact copy of the frame before. These slices are written here
(`_RepeatSlices`) against x264's own SPS/PPS, and the stream stays valid H.264:

  * x264 (bframes=0) uses pic_order_cnt_type 2: display order follows frame_num, so no order count
    has to be invented;
  * every picture is a reference picture numbered one after the other since the last IDR; x264
    does not know of the repeats, so the frame_num field in its slice headers is rewritten to the
    picture's place in the stream (a few bytes at the head of each slice);
  * every cut is an IDR (an editor can seek to any cut).

A camera move advances every MOVE_STEP (3) frames ("on threes", as animation is often timed): x264
draws every third frame and the two between repeat it. On twos a 100-panel 1080p animatic of
diffusion frames took 41 s on two cores, on threes 28 s (docs/BENCHMARKS.md). Pans move the picture
by whole (even) pixels, so x264 finds the motion exactly; push-ins are resampled with OpenCV on the
YUV planes. Burned-in text is blended onto each picture after the move, so it stays put. The pictures are composed in a
second thread while x264 encodes. If x264 ever writes a stream these slices cannot join (CABAC,
another order-count type), every frame goes through x264 instead: slower, never wrong.

Sound (only when there is some): the board's soundtrack under everything (ducked to half where a
panel's own sound or narration plays), each scene's `sound` from its first frame cut at its
last, and the captions read by espeak-ng. Mixed at 48 kHz stereo, as long as the video, AAC.
"""

from __future__ import annotations

import bisect
import io
import logging
import shutil
import subprocess
import textwrap
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from queue import Full, Queue

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from autokose.board import Board
from autokose.errors import InputError, plain_reason
from autokose.export import font_path, frame_files, open_frame, picture_size
from autokose.export.labels import Labels
from autokose.export.settings import ExportSettings
from autokose.export.sheet import PLACEHOLDER, fit_text, number_tag
from autokose.export.sheet import wrap as sheet_wrap
from autokose.export.timing import Cut, story_cuts
from autokose.fsio import atomic_path, write_with
from autokose.story import Scene, Shot, Story

log = logging.getLogger("autokose")

MOVE_STEP = 3  # a moving picture advances every 3rd frame ("on threes"); the frames between repeat it
# Push-in: how much closer the panel ends than it starts (5%: a gentle creep, not a zoom).
PUSH_IN = {Shot.close_up: 0.05, Shot.insert: 0.05, Shot.over_the_shoulder: 0.04, Shot.medium: 0.025}
PAN = {Shot.wide: 0.04, Shot.establishing: 0.04}  # pan across this share of the frame's width
X264 = {"preset": "ultrafast", "crf": "23", "forced-idr": "1"}  # x264's default quality, its fastest preset
SAMPLE_RATE = 48000
AAC_BIT_RATE = 192_000
DUCK = 0.5  # the soundtrack's gain where a panel's own sound or narration plays
CAPTION_LINES = 3
NARRATION_TIMEOUT = 60
NARRATION_WPM = 175  # espeak-ng's own reading pace, words a minute
NARRATION_FASTEST = 1.6  # a reading longer than its panel is sped up at most this much (280 wpm: still clear)
EDIT_EXTRA = "the animatic needs PyAV: pip install 'autokose[edit]'"


def _av():
    try:
        import av
    except ImportError:
        raise InputError(EDIT_EXTRA) from None
    return av


# ------------------------------------------------------------------ checks


def check_mp4(board: Board, story: Story, settings: ExportSettings) -> None:
    """InputError for anything that would stop the animatic: PyAV, x264, a sound file, an espeak-ng voice.
    Nothing is written."""
    av = _av()
    try:
        av.codec.Codec("libx264", "w")
    except (av.FFmpegError, ValueError):
        raise InputError("this PyAV build has no libx264 H.264 encoder; reinstall PyAV from PyPI "
                         "(pip install --force-reinstall av)") from None
    for scene in story.scenes:
        if scene.sound:
            _check_audio(board.sound_path(scene.sound), f"scene {scene.index}'s sound")
    if settings.soundtrack:
        _check_audio(soundtrack_path(board, settings.soundtrack), "the soundtrack")
    if settings.narrate and shutil.which("espeak-ng"):
        narrator(settings.voice or story.language.value)("a")  # an unknown voice fails here, before any file


def soundtrack_path(board: Board, soundtrack: str) -> Path:
    """The soundtrack file: an absolute path as given, a relative one inside the board folder (like a scene's sound)."""
    path = Path(soundtrack).expanduser()
    if not path.is_absolute():
        return board.sound_path(soundtrack)
    if not path.is_file():
        raise InputError(f"{path}: no such soundtrack file")
    return path


def _check_audio(path: Path, what: str) -> None:
    """Decode the first audio frame: a file FFmpeg cannot read as sound is refused before anything is written."""
    av = _av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise InputError(f"{path}: {what} has no audio stream")
            if next(container.decode(container.streams.audio[0]), None) is None:
                raise InputError(f"{path}: {what} holds no sound")
    except av.FFmpegError as e:
        raise InputError(f"{path}: {what} is not a readable audio file ({plain_reason(e)})") from None
    except OSError as e:
        raise InputError(f"{path}: cannot read {what} ({e.strerror or e})") from None


# ------------------------------------------------------------------ MP4


def write_mp4(board: Board, story: Story, settings: ExportSettings) -> Path:
    """animatic.mp4: H.264 (yuv420p, BT.709) of exactly timing.total_frames frames, optional AAC and mov_text."""
    check_mp4(board, story, settings)
    av = _av()
    rate = settings.rate
    cuts = story_cuts(story, rate)
    size = picture_size(board, story, settings.resolution)
    film = _Film(board, story, settings, size, cuts)
    sound = mix_sound(board, story, settings, cuts)
    path = board.export_path("mp4")
    with atomic_path(path, suffix=".mp4") as tmp:
        with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            video = _Video(av, out, size, rate)
            audio = _Audio(av, out, sound) if sound is not None else None
            subtitles = _subtitle_stream(out, rate) if settings.captions in ("track", "both") else None
            out.start_encoding()
            if subtitles is not None:
                _mux_captions(out, subtitles, story, cuts, rate)
            if audio is not None:
                video.after_mux = lambda frames: audio.mux_until(Fraction(frames) / rate)
            for run, frame in _prefetch((run, film.frame(run.key)) for run in film.runs()):
                video.picture(frame, idr=run.idr, repeats=run.frames - 1)
            video.finish()
            if audio is not None:
                audio.mux_until(None)
    return path


def _prefetch(items, depth: int = 3):
    """Yield from `items`, computed ahead in a thread: the pictures of the next runs are composed (OpenCV,
    NumPy, Pillow: they release the GIL) while x264 encodes this one, so both cores work."""
    done = object()
    queue: Queue = Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        """Queue `item` unless the consumer has stopped (it then never takes another)."""
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(done)
        except BaseException as e:  # handed to the consumer, raised there
            put(e)

    thread = threading.Thread(target=produce, name="animatic-frames", daemon=True)
    thread.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class Run:
    """Consecutive frames showing the same picture (`key` names it); `idr`: the first one starts a cut."""

    key: tuple
    frames: int
    idr: bool


class _Film:
    """What each frame shows: a panel at some point of its camera move, or two panels dissolving."""

    def __init__(self, board: Board, story: Story, settings: ExportSettings, size: tuple[int, int], cuts: list[Cut]):
        self.board, self.story, self.settings, self.size, self.cuts = board, story, settings, size, cuts
        self.labels = Labels(story.language)
        self.files = frame_files(board, story)
        self.scenes = story.scenes
        self.starts = [c.start for c in cuts]
        self.dissolves = dissolve_windows(cuts, settings.dissolve, settings.rate)
        self.panel = lru_cache(maxsize=3)(self._panel)  # the panels on screen now and next

    def key(self, frame: int) -> tuple:
        """The picture frame `frame` shows, as a hashable key: equal keys, identical pictures."""
        n = bisect.bisect_right(self.starts, frame) - 1
        for cut in (n, n + 1):  # a dissolve straddles cut n (frame after it) or cut n + 1 (frame before it)
            a, b = self.dissolves.get(cut, (0, 0))
            if a <= frame < b:
                return ("dissolve", cut, (frame - a) // MOVE_STEP)
        if self.settings.still or move_of(self.scenes[n]) is None:
            return ("panel", n, 0)
        return ("panel", n, (frame - self.starts[n]) // MOVE_STEP)

    def runs(self):
        """The frames as runs of one picture, in order; each cut (and dissolve) starts with an IDR."""
        starts = set(self.starts) | {a for a, _ in self.dissolves.values()}
        total = self.cuts[-1].end if self.cuts else 0
        frame = 0
        while frame < total:
            key, end = self.key(frame), frame + 1
            while end < total and end not in starts and self.key(end) == key:
                end += 1
            yield Run(key, end - frame, frame in starts)
            frame = end

    def render(self, key: tuple) -> list[np.ndarray]:
        """The Y, U, V planes of the picture `key` names, text burned in."""
        planes = self._blank()
        self.compose(key, planes)
        return planes

    def _blank(self) -> list[np.ndarray]:
        w, h = self.size
        return [np.empty((h, w), np.uint8), *(np.empty((h // 2, w // 2), np.uint8) for _ in range(2))]

    def frame(self, key: tuple):
        """The picture `key` names as a yuv420p VideoFrame, composed straight into its planes."""
        frame = _av().VideoFrame(*self.size, "yuv420p")
        self.compose(key, [_plane_view(p) for p in frame.planes])
        return frame

    def compose(self, key: tuple, targets: list[np.ndarray]) -> None:
        """Write the picture `key` names into `targets` (Y, U, V arrays of the animatic's size)."""
        if key[0] == "panel":
            _, n, step = key
            self._at(n, self.starts[n] + step * MOVE_STEP, targets)
            return
        import cv2

        _, n, step = key
        a, b = self.dissolves[n]
        frame = a + step * MOVE_STEP
        weight = (frame - a + 1) / (b - a + 1)
        before, after = self._blank(), self._blank()
        self._at(n - 1, frame, before)
        self._at(n, frame, after)
        for target, x, y in zip(targets, before, after):
            target[:] = cv2.addWeighted(x, 1 - weight, y, weight, 0)

    def _at(self, n: int, frame: int, targets: list[np.ndarray]) -> None:
        """Panel n as it stands at `frame` (clamped to its own span: a dissolve shows it before or after it)."""
        cut = self.cuts[n]
        progress = min(max((frame - cut.start) / max(cut.frames - 1, 1), 0.0), 1.0)
        panel = self.panel(n)
        for target, plane in zip(targets, panel.move.planes(progress)):
            target[:] = plane
        panel.overlay.apply(targets)

    def _panel(self, n: int) -> _Panel:
        scene = self.scenes[n]
        move = None if self.settings.still else move_of(scene)
        amount = move[1] if move else 0.0
        w, h = self.size
        scaled = (w, h) if not move or move[0] == "push" else (_even(w * (1 + amount)), _even(h * (1 + amount)))
        picture = panel_picture(self.files.get(scene.index), scaled, self.labels)
        planes = yuv_planes(picture)
        if move is None:
            camera = _Still(planes)
        elif move[0] == "push":
            camera = _PushIn(planes, amount)
        else:
            camera = _Pan(planes, (w, h), leftward=scene.index % 2 == 0)
        text = overlay(scene, self.labels, self.size, self.settings.captions in ("burn", "both"),
                       self.settings.scene_numbers)
        return _Panel(camera, _Overlay(text))


@dataclass(frozen=True)
class _Panel:
    move: object
    overlay: _Overlay


def dissolve_windows(cuts: list[Cut], seconds: float, rate: Fraction) -> dict[int, tuple[int, int]]:
    """Cut n → the frames [a, b) of its cross-dissolve, centred on the cut.

    A dissolve never takes more than half of either panel (two dissolves never overlap, and each
    panel is seen alone for a moment); a panel too short for it is cut straight.
    """
    length = round(Fraction(str(seconds)) * rate)
    out = {}
    for n in range(1, len(cuts)):
        d = min(length, cuts[n - 1].frames // 2, cuts[n].frames // 2)
        if d >= 2:
            a = cuts[n].start - d // 2
            out[n] = (a, a + d)
    return out


def move_of(scene: Scene) -> tuple[str, float] | None:
    """The camera move the shot asks for: ("push", zoom) for close shots, ("pan", width share) for wides."""
    if scene.shot in PUSH_IN:
        return "push", PUSH_IN[scene.shot]
    if scene.shot in PAN:
        return "pan", PAN[scene.shot]
    return None


def _even(x: float) -> int:
    return max(2, round(x / 2) * 2)


class _Still:
    def __init__(self, planes: list[np.ndarray]):
        self._planes = planes

    def planes(self, progress: float) -> list[np.ndarray]:
        return self._planes


class _PushIn:
    """A slow push towards the centre: the picture scaled from 1 to 1 + amount, resampled per plane."""

    def __init__(self, planes: list[np.ndarray], amount: float):
        self._planes, self.amount = planes, amount

    def planes(self, progress: float) -> list[np.ndarray]:
        if progress == 0:
            return self._planes
        import cv2

        scale = 1 + self.amount * progress
        out = []
        for plane in self._planes:
            h, w = plane.shape
            shift = 1 - scale
            matrix = np.array([[scale, 0, shift * (w - 1) / 2], [0, scale, shift * (h - 1) / 2]], np.float32)
            out.append(cv2.warpAffine(plane, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        return out


class _Pan:
    """A sideways pan across a slightly larger picture, by whole even pixels (exact for the chroma planes too,
    and a motion x264 finds exactly). Alternates direction from scene to scene."""

    def __init__(self, planes: list[np.ndarray], size: tuple[int, int], leftward: bool):
        self._planes, self.size, self.leftward = planes, size, leftward

    def planes(self, progress: float) -> list[np.ndarray]:
        w, h = self.size
        big_h, big_w = self._planes[0].shape
        travel = big_w - w
        x = round((1 - progress if self.leftward else progress) * travel / 2) * 2
        y = (big_h - h) // 4 * 2
        return [self._planes[0][y:y + h, x:x + w],
                *(p[y // 2:(y + h) // 2, x // 2:(x + w) // 2] for p in self._planes[1:])]


def panel_picture(path: Path | None, size: tuple[int, int], labels: Labels) -> np.ndarray:
    """The frame fitted to `size` as an RGB array (letterboxed in black if its aspect differs), or a placeholder
    when it is not rendered yet."""
    if path is None:
        picture = Image.new("RGB", size, PLACEHOLDER)
        font = ImageFont.truetype(str(font_path()), max(10, size[1] // 18))
        text = fit_text(labels["missing"], font, size[0] * 0.8)
        ImageDraw.Draw(picture).text((size[0] / 2, size[1] / 2), text, font=font, fill=(120, 120, 120), anchor="mm")
        return np.asarray(picture)
    import cv2

    with open_frame(path) as frame:
        pixels = np.asarray(frame)
    (w, h), (fw, fh) = size, (pixels.shape[1], pixels.shape[0])
    scale = min(w / fw, h / fh)
    fit = (min(w, max(1, round(fw * scale))), min(h, max(1, round(fh * scale))))
    # OpenCV: ~10x faster than Pillow at 1080p; area averaging when shrinking (the GIF), bicubic when growing
    resized = cv2.resize(pixels, fit, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    if fit == (w, h):
        return resized
    canvas = np.zeros((h, w, 3), np.uint8)
    x, y = (w - fit[0]) // 2, (h - fit[1]) // 2
    canvas[y:y + fit[1], x:x + fit[0]] = resized
    return canvas


def yuv_planes(picture: np.ndarray) -> list[np.ndarray]:
    """An RGB array as its Y, U, V planes (yuv420p, BT.709, limited range: what the MP4 carries)."""
    av = _av()
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
    frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
    return [_plane_view(p).copy() for p in frame.planes]


def _plane_view(plane) -> np.ndarray:
    """A VideoFrame plane as a writable (height, width) array (its rows may be padded in memory)."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]


# ------------------------------------------------------------------ burned-in text


def overlay(scene: Scene, labels: Labels, size: tuple[int, int], captions: bool, number: bool) -> Image.Image:
    """The text burned into a panel, as a transparent RGBA layer: the caption wrapped on a translucent band
    at the bottom, the scene number in the top-left corner."""
    w, h = size
    layer = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    caption = " ".join(scene.caption.split())
    if captions and caption:
        font = ImageFont.truetype(str(font_path()), max(9, round(h / 26)))
        lines = wrap(caption, font, w * 0.9)
        line_h = round(font.size * 1.3)
        band = len(lines) * line_h + line_h // 2
        draw.rectangle((0, h - band, w, h), fill=(0, 0, 0, 150))
        for i, line in enumerate(lines):
            draw.text((w / 2, h - band + line_h // 4 + i * line_h), line, font=font, fill=(255, 255, 255, 255),
                      anchor="ma")
    if number:
        font = ImageFont.truetype(str(font_path(bold=True)), max(9, round(h / 30)))
        number_tag(draw, str(scene.index), font, max(4, w // 64), max(4, h // 36))
    return layer


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float, lines: int = CAPTION_LINES) -> list[str]:
    """`text` in lines of at most `width` pixels (the contact sheet's wrapping), at most `lines` of them:
    the last one cut with '…' when there is more."""
    out = sheet_wrap(text, font, width)
    if len(out) > lines:
        out = [*out[:lines - 1], fit_text(" ".join(out[lines - 1:]), font, width)]
    return out


class _Overlay:
    """An RGBA layer blended onto Y, U, V planes, only on the rows it covers (the band and the corner tag)."""

    def __init__(self, layer: Image.Image):
        rgba = np.asarray(layer)
        alpha = rgba[..., 3]
        rows = np.flatnonzero(alpha.any(axis=1))
        self.parts = []
        if not len(rows):
            return
        planes = yuv_planes(rgba[..., :3])
        for top, bottom in _spans(rows):
            top, bottom = top - top % 2, bottom + bottom % 2
            a = alpha[top:bottom].astype(np.float32)
            a2 = a.reshape(a.shape[0] // 2, 2, -1, 2).mean(axis=(1, 3))  # chroma: 2x2 average (sizes are even)
            part = []
            for plane, weight, rows_ in ((planes[0], a, (top, bottom)), (planes[1], a2, (top // 2, bottom // 2)),
                                         (planes[2], a2, (top // 2, bottom // 2))):
                w256 = np.rint(weight * 256 / 255).astype(np.uint16)  # alpha out of 256: a shift, not a division
                part.append((*rows_, plane[rows_[0]:rows_[1]].astype(np.uint16) * w256 + 128, 256 - w256))
            self.parts.append(part)

    def apply(self, planes: list[np.ndarray]) -> None:
        """Blend the layer onto `planes` (Y, U, V), in place."""
        for part in self.parts:
            for plane, (top, bottom, coloured, keep) in zip(planes, part):
                region = plane[top:bottom]
                region[:] = (region * keep + coloured) >> 8


def _spans(rows: np.ndarray) -> list[tuple[int, int]]:
    """Sorted row numbers as [top, bottom) spans of consecutive rows."""
    breaks = np.flatnonzero(np.diff(rows) > 1)
    tops = [rows[0], *rows[breaks + 1]]
    bottoms = [*(rows[breaks] + 1), rows[-1] + 1]
    return [(int(t), int(b)) for t, b in zip(tops, bottoms)]


# ------------------------------------------------------------------ H.264


class _Video:
    """The H.264 stream: x264 draws new pictures; repeats are written as all-skip P slices (`_RepeatSlices`)."""

    def __init__(self, av, out, size: tuple[int, int], rate: Fraction):
        self.av, self.out = av, out
        self.stream = out.add_stream("libx264", rate=rate, options=dict(X264))
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        context = self.stream.codec_context
        context.time_base = 1 / rate
        context.color_primaries = context.color_trc = context.colorspace = 1  # BT.709
        context.color_range = 1  # limited ("TV") range
        self.size = size
        self.frames = 0  # frames handed in so far (x264's and repeats)
        self.muxed = 0
        self.slots: deque = deque()  # frames in decoding order: [x264 packet, or None until it comes] or "repeat"
        self.slices: _RepeatSlices | None = None
        self.after_mux = None

    def picture(self, frame, *, idr: bool, repeats: int) -> None:
        """Encode one picture (a yuv420p VideoFrame; an IDR if `idr`), then `repeats` exact repeats of it."""
        if self.slices is None and self.stream.codec_context.extradata:
            self.slices = _RepeatSlices.from_headers(self.stream.codec_context.extradata, self.size)
        for k in range(1 if self.slices is not None else 1 + repeats):  # without repeat slices x264 repeats it
            frame.pts = self.frames
            frame.pict_type = self.av.video.frame.PictureType.I if idr and not k else \
                self.av.video.frame.PictureType.NONE
            self.slots.append([None])
            self.frames += 1
            self._take(self.stream.encode(frame))
        if self.slices is not None:
            self.slots.extend(["repeat"] * repeats)
            self.frames += repeats
        self._drain()

    def finish(self) -> None:
        self._take(self.stream.encode(None))
        if self.slots:
            raise RuntimeError(f"H.264: {len(self.slots)} frames left unwritten")

    def _take(self, packets) -> None:
        waiting = (slot for slot in self.slots if slot != "repeat" and slot[0] is None)
        for packet in packets:
            next(waiting)[0] = packet
        self._drain()

    def _drain(self) -> None:
        while self.slots and (self.slots[0] == "repeat" or self.slots[0][0] is not None):
            slot = self.slots.popleft()
            if slot == "repeat":
                packet = self.av.Packet(self.slices.repeat())
                packet.pts = packet.dts = self.muxed
                packet.duration = 1
                packet.time_base = self.stream.codec_context.time_base
            else:
                packet = slot[0]
                if self.slices is not None:
                    packet = self._renumbered(packet)
            packet.stream = self.stream
            self.out.mux(packet)
            self.muxed += 1
            if self.after_mux is not None:
                self.after_mux(self.muxed)

    def _renumbered(self, packet):
        data = bytes(packet)
        fixed = self.slices.renumber(data)
        if fixed is data:
            return packet
        if len(fixed) == len(data):
            memoryview(packet)[:] = fixed
            return packet
        new = self.av.Packet(fixed)
        new.pts, new.dts, new.duration, new.time_base = packet.pts, packet.dts, packet.duration, packet.time_base
        new.is_keyframe = packet.is_keyframe
        return new


class _RepeatSlices:
    """All-skip P slices that repeat the previous picture, and the frame numbers that keep x264's pictures
    consecutive around them.

    Every picture of the stream is a reference picture, numbered one after the other from each IDR
    (frame_num, modulo 2^log2_frame_num, no gaps). A repeat takes the next number; x264 does not know
    of the repeats, so the frame_num in the header of each of its slices is rewritten to the number
    the picture really has. With picture order type 2 that number is also the display order, and
    with every picture a reference, the one x264's next picture predicts from is the repeat, which
    is the same picture as the one x264 predicted from.
    `from_headers` returns None for a stream such slices cannot join (CABAC, order-count type other
    than 2, interlacing, weighted prediction, slice groups, redundant pictures).
    """

    def __init__(self, pps_id: int, log2_frame_num: int, deblocking_control: bool, macroblocks: int):
        self.pps_id, self.log2_frame_num = pps_id, log2_frame_num
        self.deblocking_control, self.macroblocks = deblocking_control, macroblocks
        self.frame_num = 0  # of the last picture

    @classmethod
    def from_headers(cls, extradata: bytes, size: tuple[int, int]) -> _RepeatSlices | None:
        nals = {nal[0] & 31: nal for nal in _nal_units(extradata)}
        if 7 not in nals or 8 not in nals:
            return None
        try:
            sps, pps = _Reader(nals[7][1:]), _Reader(nals[8][1:])
            profile = sps.u(8)
            sps.u(16)
            sps.ue()
            if profile in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
                if sps.ue() == 3:
                    sps.u(1)
                sps.ue(), sps.ue(), sps.u(1)
                if sps.u(1):
                    return None  # scaling matrices: not worth following
            log2_frame_num = sps.ue() + 4
            if sps.ue() != 2:
                return None
            sps.ue(), sps.u(1)
            width_mbs, height_mbs = sps.ue() + 1, sps.ue() + 1
            if not sps.u(1):  # frame_mbs_only
                return None
            pps_id = pps.ue()
            pps.ue()
            cabac, field_order, slice_groups = pps.u(1), pps.u(1), pps.ue()
            pps.ue(), pps.ue()
            weighted = pps.u(1)
            pps.u(2), pps.se(), pps.se(), pps.se()
            deblocking_control = bool(pps.u(1))
            pps.u(1)
            redundant = pps.u(1)
        except IndexError:
            return None
        if cabac or field_order or slice_groups or weighted or redundant:
            return None
        if (width_mbs, height_mbs) != (-(-size[0] // 16), -(-size[1] // 16)):
            return None
        return cls(pps_id, log2_frame_num, deblocking_control, width_mbs * height_mbs)

    def renumber(self, packet: bytes) -> bytes:
        """An x264 picture (Annex B) with the frame_num it has in this stream (`packet` itself if it has it already)."""
        nals = _nal_units(packet)
        slices = [n for n, nal in enumerate(nals) if nal[0] & 31 in (1, 5)]
        if not slices:
            return packet
        if nals[slices[0]][0] & 31 == 5:  # an IDR starts the numbering again at 0
            self.frame_num = 0
            return packet
        if not nals[slices[0]][0] >> 5:
            raise RuntimeError("x264 wrote a non-reference picture; the animatic's repeats cannot follow it")
        self.frame_num = (self.frame_num + 1) % (1 << self.log2_frame_num)
        changed = False
        for n in slices:
            nals[n], moved = _with_frame_num(nals[n], self.frame_num, self.log2_frame_num)
            changed |= moved
        return b"".join(b"\x00\x00\x00\x01" + nal for nal in nals) if changed else packet

    def repeat(self) -> bytes:
        """One P slice of skipped macroblocks (Annex B), a reference picture with the next frame_num."""
        self.frame_num = (self.frame_num + 1) % (1 << self.log2_frame_num)
        bits = _Writer()
        bits.ue(0)  # first_mb_in_slice
        bits.ue(5)  # slice_type: P, as every slice of the picture
        bits.ue(self.pps_id)
        bits.u(self.frame_num, self.log2_frame_num)
        bits.u(1, 1)  # num_ref_idx_active_override_flag: one reference, the previous picture
        bits.ue(0)
        bits.u(0, 1)  # ref_pic_list_modification_flag_l0
        bits.u(0, 1)  # adaptive_ref_pic_marking_mode_flag: sliding window
        bits.se(0)  # slice_qp_delta
        if self.deblocking_control:
            bits.ue(1)  # deblocking off: a copy needs none
        bits.ue(self.macroblocks)  # mb_skip_run: every macroblock copied from the previous picture
        return b"\x00\x00\x00\x01" + bytes([2 << 5 | 1]) + _escape(bits.rbsp())


def _with_frame_num(nal: bytes, number: int, bits: int) -> tuple[bytes, bool]:
    """A slice NAL unit with `number` as its frame_num; (nal, False) when it already is.

    Only the head of the unit is unescaped and rewritten (the field sits in its first few bytes): it
    ends on a byte that is neither 0 nor an emulation byte, so the head escapes on its own exactly as
    it did in the unit and the rest follows it unchanged.
    """
    end = 16
    while end < len(nal) and nal[end - 1] in (0, 3):
        end += 1
    reader = _Reader(nal[1:end])
    reader.ue(), reader.ue(), reader.ue()
    if reader.pos + bits > len(reader.data) * 8 - 8:
        raise RuntimeError("H.264 slice header longer than expected")
    at = reader.pos
    if reader.u(bits) == number:
        return nal, False
    value = int.from_bytes(reader.data, "big")
    shift = len(reader.data) * 8 - at - bits
    value = value & ~(((1 << bits) - 1) << shift) | number << shift
    head = _escape(value.to_bytes(len(reader.data), "big"))
    return nal[:1] + head + nal[end:], True


def _nal_units(data: bytes) -> list[bytes]:
    """The NAL units of Annex B data (start codes removed, emulation bytes kept)."""
    out, i = [], data.find(b"\x00\x00\x01")
    while i >= 0:
        start = i + 3
        i = data.find(b"\x00\x00\x01", start)
        end = len(data) if i < 0 else i
        out.append(data[start:end].rstrip(b"\x00") if i >= 0 else data[start:end])
    return out


def _escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes: no 00 00 0x (x <= 3) may appear inside a NAL unit."""
    out, zeros = bytearray(), 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class _Reader:
    """Exp-Golomb bit reader over a NAL payload (emulation bytes removed first)."""

    def __init__(self, payload: bytes):
        self.data = payload.replace(b"\x00\x00\x03", b"\x00\x00")
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            value = value << 1 | (self.data[self.pos >> 3] >> (7 - (self.pos & 7))) & 1
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while not self.u(1):
            zeros += 1
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k % 2 else -(k // 2)


class _Writer:
    def __init__(self):
        self.value, self.bits = 0, 0

    def u(self, value: int, n: int) -> None:
        self.value, self.bits = self.value << n | value, self.bits + n

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(code, 2 * code.bit_length() - 1)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def rbsp(self) -> bytes:
        """The bits with rbsp_trailing_bits (a 1, then zeros to the byte)."""
        self.u(1, 1)
        pad = -self.bits % 8
        self.u(0, pad)
        return self.value.to_bytes(self.bits // 8, "big")


# ------------------------------------------------------------------ captions track


def _subtitle_stream(out, rate: Fraction):
    """A mov_text stream (MP4's own subtitle format; players list it as a subtitle track)."""
    stream = out.add_stream("mov_text")
    stream.time_base = Fraction(1, rate.numerator)  # frame k starts at k * denominator: exact
    stream.codec_context.subtitle_header = _ASS_HEADER
    return stream


_ASS_HEADER = textwrap.dedent("""\
    [Script Info]
    ScriptType: v4.00+
    PlayResX: 384
    PlayResY: 288

    [V4+ Styles]
    Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, \
MarginV, Encoding
    Style: Default,DejaVu Sans,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0

    [Events]
    Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
    """).encode()


def _mux_captions(out, stream, story: Story, cuts: list[Cut], rate: Fraction) -> None:
    """One subtitle sample per captioned panel, from its first frame to its last."""
    from av.subtitles.subtitle import SubtitleSet

    def ticks(frame: int) -> int:  # frame number -> stream time-base units (exact with the time base set above)
        return round(Fraction(frame) / rate / stream.time_base)

    for scene, cut in zip(story.scenes, cuts):
        text = " ".join(scene.caption.split()).replace("{", "(").replace("}", ")")  # braces are ASS override codes
        if not text:
            continue
        start, length = ticks(cut.start), ticks(cut.end) - ticks(cut.start)
        packet = stream.codec_context.encode_subtitle(
            SubtitleSet.create(f"0,0,Default,,0,0,0,,{text}".encode(), 0, length, pts=start))
        packet.stream = stream
        packet.pts = packet.dts = start
        packet.duration = length
        out.mux(packet)


# ------------------------------------------------------------------ sound


def mix_sound(board: Board, story: Story, settings: ExportSettings, cuts: list[Cut]) -> np.ndarray | None:
    """The animatic's sound as a (2, samples) float32 array as long as the video, or None when there is none."""
    rate = settings.rate
    total = round(Fraction(cuts[-1].end if cuts else 0) / rate * SAMPLE_RATE)
    foreground = np.zeros((2, total), np.float32)
    covered = np.zeros(total, bool)
    voice = narrator(settings.voice or story.language.value) if settings.narrate else None
    too_long = []
    for scene, cut in zip(story.scenes, cuts):
        a = round(Fraction(cut.start) / rate * SAMPLE_RATE)
        b = round(Fraction(cut.end) / rate * SAMPLE_RATE)
        parts = []
        if scene.sound:
            parts.append(decode_audio(board.sound_path(scene.sound)))
        if voice is not None and scene.caption.strip():
            reading = voice(scene.caption, b - a)
            if reading.shape[1] > b - a:
                too_long.append(str(scene.index))
            parts.append(reading)
        for part in parts:
            n = min(part.shape[1], b - a)
            foreground[:, a:a + n] += _faded(part[:, :n], cut=part.shape[1] > n)
            covered[a:a + n] = True
    if too_long:
        log.warning("animatic: the narration of scene(s) %s is longer than its panel even read %.1f× faster; "
                    "it is cut at the panel's end (lengthen their duration to hear it all)",
                    ", ".join(too_long), NARRATION_FASTEST)
    track = decode_audio(soundtrack_path(board, settings.soundtrack)) if settings.soundtrack else None
    if track is None and not covered.any() and not any(s.sound for s in story.scenes):
        return None
    mix = foreground
    if track is not None:
        n = min(track.shape[1], total)
        mix[:, :n] += track[:, :n] * np.where(covered[:n], DUCK, 1.0).astype(np.float32)
    return np.clip(mix, -1.0, 1.0)


def _faded(sound: np.ndarray, *, cut: bool) -> np.ndarray:
    """`sound` with a short fade-out when it was cut at a panel's end, so the cut does not click."""
    if not cut:
        return sound
    n = min(sound.shape[1], SAMPLE_RATE // 50)  # 20 ms
    out = sound.copy()
    out[:, sound.shape[1] - n:] *= np.linspace(1.0, 0.0, n, dtype=np.float32)
    return out


def decode_audio(source: Path | bytes) -> np.ndarray:
    """Any audio FFmpeg reads, as (2, samples) float32 at SAMPLE_RATE (mono is doubled)."""
    av = _av()
    name = source if isinstance(source, Path) else "narration"
    try:
        with av.open(str(source) if isinstance(source, Path) else io.BytesIO(source)) as container:
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=SAMPLE_RATE)
            chunks = []
            for frame in container.decode(stream):
                frame.pts = None
                chunks += [f.to_ndarray() for f in resampler.resample(frame)]
            chunks += [f.to_ndarray() for f in resampler.resample(None)]
    except (av.FFmpegError, IndexError) as e:
        raise InputError(f"{name}: not a readable audio file ({plain_reason(e)})") from None
    return np.concatenate(chunks, axis=1).astype(np.float32) if chunks else np.zeros((2, 0), np.float32)


def narrator(voice: str):
    """A function reading text aloud with espeak-ng in `voice`; None (and one warning) without espeak-ng.

    `speak(text, samples)`: a reading longer than `samples` (its panel) is read again faster, up to
    NARRATION_FASTEST times espeak-ng's own pace, so that a caption usually ends inside its panel
    instead of being cut mid-word (captions run 5-8 s read aloud; panels are often 3 s).
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        log.warning("animatic: narration skipped: espeak-ng is not installed (apt-get install espeak-ng)")
        return None

    def speak(text: str, samples: int | None = None) -> np.ndarray:
        sound = read(text, NARRATION_WPM)
        if samples and sound.shape[1] > samples:
            faster = min(NARRATION_FASTEST, sound.shape[1] / samples * 1.05)  # 5 % to spare
            sound = read(text, round(NARRATION_WPM * faster))
        return sound

    def read(text: str, wpm: int) -> np.ndarray:
        try:
            done = subprocess.run([exe, "-v", voice, "-s", str(wpm), "--stdin", "--stdout"],
                                  input=" ".join(text.split()).encode(),
                                  capture_output=True, timeout=NARRATION_TIMEOUT, check=False)
        except subprocess.TimeoutExpired:
            raise InputError(f"espeak-ng took more than {NARRATION_TIMEOUT} s on a caption") from None
        if done.returncode or not done.stdout:
            why = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
            raise InputError(f"espeak-ng could not read a caption with voice {voice!r}: {why}")
        return decode_audio(done.stdout)

    return speak


class _Audio:
    """The mix as an AAC stream, muxed alongside the video as it goes (so the muxer holds little)."""

    def __init__(self, av, out, sound: np.ndarray):
        self.stream = out.add_stream("aac", rate=SAMPLE_RATE, layout="stereo")
        self.stream.bit_rate = AAC_BIT_RATE
        self.av, self.out, self.sound = av, out, sound
        self.pos = 0
        self.flushed = False

    def mux_until(self, seconds: Fraction | None) -> None:
        """Encode and mux the sound up to `seconds` (None: all of it, and flush)."""
        if self.flushed:
            return
        size = self.stream.codec_context.frame_size or 1024
        end = self.sound.shape[1] if seconds is None else min(self.sound.shape[1], int(seconds * SAMPLE_RATE))
        while self.pos < end and (seconds is None or self.pos + size <= end):
            chunk = np.ascontiguousarray(self.sound[:, self.pos:self.pos + size])
            frame = self.av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = SAMPLE_RATE, self.pos
            self.pos += chunk.shape[1]
            self.out.mux(self.stream.encode(frame))
        if seconds is None:
            self.out.mux(self.stream.encode(None))
            self.flushed = True


# ------------------------------------------------------------------ GIF


def write_gif(board: Board, story: Story, settings: ExportSettings) -> Path:
    """animatic.gif: one frame per panel, held for its duration, captions and numbers burned in.

    No camera moves: a GIF of moving 640 px frames is tens of megabytes; this one is ~7 kB a panel for
    previz frames (a 100-panel board: under a megabyte, small enough to mail), up to ~180 kB a panel
    for grainy photo-like frames. Delays are whole centiseconds (GIF's unit) taken from the same
    clock as the MP4, so the cuts fall within 10 ms of the video's.
    """
    rate = settings.rate
    cuts = story_cuts(story, rate)
    w, h = picture_size(board, story, settings.resolution)
    size = (_even(settings.gif_width), _even(settings.gif_width * h / w))
    labels = Labels(story.language)
    files = frame_files(board, story)
    frames, delays = [], []
    for scene, cut in zip(story.scenes, cuts):
        picture = Image.fromarray(panel_picture(files.get(scene.index), size, labels)).convert("RGBA")
        text = overlay(scene, labels, size, settings.captions != "off", settings.scene_numbers)
        # Fast octree, no dithering: 25x faster than Pillow's default median cut, and dither noise would only
        # make the GIF bigger (LZW compresses flat runs).
        frames.append(Image.alpha_composite(picture, text).convert("RGB").quantize(
            256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE))
        delays.append(10 * (_centiseconds(cut.end, rate) - _centiseconds(cut.start, rate)))
    if not frames:
        raise InputError("the story has no scenes: nothing to put in animatic.gif")

    def save(tmp: Path) -> None:
        frames[0].save(tmp, format="GIF", save_all=True, append_images=frames[1:], duration=delays, loop=0,
                       optimize=False, disposal=1)

    return write_with(board.export_path("gif"), save)


def _centiseconds(frame: int, rate: Fraction) -> int:
    return int(Fraction(frame * 100) / rate + Fraction(1, 2))
