"""`autokose eval`: a benchmark set through the renderer, once per method, scored side by side.

    methods = parse_methods("plain,consistency")
    results = evaluate(set_path, out, overrides={"model": M, "steps": 20}, methods=methods,
                       clip_model=CLIP, dino_model=None, seed=0)        # OUT/results.json + results.md

A set is a folder of imported boards (what `autokose import` writes: SET/NAME/story.json) or a
prompt file, imported into OUT/set/ first. Every concept (board) is drawn once per method into
OUT/<method>/<board>/ by `pipeline.run`, with settings built by `config.resolve` as for `autokose
render`; a method is only a set of render overrides, and the story (with its per-frame seeds) is
the same for every method, so the methods differ by the method alone.

Why the pieces are as they are:
- Resumable: a board folder that already holds a story is run with `resume=True`, so finished
  frames are kept and only missing ones drawn; the tables are always recomputed from the frames.
- Reproducible: results.json holds no time and no run-dependent path (only the model names the user
  gave), and values are rounded, so two runs over the same frames write the same bytes. A kept
  board drawn with other render settings than this run's is refused, so a table never mixes them.
- A metric model is one the user names (`--clip-model`, `--dino-model`), read offline only; a
  metric without one is null with the reason, never a downloaded default.
- `consistency` shares tokens over the whole frame (`consistency_masked` off): imported boards
  have no cast, so the masked default (share inside a character's box) would share nothing.
"""

from __future__ import annotations

from functools import lru_cache
from itertools import combinations
from pathlib import Path

import numpy as np

from autokose.errors import InputError

RESULTS_VERSION = 1
# Method → the render overrides that make it. ip-adapter adds nothing of its own but needs --ip-adapter.
METHODS = {
    "plain": {"consistency": 0.0},
    "consistency": {"consistency": 0.5, "consistency_masked": False},
    "ip-adapter": {"consistency": 0.0},
}
METRICS = {
    "clip_t": "CLIP-T: mean over the concept's frames of the cosine between the CLIP image embedding of the frame "
              "and the CLIP text embedding of its prompt (raw cosine, not ×100)",
    "clip_i": "CLIP-I: mean over all pairs of the concept's frames of the cosine between their CLIP image embeddings",
    "dino": "DINO: mean over all pairs of the concept's frames of the cosine between their DINO CLS features "
            "(last_hidden_state[:, 0])",
    "face": "face identity: mean over all pairs of frames with a face of identity = clip(1 - d / 1.2, 0, 1), d the "
            "Euclidean distance of the largest faces' dlib embeddings (0.5 = dlib's same-person line)",
}
# Render stages only: eval scores the frames itself, and exports are not what it compares.
EVAL_STAGES = ["cast", "stage", "render"]


def parse_methods(text: str) -> list[str]:
    """--methods a,b as a list of known method names, in order, without repeats."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise InputError(f"--methods: no method given (methods: {', '.join(METHODS)})")
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise InputError(f"--methods: unknown method {unknown[0]!r} (methods: {', '.join(METHODS)})")
    return names


# Options only the ip-adapter method draws with: plain and consistency must stay without them.
IP_ADAPTER_OPTIONS = ("ip_adapter", "ip_adapter_scale")


def method_overrides(method: str, overrides: dict) -> dict:
    """The run options of one method: the user's render options with the method's on top
    (the IP-Adapter options go to the ip-adapter method alone)."""
    if method == "ip-adapter" and not overrides.get("ip_adapter"):
        raise InputError("--methods ip-adapter needs --ip-adapter (an IP-Adapter name or file)")
    own = overrides if method == "ip-adapter" else {k: v for k, v in overrides.items() if k not in IP_ADAPTER_OPTIONS}
    return {**own, **METHODS[method], "stages": EVAL_STAGES}


def set_boards(path: Path, out: Path, seed: int) -> list[tuple[str, object]]:
    """(name, Story) of every board of the set, sorted by name; nothing is written.

    A prompt file is read with the importers (a board OUT/set/ already holds is taken from there);
    `write_set` writes the others.
    """
    from autokose.story import Story

    path = Path(path)
    if path.is_dir():
        folders = [path] if (path / "story.json").is_file() else sorted(p for p in path.iterdir()
                                                                         if (p / "story.json").is_file())
        if not folders:
            raise InputError(f"{path}: no boards here (no story.json in it or its folders; run `autokose import`)")
        return [(p.name, Story.load(p / "story.json")) for p in folders]
    if not path.is_file():
        raise InputError(f"{path}: no such set (give a folder of imported boards or a prompt file)")
    from autokose.importers import Options, read_boards

    kept = Path(out) / "set"  # a board imported by an earlier run is drawn as it was kept there
    return sorted(((b.name, Story.load(kept / b.name / "story.json") if (kept / b.name / "story.json").is_file()
                    else b.story) for b in read_boards(path, options=Options(seed=seed))), key=lambda b: b[0])


def write_set(boards: list[tuple[str, object]], folder: Path) -> None:
    """OUT/set/NAME/story.json for an imported prompt file; boards already there are kept as they are."""
    from autokose.importers import Imported, write_boards

    missing = [Imported(name, story) for name, story in boards if not (folder / name / "story.json").is_file()]
    if missing:
        write_boards(missing, folder)


def evaluate(set_path: Path, out: Path, *, overrides: dict, methods: list[str], clip_model: str | None = None,
             dino_model: str | None = None, seed: int = 0, progress=None) -> dict:
    """Draw every board once per method, score them, and write OUT/results.json and OUT/results.md.

    Everything (methods, settings of each method, the metric models) is checked before the first
    file is written. Returns results.json's content.
    """
    from autokose.board import Board
    from autokose.config import resolve, saved
    from autokose.fsio import write_json, write_text
    from autokose.pipeline import run
    from autokose.score.clip import check_clip_model

    out = Path(out)
    if "plain" not in methods:
        methods = ["plain", *methods]  # the baseline every difference is taken to
    boards = set_boards(set_path, out, seed)
    plans = {m: method_overrides(m, overrides) for m in methods}
    for plan in plans.values():
        resolve(None, plan)  # bad option values fail here, before any folder is made
    check_clip_model(clip_model)
    check_dino_model(dino_model)
    runs = []
    for method in methods:
        for name, story in boards:
            board = Board(out / method / name)
            kept = saved(board) if board.story_path.is_file() else None
            cfg = resolve(kept, plans[method], announce=False)
            drawn_story = board.load_story() if board.story_path.is_file() else None
            if drawn_story is not None and drawn_story.model_dump() != story.model_dump():
                raise InputError(f"{board.story_path}: not the set's story of {name} (its prompts or seeds changed); "
                                 "give another --out")
            if kept is not None and kept.render != cfg.render:
                raise InputError(f"{board.root}: drawn with other render settings than this run's; a resumed eval "
                                 "must draw alike (give the same options, or another --out)")
            runs.append((cfg, board.root, story, kept is not None))
    if Path(set_path).is_file():
        write_set(boards, out / "set")
    from autokose.render.diffusion.engine import keep_warm

    with keep_warm():  # one model load for every board and method that shares it (batch workers do the same)
        for cfg, root, story, resume in runs:
            run(cfg, root, story=story, resume=resume, progress=progress)

    rows = [score_concept(out, method, name, story, clip_model, dino_model) for method in methods
            for name, story in boards]
    results = tabulate(rows, methods, models={"generator": overrides.get("model"), "clip": clip_model,
                                              "dino": dino_model, "face": _face_model()})
    write_json(out / "results.json", results)
    write_text(out / "results.md", markdown(results))
    return results


def check_dino_model(spec: str | None) -> None:
    """--dino-model names a local folder or a cached hub repo with a config.json (nothing fetched)."""
    if not spec:
        return
    from autokose.models import looks_like_repo_id

    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"--dino-model {spec}: no config.json (give a saved transformers model folder)")
        return
    if path.exists() or not looks_like_repo_id(spec):
        raise InputError(f"--dino-model {spec}: not a model folder, and not a Hugging Face repo id")
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(spec, "config.json"), str):
        raise InputError(f"--dino-model {spec}: not in the local Hugging Face cache; give a local folder")


def _face_model() -> str | None:
    from autokose.score.face import FACE_MODEL

    return FACE_MODEL


def pairwise_mean(embeddings: np.ndarray) -> float | None:
    """Mean cosine over all pairs of rows (rows L2-normalised); None below two rows."""
    if len(embeddings) < 2:
        return None
    return round(float(np.mean([embeddings[i] @ embeddings[j] for i, j in combinations(range(len(embeddings)), 2)])),
                 4)


def score_concept(out: Path, method: str, name: str, story, clip_model: str | None, dino_model: str | None) -> dict:
    """One row of the table: the concept's frames under one method, measured."""
    from autokose.board import Board
    from autokose.score import read_image

    board = Board(out / method / name)
    frames = [(scene, read_image(board.frame_path(scene.index))[0]) for scene in story.scenes]
    frames = [(scene, image) for scene, image in frames if image is not None]
    images = [image for _, image in frames]
    row = {"concept": name, "method": method, "board": f"{method}/{name}", "frames": len(images)}
    row.update(clip_metrics(clip_model, [scene.prompt for scene, _ in frames], images))
    row.update(dino_metric(dino_model, images))
    row.update(face_metric(images))
    return row


def clip_metrics(clip_model: str | None, prompts: list[str], images: list) -> dict:
    from autokose.score.clip import load_clip

    clip, why = load_clip(clip_model)
    if clip is None:
        return {"clip_t": None, "clip_i": None, "reasons": {"clip_t": why, "clip_i": why}}
    image_emb = clip.image_embeddings(images)
    text_emb = clip.text_embeddings(prompts) if prompts else np.zeros((0, image_emb.shape[1]))
    clip_t = round(float(np.mean(np.sum(image_emb * text_emb, axis=1))), 4) if images else None
    return {"clip_t": clip_t, "clip_i": pairwise_mean(image_emb), "reasons": {}}


def dino_metric(dino_model: str | None, images: list) -> dict:
    if not dino_model:
        return {"dino": None, "reasons_dino": "dino: skipped — no model given (--dino-model)"}
    import torch

    try:
        model, processor = _load_dino(dino_model)
    except (OSError, ValueError, KeyError) as e:  # checked for a config.json only: weights may still not load
        return {"dino": None, "reasons_dino": f"dino: skipped — {dino_model} did not load "
                                              f"({str(e).splitlines()[0][:120] if str(e) else type(e).__name__})"}
    with torch.inference_mode():
        cls = model(**processor(images=[im.convert("RGB") for im in images], return_tensors="pt")
                    ).last_hidden_state[:, 0]
    cls = torch.nn.functional.normalize(cls.float(), dim=-1).numpy()
    return {"dino": pairwise_mean(cls), "reasons_dino": None}


@lru_cache(maxsize=1)
def _load_dino(spec: str):
    """The DINO model and its image processor, read offline once per run (every row uses them)."""
    from transformers import AutoImageProcessor, AutoModel

    where = str(Path(spec).expanduser()) if Path(spec).expanduser().exists() else spec
    return (AutoModel.from_pretrained(where, local_files_only=True).eval(),
            AutoImageProcessor.from_pretrained(where, local_files_only=True))


def face_metric(images: list) -> dict:
    """Pairwise face identity of the frames' largest faces; null with a reason when < 2 frames have one."""
    from autokose import faces

    if not faces.available():
        return {"face": None, "reasons_face": "face: skipped — dlib face models are not installed"}
    from autokose.score.face import find_faces, identity_from_distance

    found = [f[0].embedding for f in (find_faces(im, upsample=1) for im in images) if f]
    if len(found) < 2:
        return {"face": None, "reasons_face": f"face: skipped — a face in {len(found)} of {len(images)} frames"}
    values = [identity_from_distance(faces.face_distance(a, b)) for a, b in combinations(found, 2)]
    return {"face": round(float(np.mean(values)), 4), "reasons_face": None}


def _row(raw: dict) -> dict:
    """A row with every metric's reason (null where measured) gathered under `reasons`."""
    reasons = {**{k: None for k in METRICS}, **raw.pop("reasons"),
               "dino": raw.pop("reasons_dino"), "face": raw.pop("reasons_face")}
    return {**raw, "reasons": reasons}


def tabulate(rows: list[dict], methods: list[str], models: dict) -> dict:
    """results.json: rows, per-method means, each method's difference to plain, definitions, models."""
    rows = [_row(dict(r)) for r in rows]
    means = {m: {k: _mean([r[k] for r in rows if r["method"] == m]) for k in METRICS} for m in methods}
    vs_plain = {m: {k: None if means[m][k] is None or means["plain"][k] is None
                    else round(means[m][k] - means["plain"][k], 4) for k in METRICS} for m in methods if m != "plain"}
    skipped = {k: next((r["reasons"][k] for r in rows if r[k] is None and r["reasons"][k]), None)
               for k in METRICS if all(r[k] is None for r in rows)}
    return {"version": RESULTS_VERSION, "methods": methods, "method_overrides": {m: METHODS[m] for m in methods},
            "models": models, "metrics": METRICS, "skipped": skipped, "rows": rows, "means": means,
            "vs_plain": vs_plain}


def _mean(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return round(float(np.mean(values)), 4) if values else None


def markdown(results: dict) -> str:
    """results.md: per-method means with the difference to plain, then every row; skipped metrics say why."""
    keys = list(METRICS)

    def cell(value, diff=None) -> str:
        if value is None:
            return "—"
        return f"{value:.4f}" + (f" ({diff:+.4f})" if diff is not None else "")

    lines = ["# Evaluation", "", "Models: " + ", ".join(f"{k} `{v}`" for k, v in results["models"].items() if v), "",
             "## Means per method (difference to plain)", "", "| method | " + " | ".join(keys) + " |",
             "|---|" + "---|" * len(keys)]
    for m in results["methods"]:
        diffs = results["vs_plain"].get(m, {})
        lines.append(f"| {m} | " + " | ".join(cell(results["means"][m][k], diffs.get(k)) for k in keys) + " |")
    lines += ["", "## Per concept", "", "| concept | method | frames | " + " | ".join(keys) + " |",
              "|---|---|---|" + "---|" * len(keys)]
    for r in results["rows"]:
        lines.append(f"| {r['concept']} | {r['method']} | {r['frames']} | " + " | ".join(cell(r[k]) for k in keys)
                     + " |")
    if results["skipped"]:
        lines += ["", "## Skipped", ""] + [f"- {why}" for why in results["skipped"].values()]
    lines += ["", "## Definitions", ""] + [f"- **{k}**: {d}" for k, d in results["metrics"].items()]
    return "\n".join(lines) + "\n"
