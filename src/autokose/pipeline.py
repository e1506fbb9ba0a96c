"""The whole AutoKöse pipeline in one place: write → cast → stage → render → score → export.

Each stage is a module behind a small function; `RunConfig.stages` switches them on or off.
The board folder (see `autokose.board`) is what stages hand to each other, so any stage can
be re-run later from `story.json` and `manifest.json` alone.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from autokose.bible import load_bible
from autokose.board import Board
from autokose.cast import identity_assets
from autokose.config import STAGES, QualitySettings, RunConfig  # noqa: F401 (the pipeline's settings, used by callers)
from autokose.errors import InputError
from autokose.fsio import png_bytes, sha256_file, sha256_text, write_bytes, write_json, write_text
from autokose.render import check_renderer, get_renderer
from autokose.staging import stage_story
from autokose.story import Story

log = logging.getLogger("autokose")

# (stage name, units done, units total): the CLI turns this into rich progress bars.
Progress = Callable[[str, int, int], None]
# (frame key "NN", manifest entry): called just before the frame is written (see write_frame).
Record = Callable[[str, dict], None]


def run(cfg: RunConfig, out: Path, *, resume: bool = False, force: bool = False,
        story: Story | None = None, progress: Progress | None = None) -> Board:
    """Build (or extend) the board in `out`. `story` skips the writer (re-render from story.json).

    The run holds the board's lock throughout. Writing, casting and staging happen in memory
    and every model, LoRA, card and reference is checked before the first file is written, so
    a run that fails on bad settings leaves the folder as it was (and no folder it created).
    The manifest is saved after every frame: after kill -9, `--resume` finds every frame's entry.
    """
    progress = progress or (lambda stage, done, total: None)
    bible = load_bible(cfg.characters_file)
    board = Board(out)
    with board.claim(fresh=story is None and not (resume or force)):
        manifest = board.load_manifest() if (resume or story is not None) else {}
        _build(board, cfg, bible, manifest, story, resume=resume, force=force, progress=progress)
    return board


def _build(board: Board, cfg: RunConfig, bible, manifest: dict, story: Story | None, *, resume: bool,
           force: bool, progress: Progress) -> None:
    timings: dict[str, float] = manifest.setdefault("timings", {})

    def timed(stage: str, fn, *args, **kwargs):
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        timings[stage] = round(time.perf_counter() - t0, 4)
        return result

    # 1. write: logline → Story
    if story is None and resume and board.story_path.exists():
        story = board.load_story()
    if story is None:
        if "write" not in cfg.stages:
            raise InputError(f"{board.story_path}: no story to render and the write stage is off")
        from autokose.writers import get_writer

        writer = get_writer(cfg.writer, **cfg.writer_options)
        story = timed("write", writer.write, cfg.logline or "", scenes=cfg.scenes, seed=cfg.seed, bible=bible)

    cfg = _checked_picks(cfg, story)

    # 2. cast: identity assets (LoRA, references, cards) for the renderer
    assets = timed("cast", identity_assets, story, bible) if "cast" in cfg.stages else {}
    indices = _check_before_writing(board, cfg, story, assets, resume)

    # 3. stage: layouts (in memory); the first file is written after this
    layouts = timed("stage", stage_story, story, cfg.render.width / cfg.render.height)
    if force:
        board.clear()
    board.save_story(story)
    progress("write", 1, 1)
    manifest.update(command=cfg.model_dump(mode="json"), inputs=_input_hashes(cfg, story),
                    frames=board.frame_entries(story, manifest.get("frames", {})))
    board.save_manifest(manifest)
    if "stage" in cfg.stages:
        timed("control", write_controls, board, layouts, cfg.render.width, cfg.render.height, progress)

    # 4. render: frames (only those asked for, or those missing on --resume)
    if "render" in cfg.stages:
        renderer = get_renderer(cfg.render, assets=assets, progress=progress)

        def record(key: str, entry: dict) -> None:
            manifest["frames"][key] = entry
            board.save_manifest(manifest)

        timed("render", render_frames, renderer, story, layouts, indices, board, cfg, progress, record=record)
        board.save_manifest(manifest)

    # 5. score: identity and prompt adherence
    if "score" in cfg.stages and cfg.render.renderer != "previz":
        from autokose.score import score_board

        timed("score", score_board, board, story, layouts, clip_model=cfg.quality.clip_model)

    # 6. export: board.html, board.pdf, sheet.png
    if "export" in cfg.stages:
        from autokose.export import export_board

        timed("export", export_board, board, story, cfg.exports)
    board.save_manifest(manifest)


def _check_before_writing(board: Board, cfg: RunConfig, story: Story, assets: dict, resume: bool) -> list[int]:
    """Everything later stages could fail on, checked while the board is still untouched.

    Returns the frames to render: a frame that does not decode is drawn again on --resume,
    and refused when it would be kept and read by the score or export stage.
    """
    broken = board.unreadable_frames(story)
    indices = _frames_to_render(cfg, story, board, resume, broken) if "render" in cfg.stages else []
    kept_broken = [i for i in broken if i not in indices]
    if kept_broken and {"score", "export"} & set(cfg.stages):
        raise board.unreadable(kept_broken[0], broken[kept_broken[0]])
    if "render" in cfg.stages:
        check_renderer(cfg.render, assets)  # models, LoRAs, IP-Adapter, references
    rescored = "score" in cfg.stages and cfg.render.renderer != "previz"
    if "export" in cfg.stages and not rescored:
        from autokose.export import load_scores

        load_scores(board)  # the exports show the kept scores.json: a broken one fails here, not halfway
    if cfg.quality.clip_model and {"render", "score"} & set(cfg.stages):
        from autokose.score.clip import check_clip_model

        check_clip_model(cfg.quality.clip_model)
    return indices


def _checked_picks(cfg: RunConfig, story: Story) -> RunConfig:
    """--pick names scenes of the story. On previz, picks and story.json's LoRAs change nothing: say so."""
    bad = [i for i in cfg.quality.picks if not 1 <= i <= len(story.scenes)]
    if bad:
        raise InputError(f"--pick: no scene {bad[0]} (the story has scenes 1–{len(story.scenes)})")
    if cfg.render.renderer != "previz":
        return cfg
    for ch in story.characters:
        if ch.lora:
            log.warning("story.json gives %s the LoRA %s: the previz renderer draws no LoRA "
                        "(render with --model to use it)", ch.id, ch.lora)
    if not cfg.quality.picks:
        return cfg
    log.warning("--pick changes nothing on a previz board: previz frames are deterministic, there are no candidates")
    return cfg.model_copy(update={"quality": cfg.quality.model_copy(update={"picks": {}})})


def write_controls(board: Board, layouts, width: int, height: int, progress: Progress) -> None:
    """OpenPose JSON and skeleton image per frame, for ControlNet and for the record.

    Controls that came out as they were are left untouched, so `render --only 2` rewrites
    nothing but what scene 2's edit changed.
    """
    from autokose.openpose import draw_pose, pose_json

    for n, layout in enumerate(layouts, 1):
        write_json(board.pose_path(layout.index, "json"), pose_json(layout, width, height), only_if_changed=True)
        write_bytes(board.pose_path(layout.index, "png"), png_bytes(draw_pose(layout, width, height)),
                    only_if_changed=True)
        progress("stage", n, len(layouts))


def render_frames(renderer, story: Story, layouts, indices: list[int], board: Board,
                  cfg: RunConfig, progress: Progress, *, record: Record | None = None) -> dict:
    """Render `indices`, writing each frame as soon as it exists (so a killed run can resume).

    `record` hears of each frame as soon as it is written (the pipeline saves the manifest).
    Best-of-K, re-rolls and picks go through the quality loop (`autokose.score.loop`).
    """
    record = record or (lambda key, entry: None)
    q = cfg.quality
    if q.best_of > 1 or q.min_identity is not None or any(i in indices for i in q.picks):
        from autokose.score.loop import render_frames as quality_loop

        return quality_loop(renderer, story, layouts, indices, board, cfg, progress, record=record)
    meta = {}
    t0 = time.perf_counter()
    for n, frame in enumerate(renderer.render(story, layouts, indices), 1):
        meta[f"{frame.index:02d}"] = write_frame(board, frame, time.perf_counter() - t0, record)
        progress("render", n, len(indices))
        t0 = time.perf_counter()
    return meta


def write_frame(board: Board, frame, seconds: float, record: Record | None = None, extra: dict | None = None) -> dict:
    """Write frame NN (and its SVG) and return its manifest entry (plus `extra`), handed to `record` first.

    The entry is recorded before the PNG lands (its hash taken from the encoded bytes): a kill
    between the two leaves an entry without its frame, which --resume drops and draws again,
    never a frame whose seed, prompt and settings are lost.
    """
    if frame.svg is not None:
        write_text(board.frame_path(frame.index, "svg"), frame.svg)
    path = board.frame_path(frame.index)
    png = png_bytes(frame.image)
    entry = {"file": str(path.relative_to(board.root)), "seed": frame.seed,
             "sha256": hashlib.sha256(png).hexdigest(), "seconds": round(seconds, 4), **frame.meta, **(extra or {})}
    if record is not None:
        record(f"{frame.index:02d}", entry)
    write_bytes(path, png)
    return entry


def _frames_to_render(cfg: RunConfig, story: Story, board: Board, resume: bool, broken: dict[int, str]) -> list[int]:
    """--only's frames, or on --resume the missing ones and those that do not decode, or all."""
    indices = [s.index for s in story.scenes]
    if cfg.only:
        bad = [i for i in cfg.only if i not in indices]
        if bad:
            raise InputError(f"--only: no scene {bad[0]} (the story has scenes 1–{len(indices)})")
        return sorted(set(cfg.only))
    if not resume:
        return indices
    for index, why in broken.items():
        log.warning("%s: %s; drawing it again", board.frame_path(index), why)
    return sorted(set(board.missing_frames(story)) | set(broken))


def _input_hashes(cfg: RunConfig, story: Story) -> dict:
    hashes = {"logline_sha256": sha256_text(story.logline)}
    if cfg.characters_file and Path(cfg.characters_file).exists():
        hashes["characters_sha256"] = sha256_file(cfg.characters_file)
    return hashes
