"""Run one hostile input through the CLI and judge the outcome.

Every case must end in one of two ways:

- exit 2, exactly one non-empty stderr line starting with `error:` (lines starting with
  `warning:` aside), no traceback, and the case's folder exactly as it was (names and bytes; a
  folder the run would have created does not exist);
- exit 0 with a complete, valid result: for a board, story.json validates, every scene has
  frames/NN.png that decodes, the manifest lists every frame with its seed and sha256, and
  nothing outside the board changed.

Never a traceback, never a temp file (fsio's `.name.*` files) left behind, and never a run of
the pickle payloads the cases plant (they create `Env.marker` when unpickled).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.executable).with_name("autokose")
BASE_SIZE = ["--width", "160", "--height", "96"]  # small frames keep successful runs fast
LOGLINE = "Aldar Köse sells the Bai a magic coat"
TRAIN_FAST = ["--resolution", "64", "--steps", "2", "--batch-size", "1", "--rank", "4", "--no-validate",
              "--checkpoint-every", "1", "--seed", "0"]


# --------------------------------------------------------------------------- cases and results
@dataclass(frozen=True)
class Case:
    """One hostile input.

    build(ctx) writes what the case needs into ctx.dir and returns the CLI arguments.
    target: the folder (relative to ctx.dir) a successful run writes; everything else must stay.
    ok: what exit 0 must leave in target: board | frames | story | scores | card | print, or
        never (the input must be refused: accepting it is the bug).
    needs: "model" (tiny SD models) or "trained" (a tiny training run): heavy cases, marked slow.
    echo: user text that must appear literally in the output (no markup eaten).
    check(ctx, result): an extra judgement; returns a problem or None.
    """

    id: str
    category: str
    build: Callable
    target: str = "out"
    ok: str = "board"
    needs: str = ""
    echo: str | None = None
    check: Callable | None = None

    @property
    def heavy(self) -> bool:
        return bool(self.needs)


@dataclass
class Result:
    exit_code: int | None
    stdout: str
    stderr: str
    exception: BaseException | None = None


# --------------------------------------------------------------------------- shared inputs
class _Payload:
    """Unpickling this creates the marker file: proof that something unpickled a user's file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def png_bytes(size=(48, 40), colour=(200, 60, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width×height but holds almost no pixels: a decompression-bomb stand-in."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def _jpeg_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (30, 90, 160)).save(buf, "JPEG")
    return buf.getvalue()


def _gif_animation() -> bytes:
    frames = [Image.new("P", (32, 32), n) for n in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    return buf.getvalue()


def _bad_crc_png() -> bytes:
    data = bytearray(png_bytes())
    data[29] ^= 0xFF  # inside IHDR's CRC
    return bytes(data)


# Broken or hostile pictures, by name: each is what a user could drop into a folder.
BAD_IMAGES: dict[str, Callable[[], bytes]] = {
    "truncated_png": lambda: png_bytes((96, 96))[:200],
    "bomb_png_50000": lambda: png_header_only(50000, 50000),
    "bomb_png_20000x1": lambda: png_header_only(200000, 1),
    "zero_bytes": lambda: b"",
    "text_as_png": lambda: b"this is not a picture\n",
    "truncated_jpeg": lambda: _jpeg_bytes()[:300],
    "bad_crc_png": _bad_crc_png,
    "gif_animation": _gif_animation,
    "svg_as_png": lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>',
    "one_pixel": lambda: png_bytes((1, 1)),
}


class Env:
    """Inputs shared by every case, built once (the tiny models only when a case needs them)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.marker = self.root / "PICKLE-PAYLOAD-RAN"
        self._base_board: Path | None = None
        self._trained: Path | None = None

    # -- files ---------------------------------------------------------------------------
    def pickle_bytes(self) -> bytes:
        return pickle.dumps({"state_dict": _Payload(str(self.marker))}, protocol=2)

    def torch_pickle(self, path: Path) -> Path:
        """The payload in torch.save's zip format (what a .bin/.ckpt downloaded from a hub holds)."""
        import torch

        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": _Payload(str(self.marker))}, str(path))
        return path

    @property
    def base_board(self) -> Path:
        """A small two-scene previz board, made once and copied into each case that needs one."""
        if self._base_board is None:
            from typer.testing import CliRunner

            from autokose.app.cli import app

            out = self.root / "base-board"
            if not (out / "board.html").is_file():
                shutil.rmtree(out, ignore_errors=True)
                result = CliRunner().invoke(app, ["story", LOGLINE, "--scenes", "2", *BASE_SIZE, "--out", str(out)])
                assert result.exit_code == 0, result.output
            self._base_board = out
        return self._base_board

    # -- tiny models (heavy) ---------------------------------------------------------------
    @property
    def models(self) -> Path:
        path = self.root / "models"
        path.mkdir(exist_ok=True)
        return path

    def model(self) -> Path:
        import tiny

        return tiny.tiny_sd15(self.models)

    def lora(self) -> Path:
        import tiny

        return tiny.tiny_lora_diffusers(self.models)

    def controlnet(self) -> Path:
        import tiny

        return tiny.tiny_controlnet(self.models)

    def ip_adapter(self) -> Path:
        import tiny

        return tiny.tiny_ip_adapter(self.models, "plus")

    def refs(self) -> Path:
        """Four textured 64 px training pictures."""
        folder = self.root / "refs"
        if not folder.is_dir():
            import numpy as np

            folder.mkdir()
            rng = np.random.default_rng(0)
            for n in range(4):
                a = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
                a[8:40, 8 + 4 * n:40 + 4 * n] = rng.integers(0, 256, 3)
                Image.fromarray(a).save(folder / f"{n:02d}.png")
        return folder

    def trained(self) -> Path:
        """A finished two-step training run (with its step-1 checkpoint), made once."""
        if self._trained is None:
            from typer.testing import CliRunner

            from autokose.app.cli import app

            out = self.root / "trained"
            if not (out / "card.json").is_file():
                shutil.rmtree(out, ignore_errors=True)
                result = CliRunner().invoke(app, train_args(self, out))
                assert result.exit_code == 0, result.output
            self._trained = out
        return self._trained


def train_args(env: Env, out: Path, *extra) -> list[str]:
    """`character train aldar` on the tiny model and references: two steps, a checkpoint at step 1."""
    return ["character", "train", "aldar", "--images", str(env.refs()), "--model", str(env.model()),
            "--out", str(out), *TRAIN_FAST, *map(str, extra)]


class Ctx:
    """One case's private folder and helpers to fill it."""

    def __init__(self, env: Env, case_dir: Path):
        self.env = env
        self.dir = case_dir

    def path(self, rel: str) -> Path:
        return self.dir / rel

    def file(self, rel: str, data: bytes | str) -> Path:
        path = self.dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
        return path

    def json(self, rel: str, data) -> Path:
        return self.file(rel, json.dumps(data, ensure_ascii=False))

    def image(self, rel: str, kind: str) -> Path:
        return self.file(rel, BAD_IMAGES[kind]() if kind in BAD_IMAGES else png_bytes())

    def pickle(self, rel: str, torch_format: bool = False) -> Path:
        path = self.dir / rel
        if torch_format:
            return self.env.torch_pickle(path)
        return self.file(rel, self.env.pickle_bytes())

    def board(self, rel: str = "out") -> Path:
        dest = self.dir / rel
        shutil.copytree(self.env.base_board, dest, symlinks=True)
        return dest

    def story(self, rel: str = "out") -> dict:
        return json.loads((self.dir / rel / "story.json").read_text(encoding="utf-8"))

    def yaml(self, rel: str, entries: list[dict]) -> Path:
        import yaml

        return self.file(rel, yaml.safe_dump({"characters": entries}, allow_unicode=True))


# --------------------------------------------------------------------------- running
class CaseTimeout(BaseException):
    """Raised by the alarm when an in-process case runs past its limit (CliRunner lets it through)."""


def run_inprocess(args: list, limit: float = 120) -> Result:
    """typer's CliRunner; a run past `limit` seconds is stopped and reported as a hang."""
    from typer.testing import CliRunner

    from autokose.app.cli import app

    def expire(signum, frame):
        raise CaseTimeout(f"still running after {limit:.0f} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        result = CliRunner().invoke(app, [str(a) for a in args])
    except CaseTimeout as e:
        return Result(None, "", "", e)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    return Result(result.exit_code, result.stdout, result.stderr, exception)


def run_subprocess(args: list, cwd: Path, timeout: float = 300) -> Result:
    """The real console script: the stderr a user sees. Lone surrogates go out as the bytes they stand for."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    command = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "autokose.app.cli"]
    done = subprocess.run([*command, *(os.fsencode(str(a)) for a in args)], cwd=cwd, env=env,
                          capture_output=True, timeout=timeout)
    decode = lambda b: b.decode("utf-8", "replace")  # noqa: E731
    return Result(done.returncode, decode(done.stdout), decode(done.stderr))


def execute(case: Case, env: Env, *, subprocess_run: bool = False) -> tuple[str, str]:
    """Build, run and judge `case`: ("error" | "ok", detail) when clean, ("FAIL", why) otherwise."""
    case_dir = env.root / "cases" / (case.id + ("-sub" if subprocess_run else ""))
    shutil.rmtree(case_dir, ignore_errors=True)
    case_dir.mkdir(parents=True)
    ctx = Ctx(env, case_dir)
    args = case.build(ctx)
    before = snapshot(case_dir)
    cwd = Path.cwd()
    os.chdir(case_dir)  # relative defaults (boards/board, characters/<id>) land in the case's folder
    try:
        limit = 600 if case.heavy else 60
        result = run_subprocess(args, case_dir, limit) if subprocess_run else run_inprocess(args, limit)
    finally:
        os.chdir(cwd)
    return judge(case, ctx, result, before)


def judge(case: Case, ctx: Ctx, result: Result, before: dict) -> tuple[str, str]:
    problem = _judge(case, ctx, result, before)
    if ctx.env.marker.exists():
        ctx.env.marker.unlink()
        problem = "a pickle payload ran (the marker file appeared)" + (f"; {problem}" if problem else "")
    if problem:
        return "FAIL", f"{problem} [exit {result.exit_code}; stderr: {_tail(result.stderr)}]"
    return ("ok", _tail(result.stdout + result.stderr)) if result.exit_code == 0 else ("error", _tail(result.stderr))


def _judge(case: Case, ctx: Ctx, result: Result, before: dict) -> str | None:
    text = result.stdout + result.stderr
    if isinstance(result.exception, CaseTimeout):
        return f"hangs: {result.exception}"
    if result.exception is not None:
        return f"traceback: {type(result.exception).__name__}: {_tail(str(result.exception))}"
    if "Traceback" in text:
        return "a traceback was printed"
    if result.exit_code == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("warning:")]
        if len(lines) != 1 or not lines[0].startswith("error: "):
            last = _tail(lines[-1], 120) if lines else "nothing"
            return f"exit 2 but stderr is not one 'error:' line ({len(lines)} lines; last: {last})"
        if case.echo is not None and case.echo not in lines[0]:
            return f"the error line lost the user's text {case.echo!r}"
        changed = diff(before, snapshot(ctx.dir))
        if changed:
            return f"refused, but the folder changed: {changed}"
    elif result.exit_code == 0:
        if case.ok == "never":
            return "accepted silently (exit 0); this input must be refused"
        if case.echo is not None and case.echo not in text:
            return f"the output lost the user's text {case.echo!r}"
        problem = result_problems(case, ctx, before)
        if problem:
            return problem
    else:
        return f"exit code {result.exit_code}"
    return case.check(ctx, result) if case.check else None


def result_problems(case: Case, ctx: Ctx, before: dict) -> str | None:
    """What is wrong with the result of a successful run, or None."""
    target = Path(os.path.realpath(ctx.dir / case.target))
    inside = [ctx.dir / case.target]
    if target.is_relative_to(ctx.dir):
        inside.append(target)
    rels = {str(p.relative_to(ctx.dir)) for p in inside if p.is_relative_to(ctx.dir)}
    parents = {str(Path(r).parents[n]) for r in rels for n in range(len(Path(r).parents) - 1)}
    after = {k: v for k, v in snapshot(ctx.dir).items() if not _under(k, rels)}
    after = {k: v for k, v in after.items() if not (k in parents and v == ("dir",) and k not in before)}
    outside = diff({k: v for k, v in before.items() if not _under(k, rels)}, after)
    if outside:
        return f"wrote outside its output folder: {outside}"
    if case.ok == "print":
        return None
    if not target.is_dir():
        return f"exit 0 but {case.target} is not a folder"
    temps = [p for p in walk(target) if p.name.startswith(".")]
    if temps:
        return f"temp files left: {[str(p.relative_to(target)) for p in temps[:3]]}"
    if case.ok == "card":
        return card_problems(target)
    return board_problems(target, case.ok)


def _under(rel: str, roots: set[str]) -> bool:
    return any(r in ("", ".") or rel == r or rel.startswith(r.rstrip("/") + "/") for r in roots)


def board_problems(root: Path, kind: str = "board") -> str | None:
    """Why `root` is not a complete, valid board of `kind`, or None.

    story: story.json validates. frames: and every scene's frame decodes and is in the manifest
    with its seed and sha256. board: and the exports exist. scores (after `autokose score`,
    which reads a board but does not rebuild its manifest): story, frames, scores.json, board.html.
    """
    from autokose.story import Story

    try:
        story = Story.load(root / "story.json")
    except Exception as e:  # noqa: BLE001 - any failure is the finding
        return f"story.json does not validate: {_tail(str(e))}"
    if kind == "story":
        return None
    frames = None
    if kind != "scores":
        try:
            frames = json.loads((root / "manifest.json").read_text(encoding="utf-8"))["frames"]
        except Exception as e:  # noqa: BLE001
            return f"manifest.json unreadable or without frames: {_tail(repr(e))}"
    for scene in story.scenes:
        name = f"{scene.index:02d}"
        path = root / "frames" / f"{name}.png"
        if path.is_symlink() and not Path(os.path.realpath(path)).is_relative_to(os.path.realpath(root)):
            continue  # the user's link, left alone; cases check it is neither embedded nor written through
        try:
            with Image.open(path) as img:
                img.load()
        except Exception as e:  # noqa: BLE001
            return f"frames/{name}.png missing or not a picture ({type(e).__name__})"
        if frames is None:
            continue
        record = frames.get(name) if isinstance(frames, dict) else None
        if not isinstance(record, dict):
            return f"manifest does not list frame {name}"
        if record.get("seed") != scene.seed:
            return f"manifest seed of frame {name} is {record.get('seed')}, story.json says {scene.seed}"
        if record.get("sha256") != hashlib.sha256(path.read_bytes()).hexdigest():
            return f"manifest sha256 of frame {name} does not match the file"
    exports = {"board": ("board.html", "board.pdf", "sheet.png"), "scores": ("board.html", "scores.json")}
    for name in exports.get(kind, ()):
        if not (root / name).is_file() or not (root / name).stat().st_size:
            return f"{name} missing"
    if kind == "scores":
        try:
            assert isinstance(json.loads((root / "scores.json").read_text(encoding="utf-8")), dict)
        except Exception:  # noqa: BLE001
            return "scores.json is not a JSON object"
    return None


def card_problems(root: Path) -> str | None:
    from safetensors.torch import load_file

    try:
        card = json.loads((root / "card.json").read_text(encoding="utf-8"))
        load_file(str(root / card["lora"]))
        load_file(str(root / card["lora_kohya"]))
    except Exception as e:  # noqa: BLE001
        return f"training output incomplete: {_tail(repr(e))}"
    return None


# --------------------------------------------------------------------------- folder snapshots
def walk(root: Path):
    """Every path under root, without following symlinks."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            yield Path(dirpath, name)


def snapshot(root: Path) -> dict[str, tuple]:
    """Names and bytes (hashed) of everything under root; symlinks by their target."""
    out = {}
    for p in walk(root):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = ("dir",)
        elif p.is_file():
            out[rel] = ("file", hashlib.sha1(p.read_bytes()).hexdigest())
        else:
            out[rel] = ("other",)
    return out


def diff(before: dict, after: dict) -> str:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    parts = [f"{label} {names[:3]}" for label, names in (("added", added), ("removed", removed),
                                                          ("changed", changed)) if names]
    return "; ".join(parts)


def _tail(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
