"""Atomic file writes: an interrupted run never leaves a half-written file behind."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from autokose.errors import InputError


_UMASK = os.umask(0)
os.umask(_UMASK)
# The names atomic_path gives its temporary files: `.{stem}.{8 random chars}{suffix}`, as
# tempfile.mkstemp makes them. A run killed with -9 leaves these behind (see temp_target).
TEMP_NAME = re.compile(r"^\.(?P<stem>.+)\.[a-z0-9_]{8}(?P<suffix>\.[A-Za-z0-9]+)?$")


@contextmanager
def atomic_path(path: Path | str, suffix: str | None = None):
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds.

    The temp file keeps `path`'s suffix so libraries that pick a format by extension work.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=suffix or path.suffix, dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are shared like any other file
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def temp_target(name: str) -> str | None:
    """The file a leftover temp file of atomic_path was going to become, or None if `name` is no temp file."""
    m = TEMP_NAME.match(name)
    return m["stem"] + (m["suffix"] or "") if m else None


def write_bytes(path: Path | str, data: bytes, *, only_if_changed: bool = False) -> Path:
    """Atomically write `data`. `only_if_changed` leaves a file that already holds exactly
    `data` untouched (same inode and mtime), so a re-run rewrites only what really changed."""
    path = Path(path)
    if only_if_changed and _holds(path, data):
        return path
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


def _holds(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and not path.is_symlink() and path.stat().st_size == len(data) \
            and path.read_bytes() == data
    except OSError:
        return False


def write_text(path: Path | str, text: str, *, only_if_changed: bool = False) -> Path:
    return write_bytes(path, text.encode("utf-8"), only_if_changed=only_if_changed)


def json_text(data: Any) -> str:
    """JSON as every board file is written: UTF-8 text kept readable, indented, newline-terminated."""
    return json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n"


def write_json(path: Path | str, data: Any, *, only_if_changed: bool = False) -> Path:
    return write_text(path, json_text(data), only_if_changed=only_if_changed)


def write_with(path: Path | str, writer: Callable[[Path], Any]) -> Path:
    """Atomically write `path` with a function that writes to the path it is given."""
    with atomic_path(path) as tmp:
        writer(tmp)
    return Path(path)


def png_bytes(image) -> bytes:
    """A PIL image encoded as PNG in memory (to hash or compare before it is written)."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def save_image(path: Path | str, image) -> Path:
    """Save a PIL image atomically (format from the suffix)."""
    return write_with(path, lambda tmp: image.save(tmp))


def sha256_file(path: Path | str, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        _copy(f, h.update, chunk)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _copy(f: BinaryIO, sink: Callable[[bytes], Any], chunk: int) -> None:
    while block := f.read(chunk):
        sink(block)


def read_text(path: Path | str, what: str) -> str:
    """A user's text file, or an InputError naming it and `what` it should have been."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read {what} ({e})") from None


def json_lines(text: str, source: str, what: str, example: str,
               check: Callable[[Any], None] | None = None) -> Iterator[tuple[int, dict]]:
    """The objects of a JSON Lines text with their line numbers (blank lines and `#` lines skipped).

    A line that is not a JSON object is one InputError naming `source:line` (a line holds one
    `what`, like `example`); `check(obj)` may refuse an object with a ValueError (`story.check_text`).
    """
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{source}:{n}"
        try:
            data = json.loads(line)
            if check is not None:
                check(data)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: not a JSON object ({e.msg} at column {e.colno})") from None
        except RecursionError:
            raise InputError(f"{where}: nested too deeply") from None
        except ValueError as e:  # check's
            raise InputError(f"{where}: {e}") from None
        if not isinstance(data, dict):
            raise InputError(f"{where}: not a JSON object (one {what} per line, like {example})")
        yield n, data


def read_json_object(path: Path | str, what: str, hint: str = "") -> dict:
    """A user-facing JSON file that must hold an object; one-line InputErrors otherwise.

    `hint` (e.g. "; run `autokose score` again") is appended to the messages.
    """
    try:
        data = json.loads(read_text(path, what))
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: unreadable {what} ({e}){hint}") from None
    except RecursionError:
        raise InputError(f"{path}: unreadable {what} (nested too deeply){hint}") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: {what} must be a JSON object{hint}")
    return data


def ensure_writable_dir(path: Path | str, label: str | None = None) -> None:
    """Create `path` if needed and prove we can write there, before any long work starts."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise InputError(f"{label or path}: output folder is not writable ({e.strerror or e})") from None
