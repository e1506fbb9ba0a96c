"""`autokose comfy ...`: what a ComfyUI install needs from the command line.

`autokose comfy path` prints the loader folder to link into ComfyUI's custom_nodes/ and nothing
else, so it can stand inside a shell command: ln -s "$(autokose comfy path)" ComfyUI/custom_nodes/autokose.
"""

from __future__ import annotations

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="AutoKöse as ComfyUI custom nodes (see docs/COMFYUI.md).")


@app.command()
def path() -> None:
    """Print the folder to link into ComfyUI's custom_nodes/ (the node package's loader)."""
    from autokose.comfy import LOADER

    typer.echo(str(LOADER))
