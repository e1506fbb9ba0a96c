"""Score: does each character look like themselves in every frame, and does each frame follow its prompt?

    score_board(board, story, layouts, *, clip_model=None) -> dict
        writes scores.json (and scores_heatmap.png when a frame × frame matrix exists)
    IdentityScorer(story, root, clip_model=None)
        per-frame measurements; also the quality loop's default scorer (autokose.score.loop)

Metrics, each named with the model that produced it:

- face identity (dlib ResNet, `score.face`): the character's face in the frame against their
  reference centroid (a character card's `face_centroid`, else their reference images) and
  against their face in the board's other frames;
- CLIP-I (`score.clip`, a CLIP model the user names): the character's figure crop (its staged
  box) against their reference images and other frames. It is the fallback identity for
  stylised figures where no face is found (the previz puppets), reported as `clip-figure`;
- CLIP-T: the scene's prompt against the whole frame.

A character's identity is the first of: face vs reference (`face`), CLIP-I vs reference
(`clip-figure`), face vs other frames (`face-to-frames`), CLIP-I vs other frames
(`clip-figure-to-frames`). In the quality loop, "other frames" are the first candidates of the
board's other scenes (`IdentityScorer.anchor`).

scores.json:

    {"version": 1,
     "frames": {"01": {"identity": 0.71 | null, "status": "ok" | "low" | "none", "model": str | null,
                       "method": "face" | "face-to-frames" | "clip-figure" | "clip-figure-to-frames" | null,
                       "reason": str | null, "faces": int, "clip_t": float | null,
                       "characters": {"aldar": {"identity", "status", "method", "model", "distance",
                                                "face_to_reference", "face_to_frames", "clip_i",
                                                "clip_to_frames", "reason"}}}},
     "summary": {"protagonist", "frames", "frames_ok", "frames_low", "frames_none", "mean_identity",
                 "min_identity", "worst_frame", "protagonist_consistency", "face_model", "face_threshold",
                 "clip_model", "clip_t_mean", "note", "reason"},
     "matrix": {"character", "metric", "frames": ["01", ...], "values": [[...]]} | null}

A frame's identity is its worst-scoring character's; "low" means below the metric's
same-identity line (`face.LOW_IDENTITY`, `CLIP_LOW_IDENTITY`); "none" means nothing could be
measured, and `reason` says why. The summary's `reason` says in one line why no frame at all
was scored (null when one was); it is also logged as a warning.

`check_clip_model(spec)` (in `score.clip`) is the cheap check a run makes before writing
anything: a `--clip-model` that cannot be loaded is an InputError, not a skipped metric.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from autokose.board import HEATMAP_FILE, SCORES_FILE
from autokose.errors import InputError
from autokose.faces import face_distance
from autokose.images import Unreadable, open_rgb
from autokose.score.clip import Clip, check_clip_model, crop_box, load_clip
from autokose.score.face import (
    FACE_MODEL,
    LOW_IDENTITY,
    THRESHOLD,
    assign_faces,
    card_centroid,
    find_faces,
    identity_from_distance,
    reference_centroid,
)
from autokose.score.metrics import aggregate, heatmap, mean_off_diagonal, similarity_matrix

SCORES_VERSION = 1
# CLIP-I below this is "low". A heuristic, not calibrated on this project's data: CLIP image
# embeddings of one subject typically agree at ~0.8 (DreamBooth's CLIP-I), unrelated images ~0.5.
CLIP_LOW_IDENTITY = 0.7


@dataclass
class Reference:
    """What a character should look like: a face centroid and/or a mean CLIP image embedding."""

    face: np.ndarray | None = None
    clip: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Measure:
    """One character in one frame: raw embeddings and similarities to their reference."""

    face: np.ndarray | None = None  # dlib embedding of their face
    clip: np.ndarray | None = None  # CLIP embedding of their figure crop
    distance: float | None = None  # face distance to the reference centroid
    clip_i: float | None = None  # CLIP-I to the reference images
    reason: str | None = None


@dataclass
class FrameMeasure:
    characters: dict[str, Measure] = field(default_factory=dict)
    faces: int = 0
    clip_t: float | None = None
    reason: str | None = None  # why nothing could be measured at all


class IdentityScorer:
    """Measures characters in frames against their references (the loop calls it as a Scorer)."""

    def __init__(self, story, root: Path | str = ".", *, clip_model: str | None = None):
        from autokose.bible import Bible
        from autokose.cast import identity_assets
        from autokose.faces import available

        self.root = Path(root)
        self.clip, self.clip_note = load_clip(clip_model)
        self.face_note = None if available() else "face: skipped — dlib or face-recognition-models not installed"
        self.notes: list[str] = []
        try:  # story.json is the contract: its characters' cards and references
            self.assets = identity_assets(story, Bible(story.characters))
        except InputError as e:
            self.assets, self.notes = {}, [f"references: {e}"]
        self._references: dict[str, Reference] = {}
        self._board: dict[str, dict[int, Measure]] = {}  # character → scene → the loop's anchor frames
        self._cache: dict[tuple[int, str], FrameMeasure] = {}

    # -- references ------------------------------------------------------------
    def reference(self, cid: str) -> Reference:
        if cid not in self._references:
            self._references[cid] = self._build_reference(cid)
        return self._references[cid]

    def _build_reference(self, cid: str) -> Reference:
        asset = self.assets.get(cid)
        ref = Reference()
        if asset is None:
            return ref
        ref.face, problem = card_centroid(asset.card)
        ref.notes += [f"{cid}: {problem}"] if problem else []
        images = []
        for path in asset.references:
            image, problem = read_image(path if Path(path).exists() else self.root / path)
            if image is None:
                ref.notes.append(f"{cid}: reference {path}: {problem}")
            else:
                images.append(image)
        if ref.face is None and images and self.face_note is None:
            ref.face, found = reference_centroid(images)
            if found < len(images):
                ref.notes.append(f"{cid}: no face found in {len(images) - found} of {len(images)} reference images")
        if self.clip is not None and images:
            mean = self.clip.image_embeddings(images).mean(axis=0)
            ref.clip = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return ref

    # -- measuring -------------------------------------------------------------
    def measure(self, image: Image.Image, scene, layout) -> FrameMeasure:
        cast = list(scene.characters)
        out = FrameMeasure()
        if not cast:
            out.reason = "no characters in this scene"
            return out
        figures = {f.id: f for f in (layout.figures if layout is not None else [])}
        faces = find_faces(image, upsample=1) if self.face_note is None else []
        out.faces = len(faces)
        assigned = assign_faces(faces, cast, list(figures.values()), image.size)
        for cid in cast:
            ref, m = self.reference(cid), Measure()
            if cid in assigned:
                m.face = assigned[cid].embedding
                if ref.face is not None:
                    m.distance = face_distance(m.face, ref.face)
            if self.clip is not None:
                crop = _figure_crop(image, figures.get(cid), alone=len(cast) == 1)
                if crop is not None:
                    m.clip = self.clip.image_embeddings([crop])[0]
                    if ref.clip is not None:
                        m.clip_i = float(m.clip @ ref.clip)
            if m.face is None:
                why = self.face_note or (f"{len(faces)} face(s) found, none placed on this character"
                                          if faces else "no face found")
                m.reason = "; ".join([why] + ([self.clip_note] if self.clip is None else
                                              [] if m.clip is not None else ["no staged box to crop for CLIP"]))
            out.characters[cid] = m
        text = scene.prompt or scene.caption or scene.action
        if self.clip is not None and text:
            out.clip_t = round(self.clip.text_image_similarity(text, image), 4)
        return out

    # -- the quality loop's scorer ----------------------------------------------
    def anchor(self, frames: list) -> None:
        """Remember the board's first candidates: characters without references are scored against them.

        A frame is compared with the character in the *other* scenes only, so the candidate
        that was shown here gains nothing from being in the anchor.
        """
        self._board = {}
        for frame, scene, layout in frames:
            for cid, m in self._measure_frame(frame, scene, layout).characters.items():
                self._board.setdefault(cid, {})[scene.index] = m

    def __call__(self, frame, scene, layout) -> float | None:
        """The frame's worst character identity (see `character_score`); None when unmeasurable."""
        scores = []
        for cid, m in self._measure_frame(frame, scene, layout).characters.items():
            others = [o for index, o in self._board.get(cid, {}).items() if index != scene.index]
            scores.append(character_score(m, self.clip, others)["identity"])
        scores = [s for s in scores if s is not None]
        return min(scores) if scores else None

    def _measure_frame(self, frame, scene, layout) -> FrameMeasure:
        """`measure`, cached per scene and pixels: the loop asks about each first candidate twice."""
        key = (scene.index, hashlib.sha256(frame.image.tobytes()).hexdigest())
        if key not in self._cache:
            self._cache[key] = self.measure(frame.image, scene, layout)
        return self._cache[key]


def _figure_crop(image: Image.Image, figure, alone: bool):
    """The figure's staged box; the whole frame for a lone character that was not staged."""
    if figure is not None and figure.box[2] > figure.box[0] and figure.box[3] > figure.box[1]:
        return crop_box(image, figure.box)
    return image if alone else None


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def character_score(m: Measure, clip: Clip | None, others: list[Measure] = ()) -> dict:
    """Identity of one character in one frame, from the best evidence there is.

    In order: face against the reference, CLIP-I of the figure against the reference images,
    face against the character's other frames (`others`), CLIP-I against them.
    """
    face_peers = [identity_from_distance(face_distance(m.face, o.face)) for o in others
                  if m.face is not None and o.face is not None]
    clip_peers = [max(_cosine(m.clip, o.clip), 0.0) for o in others if m.clip is not None and o.clip is not None]
    entry = {
        "identity": None, "status": "none", "method": None, "model": None, "distance": _rounded(m.distance),
        "face_to_reference": _rounded(None if m.distance is None else identity_from_distance(m.distance)),
        "face_to_frames": _rounded(_mean(face_peers)),
        "clip_i": _rounded(None if m.clip_i is None else max(m.clip_i, 0.0)),
        "clip_to_frames": _rounded(_mean(clip_peers)),
        "reason": m.reason,
    }
    clip_name = f"clip:{clip.name}" if clip else "clip"
    for key, method, model, low in (("face_to_reference", "face", FACE_MODEL, LOW_IDENTITY),
                                    ("clip_i", "clip-figure", clip_name, CLIP_LOW_IDENTITY),
                                    ("face_to_frames", "face-to-frames", FACE_MODEL, LOW_IDENTITY),
                                    ("clip_to_frames", "clip-figure-to-frames", clip_name, CLIP_LOW_IDENTITY)):
        if entry[key] is not None:
            status = "ok" if entry[key] >= low else "low"
            entry.update(identity=entry[key], status=status, method=method, model=model)
            if m.face is None:
                entry["reason"] = "; ".join(filter(None, [m.reason, "fallback: CLIP on the figure's staged box"]))
            return entry
    if m.face is not None or m.clip is not None:
        nothing = "no reference and no other frame of this character to compare"
        entry["reason"] = "; ".join(filter(None, [m.reason, nothing]))
    return entry


def read_image(path: Path | str) -> tuple[Image.Image | None, str | None]:
    """(RGB image, upright per its EXIF orientation, None) or (None, why it cannot be read).

    The size is checked from the header before any pixel is decoded (the training set's
    limit), so a decompression bomb costs nothing; the reason names no library internals.
    """
    try:
        return open_rgb(path), None
    except Unreadable as e:
        return None, str(e)


def protagonist(story) -> str | None:
    """Aldar when he is in the story, else whoever appears in the most scenes."""
    from autokose.bible import PROTAGONIST

    counts = {c.id: sum(c.id in s.characters for s in story.scenes) for c in story.characters}
    if counts.get(PROTAGONIST):
        return PROTAGONIST
    best = max(counts, key=counts.get, default=None)
    return best if best is not None and counts[best] else None


def score_board(board, story, layouts, *, clip_model: str | None = None) -> dict:
    """Score every frame of `board`; write scores.json (+ heatmap) atomically and return the scores."""
    from autokose.fsio import save_image, write_json

    check_clip_model(clip_model)
    keys = [f"{s.index:02d}" for s in story.scenes]
    present = [board.frame_path(s.index).is_file() for s in story.scenes]
    if not any(present):
        raise InputError(f"{board.root}: no frames to score (frames/NN.png missing; render the board first)")
    scorer = IdentityScorer(story, board.root, clip_model=clip_model)
    by_index = {layout.index: layout for layout in layouts}
    measures: dict[str, FrameMeasure] = {}
    for key, scene in zip(keys, story.scenes):
        image, problem = read_image(board.frame_path(scene.index))
        if image is None:
            problem = "not rendered" if problem == "not found" else problem
            measures[key] = FrameMeasure(reason=f"frames/{key}.png: {problem}")
        else:
            measures[key] = scorer.measure(image, scene, by_index.get(scene.index))

    frames = {key: _frame_entry(key, measures, scorer.clip) for key in keys}
    hero = protagonist(story)
    matrix = _matrix(hero, story, measures)
    notes = scorer.notes + [n for c in story.characters for n in scorer.reference(c.id).notes]
    note = "; ".join(filter(None, [scorer.face_note, scorer.clip_note] + notes)) or None
    statuses = [f["status"] for f in frames.values()]
    clip_t = [f["clip_t"] for f in frames.values() if f["clip_t"] is not None]
    summary = {
        "protagonist": hero, "frames": len(frames), "frames_ok": statuses.count("ok"),
        "frames_low": statuses.count("low"), "frames_none": statuses.count("none"),
        **aggregate({k: f["identity"] for k, f in frames.items()}),
        "protagonist_consistency": mean_off_diagonal(matrix["values"]) if matrix else None,
        "face_model": FACE_MODEL, "face_threshold": THRESHOLD, "clip_model": scorer.clip.name if scorer.clip else None,
        "clip_t_mean": round(float(np.mean(clip_t)), 4) if clip_t else None, "note": note,
    }
    scores = {"version": SCORES_VERSION, "frames": frames, "summary": summary, "matrix": matrix}
    summary["reason"] = nothing_scored(board, story, frames, scorer)
    if summary["reason"]:
        logging.getLogger("autokose").warning(summary["reason"])
    heatmap_path = board.root / HEATMAP_FILE
    if matrix:
        subtitle = (f"dlib face identity, 0.5 = same-person line (distance {THRESHOLD})" if matrix["metric"] == "face"
                    else f"CLIP-I of the figure crops ({scorer.clip.name})")
        title = f"{hero}: identity, frame × frame"
        save_image(heatmap_path, heatmap(matrix["values"], matrix["frames"], title, subtitle))
    else:
        heatmap_path.unlink(missing_ok=True)  # a stale heatmap would describe other frames
    write_json(board.root / SCORES_FILE, scores)
    return scores


def nothing_scored(board, story, frames: dict, scorer: IdentityScorer) -> str | None:
    """Why no frame got an identity score, in one line; None when some frame did."""
    if any(f["identity"] is not None for f in frames.values()):
        return None
    if not any(s.characters for s in story.scenes):
        return "no scene has a character in it: nothing to score"
    previz = all(board.frame_path(s.index, "svg").is_file() for s in story.scenes
                 if board.frame_path(s.index).is_file())
    if scorer.clip is None:
        faces = "previz puppets have no faces" if previz else (
            "no faces were found" if scorer.face_note is None else "face scoring is not installed (dlib)")
        return f"{faces} and no --clip-model was given: nothing to score"
    return "no character could be measured in any frame (see each frame's reason): nothing to score"


def _frame_entry(key: str, measures: dict[str, FrameMeasure], clip: Clip | None) -> dict:
    fm = measures[key]
    characters = {}
    for cid, m in fm.characters.items():
        others = [o.characters[cid] for k, o in measures.items() if k != key and cid in o.characters]
        characters[cid] = character_score(m, clip, others)
    scored = {cid: c for cid, c in characters.items() if c["identity"] is not None}
    entry = {"identity": None, "status": "none", "model": None, "method": None, "reason": fm.reason,
             "faces": fm.faces, "clip_t": fm.clip_t, "characters": characters}
    unscored = {cid: c["reason"] for cid, c in characters.items() if c["identity"] is None}
    if unscored:
        # one reason when every unscored character shares it, else who and why
        same = len(set(unscored.values())) == 1 and len(unscored) == len(characters)
        entry["reason"] = next(iter(unscored.values())) if same else "; ".join(f"{c}: {r}" for c, r in unscored.items())
    if scored:
        w = scored[min(scored, key=lambda cid: scored[cid]["identity"])]
        entry.update(identity=w["identity"], status=w["status"], model=w["model"], method=w["method"],
                     reason=entry["reason"] or w["reason"])
    return entry


def _matrix(hero: str | None, story, measures: dict[str, FrameMeasure]) -> dict | None:
    """Frame × frame identity of the protagonist: face when two frames have one, else CLIP."""
    if hero is None:
        return None
    keys = [f"{s.index:02d}" for s in story.scenes if hero in s.characters]
    items = [measures[k].characters.get(hero) or Measure() for k in keys]
    if len(keys) < 2:
        return None
    if sum(m.face is not None for m in items) >= 2:
        metric = "face"

        def similarity(a, b):
            return None if a.face is None or b.face is None else identity_from_distance(face_distance(a.face, b.face))
    elif sum(m.clip is not None for m in items) >= 2:
        metric = "clip"

        def similarity(a, b):
            return None if a.clip is None or b.clip is None else max(_cosine(a.clip, b.clip), 0.0)
    else:
        return None
    return {"character": hero, "metric": metric, "frames": keys, "values": similarity_matrix(items, similarity)}
