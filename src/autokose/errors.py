"""User-facing errors: the CLI prints their message on one line and exits with code 2."""


class InputError(Exception):
    """Bad input from the user (arguments, files, folders): never a traceback."""

    exit_code = 2
