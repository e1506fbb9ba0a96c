"""`autokose import`: prompt files (txt, CSV/TSV, ConsiStory+ YAML, JSONL) → boards that batch and render draw.

Every format must give valid boards whose scenes carry the file's prompts exactly as written, a
seed of their own, a neutral negative prompt and an `extra.source` that says where each came
from; a bad line is one message naming file:line, with nothing written.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokose.app.cli import app
from autokose.importers import NEUTRAL_NEGATIVE, Options, read_boards
from autokose.prompting import build_negative, build_prompt
from autokose.story import Story

runner = CliRunner()

FOXES = ["a red fox in the snow", "a red fox drinking from a stream, morning light", "a red fox asleep under a pine"]
CONSISTORY = """\
animals:
  - id: 7
    style: A photo of
    subject: a golden retriever
    concept_token: [retriever]
    settings:
      - running on a beach
      - sleeping by a fireplace
      - catching a frisbee
humans:
  - style: A watercolor painting of
    subject: an old fisherman
    concept_token: fisherman
    settings: [mending a net, standing in a storm]
"""


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def stories(out: Path) -> dict[str, Story]:
    return {p.parent.name: Story.load(p) for p in sorted(out.glob("*/story.json"))}


def seeds(boards: dict[str, Story]) -> list[int]:
    return [s.seed for story in boards.values() for s in story.scenes]


def assert_outside_defaults(boards: dict[str, Story]) -> None:
    """What every import gives: no cast, a neutral negative, a seed per frame, the source recorded."""
    all_seeds = seeds(boards)
    assert len(set(all_seeds)) == len(all_seeds) and 0 not in all_seeds
    for story in boards.values():
        assert story.characters == [] and story.extra["source"]["file"]
        for scene in story.scenes:
            assert scene.characters == [] and "modern clothing" not in scene.negative_prompt
            assert isinstance(scene.extra["source"]["line"], int)


# --------------------------------------------------------------------------- formats
def test_a_text_file_is_one_board_of_its_prompts_as_written(tmp_path):
    src = write(tmp_path / "foxes.txt", f"{FOXES[0]}\n\n# a comment\n{FOXES[1]}\n   {FOXES[2]}\n")
    r = cli("import", src, "--out", tmp_path / "out", "--seed", "3")
    assert r.exit_code == 0, r.output
    boards = stories(tmp_path / "out")
    assert list(boards) == ["foxes"]
    story = boards["foxes"]
    assert [s.prompt for s in story.scenes] == FOXES
    assert [s.extra["source"]["line"] for s in story.scenes] == [1, 4, 5]
    assert all(s.negative_prompt == NEUTRAL_NEGATIVE and s.setting == "" for s in story.scenes)
    # what the renderer is handed: the prompt as written, the neutral negative (not the built-in one)
    assert [build_prompt(story, s) for s in story.scenes] == FOXES
    assert {build_negative(story, s) for s in story.scenes} == {NEUTRAL_NEGATIVE}
    assert story.extra["source"] == {"file": "foxes.txt", "format": "txt", "concept": "foxes", "lines": [1, 5],
                                     "seed": 3}
    assert_outside_defaults(boards)


def test_seeds_are_stable_for_a_file_and_seed_and_follow_the_seed(tmp_path):
    src = write(tmp_path / "foxes.txt", "\n".join(FOXES))
    first = read_boards(src, options=Options(seed=3))[0].story
    again = read_boards(src, options=Options(seed=3))[0].story
    other = read_boards(src, options=Options(seed=4))[0].story
    assert [s.seed for s in first.scenes] == [s.seed for s in again.scenes]
    assert set(s.seed for s in first.scenes).isdisjoint(s.seed for s in other.scenes)
    # a concept added to the file leaves the other concepts' seeds as they were
    shots = write(tmp_path / "shots.csv", "board,prompt\n" + "".join(f'fox,"{p}"\n' for p in FOXES))
    before = read_boards(shots, options=Options(seed=3))[0].story
    write(shots, "board,prompt\nowl,an owl\n" + "".join(f'fox,"{p}"\n' for p in FOXES))
    after = {b.name: b.story for b in read_boards(shots, options=Options(seed=3))}["fox"]
    assert [s.seed for s in after.scenes] == [s.seed for s in before.scenes]


def test_a_csv_shot_list_maps_its_columns_by_header_and_groups_boards(tmp_path):
    src = write(tmp_path / "shots.csv",
                "Board,Prompt,Shot,Time of day,Negative,Seed,Lens\n"
                "fox,a red fox in the snow,CU,evening,,,50mm\n"
                'fox,"a red fox,\ndrinking",wide,,cartoon,7,\n'
                "owl,an owl at night,,night,,,\n")
    r = cli("import", src, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.output
    boards = stories(tmp_path / "out")
    assert list(boards) == ["fox", "owl"]
    one, two = boards["fox"].scenes
    assert (one.prompt, one.shot.value, one.time.value) == ("a red fox in the snow", "close_up", "dusk")
    assert (two.prompt, two.shot.value, two.negative_prompt, two.seed) == ("a red fox,\ndrinking", "wide", "cartoon", 7)
    assert one.extra["source"] == {"line": 2, "row": 1, "columns": {"Lens": "50mm"}}
    assert two.extra["source"] == {"line": 3, "row": 2}
    assert boards["owl"].scenes[0].extra["source"]["line"] == 5  # after the two-line cell
    assert boards["owl"].extra["source"]["concept"] == "owl"
    assert_outside_defaults(boards)


def test_a_tsv_file_reads_like_a_csv(tmp_path):
    src = write(tmp_path / "shots.tsv", "description\tsetting\n" + "\n".join(f"{p}\tforest" for p in FOXES) + "\n")
    boards = {b.name: b.story for b in read_boards(src)}
    assert [s.prompt for s in boards["shots"].scenes] == FOXES
    assert {s.setting for s in boards["shots"].scenes} == {"forest"}
    assert_outside_defaults(boards)


def test_the_consistory_layout_gives_a_board_per_concept(tmp_path):
    src = write(tmp_path / "consistory+.yaml", CONSISTORY)
    r = cli("import", src, "--out", tmp_path / "out", "--seed", "1")
    assert r.exit_code == 0, r.output
    boards = stories(tmp_path / "out")
    assert list(boards) == ["animals-007-retriever", "humans-001-fisherman"]
    dog = boards["animals-007-retriever"]
    assert [s.prompt for s in dog.scenes] == ["A photo of a golden retriever running on a beach",
                                              "A photo of a golden retriever sleeping by a fireplace",
                                              "A photo of a golden retriever catching a frisbee"]
    assert [s.extra["source"]["line"] for s in dog.scenes] == [7, 8, 9]
    assert dog.logline == "A photo of a golden retriever"
    assert {k: dog.extra["source"][k] for k in ("format", "domain", "subject", "concept_token")} == {
        "format": "consistory", "domain": "animals", "subject": "a golden retriever", "concept_token": ["retriever"]}
    assert boards["humans-001-fisherman"].scenes[1].setting == "standing in a storm"
    assert_outside_defaults(boards)


def test_jsonl_lines_are_prompts_or_whole_concepts(tmp_path):
    lines = [{"prompt": FOXES[0], "concept": "fox", "shot": "wide"}, {"prompt": FOXES[1], "concept": "fox"},
             {"subject": "a robot", "style": "A 3D render of", "settings": ["in a kitchen", "on the moon"]},
             {"domain": "pets", "id": 2, "subject": "a cat", "concept_token": "cat", "settings": ["asleep"]}]
    src = write(tmp_path / "set.jsonl", "\n".join(json.dumps(x) for x in lines) + "\n")
    boards = {b.name: b.story for b in read_boards(src)}
    assert list(boards) == ["fox", "001-a-robot", "pets-002-cat"]
    assert [s.prompt for s in boards["fox"].scenes] == FOXES[:2] and boards["fox"].scenes[0].shot.value == "wide"
    assert [s.prompt for s in boards["001-a-robot"].scenes] == ["A 3D render of a robot in a kitchen",
                                                                "A 3D render of a robot on the moon"]
    assert [s.extra["source"]["line"] for s in boards["001-a-robot"].scenes] == [3, 3]
    assert_outside_defaults(boards)


# --------------------------------------------------------------------------- options
def test_style_negative_and_scenes_per_board(tmp_path):
    src = write(tmp_path / "foxes.txt", "\n".join(FOXES))
    whole = read_boards(src, options=Options(seed=2))[0].story
    r = cli("import", src, "--out", tmp_path / "out", "--seed", "2", "--scenes-per-board", "2",
            "--style", "pencil sketch", "--negative", "colour")
    assert r.exit_code == 0, r.output
    boards = stories(tmp_path / "out")
    assert list(boards) == ["foxes-01", "foxes-02"]
    scenes = [s for story in boards.values() for s in story.scenes]
    assert [s.prompt for s in scenes] == [f"pencil sketch, {p}" for p in FOXES]
    assert [s.caption for s in scenes] == FOXES and boards["foxes-01"].style == "pencil sketch"
    assert {s.negative_prompt for s in scenes} == {"colour"}
    assert [s.index for s in boards["foxes-02"].scenes] == [1]
    assert [s.seed for s in scenes] == [s.seed for s in whole.scenes]  # cutting a concept keeps its seeds
    assert boards["foxes-02"].extra["source"]["part"] == [2, 2]


def test_board_names_come_from_the_data_and_never_clash(tmp_path):
    src = write(tmp_path / "set.csv", "concept,prompt\nred fox,a\nred/fox,b\nсова,c\n" + "x" * 80 + ",d\n")
    names = [b.name for b in read_boards(src)]
    assert names == ["red-fox", "red-fox-2", "сова", "x" * 56]
    assert [b.story.extra["source"]["concept"] for b in read_boards(src)][:2] == ["red fox", "red/fox"]


def test_format_option_overrides_the_extension(tmp_path):
    src = write(tmp_path / "prompts.list", "prompt\n" + "\n".join(f'"{p}"' for p in FOXES))
    assert_user_error(cli("import", src, "--out", tmp_path / "out"), "--format")
    boards = {b.name: b.story for b in read_boards(src, "csv")}
    assert [s.prompt for s in boards["prompts"].scenes] == FOXES


# --------------------------------------------------------------------------- extra round-trips
def test_extra_round_trips_through_story_json(tmp_path):
    src = write(tmp_path / "shots.csv", "prompt,take\nan owl,3\n")
    built = read_boards(src)[0].story
    assert cli("import", src, "--out", tmp_path / "out").exit_code == 0
    loaded = Story.load(tmp_path / "out" / "shots" / "story.json")
    assert loaded == built and loaded.scenes[0].extra["source"]["columns"] == {"take": "3"}
    assert Story.from_json(loaded.to_json()) == loaded


# --------------------------------------------------------------------------- refusals
def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in result.output
    for needle in needles:
        assert needle in result.output, result.output


@pytest.mark.parametrize("name, text, needle", [
    ("a.csv", "prompt,shot\nfine,wide\nbad,huge\n", "a.csv:3: shot"),
    ("a.csv", "prompt,seed\nfine,1\nbad,-4\n", "a.csv:3: seed '-4'"),
    ("a.csv", "shot\nwide\n", "a.csv:2: no prompt"),
    ("a.csv", "prompt,prompt\nx,y\n", "a.csv:1: column 'prompt' appears twice"),
    ("a.csv", "prompt\nok\n\"unclosed\n", "a.csv:"),
    ("a.csv", "prompt,shot\nok,wide,extra\n", "a.csv:2: 3 cells"),
    ("a.txt", "fine\nnul \x00 byte\n", "a.txt:2: contains control characters"),
    ("a.txt", "fine\n" + "x" * 5000 + "\n", "a.txt:2: the prompt is 5000 characters"),
    ("a.txt", "\n# only a comment\n", "no prompts"),
    ("a.jsonl", '{"prompt": "ok"}\n{"prompt": \n', "a.jsonl:2: not a JSON object"),
    ("a.jsonl", '{"prompt": "ok"}\n{"prompt": "x", "time": "noonish"}\n', "a.jsonl:2: time"),
    ("a.jsonl", '{"prompt": "ok"}\n{"prompt": ["x"]}\n', "a.jsonl:2: 'prompt' holds a list"),
    ("a.yaml", "animals:\n  - subject: a dog\n    settings: []\n", "a.yaml:2: settings"),
    ("a.yaml", "animals:\n  - subject: a dog\n    settings:\n      - ok\n      - [no]\n", "a.yaml:5: settings[1]"),
    ("a.yaml", "animals:\n  - settings: [x]\n", "a.yaml:2: subject"),
    ("a.yaml", "animals: [\n", "a.yaml:"),
])
def test_a_bad_line_is_refused_naming_it_and_nothing_is_written(tmp_path, name, text, needle):
    src = write(tmp_path / name, text)
    assert_user_error(cli("import", src, "--out", tmp_path / "out"), needle)
    assert not (tmp_path / "out").exists()


def test_a_blank_negative_is_refused(tmp_path):
    src = write(tmp_path / "foxes.txt", "\n".join(FOXES))
    assert_user_error(cli("import", src, "--out", tmp_path / "out", "--negative", " "), "--negative is blank")
    assert not (tmp_path / "out").exists()


def test_a_non_empty_board_folder_is_refused_unless_forced(tmp_path):
    src = write(tmp_path / "set.csv", "board,prompt\nfox,a fox\nowl,an owl\n")
    out = tmp_path / "out"
    (out / "owl").mkdir(parents=True)
    (out / "owl" / "notes.txt").write_text("mine")
    assert_user_error(cli("import", src, "--out", out), "owl: folder is not empty")
    assert not (out / "fox").exists()  # checked before the first board is written
    assert cli("import", src, "--out", out, "--force").exit_code == 0
    assert Story.load(out / "owl" / "story.json").scenes[0].prompt == "an owl"
    assert (out / "owl" / "notes.txt").read_text() == "mine"  # --force replaces the board's files only


# --------------------------------------------------------------------------- drawing
def test_an_imported_folder_is_a_batch_drawn_on_previz(tmp_path):
    from autokose.batch import LocalPool, load_jobs, run_batch

    src = write(tmp_path / "consistory+.yaml", CONSISTORY)
    assert cli("import", src, "--out", tmp_path / "boards").exit_code == 0
    out = tmp_path / "renders"
    plan = load_jobs(tmp_path / "boards", out)
    for job in plan:
        job.config["exports"] = ["html"]  # the frames are what is checked here
    with LocalPool(out, plan) as pool:
        outcomes = run_batch(plan, out, pool)
    assert [o.status for o in outcomes] == ["done", "done"]
    for name, story in stories(tmp_path / "boards").items():
        drawn = Story.load(out / name / "story.json")
        assert drawn == story  # prompts, seeds and extra as imported
        assert len(list((out / name / "frames").glob("*.png"))) == len(story.scenes)


@pytest.mark.slow
def test_imported_boards_draw_on_a_model_with_their_prompts_and_seeds(store, tmp_path, monkeypatch):
    """A diffusion batch over imported boards: each frame is drawn from its prompt as written, its own
    seed and the neutral negative, and the score stage copes with a board that has no cast."""
    import tiny

    from autokose.batch import LocalPool, load_jobs, run_batch
    from autokose.render.diffusion.engine import DiffusionEngine

    src = write(tmp_path / "foxes.txt", "\n".join(FOXES))
    assert cli("import", src, "--out", tmp_path / "boards", "--seed", "9").exit_code == 0
    jobs = write(tmp_path / "jobs.jsonl", "\n".join(json.dumps(x) for x in [
        {"defaults": {"model": str(tiny.tiny_sd15(store)), "steps": 2, "width": 64, "height": 64,
                      "exports": ["html"]}},
        {"story": str(tmp_path / "boards" / "foxes")}]) + "\n")
    calls = []
    real = DiffusionEngine.denoise
    monkeypatch.setattr(DiffusionEngine, "denoise", lambda self, requests, *a, **kw:
                        calls.extend(requests) or real(self, requests, *a, **kw))
    plan = load_jobs(jobs, tmp_path / "renders")
    with LocalPool(tmp_path / "renders", plan) as pool:
        outcomes = run_batch(plan, tmp_path / "renders", pool)
    assert [o.status for o in outcomes] == ["done"], outcomes
    story = Story.load(tmp_path / "boards" / "foxes" / "story.json")
    assert sorted((r.prompt, r.seed) for r in calls) == sorted((s.prompt, s.seed) for s in story.scenes)
    assert all(r.negative.startswith(NEUTRAL_NEGATIVE) and "modern clothing" not in r.negative for r in calls)
    assert len(list((tmp_path / "renders" / "foxes" / "frames").glob("*.png"))) == 3
