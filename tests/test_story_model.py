"""story.json: round trips, the schema, and errors that name the offending field."""

from __future__ import annotations

import json

import pytest

from autokose.bible import builtin_bible
from autokose.errors import InputError
from autokose.story import Character, Language, Story, story_schema
from autokose.writers import get_writer

EGG = (
    "Алдар Косе держит в руках блестящее «золотое яйцо». Бай наклоняется вперёд, "
    "глаза широко раскрыты от удивления. Слуги Бая переглядываются позади."
)


@pytest.fixture(scope="module")
def story() -> Story:
    return get_writer("offline").write(EGG, scenes=6, seed=1, bible=builtin_bible())


def edited(story: Story, edit) -> str:
    data = json.loads(story.to_json())
    edit(data)
    return json.dumps(data, ensure_ascii=False)


def test_round_trip_is_lossless_and_stable(story, tmp_path):
    text = story.to_json()
    again = Story.from_json(text)
    assert again == story and again.to_json() == text
    assert "«золотое яйцо»" in text, "non-ASCII text is written as is"
    path = tmp_path / "story.json"
    path.write_text(text, encoding="utf-8")
    assert Story.load(path) == story


def test_stable_keys_are_in_story_json(story):
    data = json.loads(story.to_json())
    assert {"schema_version", "title", "logline", "language", "style", "characters", "scenes"} <= set(data)
    for scene in data["scenes"]:
        assert {"index", "caption", "characters", "shot", "prompt", "seed", "blocking", "beat"} <= set(scene)


def test_schema_describes_story_json():
    schema = story_schema()
    assert {"logline", "language", "characters", "scenes"} <= set(schema["properties"])
    assert "Scene" in json.dumps(schema)


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d["scenes"][0].update(shot="panorama"), "scenes[0].shot"),
    (lambda d: d["scenes"][1].update(time="teatime"), "scenes[1].time"),
    (lambda d: d["scenes"][0].update(seed=2**32), "scenes[0].seed"),
    (lambda d: d["scenes"][2].update(index=7), "scenes[2].index is 7, expected 3"),
    (lambda d: d["scenes"][0]["characters"].append("ghost"), "unknown character 'ghost'"),
    (lambda d: d["scenes"][0]["blocking"].update(bai={"pose": "stand"}), "'bai' is not in the scene's characters"),
    (lambda d: d["scenes"][0].update(colour="red"), "scenes[0].colour"),
    (lambda d: d["scenes"][0]["blocking"]["aldar"].update(place="позади"), "scenes[0].blocking.aldar.place"),
    (lambda d: d.update(logline="   "), "logline"),
    (lambda d: d.update(scenes=[]), "scenes"),
    (lambda d: d["characters"].append(dict(d["characters"][0])), "duplicate id"),
    (lambda d: d["characters"][0].update(id="Not An Id"), "characters[0].id"),
    (lambda d: d.pop("title"), "title"),
])
def test_invalid_fields_raise_input_errors_naming_them(story, edit, needle):
    with pytest.raises(InputError) as info:
        Story.from_json(edited(story, edit), source="story.json")
    message = str(info.value)
    assert needle in message and message.startswith("story.json: ")
    assert "\n" not in message


def test_place_is_optional_so_older_story_json_still_loads(story):
    """A story.json written before `blocking[id].place` existed loads with no one placed (schema version 1)."""
    data = json.loads(story.to_json())
    for scene in data["scenes"]:
        for direction in scene["blocking"].values():
            direction.pop("place")
    old = Story.from_json(json.dumps(data, ensure_ascii=False))
    assert all(b.place is None for s in old.scenes for b in s.blocking.values())
    assert any(b.place == "behind" for s in story.scenes for b in s.blocking.values())
    place = story_schema()["$defs"]["Blocking"]["properties"]["place"]
    assert place["default"] is None and "behind" in json.dumps(place) and place["description"]


@pytest.mark.parametrize("text", ['{"title": "x", "scenes": [', "", "not json"])
def test_corrupt_json_is_an_input_error(text):
    with pytest.raises(InputError, match="not valid JSON"):
        Story.from_json(text)


def test_load_reports_missing_files(tmp_path):
    with pytest.raises(InputError, match="story file not found"):
        Story.load(tmp_path / "nope.json")


def test_display_names_fall_back_to_the_plain_name():
    c = Character(id="khan", name="the Khan", names={"ru": "Хан"})
    assert c.display_name(Language.ru) == "Хан" and c.display_name("kk") == "the Khan"


@pytest.mark.parametrize(("edit", "needle"), [
    (lambda d: d.update(schema_version=99), "schema_version: version 99 is not supported (this AutoKöse reads "
                                            "schema_version 1)"),
    (lambda d: d["characters"][0]["palette"].update(robe="red"), "characters[0].palette: colour 'robe' is 'red'"),
    (lambda d: d["characters"][0]["palette"].update(robe='#fff"/><script>'), "characters[0].palette"),
    (lambda d: d.update(title="\ud800"), "title: lone surrogate"),
    (lambda d: d["scenes"][1].update(caption="ok \udfff"), "scenes[1].caption: lone surrogate"),
    (lambda d: d["scenes"][0]["blocking"].update({"\ud83d": {}}), "scenes[0].blocking: lone surrogate"),
])
def test_hostile_story_json_is_one_line(story, edit, needle, tmp_path):
    data = json.loads(story.to_json())
    edit(data)
    path = tmp_path / "story.json"
    path.write_text(json.dumps(data), encoding="ascii")  # lone surrogates as JSON escapes, as a file holds them
    with pytest.raises(InputError) as info:
        Story.load(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and needle in message and "\n" not in message


def test_previz_palette_colours_stay_valid(story):
    data = json.loads(story.to_json())
    data["characters"][0]["palette"].update(robe="#abc", sash="#A0B1C2")
    assert Story.from_json(json.dumps(data)).characters[0].palette["robe"] == "#abc"


def test_deeply_nested_json_is_one_line():
    with pytest.raises(InputError, match="nested too deeply"):
        Story.from_json("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="nested too deeply"):
        Story.from_json('{"title": ' * 50_000 + "1" + "}" * 50_000)


@pytest.mark.parametrize(("yaml_text", "needle"), [
    ("characters:\n  - id: aldar\n    palette: {robe: red}\n", "characters[0].palette: colour 'robe'"),
    ("characters:\n  - id: aldar\n    aliases: 5\n", "characters[0].aliases"),
    ("characters:\n  - id: aldar\n    references: [1, 2]\n", "characters[0].references[0]"),
    ("characters:\n  - id: aldar\n    lora: {a: 1}\n", "characters[0].lora"),
    ("characters:\n  - id: kempir\n    name: [old, woman]\n", "characters[0].name"),
    ('characters:\n  - id: aldar\n    name: "\\uD800"\n', "characters[0].name: lone surrogate"),
    ("characters: " + "[" * 50_000 + "]" * 50_000 + "\n", "nested too deeply"),
    ("characters: {aldar: 1}\n", "expected a top-level 'characters:' list"),
])
def test_a_characters_file_with_bad_types_is_one_line(tmp_path, yaml_text, needle):
    from autokose.bible import load_bible

    path = tmp_path / "cast.yaml"
    path.write_text(yaml_text, encoding="utf-8")
    with pytest.raises(InputError) as info:
        load_bible(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and needle in message and "\n" not in message
