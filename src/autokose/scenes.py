"""Edit a board's scene list (move, insert, delete, duplicate) without drawing anything again.

A storyboard is recut all the time: a panel moves up, one is added, one dropped. Scenes are
numbered 1..n in story.json and every per-scene file is named by that number (frames/03.png,
control/03_pose.json, candidates/03_1.png and their manifest, layout and score entries), so an
edit renumbers them all together (`Board.rearrange`, all or nothing, finished after a kill). A
moved or copied panel keeps its frame, seed and prompt; only an inserted scene has no frame yet,
and the command says how to draw it. The exports already on disk are written again, so the HTML,
PDF, animatic and timeline show the new order.

Each edit is a function Story → Edit (data in, data out); `edit_board` applies one to a board.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from autokose.board import Board, frame_key, layouts_document
from pydantic import ValidationError

from autokose.errors import InputError, format_validation_error
from autokose.fsio import json_text, read_json_object, sha256_text
from autokose.story import Scene, Story

log = logging.getLogger("autokose")


@dataclass
class Edit:
    """An edited story and where its scenes came from: new scene n is old scene `order[n-1]` (None: new)."""

    story: Story
    order: list[int | None]
    new: list[int] = field(default_factory=list)  # new scenes (no frame yet)


def scene_numbers(text: str) -> list[int]:
    """"3,5" as [3, 5]: `--only`, a node's `only`. Scenes the story lacks are the pipeline's to refuse."""
    try:
        values = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise InputError(f"expected scene numbers like 3,5 (got '{text}')") from None
    if not values:
        raise InputError("no scene numbers given")
    return values


def _check_index(story: Story, index: int, what: str = "scene") -> None:
    n = len(story.scenes)
    if not 1 <= index <= n:
        raise InputError(f"no {what} {index} (the story has scenes 1–{n})")


def _renumbered(story: Story, scenes: list[Scene], order: list[int | None]) -> Edit:
    """The story with `scenes` numbered 1..n (validated, so a story past the scene limit is refused)."""
    data = story.model_dump(mode="json")
    data["scenes"] = [dict(s.model_dump(mode="json"), index=n) for n, s in enumerate(scenes, 1)]
    try:
        edited = Story.model_validate(data)
    except ValidationError as e:
        raise InputError(f"story.json after the edit: {format_validation_error(e)}") from None
    return Edit(edited, order, [n for n, old in enumerate(order, 1) if old is None])


def move(story: Story, index: int, to: int) -> Edit:
    """Scene `index` moved to position `to`; the scenes between shift by one."""
    _check_index(story, index)
    _check_index(story, to, "position")
    order = [s.index for s in story.scenes]
    order.insert(to - 1, order.pop(index - 1))
    return _renumbered(story, [story.scenes[i - 1] for i in order], order)


def delete(story: Story, index: int) -> Edit:
    """Scene `index` removed with its files; later scenes move up one."""
    _check_index(story, index)
    if len(story.scenes) == 1:
        raise InputError("cannot delete the only scene of a story")
    order = [s.index for s in story.scenes if s.index != index]
    return _renumbered(story, [story.scenes[i - 1] for i in order], order)


def duplicate(story: Story, index: int) -> Edit:
    """A copy of scene `index` (frame, seed and all) right after it: the start of a variation."""
    _check_index(story, index)
    order = [s.index for s in story.scenes]
    order.insert(index, index)
    return _renumbered(story, [story.scenes[i - 1] for i in order], order)


def insert(story: Story, at: int, fields: dict) -> Edit:
    """A new scene at position `at` (1..n+1), from `fields` (Scene's: caption, shot, characters, ...).

    What is not given continues the scene before (setting, time of day, who is there), as a
    panel inserted into a sequence usually does; its prompt is built from the bible's words like
    a writer's, and its seed is new. It has no frame until it is rendered.
    """
    from autokose.prompting import negative_prompt, scene_prompt
    from autokose.writers.common import scene_seed

    n = len(story.scenes)
    if not 1 <= at <= n + 1:
        raise InputError(f"no position {at} (a scene goes in at 1–{n + 1})")
    before = story.scenes[at - 2] if at > 1 else story.scenes[0]
    given = {k: v for k, v in fields.items() if v is not None}
    base = {"beat": before.beat.value, "setting": before.setting, "time": before.time.value,
            "characters": list(before.characters)}
    unknown = [c for c in given.get("characters", []) if c not in {ch.id for ch in story.characters}]
    if unknown:
        raise InputError(f"--characters: '{unknown[0]}' is not in the story's cast "
                         f"({', '.join(c.id for c in story.characters)})")
    seeds = {s.seed for s in story.scenes}
    seed = next(scene_seed(sum(seeds) % 2**32, n + 1 + k) for k in range(1000)
                if scene_seed(sum(seeds) % 2**32, n + 1 + k) not in seeds)
    try:
        scene = Scene.model_validate({**base, **given, "index": at, "seed": seed})
    except ValidationError as e:
        raise InputError(f"new scene: {format_validation_error(e)}") from None
    cast = {cid: story.character(cid) for cid in scene.characters}
    scene.prompt = scene.prompt or scene_prompt(scene, cast, story.style)
    scene.negative_prompt = scene.negative_prompt or negative_prompt(scene, cast)
    order: list[int | None] = [s.index for s in story.scenes]
    order.insert(at - 1, None)
    scenes = [story.scenes[i - 1] if i is not None else scene for i in order]
    return _renumbered(story, scenes, order)


# -- applying an edit to a board --------------------------------------------------


def _moved(value, old: int, new: int):
    """`value` (a manifest or candidate record) with scene `old`'s file names as scene `new`'s."""
    text = json.dumps(value, ensure_ascii=False)
    for folder, sep in (("frames", "."), ("control", "_"), ("candidates", "_")):
        text = text.replace(f'"{folder}/{frame_key(old)}{sep}', f'"{folder}/{frame_key(new)}{sep}')
    return json.loads(text)


def edit_board(out: Path, edit, *, export: bool = True) -> tuple[Board, Edit, list[int]]:
    """Apply `edit` (Story → Edit) to the board in `out`; returns the board, the edit, and the scenes
    whose framing changed with their new neighbours (their frames are kept; re-render them to match).

    Everything is read and checked before the first write; the renumbering is one all-or-nothing
    step (Board.rearrange); then the controls of new scenes are written and the exports on disk
    are written again in the new order (`export=False` leaves them).
    """
    from autokose.config import RunConfig, saved
    from autokose.export import check_exports, export_board, formats_to_write
    from autokose.pipeline import stage, write_controls

    board = Board(out)
    if not board.story_path.exists():
        raise InputError(f"{board.root}: no story.json here (is it a board folder?)")
    with board.claim(fresh=False):
        story = board.load_story()
        done = edit(story)
        if done.story == story:  # e.g. a scene moved to where it is: nothing to write
            return board, done, []
        cfg = saved(board) or RunConfig()
        width, height = cfg.render.width, cfg.render.height
        manifest = board.load_manifest()
        exports = []
        for fmt in formats_to_write(board, []) if export else []:
            try:
                check_exports(board, done.story, [fmt], cfg.export)
                exports.append(fmt)
            except InputError as e:  # the edit is what was asked for; an export it cannot redo is kept and named
                log.warning("%s is left as it was, in the old order: %s", board.export_path(fmt).name, e)

        # layouts follow their scenes; a scene whose neighbours change its framing is staged anew
        kept = board.load_layouts()
        by_index = {lay.index: lay for lay in kept[0]} if kept else {}
        moved = {n: by_index[old].model_copy(update={"index": n}) for n, old in enumerate(done.order, 1)
                 if old is not None and old in by_index}
        if kept:
            width, height = kept[1], kept[2]
        layouts = stage(done.story, width / height, (list(moved.values()), width, height))
        restaged = [lay.index for lay in layouts if lay.index in moved and lay != moved[lay.index]]

        frames = manifest.get("frames", {})
        new_frames = {frame_key(n): _moved(frames[frame_key(old)], old, n) for n, old in enumerate(done.order, 1)
                      if old is not None and frame_key(old) in frames}
        story_text = done.story.to_json()
        documents = {"story.json": story_text,
                     "layouts.json": json_text(layouts_document(layouts, width, height))}
        if manifest:
            documents["manifest.json"] = json_text(board.manifest_document(
                {**manifest, "frames": new_frames}, sha256_text(story_text)))
        for n, old in enumerate(done.order, 1):
            for path in board.scene_files(old) if old is not None else []:
                if path.parent.name == "candidates" and path.suffix == ".json":
                    record = _moved(read_json_object(path, "candidate record"), old, n)
                    documents[f"candidates/{frame_key(n)}{path.name[len(frame_key(old)):]}"] = json_text(record)
        scores = None
        if board.scores_path.is_file():
            from autokose.export import load_scores
            from autokose.score.report import renumber_scores

            scores = renumber_scores(load_scores(board), [frame_key(o) if o else None for o in done.order])
            documents["scores.json"] = json_text(scores)

        board.rearrange(done.order, {k: v.encode("utf-8") for k, v in documents.items()})

        write_controls(board, layouts, width, height, lambda *a: None)
        if scores is not None:
            _heatmap(board, scores)
        if exports:
            export_board(board, done.story, exports, cfg.export)
    return board, done, restaged


def _heatmap(board: Board, scores: dict) -> None:
    """scores_heatmap.png for the renumbered matrix (none when fewer than two frames are left in it)."""
    from autokose.fsio import save_image
    from autokose.score.report import matrix_heatmap

    if scores.get("matrix"):
        save_image(board.heatmap_path, matrix_heatmap(scores["matrix"], scores["summary"].get("clip_model")))
    else:
        board.heatmap_path.unlink(missing_ok=True)
