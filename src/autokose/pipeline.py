"""The whole AutoKöse pipeline in one place: write → cast → stage → render → score → export.

Each stage is a module behind a small function; `RunConfig.stages` switches them on or off.
The board folder (see `autokose.board`) is what stages hand to each other, so any stage can
be re-run later from `story.json` and `manifest.json` alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from autokose.bible import load_bible
from autokose.board import Board
from autokose.cast import identity_assets
from autokose.errors import InputError
from autokose.fsio import save_image, sha256_file, sha256_text, write_json, write_text
from autokose.render import RenderSettings, check_renderer, get_renderer
from autokose.staging import stage_story
from autokose.story import MAX_SCENES, Story

STAGES = ("write", "cast", "stage", "render", "score", "export")

# (stage name, units done, units total): the CLI turns this into rich progress bars.
Progress = Callable[[str, int, int], None]


class QualitySettings(BaseModel):
    """The automatic quality loop: draw candidates, score them, keep the best."""

    model_config = ConfigDict(extra="forbid")

    best_of: int = Field(1, ge=1, le=16)
    min_identity: float | None = None
    reroll_budget: int = Field(4, ge=0, le=64)
    picks: dict[int, int] = Field(default_factory=dict, description="scene index → candidate to keep")
    clip_model: str | None = None


class RunConfig(BaseModel):
    """Every parameter of a run; written to manifest.json so the board can be rebuilt."""

    model_config = ConfigDict(extra="forbid")

    logline: str | None = None
    scenes: int = Field(8, ge=1, le=MAX_SCENES)
    seed: int = Field(0, ge=0, lt=2**32)
    writer: str = "offline"
    writer_options: dict = Field(default_factory=dict)
    characters_file: str | None = None
    render: RenderSettings = Field(default_factory=RenderSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    stages: list[str] = Field(default_factory=lambda: list(STAGES))
    only: list[int] | None = None
    exports: list[str] = Field(default_factory=lambda: ["html", "pdf", "sheet"])


def run(cfg: RunConfig, out: Path, *, resume: bool = False, force: bool = False,
        story: Story | None = None, progress: Progress | None = None) -> Board:
    """Build (or extend) the board in `out`. `story` skips the writer (re-render from story.json)."""
    progress = progress or (lambda stage, done, total: None)
    unknown = set(cfg.stages) - set(STAGES)
    if unknown:
        raise InputError(f"unknown stage(s): {', '.join(sorted(unknown))} (stages: {', '.join(STAGES)})")
    board = Board(out)
    if "render" in cfg.stages:
        check_renderer(cfg.render)  # a missing model fails here, before any file is written
    if story is None:
        board.prepare(resume=resume, force=force)
    manifest = board.load_manifest() if (resume or story is not None) else {}
    timings: dict[str, float] = manifest.get("timings", {})
    bible = load_bible(cfg.characters_file)

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
    board.save_story(story)
    progress("write", 1, 1)

    # 2. cast: identity assets (LoRA, references, cards) for the renderer
    assets = timed("cast", identity_assets, story, bible) if "cast" in cfg.stages else {}

    # 3. stage: layouts and OpenPose controls
    layouts = timed("stage", stage_story, story, cfg.render.width / cfg.render.height)
    if "stage" in cfg.stages:
        timed("control", write_controls, board, layouts, cfg.render.width, cfg.render.height, progress)

    # 4. render: frames (only those asked for, or those missing on --resume)
    frames_meta: dict = manifest.get("frames", {})
    if "render" in cfg.stages:
        indices = _frames_to_render(cfg, story, board, resume)
        renderer = get_renderer(cfg.render, assets=assets, progress=progress)
        frames_meta.update(timed("render", render_frames, renderer, story, layouts, indices, board, cfg, progress))

    manifest.update(
        command=cfg.model_dump(mode="json"),
        inputs=_input_hashes(cfg, story),
        frames=frames_meta,
        timings=timings,
    )
    board.save_manifest(manifest)

    # 5. score: identity and prompt adherence
    if "score" in cfg.stages and cfg.render.renderer != "previz":
        from autokose.score import score_board

        timed("score", score_board, board, story, layouts, clip_model=cfg.quality.clip_model)

    # 6. export: board.html, board.pdf, sheet.png
    if "export" in cfg.stages:
        from autokose.export import export_board

        timed("export", export_board, board, story, cfg.exports)
    board.save_manifest({**manifest, "timings": timings})
    return board


def write_controls(board: Board, layouts, width: int, height: int, progress: Progress) -> None:
    """OpenPose JSON and skeleton image per frame, for ControlNet and for the record."""
    from autokose.openpose import draw_pose, pose_json

    for n, layout in enumerate(layouts, 1):
        write_json(board.pose_path(layout.index, "json"), pose_json(layout, width, height))
        save_image(board.pose_path(layout.index, "png"), draw_pose(layout, width, height))
        progress("stage", n, len(layouts))


def render_frames(renderer, story: Story, layouts, indices: list[int], board: Board,
                  cfg: RunConfig, progress: Progress) -> dict:
    """Render `indices`, writing each frame as soon as it exists (so a killed run can resume).

    Best-of-K, re-rolls and picks go through the quality loop (`autokose.score.loop`).
    """
    q = cfg.quality
    if q.best_of > 1 or q.min_identity is not None or any(i in indices for i in q.picks):
        from autokose.score.loop import render_frames as quality_loop

        return quality_loop(renderer, story, layouts, indices, board, cfg, progress)
    meta = {}
    t0 = time.perf_counter()
    for n, frame in enumerate(renderer.render(story, layouts, indices), 1):
        meta[f"{frame.index:02d}"] = write_frame(board, frame, time.perf_counter() - t0)
        progress("render", n, len(indices))
        t0 = time.perf_counter()
    return meta


def write_frame(board: Board, frame, seconds: float) -> dict:
    if frame.svg is not None:
        write_text(board.frame_path(frame.index, "svg"), frame.svg)
    path = save_image(board.frame_path(frame.index), frame.image)
    return {"file": str(path.relative_to(board.root)), "seed": frame.seed, "sha256": sha256_file(path),
            "seconds": round(seconds, 4), **frame.meta}


def _frames_to_render(cfg: RunConfig, story: Story, board: Board, resume: bool) -> list[int]:
    indices = [s.index for s in story.scenes]
    if cfg.only:
        bad = [i for i in cfg.only if i not in indices]
        if bad:
            raise InputError(f"--only: no scene {bad[0]} (the story has scenes 1–{len(indices)})")
        return sorted(set(cfg.only))
    return board.missing_frames(story) if resume else indices


def _input_hashes(cfg: RunConfig, story: Story) -> dict:
    hashes = {"logline_sha256": sha256_text(story.logline)}
    if cfg.characters_file and Path(cfg.characters_file).exists():
        hashes["characters_sha256"] = sha256_file(cfg.characters_file)
    return hashes
