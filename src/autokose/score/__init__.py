"""Score: does each character look like themselves in every frame, and does each frame follow its prompt?

    score_board(board, story, layouts, *, clip_model=None) -> dict
        writes scores.json (and scores_heatmap.png when a frame × frame matrix exists)
    IdentityScorer(story, root, clip_model=None)
        per-frame measurements; also the quality loop's default scorer (autokose.render.quality):
        `scorer(frame, scene, layout)` is the score, `scorer.frame_score(...)` a FrameScore
        (score + ID swaps) from the same measurement

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
                                                "face_box": [l, t, r, b] | null,
                                                "distance_to_others": {"bai": 0.81, ...},
                                                "looks_like": "bai" | null,
                                                "face_to_reference", "face_to_frames", "clip_i",
                                                "clip_to_frames", "reason"}},
                       "id_swaps": [{"character": "aldar", "looks_like": "bai", "own": 0.82, "other": 0.4}]}},
     "summary": {"protagonist", "frames", "frames_ok", "frames_low", "frames_none", "mean_identity",
                 "min_identity", "worst_frame", "protagonist_consistency", "face_model", "face_threshold",
                 "clip_model", "clip_t_mean", "note", "id_swaps", "id_swap_faces", "id_swap_rate",
                 "id_swap_margin", "reason"},
     "matrix": {"character", "metric", "frames": ["01", ...], "values": [[...]]} | null}

A frame's identity is its worst-scoring character's; "low" means below the metric's
same-identity line (`face.LOW_IDENTITY`, `CLIP_LOW_IDENTITY`); "none" means nothing could be
measured, and `reason` says why. The summary's `reason` says in one line why no frame at all
was scored (null when one was); it is also logged as a warning.

ID swaps (`score.swap`): a face closer to another character's reference centroid than to its
own (by `SWAP_MARGIN`, and within the same-person line of the other). `distance` is to the
character's own references, `distance_to_others` to every other character of the story that has
a face reference. `id_swap_rate` = swapped faces / faces that could swap (`id_swap_faces`:
faces of characters with their own reference, when another character has one too); null
when no face could swap.

`check_clip_model(spec)` (in `score.clip`) is the cheap check a run makes before writing
anything: a `--clip-model` that cannot be loaded is an InputError, not a skipped metric.
"""

from autokose.score.clip import check_clip_model
from autokose.score.identity import CLIP_LOW_IDENTITY, FrameScore, IdentityScorer, character_score, read_image
from autokose.score.report import SCORES_VERSION, protagonist, score_board
from autokose.score.swap import SWAP_MARGIN

__all__ = ["CLIP_LOW_IDENTITY", "SCORES_VERSION", "SWAP_MARGIN", "FrameScore", "IdentityScorer", "character_score",
           "check_clip_model", "protagonist", "read_image", "score_board"]
