"""Video I/O (autokose.video.io) on the real clip and on files made here: probe, read, write, bad input."""

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from autokose.errors import InputError
from conftest import SHARED

av = pytest.importorskip("av")
vio = pytest.importorskip("autokose.video.io")

CLIP = SHARED / "video" / "short_hamilton_clip.mp4"


@pytest.fixture(scope="module")
def clip() -> Path:
    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is not beside this checkout")
    return CLIP


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("videos")


def synth(path: Path, frames: int = 10, width: int = 64, height: int = 32, rate=25, *, rotation: int = 0,
          audio: str | None = None, codec: str = "libx264", pix_fmt: str = "yuv420p") -> Path:
    """A small video: a white square in the top-left corner of coded frames whose green rises with the index."""
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        if rotation:
            video.set_display_rotation(rotation)
        sound = out.add_stream(audio, rate=16000, layout="mono") if audio else None
        for i in range(frames):
            image = np.zeros((height, width, 3), np.uint8)
            image[:8, :8] = 255
            image[8:, :, 1] = 20 * i % 256
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)))
        out.mux(video.encode(None))
        if sound is not None:
            samples = int(16000 * frames / rate) + 1600
            wave = (np.sin(np.arange(samples) / 10) * 8000).astype(np.int16)[None]
            frame = av.AudioFrame.from_ndarray(wave, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 16000, 0
            out.mux(sound.encode(frame))
            out.mux(sound.encode(None))
    return path


def audio_packets(path: Path) -> list:
    with av.open(str(path)) as container:
        return [(p.pts, p.time_base, bytes(p)) for p in container.demux(audio=0) if p.size]


# ------------------------------------------------------------------ probe and spans


def test_probe_reads_the_real_clip(clip):
    info = vio.probe(clip)
    assert (info.width, info.height, info.rotation) == (640, 360, 0)
    assert info.fps == Fraction(2997, 100) and isinstance(info.fps, Fraction)
    assert info.frames == 275
    assert info.duration == pytest.approx(275 / 29.97)
    assert info.has_audio and (info.video_codec, info.audio_codec) == ("h264", "aac")
    assert info.pixel_format == "yuv420p" and info.start_time == pytest.approx(0.852, abs=1e-3)


def test_frame_span_counts_frames_from_the_first_video_frame(clip):
    info = vio.probe(clip)
    assert vio.frame_span(info) == range(0, 275)
    assert vio.frame_span(info, 1, 2) == range(30, 60)  # 1 s * 29.97 = 29.97 -> frame 30 is the first at or after
    assert vio.frame_span(info, 0, 30 / 29.97) == range(0, 30)  # end is exclusive, float noise tolerated
    assert vio.frame_span(info, 9, 60) == range(270, 275)  # end past the video is clipped
    with pytest.raises(InputError, match="past the end"):
        vio.frame_span(info, 9.2)
    with pytest.raises(InputError, match="0 s or later"):
        vio.frame_span(info, -1)
    with pytest.raises(InputError, match="no frame between"):
        vio.frame_span(info, 2, 2)


def test_frame_size_rounds_both_sides_to_multiples_of_8(clip):
    info = vio.probe(clip)
    assert vio.frame_size(info) == (640, 360)
    assert vio.frame_size(info, 256) == (456, 256)  # 640 * 256 / 360 = 455.1
    assert vio.frame_size(info, 250) == (440, 248)  # short side 250 -> 248
    assert vio.frame_size(info, 360) == (640, 360)
    for size in (8, 100, 333, 512, 720):
        assert all(side % 8 == 0 for side in vio.frame_size(info, size))
    with pytest.raises(InputError, match="8 or more"):
        vio.frame_size(info, 4)
    with pytest.raises(InputError, match="more than 4096"):
        vio.frame_size(info, 4000)


# ------------------------------------------------------------------ reading


def test_read_frames_start_end_every_size(clip):
    frames = list(vio.read_frames(clip, start=1, end=2, every=4, short_side=64))
    assert [i for i, _ in frames] == list(range(30, 60, 4))
    assert all(f.shape == (64, 112, 3) and f.dtype == np.uint8 for _, f in frames)
    # The indices are the true frame numbers: the same frames read from the start of the file.
    everything = dict(vio.read_frames(vio.probe(clip), end=2, short_side=64))  # a VideoInfo works too
    assert len(everything) == 60
    for i, frame in frames:
        assert np.array_equal(frame, everything[i])
    assert np.abs(everything[30].astype(int) - everything[34]).mean() > 0.5  # frames do differ


def test_read_frames_checks_arguments_before_any_work(clip):
    with pytest.raises(InputError, match="every"):
        vio.read_frames(clip, every=0)
    with pytest.raises(InputError, match="past the end"):
        vio.read_frames(clip, start=100)
    with pytest.raises(InputError, match="size"):
        vio.read_frames(clip, short_side=3)


def test_rotation_is_applied(made):
    """A phone-style display matrix: frames come out upright and probe reports the displayed size."""
    path = synth(made / "turned.mp4", frames=3, width=64, height=32, rotation=90)
    info = vio.probe(path)
    assert (info.width, info.height, info.rotation) == (32, 64, 90)
    assert info.coded_size == (64, 32)
    (_, frame), *_ = vio.read_frames(path)
    assert frame.shape == (64, 32, 3)
    # Turned 90 degrees counter-clockwise: the coded top-left square is now bottom-left.
    assert frame[-8:, :8, 0].mean() > 200 and frame[:8, :8, 0].mean() < 50
    (_, small), *_ = vio.read_frames(path, short_side=16)
    assert small.shape == (32, 16, 3)


# ------------------------------------------------------------------ writing


def test_round_trip_keeps_fps_frames_and_copies_the_audio(clip, tmp_path):
    info = vio.probe(clip)
    out = tmp_path / "out.mp4"
    written = vio.write_video(vio.read_frames(clip, short_side=64), out, info.fps, audio_from=clip, preset="ultrafast")
    assert (written.frames, written.fps, written.encoder, written.audio) == (275, info.fps, "libx264", "copied")
    result = vio.probe(out)
    assert (result.frames, result.fps, result.width, result.height) == (275, info.fps, 112, 64)
    assert result.has_audio and result.audio_codec == "aac" and result.video_codec == "h264"
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.pix_fmt, stream.codec_context.name) == ("yuv420p", "h264")
    # Copied, not re-encoded: the packets are the source's own bytes, from the first video frame on.
    source, copied = audio_packets(clip), audio_packets(out)
    first = next(k for k, (pts, tb, _) in enumerate(source) if pts * tb >= info.start_time)
    assert [data for _, _, data in copied] == [data for _, _, data in source[first:first + len(copied)]]
    # ... and it lasts as long as the picture (within one AAC packet, 23 ms).
    assert copied[-1][0] * copied[-1][1] == pytest.approx(info.duration, abs=0.05)


def test_span_round_trip_keeps_audio_in_sync(clip, tmp_path):
    info = vio.probe(clip)
    out = tmp_path / "span.mp4"
    frames = vio.read_frames(clip, start=1, end=2, short_side=64)
    written = vio.write_video(frames, out, info.fps, audio_from=clip, start=1, end=2, preset="ultrafast")
    result = vio.probe(out)
    assert written.frames == result.frames == 30 and result.fps == info.fps and result.has_audio
    # The first audio packet is the one that played with frame 30 (at 30 / fps after the first frame).
    source, copied = audio_packets(clip), audio_packets(out)
    t30 = info.start_time + 30 / 29.97
    first = next(k for k, (pts, tb, _) in enumerate(source) if pts * tb >= t30 - 1e-9)
    assert copied[0][2] == source[first][2] and copied[0][0] * copied[0][1] < 0.024
    assert copied[-1][0] * copied[-1][1] == pytest.approx(30 / 29.97, abs=0.05)


def test_audio_a_mp4_cannot_play_is_reencoded_to_aac(made, tmp_path):
    source = synth(made / "pcm.mkv", frames=10, audio="pcm_s16le")
    info = vio.probe(source)
    assert (info.container, info.audio_codec, info.frames) == ("matroska,webm", "pcm_s16le", 10)
    out = tmp_path / "out.mp4"
    written = vio.write_video(vio.read_frames(source), out, info.fps, audio_from=source, preset="ultrafast")
    assert written.audio == "re-encoded"
    result = vio.probe(out)
    assert (result.frames, result.fps, result.audio_codec) == (10, Fraction(25), "aac")
    with av.open(str(out)) as container:
        samples = sum(frame.samples for frame in container.decode(audio=0))
    assert samples / 16000 == pytest.approx(0.4, abs=0.07)  # the span, cut to the sample (+ AAC's last-frame padding)


def test_write_video_takes_frame_files_and_pads_odd_sizes(tmp_path):
    from PIL import Image

    paths = []
    for i in range(4):
        paths.append(tmp_path / f"{i:04d}.png")
        Image.fromarray(np.full((33, 47, 3), (200, 60 * i, 30), np.uint8)).save(paths[-1])
    written = vio.write_video(paths, tmp_path / "files.mp4", Fraction(24), preset="ultrafast")
    assert (written.width, written.height, written.frames, written.audio) == (48, 34, 4, "none")
    result = vio.probe(tmp_path / "files.mp4")
    assert (result.width, result.height, result.frames, result.fps, result.has_audio) == (48, 34, 4, 24, False)
    (_, last), = vio.read_frames(tmp_path / "files.mp4", start=3 / 24)
    assert np.abs(last.astype(int) - (200, 180, 30)).mean() < 3  # saturated colours survive BT.709 both ways


def test_float_fps_means_the_broadcast_rate(tmp_path):
    frames = [np.zeros((16, 16, 3), np.uint8)] * 3
    assert vio.write_video(frames, tmp_path / "f.mp4", 29.97, preset="ultrafast").fps == Fraction(2997, 100)


def test_encoder_fallback_is_named(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(vio, "VIDEO_ENCODERS", ("no-such-encoder", "mpeg4"))
    frames = [np.full((16, 16, 3), 9 * i, np.uint8) for i in range(3)]
    with caplog.at_level(logging.WARNING, logger="autokose"):
        written = vio.write_video(frames, tmp_path / "m.mp4", 25)
    assert written.encoder == "mpeg4" and "no no-such-encoder; writing video with the mpeg4 encoder" in caplog.text
    assert vio.probe(tmp_path / "m.mp4").frames == 3


def test_nothing_is_left_when_writing_fails_midway(clip, tmp_path):
    out = tmp_path / "out.mp4"

    def broken():
        for n, item in enumerate(vio.read_frames(clip, end=1, short_side=64)):
            if n == 5:
                raise RuntimeError("the renderer died")
            yield item

    with pytest.raises(RuntimeError, match="renderer died"):
        vio.write_video(broken(), out, Fraction(2997, 100), audio_from=clip, preset="ultrafast")
    assert list(tmp_path.iterdir()) == []
    # A frame of the wrong size fails too, and an older output stays as it was.
    out.write_bytes(b"old")
    frames = [np.zeros((16, 16, 3), np.uint8), np.zeros((16, 24, 3), np.uint8)]
    with pytest.raises(ValueError, match="frame 1 is 24x16"):
        vio.write_video(frames, out, 25, preset="ultrafast")
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"] and out.read_bytes() == b"old"
    with pytest.raises(InputError, match="cannot read this frame"):
        vio.write_video([tmp_path / "missing.png"], out, 25)
    with pytest.raises(InputError, match=r"must be an \.mp4"):
        vio.write_video([np.zeros((16, 16, 3), np.uint8)], tmp_path / "out.avi", 25)
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"] and out.read_bytes() == b"old"


# ------------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def bad(made) -> dict[str, Path]:
    """One file (or folder) for each kind of footage probe must refuse."""
    files = {"missing": made / "missing.mp4", "folder": made / "folder.mp4"}
    files["folder"].mkdir()
    files["text"] = made / "notes.mp4"
    files["text"].write_text("shot list: Aldar rides in, the bai laughs\n")
    data = synth(made / "whole.mp4", frames=30).read_bytes()
    files["truncated"] = made / "truncated.mp4"  # index (moov) at the end, as most cameras write: cut off
    files["truncated"].write_bytes(data[: len(data) // 2])
    faststart = made / "faststart.mp4"  # index first, then the data: the data is cut short
    frames = [np.full((32, 32, 3), 8 * i, np.uint8) for i in range(30)]
    vio.write_video(frames, faststart, 25, preset="ultrafast")
    files["truncated_faststart"] = made / "truncated_faststart.mp4"
    files["truncated_faststart"].write_bytes(faststart.read_bytes()[: faststart.stat().st_size * 2 // 3])
    files["audio_only"] = made / "voice.m4a"
    with av.open(str(files["audio_only"]), "w") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    # A video stream with no frames: Matroska keeps the empty track when another track has data
    # (MP4 drops an empty track altogether).
    files["zero_frames"] = made / "empty.mkv"
    with av.open(str(files["zero_frames"]), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        sound = out.add_stream("aac", rate=16000, layout="mono")
        out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    files["8k"] = synth(made / "wide.mp4", frames=1, width=4104, height=16, codec="libx264")
    # rgb4 (4 bits per pixel) stored raw: FFmpeg decodes it but cannot convert it to RGB.
    files["pixel_format"] = synth(made / "rgb4.nut", frames=2, width=16, height=16, codec="rawvideo", pix_fmt="rgb4")
    return files


@pytest.mark.parametrize("kind, message", [
    ("missing", "no such video file"),
    ("folder", "is a folder, not a video file"),
    ("text", "not a readable video file"),
    ("truncated", "not a readable video file"),
    ("truncated_faststart", "truncated: its index lists 30 frames"),
    ("audio_only", r"no video stream \(audio only\)"),
    ("zero_frames", "the video stream has no frames"),
    ("8k", "4104x16 is larger than 4096 pixels on a side"),
    ("pixel_format", "pixel format rgb4 cannot be converted to RGB"),
])
def test_bad_footage_is_one_clear_line(bad, kind, message):
    path = bad[kind]
    for call in (vio.probe, vio.read_frames):
        with pytest.raises(InputError, match=message) as caught:
            call(path)
        text = str(caught.value)
        assert text.startswith(f"{path}: ") and "\n" not in text


def test_bad_audio_source_is_refused_before_writing(bad, tmp_path):
    out = tmp_path / "out.mp4"
    with pytest.raises(InputError, match="audio only"):
        vio.write_video([np.zeros((16, 16, 3), np.uint8)], out, 25, audio_from=bad["audio_only"])
    assert list(tmp_path.iterdir()) == []


def test_audio_mp4_refuses_is_reencoded_instead(made, tmp_path, monkeypatch, caplog):
    """A codec MP4 cannot hold at all (here mu-law, wrongly listed as copyable) falls back to AAC."""
    source = made / "mulaw.mov"
    with av.open(str(source), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        sound = out.add_stream("pcm_mulaw", rate=8000, layout="mono")
        for _ in range(5):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        out.mux(video.encode(None))
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 2000), np.int16), format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    monkeypatch.setattr(vio, "COPY_AUDIO", vio.COPY_AUDIO | {"pcm_mulaw"})
    with caplog.at_level(logging.WARNING, logger="autokose"):
        written = vio.write_video(vio.read_frames(source), tmp_path / "out.mp4", 25, audio_from=source,
                                  preset="ultrafast")
    assert written.audio == "re-encoded" and written.frames == 5 and "cannot copy its pcm_mulaw audio" in caplog.text
    assert vio.probe(tmp_path / "out.mp4").audio_codec == "aac"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]
