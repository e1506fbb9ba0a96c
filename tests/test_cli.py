"""The command line end to end on the offline default: boards, reruns, and every bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokose.app.cli import app
from autokose.story import MAX_SCENES

EGG = (
    "Алдар Косе держит в руках блестящее «золотое яйцо». Бай наклоняется вперёд, "
    "глаза широко раскрыты от удивления. Слуги Бая переглядываются позади."
)
runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *needles: str) -> None:
    """Exit 2, one clear line naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "error:" in result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.fixture(scope="module")
def egg_board(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("boards") / "egg"
    result = cli("story", EGG, "--scenes", "8", "--out", out)
    assert result.exit_code == 0, result.output
    return out


def test_demo_board_has_every_file_of_the_contract(egg_board: Path):
    story = json.loads((egg_board / "story.json").read_text(encoding="utf-8"))
    n = len(story["scenes"])
    assert n == 8
    for i in range(1, n + 1):
        for rel in (f"frames/{i:02d}.png", f"frames/{i:02d}.svg", f"control/{i:02d}_pose.png",
                    f"control/{i:02d}_pose.json"):
            assert (egg_board / rel).stat().st_size > 0, rel
    for rel in ("manifest.json", "board.html", "board.pdf", "sheet.png"):
        assert (egg_board / rel).stat().st_size > 0, rel
    assert not list(egg_board.rglob(".*.png")), "temporary files left behind"


def test_manifest_records_parameters_seeds_hashes_and_timings(egg_board: Path):
    manifest = json.loads((egg_board / "manifest.json").read_text(encoding="utf-8"))
    story = json.loads((egg_board / "story.json").read_text(encoding="utf-8"))
    assert manifest["command"]["logline"] == EGG
    assert manifest["command"]["scenes"] == 8
    assert manifest["environment"]["autokose"]
    assert manifest["inputs"]["logline_sha256"]
    assert set(manifest["timings"]) >= {"write", "stage", "render", "export"}
    for scene in story["scenes"]:
        record = manifest["frames"][f"{scene['index']:02d}"]
        assert record["seed"] == scene["seed"]
        assert len(record["sha256"]) == 64


def test_story_json_carries_the_stable_keys(egg_board: Path):
    story = json.loads((egg_board / "story.json").read_text(encoding="utf-8"))
    assert story["logline"] == EGG and story["language"] == "ru"
    ids = {c["id"] for c in story["characters"]}
    assert {"aldar", "bai"} <= ids and all(c["name"] for c in story["characters"])
    for scene in story["scenes"]:
        assert {"index", "caption", "characters", "shot", "prompt", "seed"} <= set(scene)
        assert set(scene["characters"]) <= ids


def test_rerender_only_changes_the_edited_frame(egg_board: Path, tmp_path: Path):
    board = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(egg_board), str(board)], check=True)
    before = {p.name: p.read_bytes() for p in (board / "frames").glob("*.png")}
    story = json.loads((board / "story.json").read_text(encoding="utf-8"))
    story["scenes"][2]["time"] = "night"
    (board / "story.json").write_text(json.dumps(story, ensure_ascii=False), encoding="utf-8")

    result = cli("render", board / "story.json", "--only", "3")
    assert result.exit_code == 0, result.output
    after = {p.name: p.read_bytes() for p in (board / "frames").glob("*.png")}
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"03.png"}


def test_rerender_from_story_and_manifest_is_identical(egg_board: Path, tmp_path: Path):
    board = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(egg_board), str(board)], check=True)
    result = cli("render", board / "story.json")
    assert result.exit_code == 0, result.output
    for frame in (egg_board / "frames").glob("*.png"):
        assert (board / "frames" / frame.name).read_bytes() == frame.read_bytes(), frame.name


def test_same_logline_and_seed_gives_identical_boards(egg_board: Path, tmp_path: Path):
    result = cli("story", EGG, "--out", tmp_path / "again")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "again/story.json").read_bytes() == (egg_board / "story.json").read_bytes()
    for frame in (egg_board / "frames").glob("*.png"):
        assert (tmp_path / "again/frames" / frame.name).read_bytes() == frame.read_bytes()


def test_resume_renders_only_missing_frames(egg_board: Path, tmp_path: Path):
    board = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(egg_board), str(board)], check=True)
    (board / "frames/05.png").unlink()
    untouched = board / "frames/01.png"
    mtime = untouched.stat().st_mtime_ns
    result = cli("story", EGG, "--out", board, "--resume")
    assert result.exit_code == 0, result.output
    assert (board / "frames/05.png").read_bytes() == (egg_board / "frames/05.png").read_bytes()
    assert untouched.stat().st_mtime_ns == mtime


def test_stages_can_be_switched_off(tmp_path: Path):
    result = cli("story", EGG, "--scenes", "6", "--out", tmp_path / "b", "--stages", "write,stage")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "b/story.json").exists() and (tmp_path / "b/control/01_pose.json").exists()
    assert not (tmp_path / "b/frames").exists() and not (tmp_path / "b/board.html").exists()


def test_schema_and_characters_commands():
    schema = json.loads(cli("schema").output)
    assert {"logline", "language", "characters", "scenes"} <= set(schema["properties"])
    listing = cli("characters")
    assert listing.exit_code == 0 and "aldar" in listing.output and "bai" in listing.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["story", ""], "logline is empty"),
        (["story", "   \t "], "logline is empty"),
        (["story", "x" * 5000], "limit"),
        (["story", EGG, "--scenes", "0"], "--scenes"),
        (["story", EGG, "--scenes", str(MAX_SCENES + 1)], "--scenes"),
        (["story", EGG, "--writer", "poet"], "poet"),
        (["story", EGG, "--stages", "write,paint"], "paint"),
        (["render", "missing/story.json"], "story file not found"),
        (["render", "x.json", "--only", "three"], "--only"),
        (["render", "x.json", "--pick", "4:2"], "--pick"),
        (["story", EGG, "--steps", "10"], "--model"),
    ],
)
def test_bad_arguments_give_one_clear_line(args, needle, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert_user_error(cli(*args), needle)


def test_non_empty_out_needs_resume_or_force(egg_board: Path):
    assert_user_error(cli("story", EGG, "--out", egg_board), "not empty", "--resume", "--force")


def test_unwritable_out_dir(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert_user_error(cli("story", EGG, "--out", blocker / "board"), "not writable")
    assert_user_error(cli("story", EGG, "--out", blocker), "not a folder")


def test_corrupt_and_invalid_story_json_name_the_problem(egg_board: Path, tmp_path: Path):
    corrupt = tmp_path / "corrupt" / "story.json"
    corrupt.parent.mkdir()
    corrupt.write_text('{"title": "x", "scenes": [', encoding="utf-8")
    assert_user_error(cli("render", corrupt), "not valid JSON")

    story = json.loads((egg_board / "story.json").read_text(encoding="utf-8"))
    story["scenes"][1]["shot"] = "panorama"
    invalid = tmp_path / "invalid" / "story.json"
    invalid.parent.mkdir()
    invalid.write_text(json.dumps(story, ensure_ascii=False), encoding="utf-8")
    assert_user_error(cli("render", invalid), "scenes[1].shot")

    story["scenes"][1]["shot"] = "wide"
    story["scenes"][1]["characters"].append("ghost")
    invalid.write_text(json.dumps(story, ensure_ascii=False), encoding="utf-8")
    assert_user_error(cli("render", invalid), "ghost")
    assert not (invalid.parent / "frames").exists(), "nothing is written for an invalid story"


def test_only_names_a_missing_scene(egg_board: Path, tmp_path: Path):
    board = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(egg_board), str(board)], check=True)
    assert_user_error(cli("render", board / "story.json", "--only", "3,42"), "no scene 42")


def test_bad_characters_file(tmp_path: Path):
    bad = tmp_path / "cast.yaml"
    bad.write_text("characters:\n  - id: Aldar Kose\n    name: x\n", encoding="utf-8")
    assert_user_error(cli("characters", "--characters", bad), "characters[0].id")
    assert_user_error(cli("characters", "--characters", tmp_path / "nope.yaml"), "not found")


def test_user_bible_overrides_and_extends(tmp_path: Path):
    cast = tmp_path / "cast.yaml"
    cast.write_text(
        "characters:\n"
        "  - id: aldar\n    trigger: myaldar\n"
        "  - id: kempir\n    name: Old woman\n    aliases: [кемпир, старуха]\n",
        encoding="utf-8",
    )
    listing = cli("characters", "--characters", cast)
    assert listing.exit_code == 0
    assert "myaldar" in listing.output and "kempir" in listing.output and "bai" in listing.output


@pytest.mark.slow
def test_console_script_exit_code_and_no_traceback(tmp_path: Path):
    exe = Path(sys.executable).with_name("autokose")
    proc = subprocess.run([str(exe), "story", "  "], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "logline is empty" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_model_fails_before_anything_is_written(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_user_error(cli("story", EGG, "--out", tmp_path / "a", "--model", tmp_path / "none.safetensors"),
                      "no such file")
    assert_user_error(cli("story", EGG, "--out", tmp_path / "b", "--model", "nobody/nothing-here"),
                      "nobody/nothing-here", "huggingface-cli download")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# -- documented vocabularies: `autokose vocab`, and blocking words checked -----------------------


def _hand_edited(egg_board: Path, tmp_path: Path, **blocking) -> Path:
    """A copy of the egg board's story.json whose first scene's first character has `blocking`."""
    story = json.loads((egg_board / "story.json").read_text(encoding="utf-8"))
    scene = story["scenes"][0]
    cid = scene["characters"][0]
    scene["blocking"][cid] = {**scene["blocking"].get(cid, {}), **blocking}
    path = tmp_path / "edited" / "story.json"
    path.parent.mkdir()
    path.write_text(json.dumps(story, ensure_ascii=False), encoding="utf-8")
    return path


def test_vocab_lists_what_blocking_accepts_one_item_per_line():
    from autokose.poses import POSE_ALIASES, POSES
    from autokose.staging import ANIMALS
    from autokose.vocabulary import table

    poses = cli("vocab", "poses")
    assert poses.exit_code == 0, poses.output
    lines = poses.output.splitlines()
    assert [line.split(" — ")[0] for line in lines] == list(POSES)
    ride = next(line for line in lines if line.startswith("ride"))
    assert "riding" in ride and "верхом" in ride  # an alias and a Russian logline word
    assert all(alias in poses.output for alias in POSE_ALIASES)

    emotions = cli("vocab", "emotions").output.splitlines()
    assert [line.split(" — ")[0] for line in emotions] == table().emotions
    animals = cli("vocab", "animals").output
    for kind in ("wolf", "camel", "sheep", "goat", "horse", "donkey", "dog", "eagle"):
        assert any(line.startswith(kind + " ") for line in animals.splitlines()), kind
    assert set(ANIMALS) <= {line.split(" — ")[0] for line in animals.splitlines()}
    assert "camel — rideable" in animals and "верблюд" in animals and "түйе" in animals
    for section, word in (("settings", "bazaar"), ("props", "patched_coat"), ("places", "behind")):
        listing = cli("vocab", section)
        assert listing.exit_code == 0 and word in listing.output, listing.output

    everything = cli("vocab")
    assert everything.exit_code == 0
    for section in ("poses:", "emotions:", "settings:", "props:", "animals:", "places:"):
        assert section + "\n" in everything.output
    assert_user_error(cli("vocab", "colours"), "colours")


def test_unknown_pose_in_story_json_names_the_poses(egg_board: Path, tmp_path: Path):
    edited = _hand_edited(egg_board, tmp_path, pose="cartwheel")
    result = cli("render", edited)
    assert_user_error(result, "scenes[0].blocking.", ".pose", "cartwheel", "stand, walk", "ride")
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1, result.output
    assert not (edited.parent / "frames").exists()


def test_pose_aliases_still_work_in_story_json(egg_board: Path, tmp_path: Path):
    edited = _hand_edited(egg_board, tmp_path, pose="Riding")
    result = cli("render", edited, "--stages", "stage")
    assert result.exit_code == 0, result.output


def test_unknown_emotion_in_story_json_names_the_emotions(egg_board: Path, tmp_path: Path):
    edited = _hand_edited(egg_board, tmp_path, emotion="melancholy")
    result = cli("render", edited)
    assert_user_error(result, str(edited), "scenes[0].blocking.", ".emotion", "melancholy", "emotions:", "sly",
                      "greedy")
    assert not (edited.parent / "frames").exists() and not (edited.parent / "layouts.json").exists()


# -- logline fidelity: what the writer leaves out is said and recorded ---------------------------


def _fake_fidelity(monkeypatch, elements, missing):
    """Stand in for writers/fidelity.py (helper module of the writers) with fixed answers."""
    import types

    import autokose.writers

    calls = []
    fake = types.ModuleType("autokose.writers.fidelity")
    fake.logline_elements = lambda logline, bible: calls.append(logline) or list(elements)
    fake.unused_elements = lambda story, found: list(missing)
    monkeypatch.setitem(sys.modules, "autokose.writers.fidelity", fake)
    monkeypatch.setattr(autokose.writers, "fidelity", fake, raising=False)
    return calls


def test_missing_logline_elements_are_warned_and_recorded_in_the_manifest(tmp_path: Path, monkeypatch):
    from types import SimpleNamespace as Element

    camel = Element(kind="animal", key="camel", words="верблюда")
    names = Element(kind="person", key="Жантык", words="Жантыка")
    egg = Element(kind="prop", key="golden_egg", words="яйцо")
    calls = _fake_fidelity(monkeypatch, [camel, names, egg], [camel, names])
    out = tmp_path / "b"
    result = cli("story", EGG, "--scenes", "3", "--out", out, "--stages", "write")
    assert result.exit_code == 0, result.output
    assert calls == [EGG]
    assert "logline names верблюда (animal); the story does not use it" in result.output
    assert "logline names Жантыка (person); the story does not use it" in result.output
    assert "яйцо" not in result.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["logline"] == {
        "elements": [{"kind": "animal", "key": "camel", "words": "верблюда"},
                     {"kind": "person", "key": "Жантык", "words": "Жантыка"},
                     {"kind": "prop", "key": "golden_egg", "words": "яйцо"}],
        "missing": [{"kind": "animal", "key": "camel", "words": "верблюда"},
                    {"kind": "person", "key": "Жантык", "words": "Жантыка"}],
    }


def test_a_faithful_story_warns_nothing_and_records_no_missing(tmp_path: Path, monkeypatch):
    from types import SimpleNamespace as Element

    _fake_fidelity(monkeypatch, [Element(kind="prop", key="golden_egg", words="яйцо")], [])
    out = tmp_path / "b"
    result = cli("story", EGG, "--scenes", "3", "--out", out, "--stages", "write")
    assert result.exit_code == 0, result.output
    assert "logline names" not in result.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["logline"]["missing"] == [] and manifest["logline"]["elements"][0]["key"] == "golden_egg"


@pytest.mark.parametrize("said", ["laughing", "melancholy", "🐴", "", "Sly", "хитро"])
def test_writers_turn_any_emotion_word_into_one_the_pipeline_accepts(said):
    """An LLM's free word ("laughing") must not make the writer's own story fail the blocking check."""
    from autokose.vocabulary import table
    from autokose.writers.common import canonical_emotion, canonical_pose

    assert canonical_emotion(said) in table().emotions
    assert canonical_pose(said or "x") in table().poses


def test_the_manifest_records_the_real_logline_elements(tmp_path: Path):
    """With the writers' own fidelity module: a wolf and a river named in Russian are recorded."""
    out = tmp_path / "b"
    result = cli("story", "Алдар Косе встречает волка у реки.", "--scenes", "4", "--out", out, "--stages", "write")
    assert result.exit_code == 0, result.output
    record = json.loads((out / "manifest.json").read_text(encoding="utf-8"))["logline"]
    assert {"kind": "animal", "key": "wolf", "words": "волка"} in record["elements"]
    assert {(e["kind"], e["key"]) for e in record["elements"]} >= {("animal", "wolf"), ("place", "river")}
    assert record["missing"] == [] and "logline names" not in result.output
