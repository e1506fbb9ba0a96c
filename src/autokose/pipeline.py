"""The whole AutoKöse pipeline in one place: write → cast → stage → render → score → export.

Each stage is a module behind a small function; `RunConfig.stages` switches them on or off.
The board folder (see `autokose.board`) is what stages hand to each other, so any stage can
be re-run later from `story.json` and `manifest.json` alone.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from autokose.bible import load_bible
from autokose.board import Board
from autokose.cast import identity_assets
from autokose.config import STAGES, RunConfig
from autokose.errors import Cancelled, InputError, check_cancel
from autokose.fsio import png_bytes, sha256_file, sha256_text, write_bytes, write_json
from autokose.render import check_renderer, get_renderer
from autokose.render.quality import render_frames
from autokose.staging import Layout, layout_scene, staging_key
from autokose.story import Story

__all__ = ["STAGES", "Cancel", "Cancelled", "Progress", "RunConfig", "export", "run", "score"]

log = logging.getLogger("autokose")

# (stage name, units done, units total): the CLI turns this into rich progress bars.
Progress = Callable[[str, int, int], None]
# "Stop now?": asked between stages and between frames; True raises Cancelled (a server's stop button).
Cancel = Callable[[], bool]


def run(cfg: RunConfig, out: Path, *, resume: bool = False, force: bool = False, story: Story | None = None,
        progress: Progress | None = None, cancel: Cancel | None = None) -> Board:
    """Build (or extend) the board in `out`. `story` skips the writer (re-render from story.json).

    Every entry point (the CLI, and later the web API, ComfyUI nodes, Ray workers) builds `cfg`
    with `config.resolve` and calls this. `progress(stage, done, total)` hears of every unit of
    work; `cancel()` is asked between stages and frames, and a True stops the run with
    `Cancelled`, leaving the board as a kill would: every finished frame kept and recorded.

    The run holds the board's lock throughout. Writing, casting and staging happen in memory
    and every model, LoRA, card and reference is checked before the first file is written, so
    a run that fails on bad settings leaves the folder as it was (and no folder it created).
    The manifest is saved after every frame: after kill -9, `--resume` finds every frame's entry.
    """
    if resume and force:
        raise InputError("--resume and --force contradict each other; choose one")
    progress = progress or (lambda stage, done, total: None)
    bible = load_bible(cfg.characters_file)
    board = Board(out)
    with board.claim(fresh=story is None and not (resume or force)):
        manifest = board.load_manifest() if (resume or story is not None) else {}
        _build(board, cfg, bible, manifest, story, resume=resume, force=force, progress=progress, cancel=cancel)
    return board


def _build(board: Board, cfg: RunConfig, bible, manifest: dict, story: Story | None, *, resume: bool,
           force: bool, progress: Progress, cancel: Cancel | None) -> None:
    timings: dict[str, float] = manifest.setdefault("timings", {})

    def timed(stage: str, fn, *args, **kwargs):
        check_cancel(cancel)
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
        manifest["logline"] = logline_fidelity(story, story.logline, bible)

    cfg = _checked_picks(cfg, story)

    # 2. cast: identity assets (LoRA, references, cards) for the renderer
    assets = timed("cast", identity_assets, story, bible, board.root) if "cast" in cfg.stages else {}
    indices = _check_before_writing(board, cfg, story, assets, resume)

    # 3. stage: layouts (in memory); the first file is written after this
    width, height = cfg.render.width, cfg.render.height
    layouts = timed("stage", stage, story, width / height, None if force else board.load_layouts())
    check_cancel(cancel)
    if force:
        board.clear()
    board.save_story(story)
    board.save_layouts(layouts, width, height)
    progress("write", 1, 1)
    manifest.update(command=cfg.model_dump(mode="json"), inputs=_input_hashes(cfg, story),
                    frames=board.frame_entries(story, manifest.get("frames", {})))
    board.save_manifest(manifest)
    if "stage" in cfg.stages:
        timed("control", write_controls, board, layouts, width, height, progress)

    # 4. render: frames (only those asked for, or those missing on --resume)
    if "render" in cfg.stages:
        renderer = get_renderer(cfg.render, assets=assets, progress=progress, cancel=cancel)

        def record(key: str, entry: dict) -> None:
            manifest["frames"][key] = entry
            board.save_manifest(manifest)

        timed("render", render_frames, renderer, story, layouts, indices, board, cfg.quality, cfg.render, progress,
              record=record, cancel=cancel)
        board.save_manifest(manifest)

    # 5. score: identity and prompt adherence
    if "score" in cfg.stages and cfg.render.renderer != "previz":
        from autokose.score import score_board

        timed("score", score_board, board, story, layouts, clip_model=cfg.quality.clip_model)

    # 6. export: board.html, board.pdf, sheet.png, and the animatic, timeline, shot list asked for
    if "export" in cfg.stages:
        from autokose.export import export_board, formats_to_write

        timed("export", export_board, board, story, formats_to_write(board, cfg.exports), cfg.export, progress)
    board.save_manifest(manifest)


def _check_before_writing(board: Board, cfg: RunConfig, story: Story, assets: dict, resume: bool) -> list[int]:
    """Everything later stages could fail on, checked while the board is still untouched.

    Returns the frames to render: a frame that does not decode is drawn again on --resume,
    and refused when it would be kept and read by the score or export stage.
    """
    check_blocking(story, source=str(board.story_path))
    broken = board.unreadable_frames(story)
    indices = _frames_to_render(cfg, story, board, resume, broken) if "render" in cfg.stages else []
    kept_broken = [i for i in broken if i not in indices]
    if kept_broken and {"score", "export"} & set(cfg.stages):
        raise board.unreadable(kept_broken[0], broken[kept_broken[0]])
    if "render" in cfg.stages:
        check_renderer(cfg.render, assets)  # models, LoRAs, IP-Adapter, references
    rescored = "score" in cfg.stages and cfg.render.renderer != "previz"
    if "export" in cfg.stages:
        from autokose.export import check_exports, formats_to_write, load_scores

        check_exports(board, story, formats_to_write(board, cfg.exports), cfg.export)  # libraries, sound files
        if not rescored:
            load_scores(board)  # the exports show the kept scores.json: a broken one fails here, not halfway
    if cfg.quality.clip_model and {"render", "score"} & set(cfg.stages):
        from autokose.score.clip import check_clip_model

        check_clip_model(cfg.quality.clip_model)
    return indices


def check_blocking(story: Story, source: str = "story.json") -> None:
    """Every blocking emotion is one the word table knows (poses are checked by story.Blocking).

    The emotion list lives in the word table, above story's floor, so this check runs here, for
    the writers' stories and hand-written story.json alike: an unknown word used to become a
    neutral face without a word.
    """
    from autokose.vocabulary import table

    emotions = table().emotions
    for n, scene in enumerate(story.scenes):
        for cid, direction in scene.blocking.items():
            if direction.emotion.strip().lower() not in emotions:
                raise InputError(f"{source}: scenes[{n}].blocking.{cid}.emotion: unknown emotion "
                                 f"{direction.emotion!r} (emotions: {', '.join(emotions)})")


def logline_fidelity(story: Story, logline: str, bible) -> dict:
    """What the logline names and what of it the story leaves out: one warning per missing element,
    and the manifest's `logline` record ({"elements": [...], "missing": [...]}), so nothing the
    user named is dropped without a word, whichever writer wrote the story."""
    from autokose.writers.fidelity import logline_elements, unused_elements

    elements = logline_elements(logline, bible)
    missing = unused_elements(story, elements)
    for element in missing:
        log.warning("logline names %s (%s); the story does not use it", element.words, element.kind)

    def record(e) -> dict:
        return {"kind": e.kind, "key": e.key, "words": e.words}

    return {"elements": [record(e) for e in elements], "missing": [record(e) for e in missing]}


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


def stage(story: Story, aspect: float, saved: tuple[list[Layout], int, int] | None = None) -> list[Layout]:
    """Every scene's layout for frames of `aspect`: the saved one (layouts.json, perhaps moved
    by hand) while its scene is unchanged and the frame shape the same, else staged anew."""
    kept = {}
    if saved is not None:
        layouts, width, height = saved
        if abs(width / height - aspect) < 1e-3:
            kept = {lay.index: lay for lay in layouts}
    out = []
    for scene in story.scenes:
        old = kept.get(scene.index)
        fresh = old is None or old.source != staging_key(story, scene)
        out.append(layout_scene(story, scene, aspect) if fresh else old)
    return out


def board_layouts(board: Board, story: Story, width: int, height: int) -> list[Layout]:
    """The layouts a board's frames were drawn from (layouts.json), staged anew where missing or stale."""
    return stage(story, width / height, board.load_layouts())


def score(out: Path, *, clip_model: str | None = None, progress: Progress | None = None,
          cancel: Cancel | None = None) -> dict:
    """Score the frames of an existing board (scores.json, heatmap) and refresh board.html's badges.

    Locked, checked and tidied like any run; the frames are scored against the layouts they
    were drawn from. Returns scores.json's content.
    """
    from autokose.config import saved
    from autokose.export import export_board
    from autokose.score import score_board

    board = Board(out)
    if not board.story_path.exists():
        raise InputError(f"{board.root}: no story.json here (is it a board folder?)")
    with board.claim(fresh=False):
        story = board.load_story()
        board.check_frames(story)
        size = (saved(board) or RunConfig()).render
        layouts = board_layouts(board, story, size.width, size.height)
        check_cancel(cancel)
        scores = score_board(board, story, layouts, clip_model=clip_model)
        (progress or (lambda *a: None))("score", 1, 1)
        export_board(board, story, ["html"])
    return scores


def export(out: Path, overrides: dict, *, progress: Progress | None = None, cancel: Cancel | None = None
           ) -> dict[str, Path]:
    """Write a board's exports (`overrides`: `exports`, the formats, and ExportSettings' options), and
    every other export the board already holds, so that none is left stale (`export.formats_to_write`).

    The settings are the board's saved ones with `overrides` on top (`config.resolve`, as for a
    run), and are saved back into manifest.json, so the next export, or a render run's export
    stage, makes the same animatic and timeline. Everything is checked before the first file is
    written. Returns format → file.
    """
    from autokose.config import resolve, saved
    from autokose.export import export_board, formats_to_write

    board = Board(out)
    if not board.story_path.exists():
        raise InputError(f"{board.root}: no story.json here (is it a board folder?)")
    with board.claim(fresh=False):
        story = board.load_story()
        cfg = resolve(saved(board), overrides, announce=False)
        board.check_frames(story)
        check_cancel(cancel)
        written = export_board(board, story, formats_to_write(board, cfg.exports), cfg.export, progress)
        manifest = board.load_manifest()
        if manifest.get("command"):
            manifest["command"]["export"] = cfg.export.model_dump(mode="json")
            board.save_manifest(manifest)
    return written


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
