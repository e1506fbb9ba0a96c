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
