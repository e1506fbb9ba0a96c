"""story.json for outside tools (issue 16): `extra` data kept as written, `render --characters`, inline
identity assets winning over the bible's for any id, a characters file naming the protagonist, and
the defaults documented in `autokose schema`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from autokose.app.cli import app
from autokose.config import RenderSettings
from autokose.errors import InputError
from autokose.render.quality import render_key
from autokose.staging import staging_key
from autokose.story import Story, story_schema

runner = CliRunner()
SOURCE = {"source": {"file": "prompts.yaml", "concept": "cat", "line": 3, "tags": ["a", None, 2.5], "ok": True}}


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def outside_story(**extra) -> dict:
    """A story.json as an outside tool writes it: one character of its own, prompts as written."""
    return {"title": "cat", "logline": "a cat in three places",
            "characters": [{"id": "cat", "name": "Cat", "appearance": "a ginger cat"}],
            "scenes": [{"index": n, "characters": ["cat"], "prompt": f"a ginger cat, {place}", "seed": 100 + n}
                       for n, place in enumerate(("on a roof", "in a garden"), 1)],
            **extra}


# -- extra ---------------------------------------------------------------------------------------------------------

def test_extra_round_trips_through_story_json(tmp_path):
    data = outside_story(extra={"source": {"file": "set.yaml", "название": "кот"}})
    data["scenes"][1]["extra"] = SOURCE
    path = tmp_path / "story.json"
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    story = Story.load(path)
    assert story.extra == {"source": {"file": "set.yaml", "название": "кот"}}
    assert story.scenes[1].extra == SOURCE and story.scenes[0].extra == {}
    again = json.loads(story.to_json())
    assert again["extra"] == data["extra"] and again["scenes"][1]["extra"] == SOURCE
    assert Story.from_json(story.to_json()) == story


def test_story_json_without_extra_still_loads():
    story = Story.model_validate(outside_story())
    assert story.extra == {} and all(s.extra == {} for s in story.scenes)


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d.update(extra=["a"]), "extra"),
    (lambda d: d["scenes"][1].update(extra="from a tool"), "scenes[1].extra"),
    (lambda d: d.update(extras={}), "extras"),  # only `extra` is free: a misspelt key is still refused
])
def test_extra_must_be_a_json_object(edit, needle):
    data = outside_story()
    edit(data)
    with pytest.raises(InputError) as info:
        Story.from_json(json.dumps(data))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_extra_is_never_read_by_staging_or_rendering():
    """Editing a tool's data must not restage a scene nor redraw its frame: the keys ignore `extra`."""
    plain = Story.model_validate(outside_story())
    tagged = Story.model_validate(outside_story(extra=SOURCE))
    tagged.scenes[0].extra = SOURCE
    settings = RenderSettings()
    for a, b in zip(plain.scenes, tagged.scenes):
        assert staging_key(plain, a) == staging_key(tagged, b)
        assert render_key(plain, a, settings) == render_key(tagged, b, settings)


def test_schema_shows_extra_on_story_and_scene():
    schema = story_schema()
    for props in (schema["properties"], schema["$defs"]["Scene"]["properties"]):
        assert props["extra"]["type"] == "object" and "never read" in props["extra"]["description"]


def test_render_keeps_extra_in_story_json(tmp_path):
    board = tmp_path / "board"
    board.mkdir()
    data = outside_story(extra=SOURCE)
    data["scenes"][0]["extra"] = {"row": 1}
    (board / "story.json").write_text(json.dumps(data), encoding="utf-8")
    result = cli("render", board / "story.json", "--stages", "cast,stage,render")
    assert result.exit_code == 0, result.output
    saved = json.loads((board / "story.json").read_text(encoding="utf-8"))
    assert saved["extra"] == SOURCE and saved["scenes"][0]["extra"] == {"row": 1}


# -- render --characters, inline identity assets -------------------------------------------------------------------

@pytest.fixture
def renderer_assets(monkeypatch) -> dict:
    """The identity assets the pipeline hands the renderer, by character id (filled by the next run)."""
    import autokose.pipeline as pipeline

    seen: dict = {}
    real = pipeline.get_renderer

    def spy(settings, assets=None, **kwargs):
        seen.update(assets or {})
        return real(settings, assets=assets, **kwargs)

    monkeypatch.setattr(pipeline, "get_renderer", spy)
    return seen


def board_with(tmp_path: Path, characters: list[dict]) -> Path:
    board = tmp_path / "board"
    board.mkdir()
    data = outside_story()
    data["characters"] = characters
    for scene in data["scenes"]:
        scene["characters"] = [c["id"] for c in characters]
    (board / "story.json").write_text(json.dumps(data), encoding="utf-8")
    return board / "story.json"


def cast_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cast" / "cast.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_render_characters_gives_assets_and_is_saved_with_the_board(tmp_path, renderer_assets):
    story_json = board_with(tmp_path, [{"id": "cat", "name": "Cat"}])
    cast = cast_file(tmp_path, "characters:\n  - id: cat\n    name: Cat\n    trigger: gingercat\n"
                               "    references: [cat.png]\n")
    Image.new("RGB", (8, 8), "orange").save(cast.parent / "cat.png")
    result = cli("render", story_json, "--characters", cast, "--stages", "cast,stage,render")
    assert result.exit_code == 0, result.output
    assert renderer_assets["cat"].trigger == "gingercat"
    assert renderer_assets["cat"].references == [Path(cast.parent / "cat.png")]
    manifest = json.loads((story_json.parent / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["command"]["characters_file"] == str(cast)
    assert manifest["inputs"]["characters_sha256"]

    renderer_assets.clear()  # a later render without the option keeps the saved file
    assert cli("render", story_json, "--stages", "cast,stage,render").exit_code == 0
    assert renderer_assets["cat"].trigger == "gingercat"


def test_render_with_a_bad_characters_file_is_one_line_and_writes_nothing(tmp_path):
    story_json = board_with(tmp_path, [{"id": "cat", "name": "Cat"}])
    before = sorted(p.name for p in story_json.parent.iterdir())
    result = cli("render", story_json, "--characters", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and "characters file not found" in result.output, result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in story_json.parent.iterdir()) == before


def test_inline_assets_win_over_the_bible_for_a_built_in_id(tmp_path, renderer_assets):
    """aldar is built in, and the characters file gives him references too: story.json's own (relative to
    the board) are the ones the renderer gets, with its LoRA and trigger."""
    aldar = {"id": "aldar", "name": "Aldar", "appearance": "a man in a red hat", "trigger": "mytoken",
             "references": ["refs/face.png"], "lora": "refs/aldar.safetensors:0.7"}
    story_json = board_with(tmp_path, [aldar])
    (story_json.parent / "refs").mkdir()
    Image.new("RGB", (8, 8), "red").save(story_json.parent / "refs" / "face.png")
    (story_json.parent / "refs" / "aldar.safetensors").write_bytes(b"")
    cast = cast_file(tmp_path, "characters:\n  - id: aldar\n    trigger: bibletoken\n    references: [bible.png]\n")
    Image.new("RGB", (8, 8), "blue").save(cast.parent / "bible.png")
    result = cli("render", story_json, "--characters", cast, "--stages", "cast,stage,render")
    assert result.exit_code == 0, result.output
    got = renderer_assets["aldar"]
    assert got.references == [story_json.parent / "refs" / "face.png"]
    assert got.trigger == "mytoken" and got.lora.path == str(story_json.parent / "refs" / "aldar.safetensors")
    assert got.lora.weight == 0.7


# -- defaults in `autokose schema` ---------------------------------------------------------------------------------

def test_schema_documents_the_defaults_outside_tools_meet():
    result = cli("schema")
    assert result.exit_code == 0
    scene = json.loads(result.output)["$defs"]["Scene"]["properties"]
    assert "Default 0" in scene["seed"]["description"] and "distinct" in scene["seed"]["description"]
    assert "Blank" in scene["negative_prompt"]["description"]
    assert "modern clothing" in scene["negative_prompt"]["description"]
    for name in ("setting", "shot"):
        assert "staging" in scene[name]["description"] and scene[name]["default"] in scene[name]["description"]
    assert "day" in scene["time"]["description"] and "as written" in scene["prompt"]["description"]


# -- the characters file names the protagonist ---------------------------------------------------------------------

LEAD = ("protagonist: cat\ncharacters:\n  - id: cat\n    name: Cat\n    names: {ru: Кот, kk: Мысық, en: Cat}\n"
        "    appearance: a ginger cat in a blue collar\n")


def test_a_characters_file_names_the_protagonist(tmp_path):
    from autokose.bible import PROTAGONIST, builtin_bible, load_bible

    assert builtin_bible().protagonist == PROTAGONIST == load_bible(None).protagonist
    assert load_bible(cast_file(tmp_path, LEAD)).protagonist == "cat"
    assert load_bible(cast_file(tmp_path, "protagonist: bai\ncharacters: []\n")).protagonist == "bai"  # built-in id


@pytest.mark.parametrize(("text", "needle"), [
    ("protagonist: ghost\ncharacters: []\n", "protagonist: unknown character 'ghost'"),
    ("protagonist: [cat]\ncharacters: []\n", "protagonist: expected one character id"),
])
def test_a_bad_protagonist_is_one_line(tmp_path, text, needle):
    from autokose.bible import load_bible

    path = cast_file(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_bible(path)
    assert str(info.value).startswith(f"{path}: ") and needle in str(info.value) and "\n" not in str(info.value)


def test_story_characters_casts_the_files_protagonist_as_the_lead(tmp_path):
    out = tmp_path / "board"
    result = cli("story", "The cat sells a magic pot to the greedy bai", "--scenes", "6", "--out", out,
                 "--characters", cast_file(tmp_path, LEAD), "--stages", "write,cast,stage")
    assert result.exit_code == 0, result.output
    story = Story.load(out / "story.json")
    assert story.protagonist == "cat"
    assert "aldar" not in {c.id for c in story.characters}, "the lead replaces Aldar, not joins him"
    trick = next(s for s in story.scenes if s.beat.value == "trick")
    assert "cat" in trick.characters and sum("cat" in s.characters for s in story.scenes) >= 4
    assert "Cat" in " ".join(s.caption for s in story.scenes)


def test_the_writers_name_aldar_as_lead_by_default():
    from autokose.bible import builtin_bible
    from autokose.writers import get_writer

    story = get_writer("offline").write("Aldar sells a magic pot to the bai", scenes=4, seed=2, bible=builtin_bible())
    assert story.protagonist == "aldar"


def test_scoring_reports_on_the_named_protagonist():
    from autokose.score.report import protagonist

    data = outside_story()
    data["characters"].append({"id": "aldar", "name": "Aldar"})
    data["scenes"][0]["characters"] = ["aldar", "cat"]
    data["scenes"][1]["characters"] = ["aldar"]
    assert protagonist(Story.model_validate(data)) == "aldar"  # unnamed: Aldar, as before
    assert protagonist(Story.model_validate(dict(data, protagonist="cat"))) == "cat"
    data["scenes"][0]["characters"] = ["aldar"]  # a named lead in no scene: the usual rule
    assert protagonist(Story.model_validate(dict(data, protagonist="cat"))) == "aldar"


def test_story_json_protagonist_must_be_in_the_cast():
    with pytest.raises(InputError, match="protagonist: unknown character 'dog'"):
        Story.from_json(json.dumps(outside_story(protagonist="dog")))


def test_the_llm_writer_is_told_the_files_protagonist(tmp_path):
    from autokose.bible import load_bible
    from autokose.writers.llm import system_prompt

    assert "protagonist of this story is Cat (id 'cat')" in system_prompt(load_bible(cast_file(tmp_path, LEAD)))
    assert "protagonist of this story" not in system_prompt(load_bible(None))
