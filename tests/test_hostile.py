"""Hostile inputs across the whole CLI (issue 8, section 5): each ends in one clear error line
with exit 2 and the folder untouched, or in a complete, valid board. Never a traceback.

The cases are tables in tests/hostile/cases.py; tests/hostile/harness.py says what "clean"
means. All run in-process through typer's CliRunner; a representative subset also runs
through the real console script, so the stderr a user sees is checked too. Slow: cases that
need the tiny SD models or a tiny training run, the console-script runs, and the successful
board runs beyond a sample per category (FAST_BOARDS).
`benchmarks/reliability_report.py` runs the same cases and prints docs/RELIABILITY.md's table.
"""

from __future__ import annotations

import json
import shutil

import pytest

from hostile.cases import CASES
from hostile.harness import Env, execute

BY_ID = {case.id: case for case in CASES}

# Through the real console script: one or more of every kind of failure a user can meet.
SUBPROCESS = [
    # (argv cannot carry NUL, nor one argument over 128 kB: those loglines run in-process only)
    "logline-empty", "logline-invalid_utf8", "logline-c0_controls", "logline-markup_close", "logline-limit_plus_one",
    "markup-story_out-close", "markup-story_writer-close", "markup-story_stages-bold", "markup-story_lora_weight-emoji",
    "markup-characters_bad_id-close", "numbers-story--scenes=abc", "numbers-story--width=0",
    "options-unknown_option", "options-unknown_command", "replaced-frames_file-render",
    "corrupt-story_deep", "corrupt-story_lone_surrogate_raw", "corrupt-manifest_garbage-render",
    "images-frame-score-bomb_png_50000", "symlinks-frames_dir_render", "outputs-under_file",
    "pickles-story--model-ckpt", "cards-show-wrong_types",
]


# A successful run draws a whole board (about a second); the fast run keeps these few of them,
# one or more per category, and every case that ends in an error or prints (milliseconds each).
FAST_BOARDS = {
    "logline-invalid_utf8", "logline-nul_inside", "logline-markup_close", "logline-html_script",
    "markup-story_out-close", "markup-story_writer-bold", "markup-render_only-close",
    "corrupt-story_title_script", "corrupt-story_lone_surrogate_escape", "corrupt-scores_script-render",
    "corrupt-manifest_garbage-render", "images-reference-bomb_png_50000", "images-frame-resume-truncated_png",
    "symlinks-frames_dir_render", "symlinks-frame_render_only", "symlinks-out_dotdot", "outputs-deep_missing_parents",
    "replaced-frames_file-render", "replaced-board_html_dir-render", "cards-story-wrong_types",
    "cards-bible_story-yaml_bomb",
}


def _slow(case) -> bool:
    return case.heavy or (case.ok == "board" and case.id not in FAST_BOARDS)


def _param(case):
    return pytest.param(case, id=case.id, marks=[pytest.mark.slow] if _slow(case) else [])


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> Env:
    return Env(tmp_path_factory.mktemp("hostile"))


def test_there_are_at_least_200_cases_in_every_category():
    assert len(CASES) >= 200
    assert len(BY_ID) == len(CASES)
    assert set(SUBPROCESS) <= set(BY_ID) and FAST_BOARDS <= set(BY_ID)
    assert sum(not _slow(c) for c in CASES) >= 200
    for category in {c.category for c in CASES}:
        assert sum(c.category == category for c in CASES) >= 5, category


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_hostile_input_in_process(case, env):
    verdict, detail = execute(case, env)
    assert verdict != "FAIL", detail


@pytest.mark.slow
@pytest.mark.parametrize("case_id", SUBPROCESS)
def test_hostile_input_through_the_console_script(case_id, env):
    verdict, detail = execute(BY_ID[case_id], env, subprocess_run=True)
    assert verdict != "FAIL", detail


def test_the_harness_catches_what_it_is_for(env, tmp_path):
    """Plant each kind of failure by hand: the judge must call every one a failure."""
    from hostile.harness import Case, Ctx, Result, judge, snapshot

    case = Case(id="planted", category="x", build=lambda ctx: [])
    ctx = Ctx(env, tmp_path)
    before = snapshot(tmp_path)
    assert judge(case, ctx, Result(1, "", "Traceback (most recent call last):\n"), before)[0] == "FAIL"
    assert judge(case, ctx, Result(2, "", "error: one\nerror: two\n"), before)[0] == "FAIL"
    assert judge(case, ctx, Result(2, "", "Usage: autokose\n"), before)[0] == "FAIL"
    assert judge(case, ctx, Result(0, "", "", ValueError("boom")), before)[0] == "FAIL"
    assert judge(case, ctx, Result(2, "", "error: fine\n"), before)[0] == "error"
    (tmp_path / "out").mkdir()  # a refused run that left a folder behind
    assert judge(case, ctx, Result(2, "", "error: fine\n"), before)[0] == "FAIL"
    assert judge(case, ctx, Result(0, "board written", ""), before)[0] == "FAIL"  # no story.json: not a board
    env.marker.write_text("")
    assert "pickle" in judge(case, ctx, Result(2, "", "error: fine\n"), snapshot(tmp_path))[1]
    assert not env.marker.exists()
    never = Case(id="p2", category="x", build=lambda ctx: [], ok="never", echo="[/x]")
    assert judge(never, ctx, Result(0, "", ""), snapshot(tmp_path))[0] == "FAIL"
    assert judge(never, ctx, Result(2, "", "error: bad \n"), snapshot(tmp_path))[0] == "FAIL"  # markup eaten


def test_the_board_check_catches_half_made_boards(env, tmp_path):
    """A copy of a good board passes; each planted defect of a finished run is caught."""
    from hostile.harness import Case, Ctx, Result, judge, snapshot

    case = Case(id="planted", category="x", build=lambda ctx: [])
    ctx = Ctx(env, tmp_path)
    before = snapshot(tmp_path)
    done = Result(0, "board written", "")

    def verdict() -> str:
        return judge(case, ctx, done, before)[1]

    board = ctx.board()
    assert judge(case, ctx, done, before)[0] == "ok"
    manifest = json.loads((board / "manifest.json").read_text())
    frame, temp = board / "frames" / "02.png", board / "frames" / ".02.abc.png"
    one_frame = {**manifest, "frames": {"01": manifest["frames"]["01"]}}
    for planted, undo, needle in [
        (lambda: temp.write_bytes(b""), lambda: temp.unlink(), "temp files"),
        (lambda: frame.write_bytes(frame.read_bytes()[:100]), None, "not a picture"),
        (lambda: (board / "manifest.json").write_text(json.dumps(one_frame)), None, "does not list frame 02"),
        (lambda: (board / "story.json").write_text("{"), None, "story.json"),
        (lambda: (tmp_path / "stray.txt").write_text("x"), None, "outside"),
    ]:
        planted()
        assert needle in verdict()
        if undo:
            undo()
        else:
            shutil.rmtree(board)
            (tmp_path / "stray.txt").unlink(missing_ok=True)
            board = ctx.board()
