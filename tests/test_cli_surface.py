"""The command line's surface: literal user text, one-line errors, warnings, --version, --help panels."""

from __future__ import annotations

import errno
import logging
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from autokose import __version__
from autokose.app.cli import MAX_SIDE, MIN_SIDE, app

REPO = Path(__file__).resolve().parents[1]
LOGLINE = "Aldar Köse tricks the greedy Bai at the bazaar"
runner = CliRunner()


def cli(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def assert_one_line_error(result, *needles: str) -> None:
    """Exit 2 and exactly one `error: ...` line on stderr holding every needle verbatim."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# ------------------------------------------------------------------ user text is printed literally
@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["story", LOGLINE, "--writer", "[/x]ü"], "[/x]ü"),
        (["story", LOGLINE, "--characters", "[bold]Кöse.yaml"], "[bold]Кöse.yaml"),
        (["story", LOGLINE, "--stages", "write,[/x]ö"], "[/x]ö"),
        (["story", LOGLINE, "--scenes", "[x]ä"], "'--scenes'"),
        (["render", "[bold]ö/story.json"], "[bold]ö/story.json"),
        (["render", "x.json", "--only", "[red]3ü"], "[red]3ü"),
        (["render", "x.json", "--pick", "[/x]=ü"], "[/x]=ü"),
        (["score", "[bold]Алдар"], "[bold]Алдар"),
        (["characters", "--characters", "[/x]ö.yaml"], "[/x]ö.yaml"),
        (["character", "show", "[/x]ö/card.json"], "[/x]ö/card.json"),
        (["character", "train", "[/x]ö", "--images", "i", "--model", "m"], "[/x]ö"),
        (["vocab", "[/x]ö"], "[/x]ö"),
        (["export", "[bold]ö"], "[bold]ö"),
        (["export", ".", "--format", "html,[/x]ö"], "[/x]ö"),
        (["story", LOGLINE, "--export", "[red]mp5"], "[red]mp5"),
        (["scenes", "[bold]ö", "move", "1", "--to", "2"], "[bold]ö"),
    ],
)
def test_brackets_and_non_ascii_in_arguments_are_shown_literally(args, shown, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_one_line_error(cli(*args), shown)


def test_validation_pattern_keeps_its_brackets(tmp_path: Path):
    cast = tmp_path / "cast.yaml"
    cast.write_text("characters:\n  - id: Aldar Köse\n    name: x\n", encoding="utf-8")
    assert_one_line_error(cli("characters", "--characters", cast), "^[a-z][a-z0-9_]*$")


@pytest.mark.parametrize("args", [["render", "x.json", "--only", ":cat:3"], ["render", "x.json", "--pick", ":cat:"]])
def test_emoji_codes_in_arguments_stay_text(args):
    assert_one_line_error(cli(*args), ":cat:")


@pytest.mark.slow
def test_lora_spec_is_not_read_as_an_emoji_code(tmp_path: Path):
    from tiny import tiny_sd15

    model = tiny_sd15(tmp_path)
    result = cli("story", LOGLINE, "--out", tmp_path / "b", "--model", model, "--lora", "f.safetensors:cat:")
    assert_one_line_error(result, "f.safetensors:cat:")
    assert not (tmp_path / "b").exists()


def test_success_line_shows_an_out_folder_with_brackets(tmp_path: Path):
    out = tmp_path / "m[/x] Кöse"
    result = cli("story", LOGLINE, "--scenes", "1", "--out", out)
    assert result.exit_code == 0, result.output
    assert (out / "board.html").is_file()
    assert f"board written: {out}  (open {out / 'board.html'})" in result.stderr


def test_characters_table_prints_names_literally(tmp_path: Path):
    cast = tmp_path / "cast.yaml"
    cast.write_text("characters:\n  - id: kempir\n    name: '[bold]Кемпир[/]'\n    role: '[/x]'\n",
                    encoding="utf-8")
    result = cli("characters", "--characters", cast)
    assert result.exit_code == 0, result.output
    assert "[bold]Кемпир[/]" in result.stdout and "[/x]" in result.stdout


def test_character_show_prints_card_fields_literally(tmp_path: Path):
    card = tmp_path / "card.json"
    card.write_text('{"name": "[bold]Алдар[/]", "character": "aldar", "trigger": "aldarkose:cat:", '
                    '"base_model": {"spec": "m", "arch": "sd15"}}', encoding="utf-8")
    result = cli("character", "show", card)
    assert result.exit_code == 0, result.output
    for shown in ("[bold]Алдар[/] (aldar)", "aldarkose:cat:", "m [sd15]"):
        assert shown in result.stdout


# ------------------------------------------------------------------ warnings from library code
def _fake_run(message: str):
    """pipeline.run that only logs `message` on a child of the `autokose` logger."""
    from autokose.board import Board

    def run(cfg, out, **kwargs):
        logging.getLogger("autokose.pipeline").warning(message)
        return Board(out)

    return run


def test_library_warnings_reach_stderr_literally_and_once(tmp_path: Path, monkeypatch):
    message = "--pick on a previz board changes nothing [bold]ö[/]"
    monkeypatch.setattr("autokose.pipeline.run", _fake_run(message))
    for _ in range(2):  # a second command in one process must not print it twice
        result = cli("story", LOGLINE, "--out", tmp_path / "b", "--stages", "write")
        assert result.exit_code == 0, result.output
        assert result.stderr.splitlines()[0] == f"warning: {message}"
        assert result.stderr.count("warning:") == 1
        assert "warning" not in result.stdout


def test_library_import_installs_no_handler():
    code = "import logging, autokose.pipeline; print(len(logging.getLogger('autokose').handlers))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "0"


# ------------------------------------------------------------------ --version and --help
def test_version():
    result = cli("--version")
    assert result.exit_code == 0
    assert result.stdout == f"autokose {__version__}\n"
    assert __version__ == metadata.version("autokose"), "__version__ and pyproject disagree"
    assert "autokose --version" in (REPO / "README.md").read_text(encoding="utf-8")


PANELS = {"story": {"Story": "--writer", "Output": "--out", "Diffusion": "--model", "Identity": "--lora",
                    "Quality": "--best-of"},
          "render": {"Output": "--only", "Quality": "--pick", "Diffusion": "--scheduler", "Identity": "--ip-adapter"}}


def _panels(help_text: str) -> dict[str, str]:
    """Panel title → its body, from rich's boxed help."""
    parts = re.split(r"╭─ (\w+) ─+╮", help_text)
    return dict(zip(parts[1::2], parts[2::2]))


@pytest.mark.parametrize("command", ["story", "render"])
def test_help_is_grouped_and_no_option_name_is_cut_at_80_columns(command):
    result = cli(command, "--help", env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert max(map(len, text.splitlines())) <= 80
    assert "…" not in text
    names = [opt for param in get_command(app).commands[command].params for opt in param.opts]
    for name in names:
        assert re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text), f"{name} cut or missing"
    panels = _panels(text)
    for panel, option in PANELS[command].items():
        assert re.search(rf"{re.escape(option)}\s", panels.get(panel, "")), f"{option} not under {panel}"


def test_best_of_help_names_what_it_scores_by():
    text = " ".join(cli("story", "--help", env={"COLUMNS": "200"}).stdout.split())
    assert re.search(r"--best-of.*faces.*--clip-model", text)


# ------------------------------------------------------------------ usage errors: one line, exit 2
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["story", LOGLINE, "--scenes", "abc"], "--scenes"),
        (["story", LOGLINE, "--bogus"], "--bogus"),
        (["story"], "logline"),
        (["render"], "story_json"),
        (["no-such-command"], "no-such-command"),
        (["character", "train", "aldar"], "--images"),
        (["story", LOGLINE, "--width", "0x"], "--width"),
    ],
)
def test_usage_errors_are_one_line(args, needle):
    assert_one_line_error(cli(*args), needle)


def test_no_arguments_still_shows_the_help():
    result = cli()
    assert "Usage" in result.output and "story" in result.output


# ------------------------------------------------------------------ inputs accepted silently before
@pytest.mark.parametrize("option", ["--width", "--height"])
@pytest.mark.parametrize("value", ["0", "63", str(MAX_SIDE + 1)])
def test_frame_size_out_of_range_names_the_range(option, value, tmp_path: Path):
    result = cli("story", LOGLINE, "--out", tmp_path / "b", option, value)
    assert_one_line_error(result, option, f"{MIN_SIDE} and {MAX_SIDE}", f"got {value}")
    assert not (tmp_path / "b").exists()


def test_frame_size_bounds_are_the_render_settings_bounds():
    from pydantic import ValidationError

    from autokose.render import RenderSettings

    for side in ("width", "height"):
        RenderSettings(**{side: MIN_SIDE})
        RenderSettings(**{side: MAX_SIDE})
        for bad in (MIN_SIDE - 1, MAX_SIDE + 1):
            with pytest.raises(ValidationError):
                RenderSettings(**{side: bad})


@pytest.mark.parametrize("stages", ["", " , ", ","])
@pytest.mark.parametrize("command", ["story", "render"])
def test_empty_stages_is_an_error_listing_the_stages(command, stages, tmp_path: Path):
    target = LOGLINE if command == "story" else tmp_path / "story.json"
    result = cli(command, target, "--out" if command == "story" else "--only", tmp_path / "b" if command == "story" else "1",
                 "--stages", stages)
    assert_one_line_error(result, "--stages", "write, cast, stage, render, score, export")
    assert not (tmp_path / "b").exists()


def test_write_stage_alone_does_not_point_at_a_board_html(tmp_path: Path):
    out = tmp_path / "b"
    result = cli("story", LOGLINE, "--scenes", "2", "--out", out, "--stages", "write")
    assert result.exit_code == 0, result.output
    assert (out / "story.json").is_file() and not (out / "board.html").exists()
    assert "board.html" not in result.stderr.replace("the export stage makes board.html", "")
    assert "open" not in result.stderr and "holds story.json, layouts.json; the export stage" in result.stderr


# ------------------------------------------------------------------ undecodable and binary loglines
@pytest.mark.parametrize(
    ("logline", "needle"),
    [
        (os.fsdecode(b"\xff\xfe Aldar \xc3"), "not valid UTF-8"),
        ("Aldar\x00Bai", "control characters"),
        (bytes(range(1, 32)).decode("ascii") + "Aldar", "control characters"),
    ],
)
def test_undecodable_or_binary_logline(logline, needle, tmp_path: Path):
    result = cli("story", logline, "--out", tmp_path / "b")
    assert_one_line_error(result, "logline", needle)
    assert not (tmp_path / "b").exists()


def test_logline_keeps_tabs_and_newlines(tmp_path: Path):
    result = cli("story", "Aldar Köse\tmeets the Bai.\nThe Bai is fooled.", "--out", tmp_path / "b", "--stages", "write")
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_console_script_with_undecodable_argv(tmp_path: Path):
    exe = Path(sys.executable).with_name("autokose")
    proc = subprocess.run([str(exe), "story", b"\xff\xfe Aldar", "--out", str(tmp_path / "b")],
                          capture_output=True, env={**os.environ, "LC_ALL": "C.UTF-8"})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.decode() == "error: logline is not valid UTF-8\n"


# ------------------------------------------------------------------ OSErrors from the user's machine
def _failing_run(code: int):
    def run(cfg, out, **kwargs):
        raise OSError(code, os.strerror(code), str(Path(out) / "story.json"))

    return run


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC, errno.EACCES, errno.ENOTDIR, errno.EISDIR])
def test_environment_oserrors_are_one_line_naming_the_path(code, tmp_path: Path, monkeypatch):
    monkeypatch.setattr("autokose.pipeline.run", _failing_run(code))
    out = tmp_path / "[ro] Кöse"
    assert_one_line_error(cli("story", LOGLINE, "--out", out), f"{out / 'story.json'}: {os.strerror(code)}")


def test_other_oserrors_stay_visible_as_bugs(tmp_path: Path, monkeypatch):
    monkeypatch.setattr("autokose.pipeline.run", _failing_run(errno.EIO))
    result = cli("story", LOGLINE, "--out", tmp_path / "b")
    assert result.exit_code == 1 and isinstance(result.exception, OSError)


def test_control_folder_replaced_by_a_file(tmp_path: Path):
    out = tmp_path / "b"
    assert cli("story", LOGLINE, "--scenes", "1", "--out", out, "--stages", "write").exit_code == 0
    (out / "control").write_text("not a folder")
    result = cli("story", LOGLINE, "--scenes", "1", "--out", out, "--resume")
    assert_one_line_error(result, "control")
