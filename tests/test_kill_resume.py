"""kill -9 at several points of previz rendering, diffusion rendering and training, then `--resume`.

Each trial SIGKILLs the real console script (after the first frames appear, or after a random
delay drawn from the uninterrupted run's duration), resumes, and compares with an uninterrupted
run: frames, their SVGs, controls and story.json byte for byte, every frame in the manifest with
its seed and sha256 (timings and dates aside), training weights tensor for tensor, and no temp
file left anywhere. The delays come from a seeded RNG, so a failing trial can be replayed.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(sys.executable).with_name("autokose")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "autokose.app.cli"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
LOGLINE = "Aldar Köse sells the greedy Bai a coat that keeps nobody warm"
PREVIZ = ["--scenes", "6", "--width", "640", "--height", "360", "--seed", "3"]
RNG_SEED = 8


def run(args: list, timeout: float = 600) -> float:
    """Run the console script to the end; its wall time."""
    t0 = time.monotonic()
    done = subprocess.run([*COMMAND, *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    return time.monotonic() - t0


def kill_when(args: list, ready, timeout: float = 300) -> bool:
    """Start the console script and SIGKILL it as soon as `ready(elapsed)` is true.

    False when the run ended on its own before the kill point (a delay drawn from another run's
    duration can outlast a quicker one); every other outcome but a kill fails the test.
    """
    t0 = time.monotonic()
    child = subprocess.Popen([*COMMAND, *map(str, args)], env=ENV, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        while not ready(time.monotonic() - t0):
            if child.poll() is not None:
                assert child.returncode == 0, f"the run failed before the kill point ({child.returncode})"
                return False
            assert time.monotonic() - t0 < timeout, "kill point not reached"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(60)
    assert child.returncode == -signal.SIGKILL
    return True


def kill_after(args: list, board: Path, seconds: float, tries: int = 4) -> None:
    """SIGKILL the run `seconds` in; if it ends sooner (the machine is quicker now), start again on
    an empty board with half the delay, so the trial always kills mid-run."""
    import shutil

    for _ in range(tries):
        if kill_when(args, after(seconds)):
            return
        shutil.rmtree(board)
        seconds /= 2
    pytest.fail(f"every run ended before {seconds * 2:.2f} s: no kill point inside the run")


def frames_at_least(board: Path, n: int):
    return lambda elapsed: len(list((board / "frames").glob("[0-9][0-9].png"))) >= n


def after(seconds: float):
    return lambda elapsed: elapsed >= seconds


def temp_files(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob(".*")]


def assert_same_board(board: Path, reference: Path) -> None:
    """Same pixels and story as the uninterrupted run, a manifest listing every frame, no temp files."""
    assert temp_files(board) == []
    story = json.loads((board / "story.json").read_text(encoding="utf-8"))
    assert (board / "story.json").read_bytes() == (reference / "story.json").read_bytes()
    names = sorted(p.relative_to(reference) for sub in ("frames", "control") for p in (reference / sub).iterdir())
    assert sorted(p.relative_to(board) for sub in ("frames", "control") for p in (board / sub).iterdir()) == names
    for name in names:
        assert (board / name).read_bytes() == (reference / name).read_bytes(), name
    manifest = json.loads((board / "manifest.json").read_text(encoding="utf-8"))
    expected = json.loads((reference / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(manifest["frames"]) == [f"{s['index']:02d}" for s in story["scenes"]]
    import hashlib

    for scene in story["scenes"]:
        key = f"{scene['index']:02d}"
        record = manifest["frames"][key]
        assert record["seed"] == scene["seed"]
        assert record["sha256"] == hashlib.sha256((board / "frames" / f"{key}.png").read_bytes()).hexdigest()
        strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
        assert strip(record) == strip(expected["frames"][key])
    for name in ("board.html", "board.pdf", "sheet.png"):
        assert (board / name).stat().st_size > 0


# --------------------------------------------------------------------------- previz
@pytest.fixture(scope="module")
def previz_reference(tmp_path_factory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("kill") / "reference"
    return out, run(["story", LOGLINE, *PREVIZ, "--out", out])


def _previz_points():
    # Fractions of the reference run's wall time, which ran cold (first imports, font caches): a
    # warm run can be 15% quicker, so a point near the end could come after the run has ended.
    rng = random.Random(RNG_SEED)
    return [("first_frame", 1), ("three_frames", 3),
            ("random_a", rng.uniform(0.2, 0.65)), ("random_b", rng.uniform(0.2, 0.65))]


@pytest.mark.parametrize("name,point", _previz_points(), ids=[p[0] for p in _previz_points()])
def test_previz_killed_then_resumed_is_identical(previz_reference, tmp_path, name, point):
    reference, seconds = previz_reference
    board = tmp_path / "board"
    args = ["story", LOGLINE, *PREVIZ, "--out", board]
    if isinstance(point, int):
        assert kill_when(args, frames_at_least(board, point)), "the run ended before the kill point"
    else:
        kill_after(args, board, point * seconds)
    run([*args, "--resume"])
    assert_same_board(board, reference)


# --------------------------------------------------------------------------- diffusion (tiny model)
@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    import tiny

    return tiny.tiny_sd15(tmp_path_factory.mktemp("kill-models"))


def diffusion_args(model: Path, out: Path) -> list:
    return ["story", LOGLINE, "--scenes", "6", "--seed", "3", "--out", out, "--model", model, "--steps", "2",
            "--width", "64", "--height", "64", "--batch-size", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def diffusion_reference(model, tmp_path_factory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("kill-diffusion") / "reference"
    return out, run(diffusion_args(model, out))


@pytest.mark.parametrize("point", ["first_frame", "random_a", "random_b"])
def test_diffusion_killed_then_resumed_is_identical(model, diffusion_reference, tmp_path, point):
    reference, seconds = diffusion_reference
    board = tmp_path / "board"
    args = diffusion_args(model, board)
    rng = random.Random(f"{RNG_SEED}-{point}")
    # fractions of the cold reference run (see _previz_points): a warm run may end before 0.95 of it
    if point == "first_frame":
        assert kill_when(args, frames_at_least(board, 1)), "the run ended before the kill point"
    else:
        kill_after(args, board, rng.uniform(0.3, 0.7) * seconds)
    run([*args, "--resume"])
    assert_same_board(board, reference)


# --------------------------------------------------------------------------- training (tiny model)
STEPS = 6
TRAIN = ["--resolution", "64", "--steps", str(STEPS), "--batch-size", "2", "--rank", "4", "--lr", "1e-2",
         "--checkpoint-every", "2", "--no-validate", "--seed", "0"]
WEIGHTS = ("pytorch_lora_weights.safetensors", "aldar_kohya.safetensors")


@pytest.fixture(scope="module")
def refs(tmp_path_factory) -> Path:
    from hostile.harness import Env

    return Env(tmp_path_factory.mktemp("kill-refs")).refs()


def train_args(model: Path, refs: Path, out: Path) -> list:
    return ["character", "train", "aldar", "--images", refs, "--model", model, "--out", out, *TRAIN]


@pytest.fixture(scope="module")
def trained_reference(model, refs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kill-train") / "reference"
    run(train_args(model, refs, out))
    return out


@pytest.mark.parametrize("checkpoint", [2, 4])
def test_training_killed_then_resumed_has_identical_weights(model, refs, trained_reference, tmp_path, checkpoint):
    from safetensors.torch import load_file

    out = tmp_path / "aldar"
    args = train_args(model, refs, out)
    assert kill_when(args, lambda elapsed: (out / "checkpoints" / f"step-{checkpoint:06d}" / "state.json").exists())
    assert not (out / "card.json").exists()
    run([*args, "--resume"])
    log = (out / "train.log").read_text(encoding="utf-8")
    assert f"at step {checkpoint}/{STEPS}" in log or f"at step {checkpoint + 2}/{STEPS}" in log
    for name in WEIGHTS:
        a, b = load_file(str(out / name)), load_file(str(trained_reference / name))
        assert a.keys() == b.keys()
        for key in a:
            assert a[key].dtype == b[key].dtype and bool((a[key] == b[key]).all()), f"{name}: {key} differs"
    card = json.loads((out / "card.json").read_text(encoding="utf-8"))
    assert card["training"]["steps"] == STEPS
    assert [p for p in out.rglob(".*")] == []
