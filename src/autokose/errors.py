"""User-facing errors: the CLI prints their message on one line and exits with code 2."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class InputError(Exception):
    """Bad input from the user (arguments, files, folders): never a traceback."""

    exit_code = 2


def first_line(e: BaseException) -> str:
    """The first line of a library's error message (or its type's name): enough for a one-line error."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def plain_reason(e: BaseException) -> str:
    """An OS or FFmpeg error in its own words (`strerror`: without the errno and the repeated file
    name), else its first line."""
    text = getattr(e, "strerror", None) or first_line(e)
    return str(text).strip() or type(e).__name__


class Cancelled(Exception):
    """A run stopped because its caller asked (a server's stop button): the board is left as after
    a kill, every finished frame recorded, and --resume continues it."""


def check_cancel(cancel) -> None:
    """Raise Cancelled when `cancel()` (the caller's "stop now?") says so; None never cancels."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled; run again with --resume to continue")


def format_validation_error(e: ValidationError) -> str:
    """One line naming the first offending field, e.g. `scenes[2].shot: Input should be ...`."""
    err = e.errors()[0]
    loc = ""
    for part in err["loc"]:
        loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
    msg = err["msg"].removeprefix("Value error, ")
    more = f" (+{len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
    return f"{loc}: {msg}{more}" if loc else f"{msg}{more}"
