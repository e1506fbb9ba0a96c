"""Entry points: thin shells over `config.resolve` and `pipeline.run`.

    cli.py        the `autokose` command (typer): story, render, score, ...
    character.py  `autokose character ...`: LoRA training and character cards
    video.py      `autokose video stylize`: footage → stylised character video (`video.options`)
    importing.py  `autokose import FILE --out DIR`: prompt sets → boards (`autokose.importers`)
    flags.py      the option types, help panels and progress bars the commands share
    terminal.py   what they print: literal text, one-line errors (exit 2), warnings

The web studio, job service, ComfyUI nodes and Ray workers belong here too. Nothing below
this package imports it.
"""
