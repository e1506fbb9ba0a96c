"""A board's scores.json and heatmap, from the identity measurements of every frame (see `autokose.score`)."""


from __future__ import annotations

import logging

import numpy as np

from autokose.board import frame_key
from autokose.errors import InputError
from autokose.faces import face_distance
from autokose.score.clip import Clip, check_clip_model
from autokose.score.face import (
    FACE_MODEL,
    THRESHOLD,
    identity_from_distance,
)
from autokose.score.identity import FrameMeasure, IdentityScorer, Measure, character_score, cosine, read_image
from autokose.score.metrics import aggregate, heatmap, mean_off_diagonal, similarity_matrix
from autokose.score.swap import SWAP_MARGIN, swap_rate

SCORES_VERSION = 1


def protagonist(story) -> str | None:
    """The lead story.json names (`protagonist`, from the characters file), else Aldar, when in a scene;
    else whoever appears in the most scenes."""
    from autokose.bible import PROTAGONIST

    counts = {c.id: sum(c.id in s.characters for s in story.scenes) for c in story.characters}
    for lead in (story.protagonist, PROTAGONIST):
        if counts.get(lead):
            return lead
    best = max(counts, key=counts.get, default=None)
    return best if best is not None and counts[best] else None


def score_board(board, story, layouts, *, clip_model: str | None = None) -> dict:
    """Score every frame of `board`; write scores.json (+ heatmap) atomically and return the scores."""
    from autokose.fsio import save_image, write_json

    check_clip_model(clip_model)
    keys = [frame_key(s.index) for s in story.scenes]
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
            name = board.frame_path(scene.index).relative_to(board.root).as_posix()
            measures[key] = FrameMeasure(reason=f"{name}: {problem}")
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
        **swap_rate([fm.face_distances() for fm in measures.values()]),
        "id_swap_margin": SWAP_MARGIN,
    }
    scores = {"version": SCORES_VERSION, "frames": frames, "summary": summary, "matrix": matrix}
    summary["reason"] = nothing_scored(board, story, frames, scorer)
    if summary["reason"]:
        logging.getLogger("autokose").warning(summary["reason"])
    heatmap_path = board.heatmap_path
    if matrix:
        save_image(heatmap_path, matrix_heatmap(matrix, scorer.clip.name if scorer.clip else None))
    else:
        heatmap_path.unlink(missing_ok=True)  # a stale heatmap would describe other frames
    write_json(board.scores_path, scores)
    return scores


def matrix_heatmap(matrix: dict, clip_name: str | None):
    """scores_heatmap.png's picture of the protagonist's frame × frame matrix."""
    subtitle = (f"dlib face identity, 0.5 = same-person line (distance {THRESHOLD})" if matrix["metric"] == "face"
                else f"CLIP-I of the figure crops ({clip_name})")
    return heatmap(matrix["values"], matrix["frames"], f"{matrix['character']}: identity, frame × frame", subtitle)


def renumber_scores(scores: dict, order: list[str | None]) -> dict:
    """scores.json after a scene edit: new scene n has the scores of old frame `order[n-1]` (None: a new
    scene, not scored yet). Frame entries and the protagonist's matrix follow their frames (a copied
    frame is copied, a deleted one dropped) and the board's summary is counted again from them; the
    swap counts stay those of the scoring run (they need the measurements, not kept in scores.json).
    """
    new_keys = [frame_key(n) for n in range(1, len(order) + 1)]
    old_frames = scores.get("frames", {})
    frames = {new: old_frames[old] for new, old in zip(new_keys, order) if old is not None and old in old_frames}
    matrix = scores.get("matrix")
    if matrix:
        pos = {key: i for i, key in enumerate(matrix["frames"])}
        rows = [(new, pos[old]) for new, old in zip(new_keys, order) if old is not None and old in pos]
        matrix = {**matrix, "frames": [new for new, _ in rows],
                  "values": [[matrix["values"][i][j] for _, j in rows] for _, i in rows]} if len(rows) >= 2 else None
    statuses = [f.get("status") for f in frames.values()]
    summary = {**scores.get("summary", {}), "frames": len(order), "frames_ok": statuses.count("ok"),
               "frames_low": statuses.count("low"), "frames_none": len(order) - statuses.count("ok")
               - statuses.count("low"),
               **aggregate({k: f.get("identity") for k, f in frames.items()}),
               "protagonist_consistency": mean_off_diagonal(matrix["values"]) if matrix else None}
    return {**scores, "frames": frames, "summary": summary, "matrix": matrix}


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
             "faces": fm.faces, "clip_t": fm.clip_t, "characters": characters, "id_swaps": fm.id_swaps()}
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
    keys = [frame_key(s.index) for s in story.scenes if hero in s.characters]
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
            return None if a.clip is None or b.clip is None else max(cosine(a.clip, b.clip), 0.0)
    else:
        return None
    return {"character": hero, "metric": metric, "frames": keys, "values": similarity_matrix(items, similarity)}
