"""The quality loop: draw K candidates per frame, score them, keep the best, re-roll the weak ones.

Candidate k of a scene is rendered with `candidate_seed(scene.seed, k)` (k = 0 is the scene's
own seed), so every candidate can be reproduced from story.json. Each is saved as
`candidates/NN_k.png` with a record beside it (`NN_k.json`: seed, score, the hash of what
decided its pixels) and listed in the manifest as `frames[NN].candidates`. A later run reuses a
candidate whose record still matches instead of rendering it again, so `--pick S=K` (keep
candidate K of scene S) and raising `--best-of` cost only what is new.

    --best-of K         candidates 0..K-1 for every frame; the best score is kept
    --min-identity T    frames whose best score is below T get one more candidate per round,
                        at most `reroll_budget` more per frame
    --pick S=K          keep candidate K of scene S whatever the scores

An ID swap (one character's face is another's, `autokose.score.swap`) is worse than any score:
with `reroll_on_swap` (the default) a candidate with a swap ranks below every candidate without
one, and a frame whose best candidate still has a swap is re-rolled like a frame below
`--min-identity`, within the same budget, whenever the loop scores (best-of-K or min-identity).

The default scorer (`autokose.score.IdentityScorer`) measures each character against their
references (card centroid, reference images) and, for characters without any, against the
character in the first candidates of the board's other scenes. A frame whose first candidate
cannot be scored (no face and no CLIP model, nobody in it, nothing to compare with) gets no
more candidates: there is nothing to choose by. When no frame can be, a warning says so: at
the start when that is known beforehand (previz puppets or no dlib, and no CLIP model), else
after the first round.

Candidates rendered in one renderer call share a batch. The diffusion renderer can couple the
frames of a batch (consistent self-attention), so a candidate re-rendered in a different batch
may differ slightly; the saved candidate files are what a pick reuses.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from autokose.board import frame_key
from autokose.errors import check_cancel
from autokose.fsio import save_image, sha256_file, sha256_text, write_json, write_text
from autokose.render import Frame
from autokose.staging import Layout
from autokose.story import Scene, Story

class QualitySettings(BaseModel):
    """The automatic quality loop: draw candidates, score them, keep the best."""

    model_config = ConfigDict(extra="forbid")

    best_of: int = Field(1, ge=1, le=16)
    min_identity: float | None = None
    reroll_budget: int = Field(4, ge=0, le=64)
    picks: dict[int, int] = Field(default_factory=dict, description="scene index → candidate to keep")
    clip_model: str | None = None
    reroll_on_swap: bool = Field(True, description="a candidate where one character's face is another's (an ID "
                                                   "swap) ranks below any without one and is re-rolled, within "
                                                   "reroll_budget, when the loop scores candidates")


# Higher is better; None when the frame cannot be scored. A scorer may also have
# `anchor(frames: list[tuple[Frame, Scene, Layout]])`: the loop calls it once with the first
# candidate of every frame before scoring any, so it can score against the rest of the board;
# and `frame_score(frame, scene, layout)`, which the loop then calls instead of the scorer: an
# object with `score` (as above) and `id_swaps` (a list, empty when none; see
# `autokose.score.FrameScore`), so one measurement gives both.
Scorer = Callable[[Frame, Scene, Layout], float | None]


def candidate_seed(seed: int, k: int) -> int:
    """The seed of candidate k of a scene whose seed is `seed`: k = 0 is the scene's own."""
    if k == 0:
        return seed
    return int.from_bytes(hashlib.sha256(f"autokose-candidate:{seed}:{k}".encode()).digest()[:4], "big")


@dataclass
class Candidate:
    k: int
    seed: int
    file: str  # relative to the board folder
    sha256: str
    key: str  # hash of the scene and render settings that decided the pixels
    score: float | None = None
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)
    id_swaps: list = field(default_factory=list)  # [{"character", "looks_like", "own", "other"}]

    def manifest(self) -> dict:
        return {"k": self.k, "seed": self.seed, "score": self.score, "file": self.file, "id_swaps": self.id_swaps}


def render_key(story: Story, scene: Scene, render_settings) -> str:
    """What decides a candidate's pixels besides its seed: the scene, its cast, style, settings (not the
    scene's `extra`, other tools' data that draws nothing)."""
    return sha256_text(json.dumps({
        "scene": scene.model_dump(mode="json", exclude={"extra"}), "style": story.style,
        "characters": [story.character(c).model_dump(mode="json") for c in scene.characters],
        "render": picture_settings(render_settings),
    }, sort_keys=True, ensure_ascii=False))


def picture_settings(render_settings) -> dict:
    """RenderSettings as they decide the pixels: the diffusion options given, less the speed settings
    that change no picture (`DiffusionSettings.picture`), so `--compile` on a resume keeps the frames drawn."""
    out = render_settings.model_dump(mode="json")
    if render_settings.diffusion is not None:
        out["diffusion"] = render_settings.diffusion.picture(given=True)
    return out


class QualityLoop:
    """Draws candidates round by round and keeps, per scene, every candidate and the best one."""

    def __init__(self, renderer, story: Story, layouts: list[Layout], board, render_settings, scorer: Scorer | None,
                 progress, cancel=None, *, avoid_swaps: bool = False):
        self.renderer, self.story, self.layouts, self.board = renderer, story, layouts, board
        self.scenes = {s.index: s for s in story.scenes}
        self.by_index = {layout.index: layout for layout in layouts}
        self.keys = {s.index: render_key(story, s, render_settings) for s in story.scenes}
        self.scorer, self.progress, self.cancel = scorer, progress, cancel or (lambda: False)
        self.avoid_swaps = avoid_swaps
        self.pool: dict[int, dict[int, Candidate]] = {}
        self.best: dict[int, tuple[Candidate, Frame]] = {}
        self.done, self.total = 0, 0

    def draw(self, wanted: dict[int, int], *, score: bool, anchor: bool = False) -> None:
        """Candidate `wanted[scene]` for each scene (reused from disk if unchanged, else rendered), then scored.

        `anchor`: first show the scorer the whole round (`scorer.anchor`, when it has one).
        """
        drawn, fresh = [], {}
        for index, k in wanted.items():
            reused = self._reuse(index, k)
            if reused is None:
                fresh[index] = k
            else:
                drawn.append(reused)
                self._tick()
        seeds = {i: candidate_seed(self.scenes[i].seed, k) for i, k in fresh.items()}
        t0 = time.perf_counter()
        for frame in self.renderer.render(self.story, self.layouts, sorted(fresh), seeds=seeds) if fresh else ():
            if frame.index not in fresh:
                continue
            drawn.append((self._save(frame, fresh.pop(frame.index), time.perf_counter() - t0), frame))
            self._tick()
            t0 = time.perf_counter()
        if fresh:
            raise RuntimeError(f"renderer returned no frame for scene(s) {sorted(fresh)}")
        if score and anchor and hasattr(self.scorer, "anchor"):  # this round plus the frames already kept (picks)
            board = [f for _, f in drawn] + [f for _, f in self.best.values()]
            self.scorer.anchor([(f, self.scenes[f.index], self.by_index.get(f.index)) for f in board])
        for cand, frame in sorted(drawn, key=lambda pair: pair[1].index):
            self._take(cand, frame, score=score)

    def _tick(self) -> None:
        self.done += 1
        self.progress("render", self.done, max(self.total, self.done))
        check_cancel(self.cancel)

    def _save(self, frame: Frame, k: int, seconds: float) -> Candidate:
        root = self.board.root
        path = save_image(self.board.candidate_path(frame.index, k), frame.image)
        if frame.svg is not None:
            write_text(self.board.candidate_path(frame.index, k, "svg"), frame.svg)
        return Candidate(k=k, seed=frame.seed, file=path.relative_to(root).as_posix(), sha256=sha256_file(path),
                         key=self.keys[frame.index], seconds=round(seconds, 4), meta=dict(frame.meta))

    def recorded(self, index: int, k: int) -> Candidate | None:
        """The record of a candidate on disk, when it matches this scene, its settings and seed."""
        root = self.board.root
        try:
            cand = Candidate(**json.loads(self.board.candidate_path(index, k, "json").read_text(encoding="utf-8")))
            if (cand.k, cand.key, cand.seed) != (k, self.keys[index], candidate_seed(self.scenes[index].seed, k)) \
                    or sha256_file(root / cand.file) != cand.sha256:
                return None
        except (OSError, ValueError, TypeError):  # missing, unreadable or foreign record
            return None
        return cand

    def history(self, index: int) -> list[Candidate]:
        """Every valid candidate of a scene, from this run and earlier ones, by k."""
        found = dict(self.pool.get(index, {}))  # this run's are known: no need to re-read and re-hash them
        for path in self.board.candidate_path(index, 0).parent.glob(f"{frame_key(index)}_*.json"):
            k = path.stem.split("_", 1)[1]
            if k.isdigit() and int(k) not in found and (cand := self.recorded(index, int(k))) is not None:
                found[cand.k] = cand
        return [found[k] for k in sorted(found)]

    def _reuse(self, index: int, k: int) -> tuple[Candidate, Frame] | None:
        root = self.board.root
        cand = self.recorded(index, k)
        if cand is None:
            return None
        try:
            with Image.open(root / cand.file) as im:
                image = im.convert("RGB")
        except OSError:
            return None
        svg = self.board.candidate_path(index, k, "svg")
        frame = Frame(index=index, image=image, seed=cand.seed, meta=dict(cand.meta),
                      svg=svg.read_text(encoding="utf-8") if svg.is_file() else None)
        return cand, frame

    def _take(self, cand: Candidate, frame: Frame, *, score: bool) -> None:
        index = frame.index
        if score and self.scorer is not None:
            value, cand.id_swaps = self._judge(frame, self.scenes[index], self.by_index.get(index))
            cand.score = None if value is None else round(float(value), 6)
        write_json(self.board.candidate_path(index, cand.k, "json"), asdict(cand))
        self.pool.setdefault(index, {})[cand.k] = cand
        if index not in self.best or _rank(cand, self.avoid_swaps) > _rank(self.best[index][0], self.avoid_swaps):
            self.best[index] = (cand, frame)

    def _judge(self, frame: Frame, scene: Scene, layout: Layout | None) -> tuple[float | None, list]:
        """(score, ID swaps) of one candidate: from `frame_score` when the scorer has it, in one measurement."""
        frame_score = getattr(self.scorer, "frame_score", None)
        if frame_score is None:
            return self.scorer(frame, scene, layout), []
        result = frame_score(frame, scene, layout)
        return result.score, list(result.id_swaps)

    def score_of(self, index: int) -> float | None:
        return self.best[index][0].score

    def swapped(self, index: int) -> bool:
        """The kept candidate has an ID swap (and swaps matter to this loop)."""
        return self.avoid_swaps and bool(self.best[index][0].id_swaps)


def _rank(cand: Candidate, avoid_swaps: bool = False) -> tuple:
    """No ID swap beats a swap (`avoid_swaps`: a known wrong face is worse than an unmeasured one), scored beats
    unscored, higher beats lower, the earlier candidate wins a tie."""
    clean = not (avoid_swaps and cand.id_swaps)
    return (clean, cand.score is not None, cand.score if cand.score is not None else 0.0, -cand.k)


def render_frames(renderer, story: Story, layouts: list[Layout], indices: list[int], board, quality: QualitySettings,
                  render_settings, progress, *, scorer: Scorer | None = None, record=None, cancel=None) -> dict:
    """Render `indices`, writing each frame as soon as it is chosen (so a killed run can resume).

    Returns the manifest's `frames` entries; `record(key, entry)` hears of each entry just
    before its frame is written. Without best-of-K, re-rolls or picks, each frame is written
    as the renderer yields it; with them, candidates go through the quality loop, and
    `scorer` defaults to `IdentityScorer` (face identity against references, CLIP fallback).
    `cancel()` returning True stops the run between frames (`Cancelled`).
    """
    cancel = cancel or (lambda: False)
    if quality.best_of == 1 and quality.min_identity is None and not any(i in indices for i in quality.picks):
        meta = {}
        t0 = time.perf_counter()
        for n, frame in enumerate(renderer.render(story, layouts, indices), 1):
            meta[frame_key(frame.index)] = board.write_frame(frame, time.perf_counter() - t0, record)
            progress("render", n, len(indices))
            check_cancel(cancel)
            t0 = time.perf_counter()
        return meta
    return _best_of(renderer, story, layouts, indices, board, quality, render_settings, progress,
                    scorer=scorer, record=record, cancel=cancel)


def _best_of(renderer, story, layouts, indices, board, quality, render_settings, progress, *, scorer, record,
             cancel) -> dict:
    picks = {i: k for i, k in quality.picks.items() if i in indices}
    auto = [i for i in indices if i not in picks]
    scoring = bool(auto) and (quality.best_of > 1 or quality.min_identity is not None)
    if scorer is None and scoring:
        from autokose.score import IdentityScorer

        scorer = IdentityScorer(story, board.root, clip_model=quality.clip_model)
    warned = scoring and _warn_nothing_to_score_by(renderer, scorer, quality)
    loop = QualityLoop(renderer, story, layouts, board, render_settings, scorer, progress, cancel,
                       avoid_swaps=quality.reroll_on_swap)
    loop.total = len(picks) + quality.best_of * len(auto)
    loop.draw(picks, score=False)
    active = auto
    for k in range(quality.best_of):
        loop.draw({i: k for i in active}, score=scoring, anchor=k == 0)
        if k == 0 and scoring:
            unscorable = [i for i in active if loop.score_of(i) is None]
            if unscorable == active and not warned:
                _warn(quality, "no frame's first candidate had a face or anything else to measure")
            loop.total -= (quality.best_of - 1) * len(unscorable)
            active = [i for i in active if i not in unscorable]
    rerolls = {i: 0 for i in auto}
    if scoring and (quality.min_identity is not None or quality.reroll_on_swap):
        for r in range(quality.reroll_budget):
            low = [i for i in auto if loop.score_of(i) is not None and (
                loop.swapped(i) or (quality.min_identity is not None and loop.score_of(i) < quality.min_identity))]
            if not low:
                break
            loop.total += len(low)
            loop.draw({i: quality.best_of + r for i in low}, score=True)
            for i in low:
                rerolls[i] += 1

    meta = {}
    for index in indices:
        cand, frame = loop.best[index]
        meta[frame_key(index)] = board.write_frame(frame, cand.seconds, record, extra=dict(
            candidates=[c.manifest() for c in loop.history(index)], kept=cand.k, score=cand.score,
            chosen=_why(index, cand, picks, scoring, quality.min_identity, rerolls.get(index, 0),
                        swaps_avoided=loop.avoid_swaps and any(c.id_swaps for c in loop.pool.get(index, {}).values())),
        ))
    return meta


def _warn_nothing_to_score_by(renderer, scorer, quality) -> bool:
    """Say at the start, when it is already known, that no candidate can be scored; True when said."""
    if getattr(scorer, "clip", True) is not None:  # a CLIP model, or a custom scorer: it may well score
        return False
    if getattr(renderer, "name", "") == "previz":
        why = "previz puppets have no faces"
    elif getattr(scorer, "face_note", None):
        why = "face scoring is not installed (dlib)"
    else:
        return False
    _warn(quality, f"{why} and no --clip-model was given")
    return True


def _warn(quality, why: str) -> None:
    options = " and ".join(filter(None, [f"--best-of {quality.best_of}" if quality.best_of > 1 else "",
                                         "--min-identity" if quality.min_identity is not None else ""]))
    logging.getLogger("autokose").warning(f"{options}: nothing to score candidates by ({why}); "
                                          "every frame keeps its first candidate")


def _why(index: int, cand: Candidate, picks: dict, scoring: bool, threshold: float | None, rerolls: int, *,
         swaps_avoided: bool = False) -> str:
    """Why this candidate was kept, in words, for the manifest.

    `swaps_avoided`: the loop ranked by ID swaps and some candidate of this run had one.
    """
    if index in picks:
        return f"picked: candidate {cand.k}"
    if not scoring:
        return "only candidate"
    if cand.score is None:
        return "unscored (nothing to measure against): kept candidate 0"
    text = "best score" + (" without an ID swap" if swaps_avoided and not cand.id_swaps else "")
    text += f" after {rerolls} re-roll(s)" if rerolls else ""
    if threshold is not None and cand.score < threshold:
        text += f"; still below --min-identity {threshold}"
    if swaps_avoided and cand.id_swaps:
        text += "; still an ID swap (" + ", ".join(f"{s['character']} looks like {s['looks_like']}"
                                                    for s in cand.id_swaps) + ")"
    return text
