"""Video files in and out with PyAV: probe footage, read its frames, write an H.264 MP4 with its audio.

Why PyAV: it is FFmpeg's demuxers, decoders and muxers in one wheel (no ffmpeg binary to
install), so any common container and codec reads, the output is the H.264 MP4 every player
takes, and the source's audio packets can be copied into it unchanged instead of re-encoded.
OpenCV's VideoCapture/VideoWriter drop audio and ignore the rotation phones record.

Public API
    VideoInfo                     what `probe` found (sizes as displayed, i.e. after rotation)
    probe(path) -> VideoInfo      or one InputError line for anything that is not usable footage
    frame_span(info, start=None, end=None) -> range          the frame indices of [start, end) s
    frame_size(info, short_side=None) -> (width, height)     the size `read_frames` returns
    read_frames(source, start=None, end=None, every=1, short_side=None)
        -> Iterator[(index, HxWx3 uint8 RGB array)]          rotation applied, resized
    WrittenVideo                  what `write_video` wrote (encoder, how the audio got there)
    write_video(frames, out_path, fps, *, audio_from=None, start=None, end=None,
                crf=18, preset="medium") -> WrittenVideo

Time: frame i of a video is at i / fps seconds, counted from the first video frame (not from the
container's start, which may hold a little audio before the picture begins). `start`/`end` in
seconds select the frames with start <= i / fps < end, the same rule everywhere here, so
`read_frames(p, start, end)` yields exactly the frames `write_video(..., audio_from=p, start,
end)` expects and its audio span lines up with them.

Refused footage (probe raises InputError with one line naming the file): a missing path or a
folder, a file FFmpeg cannot read (corrupt, truncated, not media at all), a file without a video
stream (audio only), zero frames, more than MAX_SIDE pixels on a side (8K), and a pixel format
FFmpeg cannot convert to RGB.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from autokose.errors import InputError, first_line, plain_reason
from autokose.fsio import atomic_path

MAX_SIDE = 4096  # larger footage (8K) is refused: no stylisation model works at that size
# H.264 encoders in the order tried: x264 is in PyAV's wheels; a build without it may still
# have another H.264 encoder; MPEG-4 Part 2 is the last resort every FFmpeg has.
VIDEO_ENCODERS = ("libx264", "h264", "libopenh264", "mpeg4")
# Audio codecs copied into the MP4 as they are. Anything else (PCM, Vorbis, AMR, WMA, ...) is
# re-encoded to AAC: MP4 may hold some of those, but most players then play no sound.
COPY_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "alac", "opus", "flac"})
AAC_BIT_RATE = 192_000
_NOT_VIDEO_FORMATS = frozenset({"tty"})  # FFmpeg plays any text file as "ANSI art" video

log = logging.getLogger("autokose")


def _av():
    try:
        import av
    except ImportError:
        raise ImportError("video files need PyAV (pip install 'autokose[video]')") from None
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. `width`/`height` are as displayed: the decoded frames turned by
    `rotation` (degrees counter-clockwise, 0/90/180/270, from the file's display matrix), which
    is also what `read_frames` returns."""

    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int
    duration: float  # seconds of video: frames / fps
    rotation: int
    has_audio: bool
    video_codec: str
    audio_codec: str | None
    pixel_format: str
    container: str
    start_time: float  # seconds from the container's start to the first video frame

    @property
    def coded_size(self) -> tuple[int, int]:
        """(width, height) of the frames as stored, before rotation."""
        return (self.height, self.width) if self.rotation in (90, 270) else (self.width, self.height)


def probe(path: Path | str) -> VideoInfo:
    """Open `path`, check it is usable footage, and say what it holds.

    Counts the frames by reading every video packet (no decoding: fast), because many containers
    (Matroska, WebM) do not record a count and an index can promise frames a truncated file no
    longer has; decodes the first frame to learn the rotation and prove it converts to RGB.
    """
    av = _av()
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such video file")
    if path.is_dir():
        raise InputError(f"{path}: is a folder, not a video file")
    try:
        with av.open(str(path)) as container:
            info = _probe_open(container, path)
        frames = _count_frames(av, path)
    except av.FFmpegError as e:
        raise InputError(f"{path}: not a readable video file: corrupt, cut short or not a video at all "
                         f"(FFmpeg: {plain_reason(e)})") from None
    except OSError as e:  # permissions, a vanished file
        raise InputError(f"{path}: cannot read ({e.strerror or first_line(e)})") from None
    if frames == 0:
        raise InputError(f"{path}: the video stream has no frames")
    if info["indexed_frames"] > frames:  # an MP4 whose index sits before the data, cut short
        raise InputError(f"{path}: truncated: its index lists {info['indexed_frames']} frames, "
                         f"the file holds {frames}")
    return _with_frames(info, frames)


def _probe_open(container, path: Path) -> dict[str, Any]:
    if container.format.name in _NOT_VIDEO_FORMATS:
        raise InputError(f"{path}: not a video file (FFmpeg reads it as {container.format.name!r})")
    if not container.streams.video:
        kind = "audio only" if container.streams.audio else "no audio or video"
        raise InputError(f"{path}: no video stream ({kind})")
    stream = container.streams.video[0]
    audio = container.streams.audio[0] if container.streams.audio else None
    fps = _q(stream.average_rate) or _q(stream.guessed_rate) or _q(stream.base_rate)
    if not fps or fps <= 0:
        raise InputError(f"{path}: the video stream has no frame rate")
    width, height = stream.codec_context.width, stream.codec_context.height
    _check_size(path, width, height)
    first = next(container.decode(stream), None)
    if first is None:
        raise InputError(f"{path}: the video stream has no frames")
    _check_size(path, first.width, first.height)
    try:
        first.to_ndarray(format="rgb24")
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: pixel format {first.format.name} cannot be converted to RGB "
                         f"({plain_reason(e)})") from None
    rotation = _rotation(first, stream)
    turned = rotation in (90, 270)
    start_time = float(stream.start_time * _q(stream.time_base)) if stream.start_time is not None else 0.0
    return dict(
        path=path,
        width=first.height if turned else first.width,
        height=first.width if turned else first.height,
        fps=fps,
        rotation=rotation,
        has_audio=audio is not None,
        video_codec=stream.codec_context.name,
        audio_codec=audio.codec_context.name if audio is not None else None,
        pixel_format=first.format.name,
        container=container.format.name,
        start_time=start_time,
        indexed_frames=stream.frames,  # 0 where the container keeps no count (Matroska)
    )


def _q(rational) -> Fraction:
    """A PyAV rate or time base as a Fraction; 0 when unset (PyAV 18 says None, 19 an AVRational(0, 1))."""
    return Fraction(rational.numerator, rational.denominator) if rational else Fraction(0)


def _with_frames(info: dict[str, Any], frames: int) -> VideoInfo:
    info = {k: v for k, v in info.items() if k != "indexed_frames"}
    return VideoInfo(frames=frames, duration=float(frames / info["fps"]), **info)


def _check_size(path: Path, width: int, height: int) -> None:
    if max(width, height) > MAX_SIDE:
        raise InputError(f"{path}: {width}x{height} is larger than {MAX_SIDE} pixels on a side; "
                         f"scale it down first (e.g. to 1920 pixels wide)")


def _count_frames(av, path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for packet in container.demux(stream) if packet.size)


def _rotation(frame, stream) -> int:
    """Degrees counter-clockwise that turn a decoded frame upright, snapped to a quarter turn.

    FFmpeg attaches the container's display matrix to every decoded frame (`frame.rotation`);
    files written by old muxers carry a `rotate` tag instead (degrees clockwise). Mirroring in
    the matrix is rare and ignored.
    """
    degrees = frame.rotation
    if not degrees and "rotate" in stream.metadata:
        try:
            degrees = -float(stream.metadata["rotate"])
        except ValueError:
            degrees = 0
    return round(degrees / 90) * 90 % 360


# ------------------------------------------------------------------ reading


def frame_span(info: VideoInfo, start: float | None = None, end: float | None = None) -> range:
    """The indices of the frames shown in [start, end) seconds (frame i is at i / fps).

    `end` past the video is clipped to its end; a span with no frame in it, or a start at or past
    the end, is an InputError (it comes from the user's --start/--end).
    """
    first = 0 if start is None else _frame_at(start, info.fps, "start")
    stop = info.frames if end is None else min(info.frames, _frame_at(end, info.fps, "end"))
    if first >= info.frames:
        if start is not None and start < info.duration:
            last = float((info.frames - 1) / info.fps)
            raise InputError(f"{info.path}: no frame starts at or after {start:g} s (the last one is at {last:.3f} s)")
        raise InputError(f"{info.path}: start {start:g} s is at or past the end of the video ({info.duration:.2f} s)")
    if stop <= first:
        raise InputError(f"{info.path}: no frame between start {start or 0:g} s and end {end:g} s")
    return range(first, stop)


def _frame_at(seconds: float, fps: Fraction, what: str) -> int:
    """The first frame index at or after `seconds` (tolerating float noise)."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool) or not math.isfinite(seconds):
        raise InputError(f"{what} must be a number of seconds, not {seconds!r}")
    if seconds < 0:
        raise InputError(f"{what} must be 0 s or later, not {seconds:g} s")
    return math.ceil(seconds * fps - 1e-6)


def frame_size(info: VideoInfo, short_side: int | None = None) -> tuple[int, int]:
    """(width, height) of the frames `read_frames` returns for `short_side`.

    None keeps the displayed size. Otherwise the short side becomes `short_side` rounded to a
    multiple of 8 and the long side keeps the aspect ratio, also rounded to a multiple of 8 (the
    latent grid of Stable Diffusion is 1/8 of the image): the picture is stretched by less than
    4 pixels, never cropped.
    """
    if short_side is None:
        return info.width, info.height
    if not isinstance(short_side, int) or isinstance(short_side, bool) or short_side < 8:
        raise InputError(f"size must be a whole number of pixels, 8 or more, not {short_side!r}")
    short = max(8, round(short_side / 8) * 8)
    scale = short / min(info.width, info.height)
    long = max(8, round(max(info.width, info.height) * scale / 8) * 8)
    if long > MAX_SIDE:
        raise InputError(f"size {short_side} makes the long side {long} pixels, more than {MAX_SIDE}")
    return (long, short) if info.width >= info.height else (short, long)


def read_frames(
    source: Path | str | VideoInfo,
    start: float | None = None,
    end: float | None = None,
    every: int = 1,
    short_side: int | None = None,
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, frame) for every `every`-th frame of [start, end) seconds, upright and resized.

    Indices count from the video's first frame (see `frame_span`); with `every` N the first frame
    of the span and every N-th after it are yielded (the keyframes a stylisation draws). Frames
    are HxWx3 uint8 RGB arrays of `frame_size(info, short_side)`.

    `source` is a path, probed now, or what `probe` said of it (reading a file in chunks then
    probes it once). The arguments are checked now too (InputError before any work starts); the
    frames are decoded as the iterator is consumed. Decoding runs from the start of the file
    (frames before `start` are decoded, not converted), so indices are exact even where
    timestamps are not. A file that ends early (truncated) or breaks mid-way raises InputError.
    """
    info = source if isinstance(source, VideoInfo) else probe(source)
    span = frame_span(info, start, end)
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise InputError(f"every must be a whole number, 1 or more, not {every!r}")
    size = frame_size(info, short_side)
    return _decode(info, span, every, size)


def _decode(info: VideoInfo, span: range, every: int, size: tuple[int, int]) -> Iterator[tuple[int, np.ndarray]]:
    av = _av()
    turned = info.rotation in (90, 270)
    coded_width, coded_height = (size[1], size[0]) if turned else size
    resize = (coded_width, coded_height) != info.coded_size
    # Area averaging when shrinking (no aliasing on the thin lines lineart picks up), bicubic when growing.
    interpolation = "AREA" if coded_width < info.coded_size[0] else "BICUBIC"
    index = -1
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                index += 1
                if index >= span.stop:
                    return
                if index < span.start or (index - span.start) % every:
                    continue
                if resize:
                    frame = frame.reformat(width=coded_width, height=coded_height, format="rgb24",
                                           interpolation=interpolation)
                image = frame.to_ndarray(format="rgb24")
                if info.rotation:
                    image = np.ascontiguousarray(np.rot90(image, k=info.rotation // 90))
                yield index, image
        except av.FFmpegError as e:
            raise InputError(f"{info.path}: the video breaks after frame {index} ({plain_reason(e)})") from None
    if index + 1 < span.stop:
        raise InputError(f"{info.path}: the video ends after {index + 1} of {info.frames} frames "
                         f"(truncated or corrupt)")


# ------------------------------------------------------------------ writing


@dataclass(frozen=True)
class WrittenVideo:
    """What `write_video` wrote: `encoder` is the FFmpeg encoder used (libx264, or the fallback
    named in a warning); `audio` is "copied" (the source's packets, unchanged), "re-encoded"
    (AAC), or "none"."""

    path: Path
    frames: int
    fps: Fraction
    width: int
    height: int
    encoder: str
    audio: str


def write_video(
    frames: Iterable[Any],
    out_path: Path | str,
    fps: Fraction | int | float,
    *,
    audio_from: Path | str | VideoInfo | None = None,
    start: float | None = None,
    end: float | None = None,
    crf: int = 18,
    preset: str = "medium",
) -> WrittenVideo:
    """Encode `frames` as an H.264 MP4 (yuv420p, BT.709) at `fps`, with the audio of `audio_from`.

    `frames` yields HxWx3 uint8 RGB arrays, image file paths (the frames a resumable run left on
    disk), or the (index, array) pairs `read_frames` yields; all of one size (an odd width or
    height is padded by one edge pixel: H.264 in yuv420p needs even sizes). Frame k of the output
    is shown at k / fps; pass the source's `info.fps` to keep its timing.

    Audio: the span of `audio_from` (a path, or `probe`'s VideoInfo of it) that played with these
    frames, i.e. from the first frame of `frame_span(info, start, end)` for as long as the frames written last (and not
    past `end`). Its packets are copied unchanged when MP4 players take the codec (COPY_AUDIO),
    else it is re-encoded to AAC. The frames must be rotated upright (as `read_frames` returns
    them): the output carries no rotation.

    The video goes to a temporary file beside `out_path`, renamed over it only when complete: if
    anything fails midway (a frame that will not load, a full disk, Ctrl-C) nothing is left at
    `out_path` (an older file there stays untouched).
    """
    av = _av()
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".mp4":
        raise InputError(f"{out_path}: the output must be an .mp4 file")
    fps = _as_fps(fps)
    source = audio_from if isinstance(audio_from, VideoInfo) or audio_from is None else probe(audio_from)
    audio_start = audio_end = None  # seconds after the source's first video frame
    if source is not None and source.has_audio:
        if start is None and end is None:
            audio_start = Fraction(0)
        else:
            span = frame_span(source, start, end)
            audio_start, audio_end = span.start / source.fps, span.stop / source.fps
    items = iter(frames)
    first = next(items, None)
    if first is None:
        raise ValueError("write_video: no frames to write")
    first = _load_frame(first)
    encoder = _pick_encoder(av)
    if audio_start is None:
        modes = [None]
    elif source.audio_codec in COPY_AUDIO:
        modes = ["copy", "aac"]
    else:
        modes = ["aac"]
    with atomic_path(out_path) as tmp:
        for mode in modes:
            try:
                count = _encode(av, tmp, itertools.chain([first], items), fps, encoder, crf, preset,
                                source, audio_start, audio_end, mode)
                break
            except _AudioCopyRefused as e:  # raised before any frame past the first was taken
                log.warning(f"{source.path}: cannot copy its {source.audio_codec} audio into MP4 ({e}); "
                            f"re-encoding it to AAC")
    height, width = first.shape[:2]
    return WrittenVideo(path=out_path, frames=count, fps=fps, width=width + width % 2, height=height + height % 2,
                        encoder=encoder, audio={"copy": "copied", "aac": "re-encoded", None: "none"}[mode])


class _AudioCopyRefused(Exception):
    pass


def _as_fps(fps: Fraction | int | float) -> Fraction:
    if isinstance(fps, bool) or not isinstance(fps, Fraction | int | float) or not fps > 0 \
            or not math.isfinite(fps):
        raise InputError(f"fps must be a positive number, not {fps!r}")
    # A float such as 29.97 means 2997/100; a Fraction from probe() is kept exactly.
    return fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)


def _pick_encoder(av) -> str:
    for name in VIDEO_ENCODERS:
        try:
            av.codec.Codec(name, "w")
        except (av.FFmpegError, ValueError):
            continue
        if name != VIDEO_ENCODERS[0]:
            log.warning(f"this PyAV build has no {VIDEO_ENCODERS[0]}; writing video with the {name} encoder")
        return name
    raise RuntimeError(f"this PyAV build has none of the video encoders {', '.join(VIDEO_ENCODERS)}")


def _load_frame(item: Any) -> np.ndarray:
    """One frame as an HxWx3 uint8 RGB array, from an array, an image file or an (index, array) pair."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], int):
        item = item[1]
    if isinstance(item, str | Path):
        from PIL import Image

        try:
            with Image.open(item) as image:
                item = np.asarray(image.convert("RGB"))
        except (OSError, ValueError) as e:
            raise InputError(f"{item}: cannot read this frame ({first_line(e)})") from None
    if not isinstance(item, np.ndarray) or item.dtype != np.uint8 or item.ndim != 3 or item.shape[2] != 3:
        got = f"{item.dtype} array of shape {item.shape}" if isinstance(item, np.ndarray) else type(item).__name__
        raise ValueError(f"write_video: a frame must be an HxWx3 uint8 RGB array or an image path, not a {got}")
    return item


def _encode(av, tmp: Path, images: Iterator[Any], fps: Fraction, encoder: str, crf: int, preset: str,
            source: VideoInfo | None, audio_start: Fraction | None, audio_end: Fraction | None,
            audio: str | None) -> int:
    """Write the MP4 at `tmp`; returns the number of frames. `audio`: "copy", "aac" or None."""
    options = {"crf": str(crf), "preset": preset} if encoder == "libx264" else {}
    with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        video = out.add_stream(encoder, rate=fps, options=options)
        first = next(images)
        height, width = first.shape[:2]
        video.width, video.height = width + width % 2, height + height % 2
        video.pix_fmt = "yuv420p"
        context = video.codec_context
        context.color_primaries = context.color_trc = context.colorspace = 1  # BT.709
        context.color_range = 1  # limited ("TV") range
        if encoder != "libx264":
            context.bit_rate = 8 * width * height * math.ceil(fps) // 10  # ~0.8 bit per pixel
        audio_packets = iter(())
        src = None
        try:
            if audio is not None:
                src = av.open(str(source.path))
                try:  # MP4 refuses a codec it cannot hold here, before any frame is taken
                    audio_packets = _audio_packets(av, src, out, source, audio_start, audio, audio_end)
                    out.start_encoding()
                except (av.FFmpegError, ValueError) as e:
                    if audio == "copy":
                        raise _AudioCopyRefused(plain_reason(e)) from None
                    raise
            count = 0
            pending = None  # the next audio packet, held until the video reaches its time
            for image in itertools.chain([first], images):
                image = _load_frame(image)
                if image.shape[:2] != (height, width):
                    raise ValueError(f"write_video: frame {count} is {image.shape[1]}x{image.shape[0]}, "
                                     f"the first was {width}x{height}")
                if width % 2 or height % 2:
                    image = np.pad(image, ((0, height % 2), (0, width % 2), (0, 0)), mode="edge")
                frame = av.VideoFrame.from_ndarray(image, format="rgb24")
                frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
                frame.pts = count
                out.mux(video.encode(frame))
                count += 1
                # Interleave: the audio that plays up to this frame (the muxer would otherwise hold
                # every video packet in memory until the audio arrived).
                pending = _mux_audio_until(out, audio_packets, pending, Fraction(count, 1) / fps)
            out.mux(video.encode(None))
            limit = Fraction(count, 1) / fps
            if audio_end is not None:
                limit = min(limit, audio_end - audio_start)
            _mux_audio_until(out, audio_packets, pending, limit, last=True)
        finally:
            if src is not None:
                src.close()
    return count


def _mux_audio_until(out, packets: Iterator[Any], pending, until: Fraction, last: bool = False):
    """Mux audio packets that start before `until` seconds; return the first one that does not."""
    while True:
        packet = pending if pending is not None else next(packets, None)
        pending = None
        if packet is None:
            return None
        if packet.pts is not None and packet.pts * _q(packet.time_base) >= until:
            return None if last else packet
        out.mux(packet)


def _audio_packets(av, src, out, source: VideoInfo, start: Fraction, mode: str, end: Fraction | None) -> Iterator[Any]:
    """The source's audio from `start` seconds (on the video's clock) as packets of the output's
    audio stream, timestamps counted from `start`. Adds that stream to `out` now."""
    stream = src.streams.audio[0]
    # Container time of the span's first video frame: the video may begin after the audio.
    origin = Fraction(source.start_time).limit_denominator(1_000_000) + start
    if mode == "copy":
        target = out.add_stream_from_template(stream)
        return _copied_packets(src, stream, target, origin)
    rate = stream.codec_context.sample_rate or 48000
    # Mono stays mono; anything with more channels (or an unnamed layout) becomes stereo.
    layout = "mono" if stream.codec_context.channels == 1 else "stereo"
    target = out.add_stream("aac", rate=rate if rate in _AAC_RATES else 48000, layout=layout)
    target.bit_rate = AAC_BIT_RATE
    return _encoded_packets(av, src, stream, target, origin, end - start if end is not None else None)


_AAC_RATES = {96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350}


def _copied_packets(src, stream, target, origin: Fraction) -> Iterator[Any]:
    """The source's packets from `origin` on, unchanged but for timestamps shifted to start at 0.

    The cut is at a packet boundary (AAC: 1024 samples, 23 ms at 44.1 kHz): the first packet
    kept is the first that starts at or after `origin`, so the sound never runs ahead of the
    picture."""
    shift = math.ceil(origin / _q(stream.time_base))
    for packet in src.demux(stream):
        if not packet.size or packet.pts is None or packet.pts < shift:
            continue
        packet.pts -= shift
        packet.dts = packet.pts if packet.dts is None else packet.dts - shift
        packet.stream = target
        yield packet


def _encoded_packets(av, src, stream, target, origin: Fraction, length: Fraction | None) -> Iterator[Any]:
    """The source's audio from `origin` on, decoded, cut to the sample and re-encoded as AAC."""
    context = target.codec_context
    rate, layout, size = context.sample_rate, context.layout.name, context.frame_size or 1024
    convert = av.AudioResampler(format="fltp", layout=layout, rate=rate)
    fifo = av.AudioFifo()  # the encoder takes frames of exactly `size` samples
    # Decoded audio begins at the stream's first timestamp, not at the container's 0.
    first_time = stream.start_time * _q(stream.time_base) if stream.start_time is not None else 0
    skip = round((origin - first_time) * rate)  # samples before the span, dropped
    limit = None if length is None else math.ceil(length * rate)
    seen = kept = written = 0

    def cut(frames) -> None:
        nonlocal seen, kept
        for frame in frames:
            data = frame.to_ndarray()  # (channels, samples), planar float
            begin = min(max(skip - seen, 0), data.shape[1])
            seen += data.shape[1]
            data = data[:, begin:]
            if limit is not None:
                data = data[:, : max(limit - kept, 0)]
            if data.shape[1]:
                part = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format="fltp", layout=layout)
                part.sample_rate = rate
                kept += data.shape[1]
                fifo.write(part)

    def encode(final: bool = False) -> Iterator[Any]:
        nonlocal written
        while fifo.samples >= size or (final and fifo.samples):
            frame = fifo.read(size) if fifo.samples >= size else fifo.read()
            frame.pts = written
            written += frame.samples
            yield from target.encode(frame)

    for frame in src.decode(stream):
        frame.pts = None  # the resampler counts samples itself; timestamps are rebuilt above
        cut(convert.resample(frame))
        yield from encode()
    cut(convert.resample(None))
    yield from encode(final=True)
    yield from target.encode(None)
