"""animatic.mp4 and animatic.gif: decoded back with PyAV and compared with the panels, the clock and the sound."""

from __future__ import annotations

import logging
import math
import sys
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageDraw

from autokose.board import Board
from autokose.errors import InputError
from autokose.export import animatic, export_board, picture_size
from autokose.export.animatic import (_escape, _Film, _Reader, _RepeatSlices, _with_frame_num, _Writer,
                                      move_of, overlay, write_gif, write_mp4)
from autokose.export.labels import Labels
from autokose.export.settings import ExportSettings
from autokose.export.timing import story_cuts, total_frames
from autokose.story import Shot

from test_export import make_story

# Panel colours far apart, so a frame says which panel it shows.
COLOURS = [(200, 40, 40), (40, 170, 60), (50, 60, 200), (220, 200, 40)]
ESPEAK = Path("/usr/bin/espeak-ng")


def make_board(root, n: int = 3, missing: tuple[int, ...] = (), size=(192, 108), durations=None, **scene_fields):
    """3 panels (close-up: push-in, medium: push-in, wide: pan): flat colour, a white square, lines on the right."""
    story = make_story(n)
    for scene, duration in zip(story.scenes, durations or [2.5] * n):
        scene.duration = duration
    for key, values in scene_fields.items():
        for scene, value in zip(story.scenes, values):
            setattr(scene, key, value)
    board = Board(root)
    board.save_story(story)
    for i in range(1, n + 1):
        if i in missing:
            continue
        im = Image.new("RGB", size, COLOURS[(i - 1) % len(COLOURS)])
        draw = ImageDraw.Draw(im)
        draw.rectangle((size[0] // 3, size[1] // 4, size[0] // 3 + 30, size[1] // 4 + 30), fill="white")
        for x in range(size[0] // 2, size[0], 6):  # thin lines on the right: any camera move changes many pixels
            draw.line((x, 0, x, size[1]), fill="black", width=2)
        board.frame_path(i).parent.mkdir(exist_ok=True)
        im.save(board.frame_path(i))
    return board, story


def settings(**kw) -> ExportSettings:
    return ExportSettings(resolution=144, **kw)


def decode(path: Path, fmt: str = "rgb24") -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format=fmt) for f in c.decode(video=0)]


def packets(path: Path) -> list[int]:
    with av.open(str(path)) as c:
        return [p.size for p in c.demux(c.streams.video[0]) if p.size]


def centre(frame: np.ndarray) -> np.ndarray:
    """Mean colour of a patch left of centre, away from the white square and the caption band."""
    h, w = frame.shape[:2]
    return frame[h // 2 - 6:h // 2 + 6, 8:24].reshape(-1, 3).mean(axis=0)


def nearest_panel(frame: np.ndarray) -> int:
    """Index (0-based) of the panel colour the frame's centre is closest to."""
    return int(np.argmin([np.abs(centre(frame) - c).sum() for c in COLOURS[:3]]))


def write_wav(path: Path, seconds: float, freq: float = 440.0, rate: int = 22050, amplitude: float = 0.5) -> None:
    t = np.arange(int(seconds * rate)) / rate
    samples = (amplitude * 32767 * np.sin(2 * math.pi * freq * t)).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(samples.tobytes())


def audio(path: Path) -> np.ndarray | None:
    """The MP4's sound as (channels, samples) at 48 kHz, or None when it has no audio stream."""
    with av.open(str(path)) as c:
        if not c.streams.audio:
            return None
        stream = c.streams.audio[0]
        assert (stream.codec_context.name, stream.sample_rate, stream.layout.name) == ("aac", 48000, "stereo")
        return np.concatenate([f.to_ndarray() for f in c.decode(stream)], axis=1)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


# ------------------------------------------------------------------ the clock


@pytest.mark.parametrize("fps", ["24", "23.976"])
def test_frame_count_rate_and_duration_are_exact(tmp_path, fps):
    board, story = make_board(tmp_path, durations=[2.5, 1.3, 3.2])
    s = settings(fps=fps)
    path = write_mp4(board, story, s)
    assert path == board.export_path("mp4")
    expected = total_frames(story, s.rate)
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        assert stream.average_rate == s.rate  # 24000/1001 exactly, not 23.976
        assert (stream.codec_context.width, stream.codec_context.height) == (256, 144)
        assert stream.duration * stream.time_base == Fraction(expected) / s.rate
        assert not c.streams.audio and not c.streams.subtitles
    assert len(decode(path)) == expected


def test_first_and_last_frames_are_the_composed_panels(tmp_path):
    board, story = make_board(tmp_path)
    s = settings()
    path = write_mp4(board, story, s)
    frames = decode(path, "yuv420p")
    film = _Film(board, story, s, (256, 144), story_cuts(story, s.rate))
    runs = list(film.runs())
    first, last = (np.concatenate([p.reshape(-1) for p in film.render(r.key)]) for r in (runs[0], runs[-1]))
    got_first, got_last = frames[0].reshape(-1).astype(int), frames[-1].reshape(-1).astype(int)
    assert np.abs(got_first - first).mean() < 3
    assert np.abs(got_last - last).mean() < 3
    assert np.abs(got_first - last).mean() > 20  # the comparison can fail


@pytest.mark.parametrize("still", [False, True])
def test_every_frame_shows_its_own_panel(tmp_path, still):
    board, story = make_board(tmp_path, durations=[1.5, 2.0, 1.0])
    s = settings(still=still)
    frames = decode(write_mp4(board, story, s))
    for n, cut in enumerate(story_cuts(story, s.rate)):
        assert nearest_panel(frames[cut.start]) == n  # the frame just after the cut
        assert nearest_panel(frames[cut.end - 1]) == n


def test_still_holds_each_panel_and_repeats_cost_nothing(tmp_path):
    board, story = make_board(tmp_path)
    s = settings(still=True)
    path = write_mp4(board, story, s)
    frames = decode(path, "yuv420p")
    for cut in story_cuts(story, s.rate):
        for k in range(cut.start + 1, cut.end):
            assert np.array_equal(frames[k], frames[cut.start])
    sizes = packets(path)
    assert len(sizes) == total_frames(story, s.rate)
    assert sum(size > 40 for size in sizes) == len(story.scenes)  # one picture a panel; the rest ~10-byte repeats


def test_push_in_moves_on_threes_and_pan_moves(tmp_path):
    board, story = make_board(tmp_path)
    s = settings()
    frames = decode(write_mp4(board, story, s), "yuv420p")
    cuts = story_cuts(story, s.rate)
    for cut in (cuts[0], cuts[2]):  # close-up: push-in; wide: pan
        first, last = frames[cut.start].astype(int), frames[cut.end - 1].astype(int)
        assert np.abs(first - last).mean() > 5
    push = cuts[0].start
    step = animatic.MOVE_STEP  # a new position every MOVE_STEP frames ("on threes")
    assert all(np.array_equal(frames[push + step], frames[push + step + k]) for k in range(1, step))
    assert not np.array_equal(frames[push + step - 1], frames[push + step])


def test_camera_move_follows_the_shot():
    scene = make_story(1).scenes[0]
    moves = {}
    for shot in Shot:
        scene.shot = shot
        moves[shot] = move_of(scene)
    assert moves[Shot.close_up][0] == moves[Shot.insert][0] == moves[Shot.over_the_shoulder][0] == "push"
    assert moves[Shot.medium] == ("push", animatic.PUSH_IN[Shot.medium])
    assert moves[Shot.medium][1] < moves[Shot.close_up][1]  # gentler
    assert moves[Shot.wide][0] == moves[Shot.establishing][0] == "pan"
    assert all(0 < amount <= 0.06 for _, amount in moves.values())  # gentle


def test_burned_text_does_not_move_with_the_camera(tmp_path):
    board, story = make_board(tmp_path)
    s = settings()
    frames = decode(write_mp4(board, story, s))
    cut = story_cuts(story, s.rate)[0]  # a push-in
    layer = np.asarray(overlay(story.scenes[0], Labels("ru"), (256, 144), True, True))
    solid = layer[..., 3] == 255
    solid[1:-1, 1:-1] &= solid[:-2, 1:-1] & solid[2:, 1:-1] & solid[1:-1, :-2] & solid[1:-1, 2:]  # away from edges
    assert solid.sum() > 50
    first, last = frames[cut.start].astype(int), frames[cut.end - 1].astype(int)
    assert np.abs(first[solid] - last[solid]).mean() < 3
    assert np.abs(first[~solid] - last[~solid]).mean() > 8


def test_scene_numbers_and_captions_are_burned_in_only_when_asked(tmp_path):
    board, story = make_board(tmp_path)
    plain = decode(write_mp4(board, story, settings(still=True, captions="off", scene_numbers=False)))[0].astype(int)
    numbered = decode(write_mp4(board, story, settings(still=True, captions="off")))[0].astype(int)
    captioned = decode(write_mp4(board, story, settings(still=True, scene_numbers=False)))[0].astype(int)
    corner, band = (slice(0, 20), slice(0, 30)), (slice(120, 144), slice(0, 256))
    assert np.abs(numbered[corner] - plain[corner]).mean() > 10
    assert np.abs(captioned[band] - plain[band]).mean() > 10
    assert np.abs(numbered[band] - plain[band]).mean() < 2


def test_dissolve_keeps_length_and_cuts(tmp_path):
    board, story = make_board(tmp_path)
    s = settings(still=True, dissolve=0.5)
    frames = decode(write_mp4(board, story, s))
    cuts = story_cuts(story, s.rate)
    assert len(frames) == total_frames(story, s.rate)
    cut = cuts[1].start
    before, at, after = centre(frames[cut - 8]), centre(frames[cut]), centre(frames[cut + 8])
    assert nearest_panel(frames[cut - 8]) == 0 and nearest_panel(frames[cut + 8]) == 1
    # halfway through the dissolve: both panels' colours mixed, about half and half
    assert np.all(np.abs(at - (np.array(COLOURS[0]) + COLOURS[1]) / 2) < 25), (before, at, after)
    assert np.abs(frames[0].astype(int) - frames[cuts[0].end - 13].astype(int)).mean() < 2  # before the dissolve: held


def test_missing_frame_is_a_placeholder(tmp_path):
    board, story = make_board(tmp_path, missing=(2,))
    s = settings(still=True)
    frames = decode(write_mp4(board, story, s))
    cut = story_cuts(story, s.rate)[1]
    assert np.all(np.abs(centre(frames[cut.start]) - animatic.PLACEHOLDER) < 8)


def test_size_follows_the_board_aspect(tmp_path):
    board, story = make_board(tmp_path, size=(108, 192))
    assert picture_size(board, story, 144) == (80, 144)  # 81 made even
    empty, story2 = make_board(tmp_path / "empty", missing=(1, 2, 3))
    assert picture_size(empty, story2, 1080) == (1920, 1080)  # 16:9 when nothing is rendered
    assert picture_size(empty, story2, 145) == (256, 144)


def test_same_board_same_bytes(tmp_path):
    board, story = make_board(tmp_path, sound=["sound/1.wav", None, None])
    write_wav(tmp_path / "sound" / "1.wav", 1.0)
    one = write_mp4(board, story, settings()).read_bytes()
    assert write_mp4(board, story, settings()).read_bytes() == one


def test_stream_without_repeat_slices_is_the_same_film(tmp_path, monkeypatch):
    """Where the repeats cannot be written (another x264), x264 encodes every frame: same frames, same count."""
    board, story = make_board(tmp_path)
    s = settings()
    fast = decode(write_mp4(board, story, s), "yuv420p")
    monkeypatch.setattr(_RepeatSlices, "from_headers", classmethod(lambda cls, data, size: None))
    path = write_mp4(board, story, s)
    slow = decode(path, "yuv420p")
    assert len(slow) == len(fast) == total_frames(story, s.rate)
    assert max(np.abs(a.astype(int) - b).mean() for a, b in zip(fast, slow)) < 2
    assert min(packets(path)) > 10  # no hand-written repeat among them


# ------------------------------------------------------------------ H.264 repeats


def test_exp_golomb_and_emulation_prevention():
    bits = _Writer()
    for v in (0, 1, 4):
        bits.ue(v)
    bits.se(-1)
    bits.u(5, 3)
    # 1 | 010 | 00101 | 011 | 101 | stop bit 1: 16 bits, no padding
    assert bits.rbsp() == bytes([0b10100010, 0b10111011])
    assert _escape(b"\x00\x00\x01\x00\x00\x00\x00\x00\x04") == b"\x00\x00\x03\x01\x00\x00\x03\x00\x00\x03\x00\x04"


def test_repeat_slice_header_reads_back():
    slices = _RepeatSlices(pps_id=0, log2_frame_num=4, deblocking_control=True, macroblocks=8160)
    slices.frame_num = 15
    data = slices.repeat()
    assert data[:4] == b"\x00\x00\x00\x01" and data[4] == 0x41  # nal_ref_idc 2, non-IDR slice
    r = _Reader(data[5:])
    assert (r.ue(), r.ue(), r.ue(), r.u(4)) == (0, 5, 0, 0)  # frame_num wraps at 16
    assert (r.u(1), r.ue(), r.u(1), r.u(1), r.se(), r.ue(), r.ue()) == (1, 0, 0, 0, 0, 1, 8160)
    assert slices.frame_num == 0


def test_frame_num_rewrite_keeps_the_rest_of_the_slice():
    """Rewriting 0xffff to 0 puts zero bytes beside zero bytes: the head needs new emulation bytes, the rest is kept."""
    slices = _RepeatSlices(pps_id=0, log2_frame_num=16, deblocking_control=True, macroblocks=8160)
    slices.frame_num = 0xfffe
    nal = slices.repeat()[4:] + bytes(range(4, 40))  # a longer "slice": its tail must come through unchanged
    fixed, changed = _with_frame_num(nal, 0, 16)
    assert changed and fixed != nal and fixed.endswith(bytes(range(4, 40)))
    assert b"\x00\x00\x00" not in fixed and b"\x00\x00\x01" not in fixed
    r = _Reader(fixed[1:])
    assert (r.ue(), r.ue(), r.ue(), r.u(16)) == (0, 5, 0, 0)
    assert (r.u(1), r.ue(), r.u(1), r.u(1), r.se(), r.ue(), r.ue()) == (1, 0, 0, 0, 0, 1, 8160)
    assert _with_frame_num(fixed, 0, 16) == (fixed, False)


def pictures(path: Path) -> tuple[_RepeatSlices, list[tuple[int, int, int]]]:
    """The stream's headers as the repeat writer reads them; (nal_unit_type, nal_ref_idc, frame_num) of each picture."""
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        avcc = stream.codec_context.extradata  # avcC: 5 bytes, SPS count, [length, SPS], PPS count, [length, PPS]
        sps_len = int.from_bytes(avcc[6:8], "big")
        sps = avcc[8:8 + sps_len]
        pps = avcc[8 + sps_len + 3:8 + sps_len + 3 + int.from_bytes(avcc[9 + sps_len:11 + sps_len], "big")]
        headers = _RepeatSlices.from_headers(b"\0\0\0\1" + sps + b"\0\0\0\1" + pps, (256, 144))
        out = []
        for packet in c.demux(stream):
            data, i = bytes(packet), 0
            while i < len(data):
                n = int.from_bytes(data[i:i + 4], "big")
                nal = data[i + 4:i + 4 + n]
                i += 4 + n
                if nal[0] & 31 in (1, 5):
                    r = _Reader(nal[1:])
                    r.ue(), r.ue(), r.ue()
                    out.append((nal[0] & 31, nal[0] >> 5, r.u(headers.log2_frame_num)))
                    break
    return headers, out


@pytest.mark.parametrize("kw", [{"still": True}, {}, {"dissolve": 0.5}, {"still": True, "dissolve": 0.4}])
def test_frame_numbering_follows_the_h264_rules(tmp_path, kw):
    """What FFmpeg forgives and stricter decoders do not: every picture a reference numbered one after the
    other since the last IDR (no frame_num gaps, none repeated), every cut an IDR."""
    board, story = make_board(tmp_path, durations=[2.5, 1.3, 3.2])
    s = settings(**kw)
    headers, pics = pictures(write_mp4(board, story, s))
    assert headers is not None  # the repeats were written (not the all-x264 fallback)
    assert len(pics) == total_frames(story, s.rate)
    expected = 0
    for k, (kind, ref, num) in enumerate(pics):
        assert ref, k
        expected = 0 if kind == 5 else (expected + 1) % (1 << headers.log2_frame_num)
        assert num == expected, k
    idrs = {k for k, (kind, _, _) in enumerate(pics) if kind == 5}
    assert {c.start for c in story_cuts(story, s.rate)} <= idrs
    assert len(idrs) <= len(story.scenes) + (len(story.scenes) - 1) * (s.dissolve > 0)  # no IDR but at cuts


# ------------------------------------------------------------------ captions track


@pytest.mark.parametrize("mode", ["track", "both"])
def test_captions_as_a_subtitle_track(tmp_path, mode):
    board, story = make_board(tmp_path, caption=["Первый кадр: ә ғ қ ң", "", "Үшінші"])
    s = settings(captions=mode, fps="23.976")
    path = write_mp4(board, story, s)
    cuts = story_cuts(story, s.rate)
    with av.open(str(path)) as c:
        stream = c.streams.subtitles[0]
        assert stream.codec_context.name == "mov_text"
        got = []
        for packet in c.demux(stream):
            for sub in stream.codec_context.decode2(packet) or []:
                got.append((packet.pts * packet.time_base, packet.duration * packet.time_base, sub.dialogue.decode()))
    assert got == [(Fraction(cuts[0].start) / s.rate, Fraction(cuts[0].frames) / s.rate, "Первый кадр: ә ғ қ ң"),
                   (Fraction(cuts[2].start) / s.rate, Fraction(cuts[2].frames) / s.rate, "Үшінші")]


# ------------------------------------------------------------------ sound


def test_no_sound_no_audio_stream(tmp_path):
    board, story = make_board(tmp_path)
    assert audio(write_mp4(board, story, settings())) is None


def test_scene_sound_plays_from_its_panel_and_is_cut_at_its_end(tmp_path):
    board, story = make_board(tmp_path, sound=[None, "sound/02.wav", None])
    write_wav(tmp_path / "sound" / "02.wav", 5.0)  # longer than the panel
    s = settings()
    path = write_mp4(board, story, s)
    sound = audio(path)
    frames = total_frames(story, s.rate)
    assert abs(sound.shape[1] / 48000 - frames / s.rate) <= 1 / s.rate  # as long as the video, within a frame
    cut = story_cuts(story, s.rate)[1]
    a, b = int(cut.start / s.rate * 48000), int(cut.end / s.rate * 48000)
    margin = 2400  # 50 ms of codec delay and smear
    assert rms(sound[:, :a - margin]) < 0.01
    assert rms(sound[:, a + margin:b - margin]) > 0.2
    assert rms(sound[:, b + margin:]) < 0.01


def test_soundtrack_runs_under_the_board_and_is_cut(tmp_path):
    board, story = make_board(tmp_path)
    write_wav(tmp_path / "music.wav", 20.0, freq=220)
    s = settings(soundtrack="music.wav", fps="23.976")
    sound = audio(write_mp4(board, story, s))
    assert abs(sound.shape[1] / 48000 - total_frames(story, s.rate) / s.rate) <= 1 / s.rate
    assert rms(sound[:, 4800:-4800]) > 0.2


def test_narration_reads_the_captions(tmp_path):
    if not ESPEAK.is_file():
        pytest.skip("espeak-ng is not installed (/usr/bin/espeak-ng)")
    board, story = make_board(tmp_path, caption=["Алдар Косе продаёт яйцо.", "", "Бай считает монеты."])
    s = settings(narrate=True)
    sound = audio(write_mp4(board, story, s))
    cuts = story_cuts(story, s.rate)
    span = [(int(c.start / s.rate * 48000), int(c.end / s.rate * 48000)) for c in cuts]
    assert rms(sound[:, span[0][0]:span[0][1]]) > 0.01
    assert rms(sound[:, span[1][0] + 2400:span[1][1] - 2400]) < 0.001  # no caption, nothing read
    assert rms(sound[:, span[2][0]:span[2][1]]) > 0.01


def test_a_long_caption_is_read_faster_to_end_inside_its_panel(tmp_path, caplog):
    if not ESPEAK.is_file():
        pytest.skip("espeak-ng is not installed (/usr/bin/espeak-ng)")
    long = "Алдар Косе продаёт жадному баю золотое яйцо и уезжает на своём осле."  # ~4.5 s at espeak's pace
    board, story = make_board(tmp_path, n=2, caption=[long, long], durations=[3.5, 1.0])
    s = settings(narrate=True)
    with caplog.at_level(logging.WARNING, logger="autokose"):
        sound = audio(write_mp4(board, story, s))
    end = int(3.5 * 48000)
    assert rms(sound[:, end - 4800:end - 600]) < 0.005  # sped up: the reading has ended before the cut
    assert rms(sound[:, :end // 2]) > 0.01
    notes = [r.getMessage() for r in caplog.records if "narration" in r.getMessage()]
    assert len(notes) == 1 and "scene(s) 2 " in notes[0]  # 1 s cannot hold it even read faster: said, and cut


def test_narration_without_espeak_is_skipped_with_a_note(tmp_path, monkeypatch, caplog):
    board, story = make_board(tmp_path)
    monkeypatch.setattr(animatic.shutil, "which", lambda name: None)
    with caplog.at_level(logging.WARNING, logger="autokose"):
        path = write_mp4(board, story, settings(narrate=True))
    assert audio(path) is None
    notes = [r.getMessage() for r in caplog.records if "espeak-ng" in r.getMessage()]
    assert notes == ["animatic: narration skipped: espeak-ng is not installed (apt-get install espeak-ng)"]


def test_narration_with_an_unknown_voice_is_an_input_error(tmp_path):
    if not ESPEAK.is_file():
        pytest.skip("espeak-ng is not installed (/usr/bin/espeak-ng)")
    board, story = make_board(tmp_path)
    with pytest.raises(InputError, match="voice 'xx-nope'"):
        export_board(board, story, ["html", "mp4"], settings(narrate=True, voice="xx-nope"))
    assert not board.export_path("html").exists() and not board.export_path("mp4").exists()


# ------------------------------------------------------------------ checks before writing


def _outside_sound(tmp_path: Path, board_root: Path) -> str:
    write_wav(tmp_path / "elsewhere.wav", 1.0)
    (board_root / "sound").mkdir()
    (board_root / "sound" / "link.wav").symlink_to(tmp_path / "elsewhere.wav")
    return "sound/link.wav"


@pytest.mark.parametrize("case, message", [
    ("missing", "no such sound file"), ("outside", "leaves the board"), ("not audio", "not a readable audio file"),
])
def test_bad_scene_sound_is_refused_before_anything_is_written(tmp_path, case, message):
    root = tmp_path / "board"
    board, story = make_board(root)
    if case == "missing":
        sound = "sound/none.wav"
    elif case == "outside":
        sound = _outside_sound(tmp_path, root)
    else:
        (root / "sound").mkdir()
        (root / "sound" / "notes.wav").write_text("this is not audio\n")
        sound = "sound/notes.wav"
    story.scenes[1].sound = sound
    with pytest.raises(InputError, match=message):
        export_board(board, story, ["html", "mp4"], settings())
    assert not board.export_path("html").exists() and not board.export_path("mp4").exists()


def test_bad_soundtrack_is_refused(tmp_path):
    board, story = make_board(tmp_path)
    with pytest.raises(InputError, match="no such sound file"):
        animatic.check_mp4(board, story, settings(soundtrack="music.mp3"))
    (tmp_path / "cover.png").write_bytes(board.frame_path(1).read_bytes())
    with pytest.raises(InputError, match="soundtrack has no audio stream|soundtrack is not a readable audio"):
        animatic.check_mp4(board, story, settings(soundtrack=str(tmp_path / "cover.png")))


def test_pyav_missing_names_the_extra(tmp_path, monkeypatch):
    board, story = make_board(tmp_path)
    monkeypatch.setitem(sys.modules, "av", None)
    with pytest.raises(InputError, match=r"pip install 'autokose\[edit\]'"):
        animatic.check_mp4(board, story, settings())


def test_a_failed_write_leaves_no_file(tmp_path, monkeypatch):
    board, story = make_board(tmp_path)

    def broken(self, key):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(_Film, "frame", broken)
    with pytest.raises(RuntimeError):
        write_mp4(board, story, settings())
    assert not board.export_path("mp4").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ------------------------------------------------------------------ GIF


def test_gif_one_frame_per_panel_held_for_its_duration(tmp_path):
    board, story = make_board(tmp_path, durations=[2.5, 1.3, 3.2])
    s = settings(gif_width=200, fps="23.976")
    path = write_gif(board, story, s)
    assert path == board.export_path("gif")
    with Image.open(path) as gif:
        assert gif.size == (200, 112)
        durations, colours = [], []
        for k in range(gif.n_frames):
            gif.seek(k)
            durations.append(gif.info["duration"])
            colours.append(nearest_panel(np.asarray(gif.convert("RGB"))))
    cuts = story_cuts(story, s.rate)
    assert colours == [0, 1, 2]
    assert sum(durations) == round(total_frames(story, s.rate) / s.rate * 100) * 10
    assert [abs(d - c.frames / s.rate * 1000) <= 10 for d, c in zip(durations, cuts)] == [True] * 3
    assert path.stat().st_size < 100_000


def test_export_board_writes_both_animatics(tmp_path):
    board, story = make_board(tmp_path)
    paths = export_board(board, story, ["mp4", "gif"], settings(still=True))
    assert paths == {"mp4": board.export_path("mp4"), "gif": board.export_path("gif")}
    assert len(decode(paths["mp4"])) == total_frames(story, settings().rate)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["animatic.gif", "animatic.mp4", "story.json"]
