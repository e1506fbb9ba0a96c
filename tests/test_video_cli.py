"""`autokose video stylize`: options → job (video.options), bad input through the command, kill -9 + --resume.

Bad input is checked by what the user sees and what is left: one `error:` line, exit 2, and no
OUT, OUT.frames/ or OUT.metrics.json. The kill test SIGKILLs the real console script once a few
frame PNGs exist, finishes with --resume, and compares every frame with an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.main import get_command

from autokose.app.cli import app
from autokose.errors import InputError
from autokose.models import LoraRef
from conftest import SHARED
from test_cli_surface import assert_one_line_error, cli

av = pytest.importorskip("av")
from autokose.video import io  # noqa: E402
from autokose.video.options import OPTIONS, check_output, resolve_video  # noqa: E402
from autokose.video.stylize import StylizeSettings, frames_dir, metrics_path  # noqa: E402

CLIP = SHARED / "video" / "short_hamilton_clip.mp4"
SCRIPT = Path(sys.executable).with_name("autokose")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "autokose.app.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def synth(path: Path, frames: int = 4, width: int = 64, height: int = 32, *, codec: str = "libx264",
          pix_fmt: str = "yuv420p", rate: int = 25) -> Path:
    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        for i in range(frames):
            image = np.full((height, width, 3), 30 * i % 256, np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format=pix_fmt)))
        out.mux(video.encode(None))
    return path


def audio_only(path: Path) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def zero_frames(path: Path) -> Path:
    """A video track without frames: Matroska keeps it when another track has data."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        sound = out.add_stream("aac", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 16000), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        out.mux(sound.encode(frame))
        out.mux(sound.encode(None))
    return path


@pytest.fixture(scope="module")
def footage(tmp_path_factory) -> dict[str, Path]:
    """One good small clip and one file (or folder) of every kind of footage the command refuses."""
    root = tmp_path_factory.mktemp("footage")
    files = {"good": synth(root / "good.mp4"), "missing": root / "missing.mp4", "folder": root / "folder.mp4"}
    files["folder"].mkdir()
    files["corrupt"] = root / "corrupt.mp4"
    files["corrupt"].write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    files["audio_only"] = audio_only(root / "voice.m4a")
    files["zero_frames"] = zero_frames(root / "empty.mkv")
    files["8k"] = synth(root / "wide.mp4", frames=1, width=7680, height=16)
    files["pixel_format"] = synth(root / "rgb4.nut", frames=2, width=16, height=16, codec="rawvideo", pix_fmt="rgb4")
    return files


def untouched(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------ options → job
def test_the_character_comes_from_the_bible():
    job = resolve_video({"character": "aldar", "model": "some/model", "style": "watercolour", "size": 256,
                         "steps": 10, "strength": 0.4, "flow_init": False, "lora": [], "seed": None})
    s = job.settings
    assert s.character.startswith("aldarkose, cheerful beardless young Kazakh man")
    assert s.character_id == "aldar" and s.references == []
    assert (s.style, s.short_side, s.strength, s.flow_init) == ("watercolour", 256, 0.4, False)
    assert s.warped_noise is True and s.keyframe_attention == StylizeSettings().keyframe_attention  # defaults kept
    assert (job.diffusion.model, job.diffusion.steps, job.diffusion.loras) == ("some/model", 10, [])
    assert job.loras == [] and job.warnings == []


def test_own_lora_is_owned_by_the_character_and_a_style_lora_by_nobody(tmp_path: Path):
    for name in ("aldar.safetensors", "me.png"):  # the bible resolves paths that exist beside it
        (tmp_path / name).write_bytes(b"")
    card = tmp_path / "kempir" / "card.json"
    card.parent.mkdir()
    card.write_text(json.dumps({"trigger": "kempirx", "lora": "lora.safetensors", "references": ["r1.png"]}))
    cast = tmp_path / "cast.yaml"
    cast.write_text("characters:\n"
                    "  - id: aldar\n    lora: aldar.safetensors:0.7\n    references: [me.png]\n"
                    "  - id: kempir\n    name: Old woman\n    appearance: old woman in a white headscarf\n"
                    "    card: kempir/card.json\n", encoding="utf-8")
    job = resolve_video({"character": "aldar", "bible": cast, "model": "m", "style_lora": ["ink.safetensors:0.5"]})
    assert job.loras == [(LoraRef(str(tmp_path / "aldar.safetensors"), 0.7), "aldar")]
    assert job.diffusion.loras == ["ink.safetensors:0.5"]  # un-owned: the whole frame
    assert job.settings.references == [str(tmp_path / "me.png")]
    engine = job.engine()
    assert engine.loras == [(LoraRef("ink.safetensors", 0.5), None), (LoraRef(str(tmp_path / "aldar.safetensors"), 0.7), "aldar")]
    # --lora naming the character's own file: loaded once, with the weight given there
    again = resolve_video({"character": "aldar", "bible": cast, "model": "m",
                           "lora": [f"{tmp_path / 'aldar.safetensors'}:0.3"]})
    assert again.loras == [] and again.diffusion.loras == [f"{tmp_path / 'aldar.safetensors'}:0.3"]
    # a trained card fills in what the entry leaves out, as for a storyboard
    kempir = resolve_video({"character": "kempir", "bible": cast, "model": "m"})
    assert kempir.settings.character == "kempirx, old woman in a white headscarf"
    assert kempir.loras == [(LoraRef(str(card.parent / "lora.safetensors"), 1.0), "kempir")]
    assert kempir.settings.references == [str(card.parent / "r1.png")]


@pytest.mark.parametrize("options, message", [
    ({"character": "aldar"}, "stylising footage needs --model"),
    ({"model": "m"}, "give --character"),
    ({"model": "m", "character": "nobody"}, "unknown character 'nobody' (known: aldar, bai"),
    ({"model": "m", "character": "aldar", "size": 10}, "--size 10: Input should be greater than or equal to 64"),
    ({"model": "m", "character": "aldar", "strength": 2.0}, "--strength 2.0: Input should be less than"),
    ({"model": "m", "character": "aldar", "steps": 0}, "--steps 0: Input should be greater than or equal to 1"),
    ({"model": "m", "character": "aldar", "scheduler": "fast"}, "--scheduler fast: Input should be"),
    ({"model": "m", "character": "aldar", "style_lora": [":0.5"]}, "--style-lora ':0.5': expected a LoRA file"),
    ({"model": "m", "character": "aldar", "colour": "red"}, "unknown video option(s): colour"),
])
def test_bad_options_are_one_line(options, message):
    with pytest.raises(InputError) as caught:
        resolve_video(options)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_options_that_change_nothing_are_warned_about():
    job = resolve_video({"model": "m", "character": "aldar", "background": "a steppe", "ip_adapter": "ip-adapter_sd15"})
    assert [w.split(":")[0] for w in job.warnings] == ["--background", "--ip-adapter ip-adapter_sd15"]


def test_every_option_is_a_flag_of_the_command():
    """What a web form can give, a flag can (except the bible, a file there); --help shows them all at 80 columns."""
    params = [p for p in get_command(app).commands["video"].commands["stylize"].params if p.param_type_name == "option"]
    assert set(OPTIONS) <= {p.name for p in params}, set(OPTIONS) - {p.name for p in params}
    text = cli("video", "stylize", "--help", env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"}).stdout
    assert max(map(len, text.splitlines())) <= 80 and "…" not in text
    for param in params:
        for name in param.opts:
            assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), f"{name} cut or missing"


def test_check_output(tmp_path: Path):
    out = tmp_path / "v.mp4"
    assert check_output(out) == out
    out.mkdir()  # not an earlier output: stylize.check refuses a folder
    assert check_output(out) == out
    out.rmdir()
    frames_dir(out).mkdir()  # a killed run's frames: not redrawn over without being asked
    with pytest.raises(InputError, match="give --resume to finish that video, or --force"):
        check_output(out)
    assert check_output(out, resume=True) == check_output(out, force=True) == out
    with pytest.raises(InputError, match="not both"):
        check_output(out, resume=True, force=True)


def test_metrics_table_rows():
    from autokose.app.video import metric_rows

    rows = dict(metric_rows({
        "warp_error": {"input": 1.6e-4, "output": 6.5e-4, "baseline": 1.3e-3, "ratio": 0.5}, "frames": 8, "fps": 29.97,
        "identity": {"within": 0.75, "threshold": 0.6, "skipped": None},
        "clip": {"mean": None, "min": None, "per_pair": None, "skipped": "clip: skipped — no model"}}))
    assert rows["warp error, input"] == "0.00016" and rows["warp error, baseline"] == "0.0013"
    assert rows["output / baseline"].startswith("0.500") and (rows["frames"], rows["fps"]) == ("8", "29.97")
    assert rows["face identity"] == "75% of frames within 0.6 of the references"
    assert rows["CLIP frame to frame"] == "clip: skipped — no model"
    assert "warp error, baseline" not in dict(metric_rows({"warp_error": {"input": 0.1, "output": 0.2, "baseline": None}}))


# ------------------------------------------------------------------ bad input through the command
@pytest.mark.parametrize("kind, args, message", [
    ("missing", [], "no such video file"),
    ("folder", [], "is a folder, not a video file"),
    ("corrupt", [], "not a readable video file"),
    ("audio_only", [], "no video stream (audio only)"),
    ("zero_frames", [], "the video stream has no frames"),
    ("8k", [], "7680x16 is larger than 4096 pixels on a side"),
    ("pixel_format", [], "pixel format rgb4 cannot be converted to RGB"),
    ("good", ["--start", "100"], "start 100 s is at or past the end of the video"),
    ("good", ["--start", "0.1", "--end", "0.05"], "end 0.05 s is not after start 0.1 s"),
    ("good", ["--start", "0.1", "--end", "0.11"], "no frame between start 0.1 s and end 0.11 s"),
    ("good", ["--size", "4000"], "size 4000 makes the long side 8000 pixels"),
    ("good", ["--size", "10"], "--size 10: Input should be greater than or equal to 64"),
    ("good", ["--character", "nobody"], "unknown character 'nobody' (known: aldar, bai"),
    ("good", ["--model", ""], "stylising footage needs --model"),
    ("good", ["--key-color", "green"], "give both"),
    ("good", ["--separate", "--key-color", "grey"], "key colour 'grey'"),
    ("good", ["--resume", "--force"], "not both"),
])
def test_bad_input_is_one_line_and_writes_nothing(footage, tmp_path, kind, args, message):
    """Each refused before a file is written: the footage by `io.probe`, the options by `resolve_video`,
    the model by the engine's check (the later of two equal flags wins)."""
    out = tmp_path / "v.mp4"
    result = cli("video", "stylize", footage[kind], "--character", "aldar", "--model", "no-such-org/no-such-model",
                 "--steps", "2", "--out", out, *args)
    assert_one_line_error(result, message)
    assert untouched(tmp_path) == []


@pytest.mark.slow
def test_what_the_engine_would_load_is_checked_before_anything_is_written(footage, store, tmp_path):
    """A missing model or LoRA file fails in the engine's check, before the frames folder exists."""
    from tiny import tiny_sd15

    out = tmp_path / "v.mp4"
    result = cli("video", "stylize", footage["good"], "--character", "aldar", "--model", tmp_path / "no-model",
                 "--out", out)
    assert_one_line_error(result, "no-model")
    result = cli("video", "stylize", footage["good"], "--character", "aldar", "--model", tiny_sd15(store),
                 "--style-lora", tmp_path / "ink.safetensors", "--out", out)
    assert_one_line_error(result, "ink.safetensors")
    assert untouched(tmp_path) == []


def test_an_earlier_output_is_not_touched(footage, tmp_path):
    out = tmp_path / "v.mp4"
    out.write_bytes(b"the director's cut")
    result = cli("video", "stylize", footage["good"], "--character", "aldar", "--model", "m", "--out", out)
    assert_one_line_error(result, "v.mp4 exists: give --resume to finish that video, or --force")
    assert untouched(tmp_path) == ["v.mp4"] and out.read_bytes() == b"the director's cut"
    for name, message in (("v.avi", "give a path ending in .mp4"), ("folder.mp4", "is a folder")):
        (tmp_path / "folder.mp4").mkdir(exist_ok=True)
        result = cli("video", "stylize", footage["good"], "--character", "aldar", "--model", "m", "--out", tmp_path / name)
        assert_one_line_error(result, message)
    assert untouched(tmp_path) == ["folder.mp4", "v.mp4"] and not any((tmp_path / "folder.mp4").iterdir())


# ------------------------------------------------------------------ kill -9, then --resume
def png_frames(folder: Path) -> dict[str, np.ndarray]:
    from PIL import Image

    return {p.name: np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("[0-9]*.png"))}


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_frames_of_an_uninterrupted_run(store, tmp_path):
    """The console script killed once 2 frame PNGs exist, then `--resume`: the same PNGs, pixel for pixel,
    as one uninterrupted run, and an MP4 with the input's fps, the span's frame count and its audio."""
    from tiny import tiny_sd15

    if not CLIP.is_file():
        pytest.skip(f"{CLIP} is not beside this checkout")
    source = io.probe(CLIP)
    frames = 8
    args = ["video", "stylize", CLIP, "--character", "aldar", "--style", "a yurt", "--model", tiny_sd15(store),
            "--steps", "2", "--size", "64", "--end", f"{(frames - 0.5) / float(source.fps):.4f}", "--seed", "3"]

    reference = tmp_path / "reference" / "v.mp4"
    reference.parent.mkdir()
    done = cli(*args, "--out", reference)
    assert done.exit_code == 0, done.output
    assert "warp error, output" in done.stdout and "video written:" in done.stderr

    out = tmp_path / "killed" / "v.mp4"
    out.parent.mkdir()
    child = subprocess.Popen([*COMMAND, *map(str, args), "--out", str(out)], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        while len(list(frames_dir(out).glob("[0-9]*.png"))) < 2:
            assert child.poll() is None, "the run ended before the kill point"
            assert time.monotonic() - t0 < 300, "no frame drawn in 300 s"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(60)
    assert child.returncode == -signal.SIGKILL
    drawn = len(list(frames_dir(out).glob("[0-9]*.png")))
    assert 2 <= drawn < frames and not out.exists() and not metrics_path(out).exists()

    again = cli(*args, "--out", out)  # without --resume the frames drawn are not silently redrawn
    assert_one_line_error(again, "give --resume")
    resumed = cli(*args, "--out", out, "--resume")
    assert resumed.exit_code == 0, resumed.output
    expected = png_frames(frames_dir(reference))
    got = png_frames(frames_dir(out))
    assert len(expected) == frames and got.keys() == expected.keys()
    for name in expected:
        assert np.array_equal(got[name], expected[name]), name
    written = io.probe(out)
    assert written.fps == source.fps and written.frames == frames and written.has_audio
    metrics = json.loads(metrics_path(out).read_text(encoding="utf-8"))
    assert metrics["frames"] == frames and metrics["fps"] == pytest.approx(float(source.fps))
