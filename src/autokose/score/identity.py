"""Identity measurements: how much each character in a frame looks like their references and their other frames.

`IdentityScorer` measures (face embeddings with dlib, CLIP-I of figure crops, CLIP-T of the
frame); `character_score` turns one character's measurements into an identity with the method
that produced it. The quality loop (`render.quality`) calls an IdentityScorer as its Scorer;
`score.report` uses it for a board's scores.json.
"""


from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from autokose.errors import InputError
from autokose.faces import FaceBox, face_distance
from autokose.images import Unreadable, open_rgb
from autokose.regions import crop_box, has_box
from autokose.score.clip import Clip, load_clip
from autokose.score.face import (
    FACE_MODEL,
    LOW_IDENTITY,
    assign_faces,
    card_centroid,
    find_faces,
    identity_from_distance,
    reference_centroid,
)
from autokose.score.swap import frame_swaps, looks_like

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
    box: FaceBox | None = None  # where their face is, in the frame's pixels
    others: dict[str, float] = field(default_factory=dict)  # face distance to every other character's centroid
    clip_i: float | None = None  # CLIP-I to the reference images
    reason: str | None = None


@dataclass
class FrameMeasure:
    characters: dict[str, Measure] = field(default_factory=dict)
    faces: int = 0
    clip_t: float | None = None
    reason: str | None = None  # why nothing could be measured at all

    def face_distances(self) -> dict[str, tuple[float | None, dict[str, float]]]:
        """Each character's face distance to their own reference and to the others': what `score.swap` reads."""
        return {cid: (m.distance, m.others) for cid, m in self.characters.items()}

    def id_swaps(self) -> list[dict]:
        """Faces that are another character's (`score.swap`): [{"character", "looks_like", "own", "other"}]."""
        return frame_swaps(self.face_distances())


@dataclass
class FrameScore:
    """What the quality loop ranks a candidate by: its worst character identity and its ID swaps."""

    score: float | None
    id_swaps: list[dict] = field(default_factory=list)


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
        self.characters = [c.id for c in story.characters]  # everyone a face could be swapped with
        try:  # story.json is the contract: its characters' cards and references
            self.assets = identity_assets(story, Bible(story.characters), self.root)  # paths: as the renderer
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
                m.face, m.box = assigned[cid].embedding, assigned[cid].box
                if ref.face is not None:
                    m.distance = face_distance(m.face, ref.face)
                m.others = {other: face_distance(m.face, self.reference(other).face) for other in self.characters
                            if other != cid and self.reference(other).face is not None}
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
        return self.frame_score(frame, scene, layout).score

    def frame_score(self, frame, scene, layout) -> FrameScore:
        """The score and the ID swaps of one measurement: the loop ranks and re-rolls by both."""
        fm = self._measure_frame(frame, scene, layout)
        scores = []
        for cid, m in fm.characters.items():
            others = [o for index, o in self._board.get(cid, {}).items() if index != scene.index]
            scores.append(character_score(m, self.clip, others)["identity"])
        scores = [s for s in scores if s is not None]
        return FrameScore(min(scores) if scores else None, fm.id_swaps())

    def _measure_frame(self, frame, scene, layout) -> FrameMeasure:
        """`measure`, cached per scene and pixels: the loop asks about each first candidate twice."""
        key = (scene.index, hashlib.sha256(frame.image.tobytes()).hexdigest())
        if key not in self._cache:
            self._cache[key] = self.measure(frame.image, scene, layout)
        return self._cache[key]


def _figure_crop(image: Image.Image, figure, alone: bool):
    """The figure's staged box; the whole frame for a lone character that was not staged."""
    if figure is not None and has_box(figure.box):
        return crop_box(image, figure.box)
    return image if alone else None


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(float(value), 4)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def character_score(m: Measure, clip: Clip | None, others: list[Measure] = ()) -> dict:
    """Identity of one character in one frame, from the best evidence there is.

    In order: face against the reference, CLIP-I of the figure against the reference images,
    face against the character's other frames (`others`), CLIP-I against them. The row also
    says where the face is (`face_box`, pixels), how far it is from every other character's
    reference (`distance_to_others`) and whose face it is instead when it is a swap (`looks_like`).
    """
    face_peers = [identity_from_distance(face_distance(m.face, o.face)) for o in others
                  if m.face is not None and o.face is not None]
    clip_peers = [max(cosine(m.clip, o.clip), 0.0) for o in others if m.clip is not None and o.clip is not None]
    entry = {
        "identity": None, "status": "none", "method": None, "model": None, "distance": _rounded(m.distance),
        "face_box": None if m.box is None else [int(v) for v in m.box],
        "distance_to_others": {cid: _rounded(d) for cid, d in m.others.items()},
        "looks_like": looks_like(m.distance, m.others),
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
