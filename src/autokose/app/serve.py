"""`autokose serve`: the Studio (web page + HTTP API + job workers) on this machine.

A thin shell: it picks the token and runs uvicorn with `service.api.create_app`; everything the
server does lives in `autokose.service`. It listens on 127.0.0.1 unless told otherwise, because
whoever holds the token can write boards and start GPU jobs: exposing it is a deliberate choice.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Annotated, Optional

import typer

from autokose.app.terminal import console, literal, user_errors
from autokose.errors import InputError


def studio_url(host: str, port: int, token: str) -> str:
    """The address to open, token included (the page reads it from its own URL)."""
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/?token={token}"


def pick_token(given: str | None) -> str:
    """--token, else $AUTOKOSE_TOKEN (kept out of `ps`), else a fresh random one for this run."""
    return given or os.environ.get("AUTOKOSE_TOKEN") or secrets.token_urlsafe(24)


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on (0.0.0.0 exposes the studio to the network).")]
    = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    boards: Annotated[Path, typer.Option(help="Folder holding the studio's boards (created).")] = Path("boards"),
    token: Annotated[Optional[str], typer.Option(help="Access token (default: $AUTOKOSE_TOKEN, else a random one; "
                                                      "the environment keeps it out of the process list).")] = None,
    workers: Annotated[int, typer.Option(min=1, max=32, help="Light (previz, export) jobs run at once.")] = 2,
    gpus: Annotated[int, typer.Option(min=0, max=16, help="Heavy (diffusion, training) jobs run at once.")] = 1,
) -> None:
    """Run AutoKöse Studio: make and edit boards in the browser; jobs survive a restart."""
    token = pick_token(token)
    with user_errors():
        try:
            import uvicorn

            from autokose.service.api import create_app
            from autokose.service.jobs import hold_service
        except ImportError as e:
            raise InputError(f"the studio needs FastAPI and uvicorn ({e.name} is missing): "
                             "pip install 'autokose[serve]'") from None
        app = create_app(boards, token, light_threads=workers, heavy_slots=gpus)
        os.close(hold_service(boards))  # another server on this folder: say so now, in one line
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(literal(f"warning: listening on {host}: anyone who can reach it and has the token can use "
                              "the studio; plain HTTP, so put a TLS proxy in front on a shared network"))
    typer.echo(f"AutoKöse Studio: {studio_url(host, port, token)}")
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)


if __name__ == "__main__":  # `python -m autokose.app.serve` (what `autokose serve` runs, without the other commands)
    typer.run(serve)
