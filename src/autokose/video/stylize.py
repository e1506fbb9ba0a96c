"""Footage → stylised video on the diffusion engine: read, stylise frame by frame, write, measure.

The pipeline (`stylize`), in the order it runs:

1. **Check** everything before the first write (`check`): the output path, the settings, the
   optional parts they need, the engine's files and the input (`io.probe`: one clear line for
   anything that is not usable footage) and its span.
2. **Track the face** (`stabilize_face`): dlib landmarks through the span; every frame is then
   stabilised on the face before anything else sees it, so the noise and the latent grid stay
   on the face (`stabilize.py`).
3. **Stylise, chunk by chunk.** The span is read `chunk` frames at a time; a chunk starts with
   the last frame of the one before (the shared keyframe), so flow, noise and the carried frame
   run on across chunks exactly as in one pass: chunking bounds memory and changes no pixel.
   Each frame t is one img2img call of the engine with:
   - **flow-guided init**: stylised t-1 carried onto t along the *input's* optical flow (DIS),
     the input frame where the forward-backward check says occluded (`temporal.flow_guided_init`);
   - **fusion** (`fuse`, part of the flow guidance): after denoising, the carried frame is
     blended into the result where it is visible, so each frame keeps what was drawn before
     where the footage says it is the same surface (how Rerender-A-Video propagates its key
     frames), and the model's frame-to-frame wobble averages out instead of piling up;
   - **noise from the frames**: frame t's initial latent noise is t-1's moved along the flow
     (fresh where occluded; `temporal.noise_for_clip`), so the noise texture moves with the
     picture instead of staying on the screen;
   - **keyframe attention**: the first and the previous stylised frame are denoised in the same
     batch (img2img of their saved pictures with their own noise) and the frame's
     self-attention also attends to their tokens (the storyboard's consistent attention,
     `consistency.py`, at `keyframe_attention` as its rate), so details are copied from the
     anchors rather than re-invented. Anchors are pictures on disk, not state: a resumed or
     chunked run attends to exactly the same anchors;
   - controls from the footage for the engine's ControlNets (OpenPose skeleton from mediapipe,
     lineart) and the character's region (its own LoRA and IP-Adapter references act in it);
   - `separate`: the person (selfie segmentation, or a `key_color` screen) and the background
     are two requests of the same call, with the character's and the background's words,
     composited with the soft mask;
   - `mouth_mask`: the mouth (dlib) starts from the source frame, is denoised at a lower
     strength (`FrameRequest.keep`, Differential Diffusion) and is not fused, so a later
     lip-sync pass finds a clean mouth.
4. **Assemble**: the frames moved back along the camera path (`stabilize_face`), deflickered
   (`deflicker`, a post-pass over colour statistics), encoded as H.264 at the source's fps /
   every with the source's audio for the span (`io.write_video`, atomic).
5. **Measure** while the frames stream to the encoder: warp error (Lai et al. 2018) of input,
   output and (`compare_baseline`) the per-frame baseline along the input's flow; then face
   identity of the output frames against the references (dlib) and, with `clip_model`, CLIP
   frame-to-frame similarity. Written to `OUT.metrics.json` and returned.

Files: the stylised frames are PNGs in `OUT.frames/` (one per source frame index, each written to a
temp file and renamed, beside `recipe.json`: the input, settings and engine they come from, so a
resume with others is refused); the baseline's in `OUT.frames/baseline/`; the poses the OpenPose
ControlNet saw as OpenPose JSON in `OUT.frames/pose/`. A frame depends only on
its input, its noise and the saved pictures of the previous and the first frame, and the engine is
deterministic for a seed, so `resume=True` after a kill draws only what is missing and gives the
same frames as one uninterrupted run.

The baseline is batch img2img as it is usually run: every input frame drawn with the same
settings, one fixed seed, nothing carried or shared.

**Parts** (`part_frames`, for a batch over many workers; `parts.py` explains the plan and the
join). Step 3 is cut into parts of the span that any worker draws, in any order, in parallel:
`prepare` does steps 1-2, saves the face track (`OUT.frames/face_track.npz`) and draws the
shared keyframe (the span's first frame, the anchor of every frame); `draw_part` draws a part
from what is on disk: first its warm-up frames (`OUT.frames/warmup/`, the part starting fresh as
a span starts, attending to the keyframe), then its own (`OUT.frames/`, as in one pass);
`finish` cross-fades each warm-up window from the part before to the next part and runs steps
4-5 over the joined frames, reporting the seams' warp error under "parts". A part's frames
depend only on the input, the settings and the keyframe, so which worker drew which part, in
what order, changes no byte of the output; a part killed midway redraws only its missing frames.
`stylize` with `part_frames` runs the same three steps in one process. Without it (the
default) the plan is one part and the output is that of the single pass, byte for byte (the
keyframe is its first frame, drawn by `prepare`).

Public API
    StylizeSettings                       what to draw and how (pydantic)
    check(input, out, settings, engine) -> VideoInfo   everything refused before a write
    stylize(input, out, settings, engine, *, progress=None, resume=False,
            compare_baseline=False, clip_model=None) -> dict   the metrics written to OUT.metrics.json
    frames_dir(out) / metrics_path(out)  where the frames and metrics of `out` go
  A clip in parts (what a batch runner calls; the same settings, `out` and engine settings everywhere):
    prepare(input, out, settings, engine, *, resume=False, progress=None) -> (VideoInfo, list[Part])
    plan_for(input, settings) -> list[Part]     the same parts, without drawing (for a worker)
    draw_part(input, out, settings, engine, part, *, progress=None, compare_baseline=False)
    finish(input, out, settings, parts, *, progress=None, compare_baseline=False, clip_model=None) -> dict
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from autokose.errors import InputError
from autokose.fsio import save_image, temp_target, write_json, write_with
from autokose.video import io, temporal
from autokose.video.metrics import clip_similarity, identity_per_frame, metrics_json, warp_errors
from autokose.video.parts import Part, crossfade, fades, plan, seam_pairs

if TYPE_CHECKING:
    from autokose.render.diffusion.engine import DiffusionEngine, FrameRequest, Region

Progress = Callable[[str, int, int], None]
log = logging.getLogger("autokose")


class StylizeSettings(BaseModel):
    """How to stylise a clip: what to draw, which span, and which temporal mechanisms are on.

    `character` and `style` are prompt text (the character's trigger words and description; the
    look), joined into the prompt of every frame. `character_id` names the character's region:
    a LoRA the engine loaded with that owner acts inside the person (regional LoRA), and
    `references` (image paths) condition the person through the engine's IP-Adapter.
    Defaults: flow-guided init and fusion, noise from the frames and keyframe attention on.
    """

    model_config = ConfigDict(extra="forbid")

    character: str = Field("", description="The character's words: trigger, appearance.")
    character_id: str | None = Field(None, description="Owner name of the character's LoRA and region.")
    references: list[str] = Field(default_factory=list, description="Reference images of the character "
                                  "(IP-Adapter, needs the engine's ip_adapter; face identity metric).")
    style: str = Field("", description="The look, e.g. 'watercolour illustration, soft light'.")
    background: str = Field("", description="With separate: the background's words (default: the style alone).")
    negative: str = ""
    strength: float = Field(0.5, gt=0.0, le=1.0, description="img2img strength: 1 redraws, near 0 keeps.")
    every: int = Field(1, ge=1, description="Stylise every N-th frame (the video plays at fps / N).")
    start: float | None = Field(None, ge=0.0, description="Seconds: first frame at or after.")
    end: float | None = Field(None, gt=0.0, description="Seconds: frames before.")
    short_side: int | None = Field(512, ge=64, description="Stylised size: short side, rounded to 8.")
    flow_init: bool = Field(True, description="Start frame t from stylised t-1 carried along the input's flow, "
                                              "and fuse the carried frame into the result where it is visible.")
    blend: float = Field(1.0, ge=0.0, le=1.0, description="How much of the carried frame the init keeps.")
    fuse: float = Field(0.5, ge=0.0, le=1.0, description="How much of the carried frame the result keeps "
                                                         "where it is visible (flow_init; 0 = init only).")
    warped_noise: bool = Field(True, description="Frame t's initial noise is t-1's moved along the flow "
                                                 "(fresh where occluded), not the same noise every frame.")
    keyframe_attention: float = Field(0.5, ge=0.0, le=1.0, description="Share of the anchor frames' "
                                      "self-attention tokens (the first and the previous stylised frame) each "
                                      "frame attends to (0 = off).")
    deflicker: float = Field(0.0, ge=0.0, le=1.0, description="Post-pass colour/brightness evening (0 = off).")
    flow_preset: str = Field("medium", description="Optical flow preset (temporal.PRESETS).")
    chunk: int = Field(16, ge=2, description="Frames read and stylised at a time; chunks share a keyframe.")
    stabilize_face: bool = Field(False, description="Stabilise the footage on the actor's face before "
                                                    "stylising and put the camera motion back after.")
    separate: bool = Field(False, description="Stylise the person and the background separately and composite.")
    key_color: str | None = Field(None, description="With separate: key this screen colour (green, blue, #rrggbb) "
                                                    "instead of segmenting the person.")
    mouth_mask: bool = Field(False, description="Denoise the mouth at a lower strength (a clean mouth for lip-sync).")
    mouth_keep: float = Field(0.6, ge=0.0, le=1.0, description="With mouth_mask: how much lower the mouth's "
                                                               "strength is (1 = the source mouth kept).")
    part_frames: int | None = Field(None, ge=1, description="Draw the clip in parts of this many frames, which "
                                    "workers can draw in parallel and in any order, joined over part_overlap "
                                    "frames (None: one pass).")
    part_overlap: int = Field(8, ge=0, description="With part_frames: frames each part draws before its own first "
                                                   "one, cross-faded from the part before (0: hard cuts at the seams).")
    seed: int = 0

    @property
    def prompt(self) -> str:
        return ", ".join(t.strip() for t in (self.character, self.style) if t.strip())

    @property
    def background_prompt(self) -> str:
        return ", ".join(t.strip() for t in (self.background, self.style) if t.strip())


def frames_dir(out: Path | str) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".frames")


def metrics_path(out: Path | str) -> Path:
    out = Path(out)
    return out.with_name(out.stem + ".metrics.json")


def _png(folder: Path, index: int) -> Path:
    return folder / f"{index:06d}.png"


def _load(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


# --------------------------------------------------------------------------- 1. checks
def check(input: Path | str, out: Path | str, settings: StylizeSettings, engine: DiffusionEngine) -> io.VideoInfo:
    """Refuse (InputError, one line) anything that would stop the run, before anything is written.

    Cheap: the output path, the settings against each other, the optional parts they need, the
    engine's files (no weights loaded) and the input (`io.probe`: no video stream, corrupt, too
    large, a folder...). Returns the probed input.
    """
    import importlib.util

    out = _check_out(out)
    if settings.start is not None and settings.end is not None and settings.end <= settings.start:
        raise InputError(f"end {settings.end:g} s is not after start {settings.start:g} s")
    if settings.flow_preset not in temporal.PRESETS:
        raise InputError(f"unknown flow preset {settings.flow_preset!r} (presets: {', '.join(temporal.PRESETS)})")
    if settings.part_frames is not None and settings.part_overlap > settings.part_frames:
        raise InputError(f"--part-overlap {settings.part_overlap} is more than --part-frames {settings.part_frames}: "
                         "a part's warm-up may not reach past the part before it")
    if int(engine.settings.steps * settings.strength) < 1:
        raise InputError(f"strength {settings.strength} with {engine.settings.steps} steps denoises no step "
                         "(give steps x strength >= 1)")
    if settings.key_color is not None:
        if not settings.separate:
            raise InputError("a key colour keys the person for --separate; give both")
        from autokose.video.controls import _key_rgb

        _key_rgb(settings.key_color)
    needs = []
    if settings.separate and settings.key_color is None:
        needs.append(("mediapipe", "--separate segments the person with mediapipe (pip install "
                                   "'autokose[footage]'), or give --key-color for a green/blue screen"))
    if engine.settings.controlnet:
        needs.append(("mediapipe", "an OpenPose ControlNet needs the footage's poses from mediapipe "
                                   "(pip install 'autokose[footage]')"))
    if settings.stabilize_face or settings.mouth_mask:
        needs.append(("dlib", "--stabilize-face and --mouth-mask find the face with dlib (pip install "
                              "'autokose[score]')"))
    for module, why in needs:
        if importlib.util.find_spec(module) is None:
            raise InputError(why)
    for ref in settings.references:
        if not Path(ref).is_file():
            raise InputError(f"reference image {ref}: no such file")
    info = _probe(input, out, settings)
    engine.check(io.frame_size(info, settings.short_side))
    return info


def _check_out(out: Path | str) -> Path:
    out = Path(out)
    if out.suffix.lower() != ".mp4":
        raise InputError(f"{out}: the output is an H.264 MP4; give a path ending in .mp4")
    if out.is_dir():
        raise InputError(f"{out}: is a folder; give the path of the .mp4 to write")
    return out


def _probe(input: Path | str, out: Path, settings: StylizeSettings) -> io.VideoInfo:
    """The probed input, refused if it is the output or has no frame in the span."""
    info = io.probe(input)
    if out.resolve() == Path(info.path).resolve() or frames_dir(out).resolve() == Path(info.path).resolve():
        raise InputError(f"{out}: is the input footage; write the stylised video to another path")
    io.frame_span(info, settings.start, settings.end)
    return info


def _indices(info: io.VideoInfo, settings: StylizeSettings) -> list[int]:
    """The source frame index of each span position (the names of the frame PNGs)."""
    return list(io.frame_span(info, settings.start, settings.end)[::settings.every])


PART_FIELDS = {"part_frames", "part_overlap"}


def _recipe(info: io.VideoInfo, settings: StylizeSettings, engine: DiffusionEngine | None) -> dict:
    """What the saved frames were drawn from: a resume with anything else would mix two videos.

    The part settings are left out of a single pass's recipe (they change nothing there), so
    the recipes of runs from before parts existed still match. Without an engine: the input
    and settings alone (what `finish`, which loads no model, can compare).
    """
    settings_json = settings.model_dump(mode="json", exclude=PART_FIELDS if settings.part_frames is None else None)
    recipe = {"input": str(Path(info.path).resolve()), "input_bytes": Path(info.path).stat().st_size,
              "settings": settings_json}
    if engine is not None:
        recipe.update(engine=engine.settings.picture(),
                      loras=[[str(ref.path), ref.weight, owner] for ref, owner in engine.loras])
    return recipe


# Faces are looked for in frames at least this tall (short side): dlib's detector misses the faces
# of a small stylised size (a close-up at 64 px is lost; at 360 px it is found).
FACE_SIDE = 360
FRAME_NAME = re.compile(r"^\d{6}\.(png|json)$")
WARMUP = "warmup"  # the frames folder's subfolder of the parts' warm-up frames
TRACK = "face_track.npz"  # the face track (stabilize_face), saved by prepare for the parts


def _claim(folder: Path, recipe: dict, resume: bool) -> None:
    """Make the frames folder this run's: on resume, refuse one drawn from another recipe; without
    resume, forget the frames it holds (another span's would be left among the new ones). Either
    way, drop the temp files a killed run left (only files named like ours are ever deleted)."""
    path = folder / "recipe.json"
    if resume and not path.is_file() and folder.is_dir() and any(FRAME_NAME.match(f.name) for f in folder.iterdir()):
        raise InputError(f"{folder}: holds frames but no recipe.json saying what they were drawn from; "
                         "remove it or stylise without resume")
    if resume and path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = None
        if saved != recipe:
            raise InputError(f"{folder}: its frames were drawn from another input or other settings; "
                             "remove it or stylise without resume")
    for sub in (folder, folder / "baseline", folder / "pose", folder / WARMUP):
        if not sub.is_dir():
            continue
        for f in sub.iterdir():
            target = temp_target(f.name)
            ours = FRAME_NAME.match(f.name) and not resume
            if (ours or (target and (FRAME_NAME.match(target) or target in ("recipe.json", TRACK)))) and f.is_file() \
                    and not f.is_symlink():
                f.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    write_json(path, recipe)


# --------------------------------------------------------------------------- what each frame is drawn with
class _Conditions:
    """What conditions a frame, computed from its input frame in clip order: the engine's control
    images (the pose detector tracks, so it sees every frame once, in order, resumed or not), the
    person mask (`separate`) and the mouth mask (`mouth_mask`)."""

    def __init__(self, settings: StylizeSettings, engine: DiffusionEngine, pose_dir: Path | None = None):
        o = engine.settings
        self.settings = settings
        self.pose_dir = pose_dir
        self.mouths_found = 0
        self.pose = self.segmenter = None
        if o.controlnet:
            from autokose.video.controls import PoseDetector

            self.pose = PoseDetector(video=True)
        if settings.separate and settings.key_color is None:
            from autokose.video.controls import PersonSegmenter

            self.segmenter = PersonSegmenter()
        self.lineart = bool(o.lineart)

    def controls(self, frame: np.ndarray, index: int, save: bool = True) -> dict:
        """The control images of source frame `index`; with `save` the pose is also saved as OpenPose
        JSON (`OUT.frames/pose/000042.json`, the storyboard's control/NN_pose.json format). A part's
        warm-up frames are not saved: their poses belong to the part before (its tracker's)."""
        from PIL import Image

        from autokose.video import controls

        h, w = frame.shape[:2]
        out = {}
        if self.pose is not None:
            keypoints = self.pose(frame)
            out["openpose"] = Image.fromarray(controls.pose_image(keypoints, w, h))
            if self.pose_dir is not None and save:
                write_json(self.pose_dir / f"{index:06d}.json",
                           controls.openpose_json(keypoints, w, h, person=self.settings.character_id or "person"))
        if self.lineart:
            out["lineart"] = Image.fromarray(controls.lineart(frame))
        return out

    def person(self, frame: np.ndarray) -> np.ndarray | None:
        """1 on the person, 0 on the background (`separate`), else None."""
        if not self.settings.separate:
            return None
        if self.segmenter is not None:
            return self.segmenter(frame)
        from autokose.video.controls import key_mask

        return key_mask(frame, self.settings.key_color)

    def mouth(self, frame: np.ndarray) -> np.ndarray | None:
        """The mouth mask (`mouth_mask`), found on the frame enlarged to FACE_SIDE: dlib's detector
        misses the small faces of a small stylised size."""
        if not self.settings.mouth_mask:
            return None
        import cv2

        from autokose.video.controls import mouth_mask

        h, w = frame.shape[:2]
        scale = max(1, -(-FACE_SIDE // min(h, w)))
        if scale == 1:
            mask = mouth_mask(frame)
        else:
            big = cv2.resize(frame, (w * scale, h * scale), interpolation=cv2.INTER_CUBIC)
            mask = cv2.resize(mouth_mask(big), (w, h), interpolation=cv2.INTER_AREA)
        self.mouths_found += bool(mask.max() > 0)
        return mask

    def close(self) -> None:
        for model in (self.pose, self.segmenter):
            if model is not None:
                model.close()


@dataclass
class _Frame:
    """One frame of the span as the loop needs it: input (stabilised if asked), what conditions it,
    its initial noise, and once drawn its stylised picture (the anchor later frames attend to)."""

    position: int  # 0, 1, ... in the span
    index: int  # the source frame index (names its PNG)
    image: np.ndarray
    controls: dict
    person: np.ndarray | None
    mouth: np.ndarray | None
    noise: object = None
    back: temporal.Motion | None = None  # flow(this, previous) and its occlusion, on this frame's grid
    picture: np.ndarray | None = None


class _Drawer:
    """Draws frames with the engine: one call per frame, the anchors in the same batch."""

    def __init__(self, settings: StylizeSettings, engine: DiffusionEngine):
        self.settings, self.engine = settings, engine
        o = engine.settings
        self.steps = int(o.steps * settings.strength)  # the img2img loop's step count
        self.references = [Path(r) for r in settings.references] if o.ip_adapter else []
        self.keyframes = None
        if settings.keyframe_attention > 0:
            self.keyframes = engine.consistent_attention(settings.seed, rate=0.0)  # on only in anchor calls

    def close(self) -> None:
        if self.keyframes is not None:
            self.keyframes.disable()
            self.keyframes = None

    def _regions(self, frame: _Frame) -> list[Region]:
        """The character's region: its own LoRA (owned by `character_id`) and references act there."""
        from autokose.render.diffusion.engine import Region

        s = self.settings
        if not (s.character_id or self.references):
            return []
        h, w = frame.image.shape[:2]
        mask = frame.person if frame.person is not None else np.ones((h, w), np.float32)
        return [Region(name=s.character_id or "character", mask=mask, references=self.references)]

    def _request(self, frame: _Frame, init: np.ndarray, *, prompt: str, person: bool, noise=None,
                 keep: np.ndarray | None = None) -> FrameRequest:
        from PIL import Image

        from autokose.render.diffusion.engine import FrameRequest

        s = self.settings
        h, w = init.shape[:2]
        return FrameRequest(prompt=prompt, negative=s.negative, width=w, height=h, seed=s.seed,
                            controls=frame.controls, init_image=Image.fromarray(init), strength=s.strength,
                            regions=self._regions(frame) if person else [], noise=noise, keep=keep)

    def _own(self, frame: _Frame, init: np.ndarray, noise, keep) -> list[FrameRequest]:
        """The frame's own requests: the whole frame, or the person and the background (`separate`)."""
        s = self.settings
        own = [self._request(frame, init, prompt=s.prompt, person=True, noise=noise, keep=keep)]
        if s.separate:
            own.append(self._request(frame, init, prompt=s.background_prompt, person=False, noise=noise, keep=keep))
        return own

    def _composite(self, frame: _Frame, pictures: list) -> np.ndarray:
        arrays = [np.asarray(p.convert("RGB"), dtype=np.float32) for p in pictures]
        if len(arrays) == 1:
            return arrays[0].round().astype(np.uint8)
        person = frame.person[..., None].astype(np.float32)
        return np.clip(np.rint(arrays[1] + person * (arrays[0] - arrays[1])), 0, 255).astype(np.uint8)

    def draw(self, frame: _Frame, previous: _Frame | None, first: _Frame | None) -> np.ndarray:
        """Frame `frame` stylised, given the drawn previous frame (None: the span's or a part's
        start) and the span's first frame (the shared keyframe; None while drawing it)."""
        s = self.settings
        carried = s.flow_init and previous is not None
        init = frame.image
        if carried:
            init = temporal.flow_guided_init(previous.picture, frame.back.flow, frame.image, frame.back.occluded,
                                             s.blend)
        keep = None
        if frame.mouth is not None:  # the mouth starts from the source and keeps more of it
            m = frame.mouth[..., None]
            init = np.clip(np.rint(init + m * (frame.image.astype(np.float32) - init)), 0, 255).astype(np.uint8)
            keep = frame.mouth * s.mouth_keep
        noise = frame.noise if s.warped_noise else None
        anchors = []
        if self.keyframes is not None:  # a part's first frame has the shared keyframe alone
            anchors = [a for a in (first, previous) if a is not None]
            anchors = anchors[:1] if previous is first else anchors
        batch = [self._request(a, a.picture, prompt=s.prompt, person=True, noise=None if noise is None else a.noise)
                 for a in anchors] + self._own(frame, init, noise, keep)
        if anchors:  # rate 0 outside these calls: stock attention, bit for bit (frame 0, the baseline)
            self.keyframes.rate = s.keyframe_attention
            self.keyframes.share()
            self.keyframes.set_step(0, self.steps)
        try:
            pictures = self.engine.denoise(batch, consistency=self.keyframes if anchors else None, masked=False)
        finally:
            if anchors:
                self.keyframes.rate = 0.0
        picture = self._composite(frame, pictures[len(anchors):])
        if carried and s.fuse > 0:
            hidden = frame.back.occluded.astype(np.float32)
            if frame.mouth is not None:
                hidden = np.maximum(hidden, frame.mouth)
            picture = temporal.flow_guided_init(previous.picture, frame.back.flow, picture, hidden, s.fuse)
        return picture

    def baseline(self, frame: _Frame) -> np.ndarray:
        """Frame `frame` as per-frame img2img draws it: its input, the fixed seed, nothing shared."""
        return self._composite(frame, self.engine.denoise(self._own(frame, frame.image, None, None)))


# --------------------------------------------------------------------------- the pipeline
def stylize(input: Path | str, out: Path | str, settings: StylizeSettings, engine: DiffusionEngine, *,
            progress: Progress | None = None, resume: bool = False, compare_baseline: bool = False,
            clip_model: str | None = None) -> dict:
    """Stylise the span of `input` into the MP4 `out`; return (and write) its metrics.

    `progress(stage, done, total)` hears "track" (`stabilize_face`), "stylize", "baseline" and
    "write". `resume`: keep the frame PNGs already in `OUT.frames/` (drawn from the same input
    and settings) and draw only the missing ones; without it every frame is drawn again.
    `compare_baseline`: also draw the per-frame baseline and report its warp error.
    `clip_model`: a CLIP model (HF id or folder) for frame-to-frame similarity.
    With `settings.part_frames` the parts a batch spreads over workers (`prepare`, `draw_part`,
    `finish`) are drawn here one after another: the same files, byte for byte.
    Memory: one chunk of frames at the stylised size (at 512x896, 1.4 MB a frame), except with
    `stabilize_face`, whose tracking pass holds the span's frames once.
    """
    report = progress or _silent
    info = check(input, out, settings, engine)
    parts = _prepare(info, Path(out), settings, engine, resume, report)
    # each part counts its own frames; the bars count the whole clip's
    totals = {"stylize": sum(p.hi - p.first for p in parts), "baseline": parts[-1].hi}
    done = dict.fromkeys(totals, 0)
    for part in parts:
        before = dict(done)

        def heard(stage: str, count: int, total: int, before: dict = before) -> None:
            done[stage] = before[stage] + count
            report(stage, done[stage], totals[stage])

        _draw_part(info, Path(out), settings, engine, part, parts, compare_baseline, heard)
    return _finish(info, Path(out), settings, parts, report, compare_baseline, clip_model)


def prepare(input: Path | str, out: Path | str, settings: StylizeSettings, engine: DiffusionEngine, *,
            resume: bool = False, progress: Progress | None = None) -> tuple[io.VideoInfo, list[Part]]:
    """Step 1 of a clip drawn in parts: check, claim `OUT.frames/`, draw the shared keyframe.

    Everything `stylize` refuses is refused here, before a write. Then the face track
    (`stabilize_face`) is saved to `OUT.frames/face_track.npz` and the span's first frame is
    drawn: the anchor every frame of every part attends to. `resume` as for `stylize` (without
    it, the frames of an earlier run are forgotten). Returns the probed input and the parts
    (`parts.plan`; one part when `settings.part_frames` is None) for `draw_part` and `finish`.
    """
    info = check(input, out, settings, engine)
    return info, _prepare(info, Path(out), settings, engine, resume, progress or _silent)


def plan_for(input: Path | str, settings: StylizeSettings) -> list[Part]:
    """The parts `prepare` returns for `input` under `settings`, without drawing (probes the input):
    what a worker that did not run `prepare` looks its part up in."""
    return plan(len(_indices(io.probe(input), settings)), settings.part_frames, settings.part_overlap)


def draw_part(input: Path | str, out: Path | str, settings: StylizeSettings, engine: DiffusionEngine, part: Part, *,
              progress: Progress | None = None, compare_baseline: bool = False) -> None:
    """Step 2: draw one part's warm-up and own frames (and with `compare_baseline` its baseline).

    Needs only what `prepare` left in `OUT.frames/` (the recipe, the keyframe, the face track),
    so any machine sharing the folder can draw any part, in any order, at the same time as
    others. Always resumes: frames already saved are kept, the missing ones drawn, exactly as
    one uninterrupted run would draw them. A part not of this clip's plan, a folder `prepare`
    did not make for these settings, or a missing keyframe is an InputError (one line).
    `progress` hears "stylize" (the part's frames) and "baseline".
    """
    out = Path(out)
    info = check(input, out, settings, engine)
    indices = _indices(info, settings)
    parts = plan(len(indices), settings.part_frames, settings.part_overlap)
    if part not in parts:
        raise InputError(f"{part}: not a part of this clip ({len(parts)} parts of {settings.part_frames} frames, "
                         f"overlap {settings.part_overlap})")
    folder = frames_dir(out)
    _require_recipe(folder, _recipe(info, settings, engine))
    keyframe = _png(folder, indices[0])
    if not keyframe.is_file():
        raise InputError(f"{folder}: the shared keyframe {keyframe.name} is not drawn; "
                         "prepare the clip before drawing its parts")
    if settings.stabilize_face and not (folder / TRACK).is_file():
        raise InputError(f"{folder}: no {TRACK}; prepare the clip again")
    engine.session()
    _draw_part(info, out, settings, engine, part, parts, compare_baseline, progress or _silent)


def finish(input: Path | str, out: Path | str, settings: StylizeSettings, parts: list[Part], *,
           progress: Progress | None = None, compare_baseline: bool = False, clip_model: str | None = None) -> dict:
    """Step 3: join the parts, write `out` and measure it; the metrics (as `stylize` returns them).

    Over each part's warm-up window the finished frame cross-fades from the part before to the
    part (`parts.fades`); then, as in one pass, the camera motion goes back, the frames are
    deflickered and encoded with the source's audio, and the warp error (with "parts": the
    seams' own, `parts.seam_pairs`), face identity and CLIP similarity are measured. Loads no
    model. Refused (InputError, before a write) if a part is not finished, the parts are not the
    clip's plan, or the frames were drawn from another input or settings.
    """
    out = _check_out(out)
    info = _probe(input, out, settings)
    folder = frames_dir(out)
    _require_recipe(folder, _recipe(info, settings, None))
    indices = _indices(info, settings)
    expected = plan(len(indices), settings.part_frames, settings.part_overlap)
    if list(parts) != expected:
        raise InputError(f"the parts given are not this clip's {len(expected)} parts "
                         f"({settings.part_frames} frames each, overlap {settings.part_overlap})")
    for part in expected:
        wanted = [_png(folder / WARMUP, indices[p]) for p in range(part.first, part.lo)]
        wanted += [_png(folder, indices[p]) for p in range(part.lo, part.hi)]
        if compare_baseline:
            wanted += [_png(folder / "baseline", indices[p]) for p in range(part.lo, part.hi)]
        missing = sum(not path.is_file() for path in wanted)
        if missing:
            raise InputError(f"{folder}: part {part.number} is not drawn ({missing} of its {len(wanted)} frames "
                             "are missing); draw it before finishing")
    if settings.stabilize_face and not (folder / TRACK).is_file():
        raise InputError(f"{folder}: no {TRACK}; prepare the clip again")
    return _finish(info, out, settings, expected, progress or _silent, compare_baseline, clip_model)


def _silent(stage: str, done: int, total: int) -> None:
    pass


def _require_recipe(folder: Path, recipe: dict) -> None:
    """Refuse a frames folder `prepare` did not claim for this recipe (compared on the keys given)."""
    path = folder / "recipe.json"
    if not path.is_file():
        raise InputError(f"{folder}: no recipe.json; prepare the clip before drawing or finishing its parts")
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = None
    if not isinstance(saved, dict) or {k: saved.get(k) for k in recipe} != recipe:
        raise InputError(f"{folder}: its frames were drawn from another input or other settings; "
                         "prepare the clip again")


def _prepare(info: io.VideoInfo, out: Path, settings: StylizeSettings, engine: DiffusionEngine, resume: bool,
             report: Progress) -> list[Part]:
    """`prepare` after `check`: track the face, load the model, claim the folder, draw the keyframe."""
    indices = _indices(info, settings)
    # 2. Track the face through the span (stabilize_face).
    track = None
    if settings.stabilize_face:
        from autokose.video.stabilize import track_face

        report("track", 0, 1)
        source_short = min(io.frame_size(info))
        face_side = min(source_short, max(settings.short_side or source_short, FACE_SIDE))
        track = track_face(f for _, f in io.read_frames(info, settings.start, settings.end, settings.every,
                                                        face_side))
        report("track", 1, 1)
        if not track.found.any():
            raise InputError(f"{info.path}: --stabilize-face found no face in the span")

    # 3. The model is loaded first: a checkpoint that fails to load leaves no file.
    engine.session()
    folder = frames_dir(out)
    _claim(folder, _recipe(info, settings, engine), resume)
    if not resume:  # a new run: the video and metrics of an earlier one must not sit beside its frames
        for old in (out, metrics_path(out)):
            if old.is_file():
                old.unlink()
    if track is not None:
        write_with(folder / TRACK, lambda tmp: np.savez(tmp, matrices=track.matrices, points=track.points,
                                                        found=track.found, segment=track.segment,
                                                        size=np.array(track.size)))
    # the shared keyframe: the span's first frame, drawn as a one-pass run draws it
    _draw(info, settings, engine, folder, Part(0, 0, 1), indices, track, None, False, _silent)
    return plan(len(indices), settings.part_frames, settings.part_overlap)


def _load_track(folder: Path):
    """The face track `prepare` saved (npz: the float64 transforms come back exact)."""
    from autokose.video.stabilize import FaceTrack

    with np.load(folder / TRACK) as saved:
        return FaceTrack(matrices=saved["matrices"], points=saved["points"], found=saved["found"],
                         segment=saved["segment"], size=tuple(int(v) for v in saved["size"]))


def _draw_part(info: io.VideoInfo, out: Path, settings: StylizeSettings, engine: DiffusionEngine, part: Part,
               parts: list[Part], compare_baseline: bool, report: Progress) -> None:
    """`draw_part` after its checks: the part's frames, from the keyframe and track on disk."""
    folder = frames_dir(out)
    indices = _indices(info, settings)
    track = _load_track(folder) if settings.stabilize_face else None
    keyframe = _keyframe(info, settings, engine, folder, indices, track) if part.first > 0 else None
    found, drawn = _draw(info, settings, engine, folder, part, indices, track, keyframe, compare_baseline, report)
    if settings.mouth_mask and found < drawn:
        where = f" of part {part.number}" if len(parts) > 1 else ""
        log.warning("--mouth-mask found no mouth in %d of %d frames%s (there the frame is drawn as without it)",
                    drawn - found, drawn, where)


def _keyframe(info: io.VideoInfo, settings: StylizeSettings, engine: DiffusionEngine, folder: Path,
              indices: list[int], track) -> _Frame:
    """The shared keyframe as a part's anchor: its saved picture, with the controls and noise it
    was drawn with (its own detector: a part's pose tracker starts on the part's first frame)."""
    conditions = _Conditions(settings, engine)
    try:
        (frame,) = list(_frames(info, settings, engine, track, conditions, indices, 0, 1, owned_from=1))
    finally:
        conditions.close()
    frame.picture = _saved(_png(folder, indices[0]), frame)
    return frame


def _draw(info: io.VideoInfo, settings: StylizeSettings, engine: DiffusionEngine, folder: Path, part: Part,
          indices: list[int], track, keyframe: _Frame | None, compare_baseline: bool,
          report: Progress) -> tuple[int, int]:
    """Draw (or keep, when saved) positions [part.first, part.hi): warm-up frames to `OUT.frames/warmup/`,
    the part's own to `OUT.frames/`, each from the one before and the keyframe (the part's first
    frame at position 0, else `keyframe`). (Mouths found, frames read) for the mouth warning."""
    conditions = _Conditions(settings, engine, pose_dir=folder / "pose")
    drawer = _Drawer(settings, engine)
    baseline = folder / "baseline"
    if compare_baseline:
        baseline.mkdir(exist_ok=True)
    total = part.hi - part.first
    try:
        first, previous = keyframe, None
        for frame in _frames(info, settings, engine, track, conditions, indices, part.first, part.hi,
                             owned_from=part.lo):
            own = frame.position >= part.lo
            frame.picture = _draw_or_resume(_png(folder if own else folder / WARMUP, frame.index), frame, True,
                                            lambda f=frame: drawer.draw(f, previous, first))
            if compare_baseline and own:
                _draw_or_resume(_png(baseline, frame.index), frame, True, lambda f=frame: drawer.baseline(f))
                report("baseline", frame.position - part.lo + 1, part.hi - part.lo)
            first = first or frame
            previous = frame
            report("stylize", frame.position - part.first + 1, total)
    finally:
        drawer.close()
        conditions.close()
    return conditions.mouths_found, total


class _Fade(NamedTuple):
    """A finished frame of a join window: `own` (the part before's) fading to `warm` (the next part's)."""

    own: Path
    warm: Path
    weight: float


def _finish(info: io.VideoInfo, out: Path, settings: StylizeSettings, parts: list[Part], report: Progress,
            compare_baseline: bool, clip_model: str | None) -> dict:
    """`finish` after its checks: 4. assemble and 5. measure the joined frames."""
    folder = frames_dir(out)
    indices = _indices(info, settings)
    n = len(indices)
    track = _load_track(folder) if settings.stabilize_face else None
    output: list[Path | _Fade] = [_png(folder, i) for i in indices]
    for position, (_, weight) in fades(parts).items():
        output[position] = _Fade(output[position], _png(folder / WARMUP, indices[position]), weight)
    drawn = {"output": output}
    if compare_baseline:
        drawn["baseline"] = [_png(folder / "baseline", i) for i in indices]

    # 4. Assemble: camera motion back, deflicker, encode with the source's audio.
    # 5. Measure along the input's flow while the frames stream to the encoder.
    fps = info.fps / settings.every
    meter = _Meter(info, settings, drawn, track)
    report("write", 0, n)
    written = io.write_video(meter.output(lambda done: report("write", done, n)), out, fps, audio_from=info,
                             start=settings.start, end=settings.end)
    errors = meter.errors()
    metrics = metrics_json(input=errors["input"], output=errors["output"], baseline=errors.get("baseline"),
                           frames=n, fps=fps, size=[written.width, written.height], first_frame=indices[0],
                           every=settings.every, strength=settings.strength, flow_init=settings.flow_init,
                           fuse=settings.fuse, warped_noise=settings.warped_noise,
                           keyframe_attention=settings.keyframe_attention, deflicker=settings.deflicker,
                           stabilize_face=settings.stabilize_face, separate=settings.separate,
                           mouth_mask=settings.mouth_mask, seed=settings.seed, audio=written.audio)
    if settings.part_frames is not None:
        metrics["parts"] = _seam_metrics(meter, parts, settings)
    metrics.update(_identity_and_clip(meter, settings, clip_model))
    write_json(metrics_path(out), metrics)
    return metrics


def _seam_metrics(meter: _Meter, parts: list[Part], settings: StylizeSettings) -> dict:
    """How the parts went, and how much the seams flicker: per seam the worst warp error of the
    frame pairs its join spans (`parts.seam_pairs`), averaged over the seams, for each video
    (the input's says how much the footage itself moves there). None with one part."""
    seams = seam_pairs(parts)
    worst = {name: [max(pairs[t - 1] for t in seam) for seam in seams] for name, pairs in meter.per_pair.items()}
    return {"count": len(parts), "part_frames": settings.part_frames, "overlap": settings.part_overlap,
            "seams": [part.lo for part in parts[1:]],
            "seam_warp_error": {name: float(np.mean(w)) if w else None for name, w in worst.items()}}


def _saved(path: Path, frame: _Frame) -> np.ndarray:
    """The saved picture of `frame`, refused if it is of another size (another run's)."""
    picture = _load(path)
    if picture.shape != frame.image.shape:
        raise InputError(f"{path}: a frame of another size ({picture.shape[1]}x{picture.shape[0]}); "
                         f"remove {path.parent} or stylise without resume")
    return picture


def _draw_or_resume(path: Path, frame: _Frame, resume: bool, draw: Callable[[], np.ndarray]) -> np.ndarray:
    """The frame's saved picture (resume), else drawn now and saved (temp file + rename)."""
    if resume and path.is_file():
        return _saved(path, frame)
    from PIL import Image

    picture = draw()
    save_image(path, Image.fromarray(picture))
    return picture


def _chunks(reader: Iterator, size: int) -> Iterator[list]:
    """The reader's items in lists: `size` first, then `size - 1` (each chunk adds the last frame
    of the one before in front, so every chunk spans `size` frames)."""
    chunk, want = [], size
    for item in reader:
        chunk.append(item)
        if len(chunk) == want:
            yield chunk
            chunk, want = [], size - 1
    if chunk:
        yield chunk


def _read(info: io.VideoInfo, settings: StylizeSettings, indices: list[int], lo: int, hi: int) -> Iterator:
    """(index, frame) of span positions [lo, hi). A part after the first starts reading half a
    frame before its first index (float seconds can miss an exact frame time either way)."""
    s = settings
    start = s.start if lo == 0 else float((indices[lo] - Fraction(1, 2)) / info.fps)
    reader = io.read_frames(info, start, s.end, s.every, s.short_side)
    for position, (index, image) in zip(range(lo, hi), reader):
        if index != indices[position]:
            raise RuntimeError(f"read frame {index} for span position {position} (frame {indices[position]})")
        yield index, image


def _frames(info: io.VideoInfo, settings: StylizeSettings, engine: DiffusionEngine, track,
            conditions: _Conditions, indices: list[int], lo: int, hi: int, *, owned_from: int = 0) -> Iterator[_Frame]:
    """Span positions [lo, hi), read a chunk at a time, each with its motion, noise and conditions.

    Per chunk: the flows of its consecutive pairs (both directions: the init and fusion use
    the backward one) and the initial noise, which continues from the shared frame's noise, so
    chunks are seamless: the frames, flows and noises are those of one pass. The first chunk
    starts fresh (no flow into position lo, noise from the seed at lo), as the span starts.
    Poses are saved for positions from `owned_from` on (a part's own frames).
    """
    s = settings
    latent = None
    last: _Frame | None = None
    position = lo
    for chunk in _chunks(_read(info, settings, indices, lo, hi), s.chunk):
        new = []
        for index, image in chunk:
            if track is not None:
                from autokose.video.stabilize import stabilize_frame

                image = stabilize_frame(image, track, position)
            new.append(_Frame(position, index, image, conditions.controls(image, index, save=position >= owned_from),
                              conditions.person(image), conditions.mouth(image)))
            position += 1
        frames = ([last] if last is not None else []) + new
        for a, b in zip(frames, frames[1:]):
            b.back = temporal.motion_pair(a.image, b.image, preset=s.flow_preset)[1]
        if s.warped_noise:
            if latent is None:
                latent = _latent_shape(engine, frames[0].image)
            noises = temporal.noise_for_clip([f.image for f in frames], latent, s.seed, start=frames[0].position,
                                             first=last.noise if last is not None else None,
                                             flows=[f.back for f in frames[1:]])
            for f, noise in zip(frames, noises):
                f.noise = noise
        yield from new
        last = new[-1]


def _latent_shape(engine: DiffusionEngine, image: np.ndarray) -> tuple[int, int, int]:
    pipe = engine.session().pipe
    factor = getattr(pipe, "vae_scale_factor", 8)
    h, w = image.shape[:2]
    return pipe.vae.config.latent_channels, h // factor, w // factor


class _Meter:
    """Streams the finished frames to the encoder and measures them on the way.

    The output (and baseline) frames are read back from their PNGs (cross-faded over the join
    windows of parts: `_Fade`), moved back along the camera path (`stabilize_face`) and
    deflickered; the input is read again, unstabilised, for the flow the warp error follows
    (Lai et al. measure along the input's motion, never the output's). Nothing holds more than
    two frames of each video; `per_pair` keeps each pair's warp error (the seams' are looked up).
    """

    def __init__(self, info: io.VideoInfo, settings: StylizeSettings, paths: dict[str, list[Path | _Fade]], track):
        self.info, self.settings, self.paths, self.track = info, settings, paths, track
        self.totals: dict[str, float] = {}
        self.per_pair: dict[str, list[float]] = {}
        self.pairs = 0
        self.stats = None
        if settings.deflicker > 0:
            self.stats = {name: np.array([temporal.colour_stats(self._restored(name, t)) for t in range(len(p))])
                          for name, p in paths.items()}

    def _restored(self, name: str, t: int) -> np.ndarray:
        entry = self.paths[name][t]
        picture = crossfade(_load(entry.own), _load(entry.warm), entry.weight) if isinstance(entry, _Fade) \
            else _load(entry)
        if self.track is not None:
            from autokose.video.stabilize import restore_frame

            picture = restore_frame(picture, self.track, t)
        return picture

    def final(self, name: str, t: int) -> np.ndarray:
        picture = self._restored(name, t)
        if self.stats is not None:
            picture = temporal.deflicker_frame(picture, t, self.stats[name], self.settings.deflicker)
        return picture

    def output(self, done: Callable[[int], None]) -> Iterator[np.ndarray]:
        s = self.settings
        reader = io.read_frames(self.info, s.start, s.end, s.every, s.short_side)
        previous = None
        for t, (_, image) in enumerate(reader):
            current = {"input": image, **{name: self.final(name, t) for name in self.paths}}
            if previous is not None:
                motion = temporal.motion_pair(previous["input"], image, preset=s.flow_preset)[0]
                pair = warp_errors({name: [previous[name], current[name]] for name in current}, [motion])
                for name, value in pair.items():
                    self.totals[name] = self.totals.get(name, 0.0) + value
                    self.per_pair.setdefault(name, []).append(value)
                self.pairs += 1
            previous = current
            yield current["output"]
            done(t + 1)

    def errors(self) -> dict[str, float | None]:
        """Mean warp error per video; None for a single frame (no pair to measure)."""
        names = ["input", *self.paths]
        return {name: self.totals.get(name, 0.0) / self.pairs if self.pairs else None for name in names}

    def frames(self, name: str = "output") -> Iterator[np.ndarray]:
        for t in range(len(self.paths[name])):
            yield self.final(name, t)


def _identity_and_clip(meter: _Meter, settings: StylizeSettings, clip_model: str | None) -> dict:
    """Face identity of the output frames against the references (dlib), CLIP frame-to-frame
    similarity with a CLIP model; each skipped, with the reason, when it cannot be measured."""
    out: dict = {}
    if settings.references:
        out["identity"] = identity_per_frame(meter.frames(), settings.references)
    if clip_model:
        out["clip"] = clip_similarity(meter.frames(), clip_model)
    return out
