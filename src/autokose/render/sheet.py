"""Character sheets: a turnaround of one character (front, three-quarter left and right, profile,
back) plus a few expressions, each view saved alone, laid out in one labelled `sheet.png`, and
described in `sheet.json` (views, seeds, prompts, poses, face-identity scores).

An adapter like the storyboard renderer: each view is a one-figure `Layout` (the pose library's
standing pose turned to the view), which becomes either a previz drawing (no weights, offline)
or a `FrameRequest` for the story-free `DiffusionEngine`: the OpenPose skeleton of the layout as
its control, the character's references as an IP-Adapter region covering the figure, its LoRA
and trigger from `cast.identity_assets`, the prompt from `autokose.prompting.sheet_prompt`.

Every view uses the same seed: the same starting noise under a different pose control keeps
colours and costume closer from view to view than a seed per view does, and one number
reproduces the sheet. Views are denoised one per pipeline call, so a view's pixels do not
depend on which other views are drawn (`views=`).

The folder's file names live in `SheetFolder` alone. The face-showing views are listed in
`sheet.json` → `references`: point the bible's `references:` at them to use the sheet as the
character's references for later boards.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autokose import regions
from autokose.errors import InputError
from autokose.fsio import read_json_object, save_image, temp_target, write_json
from autokose.poses import K, POSES, back_view, mirror
from autokose.prompting import sheet_negative, sheet_prompt
from autokose.render import MAX_SIDE, MIN_SIDE
from autokose.render.diffusion.settings import DiffusionSettings, check_size
from autokose.staging import Figure, Layout
from autokose.story import Character, Scene, Shot, Story

if TYPE_CHECKING:
    from PIL import Image

    from autokose.bible import Bible
    from autokose.cast import IdentityAssets

log = logging.getLogger("autokose")

SHEET_VERSION = 1
# Default view sizes (width, height): portrait, about the area each model was trained on.
VIEW_SIZE = {"previz": (384, 576), "sd15": (512, 768), "sdxl": (832, 1216)}
STANDING_HEIGHT = 0.78  # of the view's height: head to toe, with room for a hat
STANDING_GROUND = 0.95
CLOSE_UP_HEIGHT = 1.7  # a face close-up: the standing pose scaled until the head fills the upper half
CLOSE_UP_NOSE_Y = 0.45
BACKGROUND = "#f2f0eb"


@dataclass(frozen=True)
class SheetView:
    """One picture of the sheet: a turn of the standing figure, or a face close-up with an expression."""

    name: str  # file stem and sheet.json key
    label: str  # printed under the view in sheet.png
    turn: str  # a key of prompting.SHEET_TURNS
    emotion: str = "neutral"  # a key of the word table's prompt emotions
    close_up: bool = False

    @property
    def shows_face(self) -> bool:
        return self.turn != "back"


VIEWS: tuple[SheetView, ...] = (
    SheetView("front", "Front", "front"),
    SheetView("three_quarter_left", "3/4 left", "three_quarter_left"),
    SheetView("three_quarter_right", "3/4 right", "three_quarter_right"),
    SheetView("profile", "Profile", "profile"),
    SheetView("back", "Back", "back"),
    SheetView("neutral", "Neutral", "front", "neutral", close_up=True),
    SheetView("smiling", "Smiling", "front", "happy", close_up=True),
    SheetView("surprised", "Surprised", "front", "amazed", close_up=True),
    SheetView("angry", "Angry", "front", "angry", close_up=True),
)
VIEW_NAMES = tuple(v.name for v in VIEWS)


def select_views(names: Sequence[str] | None = None) -> list[SheetView]:
    """The views named (in the sheet's order), or all of them; InputError for an unknown name."""
    if not names:
        return list(VIEWS)
    unknown = [n for n in names if n not in VIEW_NAMES]
    if unknown:
        raise InputError(f"unknown view '{unknown[0]}' (views: {', '.join(VIEW_NAMES)})")
    return [v for v in VIEWS if v.name in set(names)]


# ----------------------------------------------------------------------------- the folder
class SheetFolder:
    """A character sheet's folder: every file name it writes, and which files it may replace.

        sheet.json         character, model and options, per view: file, seed, prompt, pose, scores
        sheet.png          every view in a labelled grid
        views/<name>.png   each view alone
    """

    JSON = "sheet.json"
    PNG = "sheet.png"
    VIEWS = "views"
    _VIEW_FILE = re.compile(rf"^({'|'.join(VIEW_NAMES)})\.png$")

    def __init__(self, root: Path | str):
        self.root = Path(root)

    @property
    def json_path(self) -> Path:
        return self.root / self.JSON

    @property
    def png_path(self) -> Path:
        return self.root / self.PNG

    def view_path(self, name: str) -> Path:
        return self.root / self.VIEWS / f"{name}.png"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _owns(self, sub: str, name: str) -> bool:
        name = temp_target(name) or name  # a temp file a killed run left
        if sub == "":
            return name in (self.JSON, self.PNG)
        return bool(self._VIEW_FILE.match(name))

    def owned_files(self) -> list[Path]:
        """The files a sheet writes that are there now (a user's own files are never listed)."""
        out = []
        for sub in ("", self.VIEWS):
            folder = self.root / sub
            if folder.is_dir() and not folder.is_symlink():
                out += [f for f in sorted(folder.iterdir()) if f.is_file() and self._owns(sub, f.name)]
        return out

    def is_sheet(self) -> bool:
        """Whether the folder holds nothing but a sheet's files (a finished sheet or a killed run's)."""
        for entry in self.root.iterdir():
            if entry.name == self.VIEWS and entry.is_dir() and not entry.is_symlink():
                if any(not (f.is_file() and self._owns(self.VIEWS, f.name)) for f in entry.iterdir()):
                    return False
            elif not (entry.is_file() and self._owns("", entry.name)):
                return False
        return True

    def check(self, *, force: bool = False) -> None:
        """Refuse, before anything is written, a folder this sheet cannot safely write into.

        Like a board's --force: a non-empty folder that is not a sheet is written into only with
        `force`, and even then only the sheet's own file names are replaced, never a user's files.
        """
        root = self.root
        if root.exists() and not root.is_dir():
            raise InputError(f"{root}: exists and is not a folder")
        if not root.exists():
            return
        views = root / self.VIEWS
        if views.exists() and (views.is_symlink() or not views.is_dir()):
            raise InputError(f"{views}: exists and is not a folder (move it away)")
        for path in (self.json_path, self.png_path):
            if path.is_dir() or path.is_symlink():
                raise InputError(f"{path}: is a folder or a link where the sheet keeps a file (move it away)")
        if not force and any(root.iterdir()) and not self.is_sheet():
            raise InputError(f"{root}: folder is not empty and holds no character sheet (use --force to write the "
                             "sheet into it; only the sheet's own files are replaced)")

    def load(self) -> dict:
        return read_json_object(self.json_path, "character sheet")

    def remove_stale(self, written: set[Path]) -> None:
        """Delete the sheet files a previous run left that this run did not write (views no longer drawn)."""
        for path in self.owned_files():
            if path not in written:
                path.unlink()


# ----------------------------------------------------------------------------- views as layouts
Point = tuple[float, float, float]
_PAIRS = ((K["RShoulder"], K["LShoulder"]), (K["RElbow"], K["LElbow"]), (K["RWrist"], K["LWrist"]),
          (K["RHip"], K["LHip"]), (K["RKnee"], K["LKnee"]), (K["RAnkle"], K["LAnkle"]))
FRONT_WIDEN = 1.2  # a body seen square-on is wider than the library's three-quarter view of it


def turn_points(turn: str) -> tuple[list[Point], int]:
    """The standing pose of the pose library turned to `turn`, in its body-relative unit space
    (x the way a right-facing figure looks, y up, feet at 0, head top at 1), and the figure's facing.

    The library draws three-quarter views facing right; the others are made from it: mirrored
    (facing left), seen from behind (`back_view`), square-on (each left/right pair spread evenly
    about the centre line, the face centred with both eyes and ears) and in profile (pairs
    stacked on one line, the far eye and ear hidden). Left/right labels follow the body, so an
    OpenPose ControlNet reads which side faces the camera.
    """
    stand = list(POSES["stand"])
    if turn == "three_quarter_right":
        return stand, 1
    if turn == "three_quarter_left":
        return mirror(stand), -1
    if turn == "back":
        return back_view(stand), 1
    neck_x = stand[K["Neck"]][0]
    nose_y = stand[K["Nose"]][1]
    points = [(x - neck_x, y, c) for x, y, c in stand]
    if turn == "front":
        for r, l in _PAIRS:
            half = (abs(points[r][0]) + abs(points[l][0])) / 2 * FRONT_WIDEN
            y = (points[r][1] + points[l][1]) / 2
            points[r], points[l] = (-half, y, 1.0), (half, y, 1.0)  # the figure's right is the viewer's left
        points[K["Nose"]] = (0.0, nose_y, 1.0)
        points[K["REye"]], points[K["LEye"]] = (-0.024, nose_y + 0.022, 1.0), (0.024, nose_y + 0.022, 1.0)
        points[K["REar"]], points[K["LEar"]] = (-0.058, nose_y + 0.008, 1.0), (0.058, nose_y + 0.008, 1.0)
        return points, 1
    if turn == "profile":
        for r, l in _PAIRS:
            x = (points[r][0] + points[l][0]) / 2
            points[r], points[l] = (x - 0.006, points[r][1], 1.0), (x + 0.006, points[l][1], 1.0)
        points[K["Nose"]] = (0.075, nose_y, 1.0)
        points[K["REye"]] = (0.05, nose_y + 0.022, 1.0)
        points[K["LEye"]] = (0.05, nose_y + 0.022, 0.0)  # the far side of the face is hidden
        points[K["REar"]] = (-0.02, nose_y + 0.008, 1.0)
        points[K["LEar"]] = (-0.02, nose_y + 0.008, 0.0)
        return points, 1
    raise ValueError(f"unknown turn {turn!r}")


def view_layout(view: SheetView, character: Character, width: int, height: int) -> Layout:
    """A one-figure layout of `view` for a `width` x `height` picture (the control and previz input)."""
    aspect = width / height
    points, facing = turn_points(view.turn)
    if view.close_up:
        size = CLOSE_UP_HEIGHT
        ground = CLOSE_UP_NOSE_Y + points[K["Nose"]][1] * size
    else:
        size, ground = STANDING_HEIGHT, STANDING_GROUND
    placed = []
    for ux, uy, c in points:
        fx, fy = 0.5 + ux * size / aspect, ground - uy * size
        placed.append((round(fx, 5), round(fy, 5), c if 0.0 <= fx <= 1.0 and 0.0 <= fy <= 1.0 else 0.0))
    half = 0.16 * size / aspect
    box = (max(0.0, 0.5 - half), max(0.0, ground - size * 1.02), min(1.0, 0.5 + half), min(1.0, ground + 0.01))
    figure = Figure(id=character.id, kind=character.kind, x=0.5, ground=round(ground, 5), height=size, facing=facing,
                    pose="stand", emotion=view.emotion, keypoints=placed, box=tuple(round(v, 5) for v in box),
                    view="back" if view.turn == "back" else "front")
    return Layout(index=1, shot=Shot.close_up if view.close_up else Shot.wide, setting="", figures=[figure],
                  aspect=aspect, focus=character.id)


# ----------------------------------------------------------------------------- drawing
@dataclass
class SheetPlan:
    """Everything a sheet is drawn from, checked: the character, its assets, the views, size and model."""

    character: Character
    assets: IdentityAssets
    views: list[SheetView]
    width: int
    height: int
    seed: int = 0
    diffusion: DiffusionSettings | None = None
    engine: object = None  # a checked DiffusionEngine (diffusion) or None (previz)
    arch: str | None = None
    warnings: list[str] = field(default_factory=list)


def plan_sheet(character: Character, assets: IdentityAssets, *, diffusion: DiffusionSettings | None = None,
               views: Sequence[str] | None = None, width: int | None = None, height: int | None = None,
               seed: int = 0) -> SheetPlan:
    """Check everything a sheet would use (no weights are loaded, nothing is written).

    Raises InputError for a character the kit cannot turn around (animals), an unknown view,
    a bad size, or a model, LoRA, ControlNet, IP-Adapter or reference image that is unusable.
    """
    if character.kind not in ("human", "spirit"):
        raise InputError(f"{character.id} is a {character.kind}: character sheets turn a standing human (or "
                         "spirit) figure around")
    if not 0 <= seed < 2**32:
        raise InputError(f"--seed must be between 0 and {2**32 - 1} (got {seed})")
    chosen = select_views(views)
    if diffusion is None:
        w, h = _size(width, height, VIEW_SIZE["previz"])
        return SheetPlan(character, assets, chosen, w, h, seed)
    if diffusion.lineart:
        raise InputError("--lineart: a character sheet has no previz frame to trace; use --controlnet (OpenPose)")
    from autokose.render.diffusion import controls
    from autokose.render.diffusion.engine import DiffusionEngine

    given = {ref.path for ref in _lora_refs(diffusion)}
    own = [(assets.lora, character.id)] if assets.lora and assets.lora.path not in given else []
    engine = DiffusionEngine(diffusion, loras=own)
    arch = engine.check()
    w, h = check_size(*_size(width, height, VIEW_SIZE[arch]))
    plan = SheetPlan(character, assets, chosen, w, h, seed, diffusion, engine, arch)
    if diffusion.ip_adapter:
        controls.check_references(character.id, list(assets.references))
        if not assets.references:
            plan.warnings.append(f"--ip-adapter {diffusion.ip_adapter}: {character.id} has no reference images, "
                                 "so it will change nothing")
    if not diffusion.controlnet:
        plan.warnings.append("no --controlnet: the views are turned by their prompts alone (an OpenPose "
                             "ControlNet makes the turnaround follow the pose library)")
    return plan


def _lora_refs(diffusion: DiffusionSettings):
    from autokose.models import LoraRef

    return [LoraRef.parse(spec) for spec in diffusion.loras]


def _size(width: int | None, height: int | None, default: tuple[int, int]) -> tuple[int, int]:
    """The view size: both given, one given (the other keeps the default 2:3 aspect), or the default."""
    if width is None and height is None:
        return default
    if height is None:
        height = round(width * default[1] / default[0] / 8) * 8
    elif width is None:
        width = round(height * default[0] / default[1] / 8) * 8
    for option, value in (("width", width), ("height", height)):
        if not MIN_SIDE <= value <= MAX_SIDE:
            raise InputError(f"--{option} must be between {MIN_SIDE} and {MAX_SIDE} pixels (got {value})")
    return width, height


@dataclass
class DrawnView:
    view: SheetView
    image: Image.Image
    layout: Layout
    prompt: str = ""
    negative: str = ""


def draw_views(plan: SheetPlan, progress: Callable[[int, int], None] | None = None) -> list[DrawnView]:
    """Every view of the plan, in order; `progress(done, total)` after each."""
    total = len(plan.views)
    drawn = []
    for n, view in enumerate(plan.views):
        layout = view_layout(view, plan.character, plan.width, plan.height)
        if plan.engine is None:
            drawn.append(DrawnView(view, previz_view(layout, plan.character, plan.width, plan.height), layout))
        else:
            drawn.append(_diffusion_view(plan, view, layout))
        if progress is not None:
            progress(n + 1, total)
    return drawn


def previz_view(layout: Layout, character: Character, width: int, height: int) -> Image.Image:
    """The previz kit's puppet of the layout's figure on a plain ground (no weights, deterministic)."""
    from autokose.previz.designs import design_for
    from autokose.previz.puppets import draw_human
    from autokose.previz.svg import rect
    from autokose.render.previz import rasterise

    figure = layout.figures[0]
    eyes = (K["REye"], K["LEye"])
    middle = (figure.keypoints[eyes[0]][0] + figure.keypoints[eyes[1]][0]) / 2
    if abs(middle - figure.keypoints[K["Neck"]][0]) < 1e-3:
        # A square-on face: the kit's heads are three-quarter drawings placed by the neck-to-eyes
        # line, which a centred face would tilt back; nudge the eyes to where that line expects them.
        shift = 0.03 * figure.height * height / width
        points = list(figure.keypoints)
        for i in eyes:
            x, y, c = points[i]
            points[i] = (x + shift * figure.facing, y, c)
        figure = figure.model_copy(update={"keypoints": points})
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}">' + rect(0, 0, width, height, BACKGROUND)
           + draw_human(figure, design_for(character), width, height) + "</svg>\n")
    return rasterise(svg)


def view_request(plan: SheetPlan, view: SheetView, layout: Layout):
    """The FrameRequest of one view: prompt, negative, seed, OpenPose control, IP-Adapter region."""
    from autokose.render.diffusion import controls
    from autokose.render.diffusion.engine import FrameRequest, Region

    o, character, assets = plan.diffusion, plan.character, plan.assets
    who = character.model_copy(update={"trigger": assets.trigger or character.trigger})
    images = {"openpose": controls.pose_images([layout], plan.width, plan.height)[0]} if o.controlnet else {}
    # The figure is the character's region: its LoRA (owned by it) acts there, and so do its
    # references with an IP-Adapter. Without a region, a regional engine would apply the LoRA nowhere.
    mask = regions.box_mask(layout.figures[0].box, plan.width, plan.height)
    references = list(assets.references) if o.ip_adapter else []
    parts = [Region(character.id, mask, references)]
    return FrameRequest(prompt=sheet_prompt(who, view.turn, view.emotion, view.close_up),
                        negative=sheet_negative(character, o.negative), seed=plan.seed, width=plan.width,
                        height=plan.height, controls=images, regions=parts)


def _diffusion_view(plan: SheetPlan, view: SheetView, layout: Layout) -> DrawnView:
    request = view_request(plan, view, layout)
    image = plan.engine.denoise([request])[0]
    return DrawnView(view, image, layout, request.prompt, request.negative)


# ----------------------------------------------------------------------------- the grid
COLUMNS = 5
MAX_SHEET_WIDTH = 4096
PAD = 16
LABEL_H = 28
HEADER_H = 48
INK = (30, 30, 30)


def grid_size(count: int, width: int, height: int) -> tuple[tuple[int, int], tuple[int, int], int]:
    """((sheet width, height), (cell width, height), columns) for `count` views of `width` x `height`.

    Up to COLUMNS views a row; views are shown at their own size unless the row would be wider
    than MAX_SHEET_WIDTH, then scaled down to fit.
    """
    cols = max(1, min(COLUMNS, count))
    rows = math.ceil(count / cols)
    cell_w = min(width, (MAX_SHEET_WIDTH - PAD * (cols + 1)) // cols)
    cell_h = round(height * cell_w / width)
    sheet = (PAD + cols * (cell_w + PAD), HEADER_H + rows * (cell_h + LABEL_H + PAD))
    return sheet, (cell_w, cell_h), cols


def compose_sheet(title: str, drawn: list[DrawnView]) -> Image.Image:
    """All views in a grid, each labelled under it, with `title` on top (DejaVu Sans: Cyrillic and Kazakh too)."""
    from PIL import Image, ImageDraw, ImageFont

    from autokose.export import font_path

    width, height = drawn[0].image.size
    (sw, sh), (cw, ch), cols = grid_size(len(drawn), width, height)
    sheet = Image.new("RGB", (sw, sh), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, HEADER_H // 2), title, fill=INK, font=ImageFont.truetype(str(font_path(bold=True)), 22),
              anchor="lm")
    font = ImageFont.truetype(str(font_path()), 16)
    for n, item in enumerate(drawn):
        x = PAD + (n % cols) * (cw + PAD)
        y = HEADER_H + (n // cols) * (ch + LABEL_H + PAD)
        image = item.image if item.image.size == (cw, ch) else item.image.resize((cw, ch), Image.LANCZOS)
        sheet.paste(image.convert("RGB"), (x, y))
        draw.text((x + cw // 2, y + ch + LABEL_H // 2), item.view.label, fill=INK, font=font, anchor="mm")
    return sheet


# ----------------------------------------------------------------------------- face identity
def face_scores(drawn: list[DrawnView], assets: IdentityAssets) -> tuple[dict[str, dict], dict]:
    """Face identity between the views that show the face, and to the character's references.

    Per view: whether a face was found and its distance to the references' centroid (the card's
    `face_centroid` when it has one). Overall: every pairwise distance, their mean, the mean
    distance to the references, and a `reason` wherever a number is missing (dlib missing, no
    face found, no references). Distances are dlib's (same person below `score.face.THRESHOLD`).
    """
    from autokose import faces

    shown = [d for d in drawn if d.view.shows_face]
    per_view = {d.view.name: {"face": None, "reason": "back view: no face to measure"} for d in drawn
                if not d.view.shows_face}
    if not faces.available():
        reason = "dlib or its face models are not installed (pip install 'autokose[score]')"
        per_view.update({d.view.name: {"face": None, "reason": reason} for d in shown})
        return per_view, {"threshold": None, "pairs": [], "mean_distance": None, "reference_distance": None,
                          "reason": reason}
    from autokose.faces import face_distance
    from autokose.images import Unreadable, open_rgb
    from autokose.score.face import THRESHOLD, card_centroid, find_faces, reference_centroid

    centroid, _ = card_centroid(assets.card)
    ref_reason = None
    if centroid is None:
        try:
            images = [open_rgb(p) for p in assets.references]
        except Unreadable as e:
            images, ref_reason = [], f"a reference image is unreadable ({e})"
        centroid, found = reference_centroid(images) if images else (None, 0)
        if centroid is None:
            ref_reason = ref_reason or ("no face found in the reference images" if images
                                        else "the character has no reference images")
    embeddings = {}
    for d in shown:
        found = find_faces(d.image, upsample=1)
        if not found:
            per_view[d.view.name] = {"face": None, "reason": "no face found"}
            continue
        face = found[0]
        embeddings[d.view.name] = face.embedding
        box = face.box
        per_view[d.view.name] = {
            "face": [box.left, box.top, box.right, box.bottom],
            "reference_distance": round(face_distance(face.embedding, centroid), 4) if centroid is not None else None,
            "reason": ref_reason,
        }
    names = list(embeddings)
    pairs = [{"a": a, "b": b, "distance": round(face_distance(embeddings[a], embeddings[b]), 4)}
             for i, a in enumerate(names) for b in names[i + 1:]]
    to_refs = [v["reference_distance"] for v in per_view.values() if v.get("reference_distance") is not None]
    reasons = []
    if len(names) < 2:
        reasons.append(f"faces found in {len(names)} of {len(shown)} face-showing views: no pair to compare")
    if not to_refs and ref_reason:
        reasons.append(ref_reason)
    summary = {
        "threshold": THRESHOLD,
        "pairs": pairs,
        "mean_distance": round(sum(p["distance"] for p in pairs) / len(pairs), 4) if pairs else None,
        "reference_distance": round(sum(to_refs) / len(to_refs), 4) if to_refs else None,
        "reason": "; ".join(reasons) or None,
    }
    return per_view, summary


# ----------------------------------------------------------------------------- the whole sheet
def character_assets(bible: Bible, character_id: str) -> tuple[Character, IdentityAssets]:
    """The bible's character (InputError naming the known ones when absent) and its identity assets
    (LoRA, trigger, references, card) as `cast.identity_assets` gathers them for a board."""
    from autokose.cast import identity_assets

    character = bible[character_id]
    story = Story(title=f"{character.name}: character sheet", logline=f"character sheet of {character.name}",
                  characters=[character], scenes=[Scene(index=1, characters=[character.id])])
    return character, identity_assets(story, bible)[character.id]


def write_sheet(plan: SheetPlan, out: Path | str, *, force: bool = False,
                progress: Callable[[int, int], None] | None = None) -> dict:
    """Draw the plan's views and write the sheet folder; returns what `sheet.json` holds.

    The folder is checked before anything is drawn or written; each file lands whole (temp file
    + rename), `sheet.json` last, and files of an earlier sheet that this one did not write
    (views no longer asked for) are removed at the end.
    """
    folder = SheetFolder(out)
    folder.check(force=force)
    for message in plan.warnings:
        log.warning(message)
    drawn = draw_views(plan, progress)
    per_view, identity = face_scores(drawn, plan.assets)
    written = set()
    views = []
    for d in drawn:
        path = save_image(folder.view_path(d.view.name), d.image)
        written.add(path)
        figure = d.layout.figures[0]
        views.append({
            "name": d.view.name, "label": d.view.label, "file": folder.relative(path), "seed": plan.seed,
            "prompt": d.prompt or None, "negative_prompt": d.negative or None,
            "pose": {"pose": figure.pose, "turn": d.view.turn, "facing": figure.facing, "view": figure.view,
                     "emotion": d.view.emotion, "shot": "close_up" if d.view.close_up else "full_body",
                     "keypoints": [list(p) for p in figure.keypoints], "box": list(figure.box)},
            "shows_face": d.view.shows_face,
            "scores": per_view.get(d.view.name),
        })
    title = f"{plan.character.name} — character sheet"
    written.add(save_image(folder.png_path, compose_sheet(title, drawn)))
    data = {
        "sheet_version": SHEET_VERSION,
        "character": plan.character.id,
        "name": plan.character.name,
        "renderer": "previz" if plan.engine is None else "diffusion",
        "model": plan.diffusion.model if plan.diffusion else None,
        "arch": plan.arch,
        "options": plan.diffusion.given() if plan.diffusion else {},
        "controls": plan.engine.controls_meta() if plan.engine is not None else {},
        "width": plan.width, "height": plan.height, "seed": plan.seed,
        "trigger": plan.assets.trigger or None,
        "character_references": [str(p) for p in plan.assets.references],
        "sheet": folder.relative(folder.png_path),
        "views": views,
        "identity": identity,
        # the face-showing views: point the bible's `references:` at them for later boards
        "references": [v["file"] for v in views if v["shows_face"]],
    }
    written.add(write_json(folder.json_path, data))
    folder.remove_stale(written)
    return data


def references_yaml(out: Path | str, data: dict) -> str:
    """A `--characters` YAML that makes a sheet's face-showing views the character's references
    (merged over the bible's entry: everything else about the character stays as it was)."""
    folder = SheetFolder(out)
    lines = ["characters:", f"  - id: {data['character']}", "    references:"]
    lines += [f"      - {json.dumps(str((folder.root / name).resolve()), ensure_ascii=False)}"
              for name in data["references"]]
    return "\n".join(lines)
