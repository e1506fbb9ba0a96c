"""The Colab notebook: valid, every cell accounted for, its commands use real options, previz cells run.

Cells tagged `colab-install` (git clone, pip) and `gpu` (training, diffusion) need Colab; every other
code cell runs here headless with nbclient, against this checkout, so the notebook cannot drift
from the command line unnoticed.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest
import typer.main
from IPython.core.inputtransformer2 import TransformerManager

from autokose.app.cli import app

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "autokose_colab.ipynb"
SKIPPED_TAGS = {"colab-install", "gpu"}


def read_notebook():
    return nbformat.read(NOTEBOOK, as_version=4)


def tags(cell) -> set[str]:
    return set(cell.metadata.get("tags", []))


def code_cells(nb, *, tagged: str | None = None) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and (tagged is None or tagged in tags(c))]


def plain_cells(nb) -> list:
    """The code cells the headless run executes."""
    return [c for c in code_cells(nb) if not tags(c) & SKIPPED_TAGS]


# --------------------------------------------------------------------------- the cells' commands
def autokose_calls(source: str) -> list[list]:
    """The arguments of each `autokose(...)` call in a cell: str/int/float constants, None for anything else.

    The cell is first turned into plain Python the way IPython does (`!cmd`, `%magic`).
    """
    tree = ast.parse(TransformerManager().transform_cell(source))
    return [[a.value if isinstance(a, ast.Constant) else None for a in node.args]
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "autokose"]


def resolve(argv: list):
    """The click command `argv` starts with (`story`, `character train`, ...) and the arguments after it."""
    command = typer.main.get_command(app)
    rest = list(argv)
    while hasattr(command, "commands"):
        name = rest.pop(0) if rest else None
        assert isinstance(name, str) and name in command.commands, f"autokose{argv}: {name!r} is not a subcommand"
        command = command.commands[name]
    return command, rest


def option_names(command) -> set[str]:
    return {name for p in command.params for name in (*p.opts, *p.secondary_opts) if name.startswith("-")}


def used_options(calls) -> dict[str, set[str]]:
    """Option names used per subcommand path, e.g. {"character train": {"--images", ...}}, all checked to exist."""
    used: dict[str, set[str]] = {}
    for argv in calls:
        command, rest = resolve(argv)
        names = {a for a in rest if isinstance(a, str) and a.startswith("--")}
        unknown = names - option_names(command)
        assert not unknown, f"{command.name}: the notebook uses options the CLI does not have: {sorted(unknown)}"
        used.setdefault(" ".join(argv[: len(argv) - len(rest)]), set()).update(names)
    return used


def test_notebook_is_valid_and_every_cell_is_accounted_for():
    nb = read_notebook()
    nbformat.validate(nb)
    for cell in code_cells(nb):
        assert tags(cell) <= SKIPPED_TAGS, f"unknown tag in cell {cell.id}: {tags(cell) - SKIPPED_TAGS}"
        assert not cell.outputs, f"cell {cell.id} was saved with outputs"
    assert code_cells(nb, tagged="colab-install") and code_cells(nb, tagged="gpu") and plain_cells(nb)
    for cell in plain_cells(nb):  # what needs Colab, the network or a GPU must be tagged out of the headless run
        for marker in (r"google\.colab", r"\bpip\b", r"\bgit\b", r"nvidia-smi", r'"--model'):
            assert not re.search(marker, cell.source), f"untagged cell {cell.id} uses {marker}: tag it"


def test_install_keeps_colabs_torch():
    """The lock pins the CPU torch wheel; on Colab that line is filtered out of the constraints."""
    install = "\n".join(c.source for c in code_cells(read_notebook(), tagged="colab-install"))
    lock = (REPO / "requirements" / "lock.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==", lock, re.M), "the lock no longer pins torch: revisit the notebook's filter"
    filters = [line for line in install.splitlines() if "grep -v '^torch=='" in line]
    assert len(filters) == 1 and "/requirements/lock.txt > /tmp/constraints.txt" in filters[0]
    pip = [line for line in install.splitlines() if '"pip", "install"' in line]
    assert len(pip) == 1 and '"-c", "/tmp/constraints.txt"' in pip[0] and "[diffusion,score]" in pip[0]
    assert "torch==" not in pip[0]


def test_commands_use_options_the_cli_has():
    """Option names are read from the cells and checked against the typer app: a renamed option fails here."""
    nb = read_notebook()
    used_options([call for cell in code_cells(nb) for call in autokose_calls(cell.source)])
    gpu = used_options([call for cell in code_cells(nb, tagged="gpu") for call in autokose_calls(cell.source)])
    assert {"--images", "--model", "--out", "--resume"} <= gpu["character train"]
    assert {"--model", "--characters", "--ip-adapter", "--controlnet", "--consistency"} <= gpu["story"]


def test_option_check_catches_a_renamed_option():
    with pytest.raises(AssertionError, match="--ip-adaptor"):
        used_options(autokose_calls('autokose("story", LOGLINE, "--ip-adaptor", IP_ADAPTER)'))
    with pytest.raises(AssertionError, match="not a subcommand"):
        used_options(autokose_calls('autokose("character", "fit", "aldar")'))


# --------------------------------------------------------------------------- running the previz cells
@pytest.fixture
def kernel_name(tmp_path, monkeypatch) -> str:
    """A "python3" kernel running this interpreter (the venv with autokose installed)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        argv0 = KernelSpecManager().get_kernel_spec("python3").argv[0]
    except NoSuchKernel:
        argv0 = None
    if argv0 not in ("python", "python3", sys.executable):  # jupyter_client runs a bare `python` as sys.executable
        import ipykernel.kernelspec

        prefix = tmp_path / "kernel"
        ipykernel.kernelspec.install(prefix=str(prefix), kernel_name="python3")
        monkeypatch.setenv("JUPYTER_PATH", str(prefix / "share" / "jupyter"))
    return "python3"


def headless():
    """The notebook without its Colab/GPU cells, after a first cell that points it at this checkout."""
    nb = read_notebook()
    setup = nbformat.v4.new_code_cell(
        "import os, sys\n"
        f"REPO_DIR = {str(REPO)!r}\n"
        "os.environ['PATH'] = os.path.dirname(sys.executable) + os.pathsep + os.environ['PATH']\n")
    nb.cells = [setup, *(c for c in nb.cells if c.cell_type != "code" or not tags(c) & SKIPPED_TAGS)]
    return nb


@pytest.mark.slow
def test_previz_cells_run_headless(tmp_path, kernel_name):
    from nbclient import NotebookClient

    work = tmp_path / "work"
    work.mkdir()
    nb = headless()
    NotebookClient(nb, kernel_name=kernel_name, timeout=300, resources={"metadata": {"path": str(work)}}).execute()

    boards = [p.parent for p in work.rglob("story.json")]
    assert len(boards) == 1, f"expected one previz board under the working folder, found {boards}"
    board = boards[0]
    for name in ("story.json", "manifest.json", "board.html", "board.pdf", "sheet.png"):
        assert (board / name).is_file(), name
    scenes = json.loads((board / "story.json").read_text(encoding="utf-8"))["scenes"]
    frames = sorted((board / "frames").glob("*.png"))
    assert len(frames) == len(scenes) > 0

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    printed = "".join(o.text for o in outputs if o.output_type == "stream" and o.name == "stdout")
    warnings = [o.text for o in outputs if o.output_type == "stream" and o.name == "stderr"]  # from the cells' own code
    assert not warnings
    assert [line for line in printed.splitlines() if line.strip() and not line.startswith("$ ")], \
        "the command's own output (its errors, too) should stream into the notebook"
    assert "\x1b[" not in printed, "terminal escapes (live progress bars) leaked into the notebook"
    shown = [o.data["image/png"] for o in outputs if o.output_type == "display_data" and "image/png" in o.data]
    expected = [base64.b64encode(p.read_bytes()).decode() for p in (*frames, board / "sheet.png")]
    assert sorted(shown) == sorted(expected), "the notebook should show every frame and the contact sheet"
    pages = [o.data["text/html"] for o in outputs if o.output_type == "display_data" and "text/html" in o.data]
    assert any("<iframe srcdoc=" in page and "&lt;!DOCTYPE html&gt;" in page for page in pages), "board.html not shown"
