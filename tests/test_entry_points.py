"""One way in for every entry point (issue 9): `config.resolve` builds the run, `pipeline.run`
draws it, with progress and cancellation in the interface; the CLI is a shell over the two.

A web server, a job service or a ComfyUI node calls exactly what the tests here call.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokose.app.cli import app
from autokose.board import Board
from autokose.config import RunConfig, resolve, saved
from autokose.errors import Cancelled, InputError, check_cancel
from autokose.pipeline import run
from autokose.story import MAX_SCENES

SRC = Path(__file__).resolve().parents[1] / "src" / "autokose"
LOGLINE = "Aldar Köse tricks the greedy Bai at the bazaar"
SMALL = {"logline": LOGLINE, "scenes": 4, "width": 128, "height": 72, "stages": ["write", "cast", "stage", "render"]}
runner = CliRunner()


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def frames(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "frames").glob("*.png"))}


@pytest.fixture(scope="module")
def whole(tmp_path_factory) -> Path:
    """The small previz board drawn in one go: what a cancelled and resumed run must end up as."""
    out = tmp_path_factory.mktemp("whole") / "board"
    run(resolve(None, SMALL), out)
    return out


# ------------------------------------------------------------------ progress and cancel
def test_progress_hears_every_frame_up_to_the_total(tmp_path: Path):
    heard = []
    run(resolve(None, SMALL), tmp_path / "b", progress=lambda stage, done, total: heard.append((stage, done, total)))
    rendered = [(done, total) for stage, done, total in heard if stage == "render"]
    assert rendered == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert ("write", 1, 1) in heard and ("stage", 4, 4) in heard


def test_cancel_stops_after_the_frame_in_hand_and_resume_finishes_the_same_board(whole: Path, tmp_path: Path):
    out = tmp_path / "b"
    cfg = resolve(None, SMALL)
    done = []

    def progress(stage: str, n: int, total: int) -> None:
        if stage == "render":
            done.append(n)

    with pytest.raises(Cancelled, match="--resume"):
        run(cfg, out, progress=progress, cancel=lambda: len(done) >= 2)

    assert sorted(frames(out)) == ["01.png", "02.png"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(manifest["frames"]) == ["01", "02"], "every finished frame is recorded, no other"
    assert manifest["command"] == cfg.model_dump(mode="json")
    assert not [p for p in out.rglob("*") if p.name.startswith(".")], "temporary files left behind"
    kept = (out / "frames/01.png").stat().st_mtime_ns

    run(cfg, out, resume=True)
    assert frames(out) == frames(whole)
    assert (out / "frames/01.png").stat().st_mtime_ns == kept, "a resume draws only the missing frames"
    assert sorted(json.loads((out / "manifest.json").read_text(encoding="utf-8"))["frames"]) == ["01", "02", "03", "04"]


def test_cancel_before_the_first_stage_writes_nothing(tmp_path: Path):
    with pytest.raises(Cancelled):
        run(resolve(None, SMALL), tmp_path / "b", cancel=lambda: True)
    assert not (tmp_path / "b").exists()


def test_the_cli_reports_a_cancelled_run_in_one_line(tmp_path: Path, monkeypatch):
    def cancelled(cfg, out, **kwargs):
        check_cancel(lambda: True)

    monkeypatch.setattr("autokose.pipeline.run", cancelled)
    result = cli("story", LOGLINE, "--out", tmp_path / "b")
    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines() == ["error: cancelled; run again with --resume to continue"]


# ------------------------------------------------------------------ one path from options to a run
def _spy(monkeypatch) -> tuple[list, list]:
    """Record what `config.resolve` builds and what `pipeline.run` is handed (and draw nothing)."""
    built, handed = [], []

    def spy_resolve(saved_cfg, overrides):
        cfg = resolve(saved_cfg, overrides)
        built.append(cfg)
        return cfg

    def spy_run(cfg, out, **kwargs):
        handed.append((cfg, Path(out), kwargs))
        return Board(out)

    monkeypatch.setattr("autokose.config.resolve", spy_resolve)
    monkeypatch.setattr("autokose.pipeline.run", spy_run)
    return built, handed


def test_story_hands_the_pipeline_the_run_config_resolve_builds(tmp_path: Path, monkeypatch):
    built, handed = _spy(monkeypatch)
    result = cli("story", LOGLINE, "--scenes", "3", "--seed", "7", "--width", "320", "--model", "some/model",
                 "--lora", "a.safetensors:0.5", "--steps", "4", "--best-of", "2", "--stages", "write,stage",
                 "--out", tmp_path / "b")
    assert result.exit_code == 0, result.output
    (cfg, out, kwargs), = handed
    assert cfg is built[0], "the CLI builds its run through config.resolve, nothing else"
    # What a web form would send for the same run: the same settings, field for field.
    assert cfg == resolve(None, {"logline": LOGLINE, "scenes": 3, "seed": 7, "width": 320, "model": "some/model",
                                 "lora": ["a.safetensors:0.5"], "steps": 4, "best_of": 2, "stages": ["write", "stage"]})
    assert (cfg.render.width, cfg.render.height, cfg.render.renderer) == (320, 176, "diffusion")
    assert out == tmp_path / "b"
    assert (kwargs["resume"], kwargs["force"]) == (False, False) and callable(kwargs["progress"])


def test_render_starts_from_the_boards_saved_settings_through_resolve(tmp_path: Path, monkeypatch):
    out = tmp_path / "b"
    run(resolve(None, {**SMALL, "stages": ["write"], "seed": 3}), out)
    built, handed = _spy(monkeypatch)
    result = cli("render", out / "story.json", "--only", "2", "--pick", "2=1", "--pick", "3=0", "--height", "96")
    assert result.exit_code == 0, result.output
    (cfg, _, kwargs), = handed
    assert cfg is built[0]
    assert cfg == resolve(saved(Board(out)), {"height": 96, "only": [2], "picks": {2: 1, 3: 0},
                                              "stages": ["cast", "stage", "render", "score", "export"]})
    assert (cfg.seed, cfg.render.width, cfg.render.height) == (3, 128, 96), "saved settings kept, --height given"
    assert cfg.quality.picks == {2: 1, 3: 0}
    assert kwargs["story"].logline == LOGLINE


def test_a_resume_with_force_is_refused_by_the_pipeline_before_anything_is_written(tmp_path: Path):
    with pytest.raises(InputError, match="contradict"):
        run(RunConfig(logline=LOGLINE), tmp_path / "b", resume=True, force=True)
    result = cli("story", LOGLINE, "--out", tmp_path / "b", "--resume", "--force")
    assert result.exit_code == 2 and "contradict" in result.stderr
    assert not (tmp_path / "b").exists()


# ------------------------------------------------------------------ checks every entry point gets
@pytest.mark.parametrize(("logline", "message"), [
    ("", "logline is empty"),
    (" \t\n", "logline is empty"),
    ("Aldar\x00Bai", "logline contains control characters (NUL or other binary data)"),
    ("Aldar \udcff tricks", "logline is not valid UTF-8"),
    ("x" * 1001, "logline is 1001 characters; the limit is 1000"),
])
def test_resolve_refuses_a_logline_no_writer_can_use(logline, message):
    with pytest.raises(InputError) as err:
        resolve(None, {"logline": logline})
    assert str(err.value) == message


@pytest.mark.parametrize("scenes", [0, MAX_SCENES + 1])
def test_resolve_refuses_a_scene_count_out_of_range(scenes):
    with pytest.raises(InputError, match="scenes"):
        resolve(None, {"logline": LOGLINE, "scenes": scenes})


def test_resolve_without_a_logline_is_a_rerender_not_an_error():
    assert resolve(None, {"logline": None}).logline is None
    assert resolve(None, {"logline": "Aldar\tand the Bai\n"}).logline == "Aldar\tand the Bai\n"


def test_run_settings_schema_is_printed_for_forms_and_nodes():
    result = cli("schema", "run")
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert {"render", "quality", "stages", "logline"} <= set(schema["properties"])
    assert schema == json.loads(json.dumps(RunConfig.model_json_schema()))
    assert "scenes" in json.loads(cli("schema").stdout)["properties"], "story.json's schema stays the default"


# ------------------------------------------------------------------ character training builds its run below app/
def test_training_config_resolves_the_character_and_makes_paths_absolute(tmp_path: Path, monkeypatch):
    from autokose.bible import load_bible
    from autokose.cast.train import training_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"")
    bible = load_bible(None)
    cfg = training_config(bible, "aldar", images="refs", model="model.safetensors", vae="org/vae")
    assert (cfg.character, cfg.images, cfg.model) == ("aldar", str(tmp_path / "refs"), str(tmp_path / "model.safetensors"))
    assert cfg.vae == "org/vae", "a repo id is no path"
    assert cfg.out == str(Path("characters/aldar"))
    new = training_config(bible, "kempir", trigger="kempirx", images="refs", model="org/model")
    assert (new.character, new.trigger) == ("kempir", "kempirx")
    with pytest.raises(InputError, match="unknown character 'kempir'.*--trigger"):
        training_config(bible, "kempir", images="refs", model="org/model")


# ------------------------------------------------------------------ layering
def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_nothing_below_app_imports_it():
    below = [p for p in SRC.rglob("*.py") if "app" not in p.relative_to(SRC).parts]
    assert len(below) > 20
    up = {str(p.relative_to(SRC)): sorted(n for n in _imports(p) if n.startswith("autokose.app"))
          for p in below}
    assert {k: v for k, v in up.items() if v} == {}


def test_app_modules_import_no_entry_point_but_their_own_shell():
    """character.py and terminal.py never import cli.py: no circle inside app/ either."""
    for name in ("character.py", "terminal.py"):
        assert not any(n.startswith("autokose.app.cli") for n in _imports(SRC / "app" / name)), name
