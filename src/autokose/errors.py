"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class InputError(Exception):
    """Bad input from the user (arguments, files, folders): never a traceback."""

    exit_code = 2


def first_line(e: BaseException) -> str:
    """The first line of a library's error message (or its type's name): enough for a one-line error."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__
