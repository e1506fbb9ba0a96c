"""What the terminal shows: user text printed literally, one `error:` line and exit 2 for every
expected failure, library warnings as `warning:` lines.

Shared by the `autokose` command (cli.py) and `autokose character` (character.py); it sits
under both so neither imports the other for its output.
"""

from __future__ import annotations

import errno
import logging
from contextlib import contextmanager
from typing import NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from autokose.errors import Cancelled, InputError, format_validation_error

console = Console(stderr=True)

# OSErrors caused by the user's machine, not by a bug: a read-only or full disk, no permission,
# a file where a folder should be. They get one line naming the path; any other OSError is a bug
# and keeps its traceback.
ENVIRONMENT_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM,
                                errno.ENOTDIR, errno.EISDIR})


def literal(value: object) -> Text:
    """`value` as plain text for rich: `[bold]` or `[/x]` in a path or message is shown, not obeyed.

    Undecodable bytes (lone surrogates from argv or a file name) are shown escaped, not crashed on.
    """
    return Text(str(value).encode("utf-8", "backslashreplace").decode("utf-8"))


def fail(message: str) -> NoReturn:
    """The command's last line: `error: message` on stderr, exit 2. Library code raises InputError instead."""
    console.print(Text("error:", style="bold red"), literal(message), highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def user_errors(interrupted: str = "interrupted; run again with --resume to continue"):
    """Turn expected failures into one line and exit code 2 (`interrupted`: what Ctrl-C says)."""
    try:
        yield
    except InputError as e:
        fail(str(e))
    except ValidationError as e:
        fail(format_validation_error(e))
    except OSError as e:
        if e.errno not in ENVIRONMENT_ERRNOS:
            raise
        fail(f"{e.filename}: {e.strerror}" if e.filename else str(e.strerror or e))
    except Cancelled as e:  # a caller's cancel(): the board is kept as after Ctrl-C
        fail(str(e))
    except KeyboardInterrupt:
        fail(interrupted)


# click's base of usage errors; typer vendors click in newer releases, so reach it through typer.
CLICK_ERROR = next(cls for cls in typer.BadParameter.__mro__ if cls.__name__ == "ClickException")


@contextmanager
def one_line_usage_errors():
    """Typer's usage errors (`--scenes abc`, an unknown option) as one `error:` line, exit 2."""
    try:
        yield
    except CLICK_ERROR as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # typer has printed the help already
            raise
        fail(" ".join(e.format_message().split()))


class OneLineErrors(TyperGroup):
    """The root command: catches usage errors of every subcommand before typer draws its box.

    Hooked here rather than in `main()` so the console script and tests invoking `app` agree.
    """

    def make_context(self, *args, **kwargs):
        with one_line_usage_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with one_line_usage_errors():
            return super().invoke(ctx)


class WarningLines(logging.Handler):
    """Library warnings ("... changes nothing") as `warning: ...` on stderr, printed literally."""

    def emit(self, record: logging.LogRecord) -> None:
        console.print(Text(f"{record.levelname.lower()}:", style="yellow"), literal(self.format(record)),
                      highlight=False, soft_wrap=True)


def show_warnings() -> None:
    """Send the `autokose` logger's warnings to the terminal (once, however often a command runs)."""
    logger = logging.getLogger("autokose")
    if not any(isinstance(h, WarningLines) for h in logger.handlers):
        logger.addHandler(WarningLines(logging.WARNING))
