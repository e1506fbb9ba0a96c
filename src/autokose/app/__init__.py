"""Entry points: thin shells over `config.resolve` and `pipeline.run`.

    cli.py        the `autokose` command (typer)
    character.py  `autokose character ...`: LoRA training and character cards
    terminal.py   what both print: literal text, one-line errors (exit 2), warnings

The web studio, job service, ComfyUI nodes and Ray workers belong here too. Nothing below
this package imports it.
"""
