"""Stage: per scene, a layout of who stands where, at what scale, in what pose.

Coordinates are normalised to the frame (x right, y down, 0..1) so one layout serves every
renderer size of the same aspect ratio; `Layout.keypoints_px` gives pixels for a given canvas.

Blocking rules, in order: the shot size sets the figures' scale and ground line; characters
stand left to right in `scene.characters` order (`place` "left" or "right" moves one to that
end of the front row); those whose `place` is "behind" stand in a back row, smaller and
higher, drawn first, flanking the key character's counterpart (the Bai, with his servants
behind him); a rider shares the slot of the animal they ride; everyone faces the others (or
the way they travel), and a bow, point or offer faces the one it is for. The horizon is set by
the camera height the angle names (through the key figure's eyes at eye level); a run of scenes
with the same setup is pushed in every other frame; `autokose.staging_rules` checks the result.
Staging reads only the scene's structured fields, never the action prose: the writer that
wrote "behind the Bai's back" also wrote `place: behind`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from pydantic import BaseModel, Field

from autokose.poses import GRIP, POSES, K, place, resolve_pose
from autokose.story import Angle, Character, Scene, Shot, Story, TimeOfDay
from autokose.vocabulary import resolve_prop

DEFAULT_ASPECT = 16 / 9


class Figure(BaseModel):
    """One character placed in a frame."""

    id: str
    kind: str = "human"
    x: float = Field(description="Centre of the figure, fraction of frame width.")
    ground: float = Field(description="Where the feet touch the ground, fraction of frame height.")
    height: float = Field(description="Standing height as a fraction of frame height (>1 when cropped).")
    facing: int = Field(1, description="1 faces right, -1 faces left.")
    pose: str = "stand"
    emotion: str = "neutral"
    holds: str | None = None
    keypoints: list[tuple[float, float, float]] = Field(
        default_factory=list, description="18 OpenPose body keypoints (x, y, confidence), normalised; conf 0 = absent."
    )
    box: tuple[float, float, float, float] = Field(
        (0.0, 0.0, 0.0, 0.0), description="Figure bounding box x0, y0, x1, y1, normalised."
    )
    view: str = Field("front", description="front (three-quarter, face visible) or back (over-the-shoulder).")
    behind: bool = Field(False, description="Stands in the back row.")
    mount: str | None = Field(None, description="Id of the animal this figure rides.")


class PropPlacement(BaseModel):
    name: str
    x: float
    y: float
    size: float = Field(description="Fraction of frame height.")
    kind: str = Field("bundle", description="Drawable prop kind (see autokose.vocabulary).")
    holder: str | None = Field(None, description="Id of the character holding it; x, y is then the grip.")
    grip: str | None = Field(None, description="'one' hand or 'both' hands when held.")


class Layout(BaseModel):
    index: int
    shot: Shot
    angle: Angle = Angle.eye_level
    setting: str
    time: TimeOfDay = TimeOfDay.day
    horizon: float = Field(0.6, description="Horizon line, fraction of frame height.")
    figures: list[Figure] = Field(default_factory=list)
    props: list[PropPlacement] = Field(default_factory=list)
    aspect: float = Field(DEFAULT_ASPECT, description="Frame width / height the layout was made for.")
    focus: str | None = Field(None, description="The key character: the close-up's subject.")
    source: str = Field("", description="staging_key of the scene it was staged from: a saved layout (layouts.json) "
                                        "whose scene has changed since is staged again.")

    def keypoints_px(self, width: int, height: int) -> list[list[tuple[float, float, float]]]:
        return [[(x * width, y * height, c) for x, y, c in f.keypoints] for f in self.figures]


@dataclass(frozen=True)
class Framing:
    """How a shot size frames the front row: standing height, ground line, gap between slots."""

    height: float
    ground: float
    gap: float
    horizon: float


FRAMINGS = {
    Shot.establishing: Framing(height=0.2, ground=0.8, gap=0.08, horizon=0.58),
    Shot.wide: Framing(height=0.52, ground=0.9, gap=0.2, horizon=0.5),
    Shot.medium: Framing(height=1.18, ground=1.38, gap=0.1, horizon=0.42),
    Shot.close_up: Framing(height=2.6, ground=3.03, gap=0.0, horizon=0.45),
    Shot.over_the_shoulder: Framing(height=1.15, ground=1.29, gap=0.0, horizon=0.42),
    Shot.insert: Framing(height=3.2, ground=2.7, gap=0.0, horizon=0.3),
}
# Camera height in standing heights: where the horizon crosses the front row.
CAMERA_HEIGHT = {Angle.eye_level: 0.93, Angle.low: 0.45, Angle.high: 1.5}
EYE_HEIGHT = 0.937  # the eyes of a standing pose, in standing heights (autokose.poses)
HORIZON_RANGE = (0.05, 0.9)  # a high camera may leave a sliver of sky; a low one a strip of ground
# How far every other scene of a run with the same setup is pushed in: past the 20 % of a jump cut.
REFRAME_ZOOM = 1.3
HORIZON_SHIFT = {Angle.eye_level: 0.0, Angle.low: 0.12, Angle.high: -0.15}
BACK_ROW_SCALE = 0.78
# Where the face lands (nose, fraction of frame height) in shots framed on a face.
# A close-up's eyes sit a little under the top third line, so a long beard still ends inside the frame.
CLOSE_UP_NOSE, OTS_KEY_NOSE, OTS_NEAR_NOSE = 0.5, 0.24, 0.52

# Standing height per puppet build, relative to an average adult.
BUILD_HEIGHT = {"small": 0.62, "slim": 1.0, "average": 0.98, "stout": 0.97}
class _AnimalSizes(dict):
    """Kind → size; a kind the table lacks (a user's own `kind: yak`) gets a neutral medium size,
    so staging places it as an animal, never as a human."""

    def __missing__(self, kind: str) -> tuple[float, float, float]:
        return UNKNOWN_ANIMAL


# Side-view animals in standing heights: body length, height to the ears, saddle height.
UNKNOWN_ANIMAL = (0.6, 0.45, 0.3)
ANIMALS = _AnimalSizes({
    "donkey": (0.78, 0.7, 0.43), "horse": (1.1, 1.02, 0.66), "camel": (1.2, 1.2, 0.84),
    "wolf": (0.75, 0.48, 0.3), "dog": (0.6, 0.42, 0.26), "sheep": (0.62, 0.5, 0.32), "goat": (0.6, 0.55, 0.32),
    "eagle": (0.42, 0.42, 0.2),  # perched on a rock (or flying above it): no hooves on the ground
})  # fmt: skip
# Where each animal's head is in its side-view drawing, in its own heights: (ahead of the body's
# centre, below the ear tips). A close-up frames the head, not the belly.
ANIMAL_HEADS = {
    "donkey": (0.5, 0.3), "horse": (0.48, 0.15), "camel": (0.45, 0.08), "wolf": (0.6, 0.2), "dog": (0.55, 0.24),
    "sheep": (0.5, 0.25), "goat": (0.45, 0.22), "eagle": (0.15, 0.22),
}  # fmt: skip
ANIMAL_CLOSE_UP = 1.5  # the animal's height in frame heights in a close-up
HUMAN_KINDS = frozenset({"human", "spirit"})  # drawn as puppets; every other kind is an animal
RIDEABLE = frozenset({"donkey", "horse", "camel"})  # a rider mounts only these
HUMAN_WIDTH = 0.32  # shoulder-to-elbow span of a standing figure, in standing heights
# Prop size in standing heights of the figure (or of the front row for props on the ground).
PROP_SCALE = {
    "golden_egg": 0.13, "cauldron": 0.3, "fur_coat": 0.42, "coins": 0.1, "purse": 0.11, "tea_bowl": 0.08,
    "whip": 0.38, "staff": 1.1, "sack": 0.3, "carpet": 0.62, "bundle": 0.16, "patched_coat": 0.42, "saddle": 0.2,
    "tymak": 0.13,
}  # fmt: skip

# Poses aimed at someone (offering something held, too): the figure faces the one they are for.
GESTURES = frozenset({"point", "bow", "talk", "argue", "hold"})

# Front-row order by `place`: "left" first, "right" last, everyone else between (stable).
ROW_ORDER = {"left": 0, "right": 2}


def stage_story(story: Story, aspect: float = DEFAULT_ASPECT) -> list[Layout]:
    """Lay out every scene of the story."""
    return [layout_scene(story, scene, aspect) for scene in story.scenes]


# Scene fields staging never reads: editing them keeps a saved (maybe hand-adjusted) layout.
# Scene fields that do not move a figure. The index is among them: a scene moved to another place in
# the story (`autokose scenes move`) keeps its layout unless its new neighbours change its framing
# (reframe_zoom, which the key holds).
# `extra` is other tools' data (story.EXTRA_DESCRIPTION): left out, so boards saved before it keep their keys.
UNSTAGED = {"index", "caption", "dialogue", "action", "prompt", "negative_prompt", "seed", "duration", "notes",
            "sound", "extra"}


def staging_key(story: Story, scene: Scene) -> str:
    """A hash of what decides a scene's layout besides the frame shape: the scene's staged fields and its cast."""
    data = {"scene": scene.model_dump(mode="json", exclude=UNSTAGED),
            "cast": [story.character(cid).model_dump(mode="json") for cid in scene.characters]}
    zoom = reframe_zoom(story, scene)
    if zoom != 1.0:  # pushed in because the scene before has the same setup
        data["reframe"] = zoom
    return hashlib.sha256(json.dumps(data, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def layout_scene(story: Story, scene: Scene, aspect: float = DEFAULT_ASPECT) -> Layout:
    """Place every character of one scene: position, scale, facing, pose keypoints and props.

    When the writer gives the same setup several times in a row, every other one is pushed in
    (`reframe_zoom`), so consecutive frames never look identical.
    """
    return _layout_scene(story, scene, aspect, reframe_zoom(story, scene))


def reframe_zoom(story: Story, scene: Scene) -> float:
    """1.0, or REFRAME_ZOOM for the 2nd, 4th, ... of a run of scenes with the same setup.

    A setup is the shot size, place, camera height and who stands where; decided from the
    scenes alone (not from the previous layout), so restaging one scene stays cheap and agrees
    with staging the whole story.
    """
    order = [s.index for s in story.scenes]
    n = order.index(scene.index) if scene.index in order else 0
    setup, run = _setup(scene), 0
    while n - run - 1 >= 0 and _setup(story.scenes[n - run - 1]) == setup:
        run += 1
    return REFRAME_ZOOM if run % 2 else 1.0


def _setup(scene: Scene) -> tuple:
    places = tuple(scene.direction(cid).place for cid in scene.characters)
    return scene.shot, scene.setting, scene.angle, tuple(scene.characters), places


def same_framing(layout: Layout, previous: Layout, tolerance: float = 0.05, scale: float = 1.2) -> bool:
    """Whether two frames show the same shot of the same place with everyone where they were: a
    jump cut. A cut needs someone to move (by `tolerance` frame heights), turn, or change size by
    `scale` (the editors' rule of thumb: 20 % or more), or a new shot size or place.
    """
    if layout.shot != previous.shot or layout.setting != previous.setting or layout.angle != previous.angle:
        return False
    before = {f.id: f for f in previous.figures}
    if not before or set(before) != {f.id for f in layout.figures}:
        return False
    for f in layout.figures:
        p = before[f.id]
        moved = max(abs(f.x - p.x) * layout.aspect, abs(f.ground - p.ground))
        resized = max(f.height, p.height) / max(1e-6, min(f.height, p.height))
        if moved > tolerance or resized >= scale or f.facing != p.facing or f.view != p.view:
            return False
    return True


def _layout_scene(story: Story, scene: Scene, aspect: float, zoom: float = 1.0) -> Layout:
    cast = [story.character(cid) for cid in scene.characters]
    humans = [c for c in cast if not is_animal(c)]
    key = (humans or cast or [None])[0]
    mounts = _mounts(scene, cast)
    behind = _behind(scene, cast, key.id if key else None)
    stage = _Stage(story, scene, aspect, mounts, behind, key.id if key else None, zoom)

    shot = scene.shot
    if shot == Shot.close_up and key:
        stage.close_up(key)
    elif shot == Shot.over_the_shoulder and len(humans) >= 2:
        stage.over_the_shoulder(key, next(c for c in humans if c.id != key.id))
    elif shot == Shot.insert and stage.key_prop()[0] is not None:
        stage.insert()
    else:  # nobody to look over, nothing to show up close: a medium shot
        shot = Shot.medium if shot in (Shot.over_the_shoulder, Shot.insert) else shot
        stage.rows(shot)

    framing = FRAMINGS[shot]
    figures = stage.figures()
    return Layout(
        index=scene.index,
        shot=shot,
        angle=scene.angle,
        setting=scene.setting,
        time=scene.time,
        horizon=_horizon(figures, key.id if key else None, scene.angle, framing),
        figures=figures,
        props=stage.props,
        aspect=aspect,
        focus=key.id if key else None,
        source=staging_key(story, scene),
    )


def _horizon(figures: list[Figure], focus: str | None, angle: Angle, framing: Framing) -> float:
    """Where the camera height puts the horizon: through the eyes of the key figure at eye level,
    above the heads for a high camera, below the chest for a low one (what the angle label says).

    Without a face in the frame (an insert), the shot's usual horizon, shifted for the angle.
    """
    faces = [f for f in figures if f.keypoints and f.view == "front" and f.keypoints[K["REye"]][2] > 0]
    ref = next((f for f in faces if f.id == focus), None) or max(
        (f for f in faces if not f.behind), key=lambda f: f.height, default=None)
    if ref is None:
        return min(0.85, max(0.15, framing.horizon + HORIZON_SHIFT[angle]))
    eye_y = (ref.keypoints[K["REye"]][1] + ref.keypoints[K["LEye"]][1]) / 2
    horizon = eye_y + (EYE_HEIGHT - CAMERA_HEIGHT[angle]) * ref.height
    return _r(min(HORIZON_RANGE[1], max(HORIZON_RANGE[0], horizon)))


def animal_close_up(kind: str, facing: int, aspect: float) -> tuple[float, float, float]:
    """Slot x, ground and height (standing heights) that put an animal's head at the close-up's eye point."""
    head_x, head_y = ANIMAL_HEADS.get(kind, (0.5, 0.34))
    tall = ANIMALS[kind][1]
    x = 0.5 - 0.1 * facing - facing * head_x * ANIMAL_CLOSE_UP / aspect
    return x, 0.42 + (1 - head_y) * ANIMAL_CLOSE_UP, ANIMAL_CLOSE_UP / tall


def is_animal(character: Character) -> bool:
    """Every non-human kind, known to the kit or not: a custom `kind: wolf` is never a man in a robe."""
    return is_animal_kind(character.kind)


def is_animal_kind(kind: str) -> bool:
    return kind not in HUMAN_KINDS


@dataclass
class _Slot:
    """A character's place before keypoints are computed."""

    character: Character
    x: float
    ground: float
    height: float  # standing height of an average adult at this depth
    facing: int = 1
    view: str = "front"
    behind: bool = False
    layer: int = 1  # drawing order: 0 back row, 1 front row, 2 foreground


class _Stage:
    """Working state while one scene is blocked out."""

    def __init__(self, story: Story, scene: Scene, aspect: float, mounts: dict[str, str],
                 behind: dict[str, str | None], key: str | None, zoom: float = 1.0):
        self.story, self.scene, self.aspect, self.zoom = story, scene, aspect, zoom
        self.mounts, self.behind, self.key = mounts, behind, key
        self.slots: dict[str, _Slot] = {}
        self.props: list[PropPlacement] = []
        self.pose_override: dict[str, str] = {}

    # -- shot sizes ------------------------------------------------------------------------
    def rows(self, shot: Shot) -> None:
        """Establishing, wide and medium: a front row left to right, a back row behind it."""
        framing = self._framing(shot)
        cast = [self.story.character(cid) for cid in self.scene.characters]
        riders = set(self.mounts)
        front = [c for c in cast if c.id not in self.behind and c.id not in riders]
        front.sort(key=lambda c: ROW_ORDER.get(self.scene.direction(c.id).place, 1))
        back = [c for c in cast if c.id in self.behind and c.id not in riders]
        if not front:
            front, back = back, []
        height, ground, gap = framing.height, framing.ground, framing.gap
        widths = [self._width(c, height) for c in front]
        room = 0.9
        if len(front) > 1:
            gap = max(0.02, min(gap, (room - sum(widths)) / (len(front) - 1)))
        span = sum(widths) + gap * (len(front) - 1)
        if span > room:  # too many to fit: everyone steps back
            shrink = room / span
            height *= shrink
            widths, gap, span = [w * shrink for w in widths], gap * shrink, room
        if shot == Shot.medium:  # cut at the knees: the tallest head (maybe a rider's) stays in frame
            tallest = max((self._stature(c) for c in front), default=1.0)
            ground = framing.ground - framing.height + tallest * height
        x = 0.5 - span / 2
        for c, w in zip(front, widths):
            self.slots[c.id] = _Slot(c, x + w / 2, ground, height)
            x += w + gap
        self._face_each_other([self.slots[c.id] for c in front])
        self._back_row(back, height, ground)
        self._seat_riders()
        self._ground_props(height, ground)

    def close_up(self, key: Character) -> None:
        """The key character's head and shoulders fill the frame; the others stand off-frame."""
        framing = self._framing(Shot.close_up)
        height = framing.height
        others = [c for c in (self.story.character(i) for i in self.scene.characters) if c.id != key.id]
        order = self.scene.characters.index(key.id)
        facing = 1 if not others or self.scene.characters.index(others[0].id) > order else -1
        x = 0.5 - 0.06 * facing
        if is_animal(key):
            x, ground, height = animal_close_up(key.kind, facing, self.aspect)
        else:  # the face lands in the same place whatever the build or pose
            ground = self._ground_for_nose(key, height, CLOSE_UP_NOSE)
        self.slots[key.id] = _Slot(key, x, ground, height, facing)
        self._off_frame(others, key.id, height, framing.ground)

    def over_the_shoulder(self, key: Character, near: Character) -> None:
        """`near` seen from behind, large at one side; `key` faces the camera across from them."""
        framing = self._framing(Shot.over_the_shoulder)
        left = self.scene.characters.index(near.id) < self.scene.characters.index(key.id)
        side = -1 if left else 1  # where the near character stands
        if not self.scene.direction(near.id).holds:  # a listener's back: arms down, out of the way
            self.pose_override[near.id] = "stand"
        near_height = 2.6
        near_ground = self._ground_for_nose(near, near_height, OTS_NEAR_NOSE)
        self.slots[near.id] = _Slot(near, 0.5 + side * 0.33, near_ground, near_height, -side, "back", layer=2)
        key_ground = self._ground_for_nose(key, framing.height, OTS_KEY_NOSE)
        self.slots[key.id] = _Slot(key, 0.5 - side * 0.14, key_ground, framing.height, side)
        rest = [self.story.character(c) for c in self.scene.characters if c not in (near.id, key.id)]
        back_height = framing.height * BACK_ROW_SCALE
        for n, c in enumerate(rest):
            x = 0.5 - side * (0.36 + 0.1 * n)
            self.slots[c.id] = _Slot(c, x, framing.ground - 0.22, back_height, side, behind=True, layer=0)
        self._seat_riders()

    def _ground_for_nose(self, c: Character, height: float, nose_y: float) -> float:
        """The ground line that puts this character's nose at `nose_y` in their pose and build."""
        nose_up = POSES[self._pose(c.id)][K["Nose"]][1]
        return nose_y + nose_up * height * BUILD_HEIGHT.get(c.build, 1.0)

    def insert(self) -> None:
        """The key prop large in the middle of the frame, in the hands of whoever holds it."""
        name, holder = self.key_prop()
        cast = [self.story.character(c) for c in self.scene.characters]
        kind = resolve_prop(name)
        framing = self._framing(Shot.insert)
        if holder is not None:
            self.pose_override[holder.id] = "hold"
            grip_x = sum(p[0] for p in _grip_points("hold")) / 2
            height = framing.height
            x = 0.5 - grip_x * height / self.aspect
            grip_y = sum(p[1] for p in _grip_points("hold")) / 2
            ground = 0.6 + grip_y * height
            self.slots[holder.id] = _Slot(holder, x, ground, height, 1, layer=1)
            self.props.append(PropPlacement(name=name, kind=kind, x=0.5, y=0.56, size=0.42, holder=holder.id,
                                            grip="both"))
        else:
            self.props.append(PropPlacement(name=name, kind=kind, x=0.5, y=0.58, size=0.5))
        others = [c for c in cast if holder is None or c.id != holder.id]
        self._off_frame(others, holder.id if holder else None, framing.height, framing.ground)

    # -- helpers -----------------------------------------------------------------------------
    def _framing(self, shot: Shot) -> Framing:
        """The shot's framing, pushed in (zoom > 1) or pulled out to tell it from the frame before."""
        f = FRAMINGS[shot]
        if self.zoom == 1.0:
            return f
        # The top of the head stays where it was: a push-in crops lower, a pull-out shows more ground.
        return Framing(f.height * self.zoom, f.ground + f.height * (self.zoom - 1), f.gap * self.zoom, f.horizon)

    def _gesture_target(self, cid: str) -> _Slot | None:
        """Whom a gesturing character addresses: the key character turns to the first other person
        of the scene (their counterpart), everyone else to the key character. None when not gesturing."""
        if self._pose(cid) not in GESTURES:
            return None
        people = [c for c in self.scene.characters if c in self.slots and not is_animal(self.slots[c].character)]
        target = next((c for c in people if c != cid), None) if cid == self.key else self.key
        return self.slots.get(target) if target and target != cid else None

    def _stature(self, c: Character) -> float:
        """Top of a front-row slot in standing heights: a rider sits on the saddle."""
        if not is_animal(c):
            return 1.0
        _, tall, saddle = ANIMALS[c.kind]
        return saddle + 0.53 if c.id in self.mounts.values() else tall

    def _width(self, c: Character, height: float) -> float:
        length = ANIMALS[c.kind][0] if is_animal(c) else HUMAN_WIDTH
        return length * height / self.aspect

    def _face_each_other(self, slots: list[_Slot]) -> None:
        """Face the others; a party that is all on the move travels left to right together."""
        moving = [self._pose(s.character.id) in ("walk", "run") or s.character.id in self.mounts.values()
                  or s.character.id in self.mounts for s in slots]
        if slots and all(moving):
            for s in slots:
                s.facing = 1
            return
        for s in slots:
            others = [o.x for o in slots if o is not s]
            target = self._gesture_target(s.character.id)
            if target is not None and abs(target.x - s.x) > 1e-6:  # a bow or a point is for someone
                s.facing = 1 if target.x > s.x else -1
            elif others:
                centre = sum(others) / len(others)
                s.facing = 1 if centre >= s.x else -1
            elif self._pose(s.character.id) in ("walk", "run") or s.character.id in self.mounts.values():
                s.facing = 1
            else:
                s.facing = 1 if s.x <= 0.5 else -1

    def _back_row(self, back: list[Character], height: float, ground: float) -> None:
        """Smaller and higher on screen, flanking the one they stand behind."""
        if not back:
            return
        eye_line = ground - CAMERA_HEIGHT[self.scene.angle] * height
        back_ground = eye_line + (ground - eye_line) * BACK_ROW_SCALE
        front = [s for s in self.slots.values() if not s.behind]
        offsets = [1.1, -1.1, 2.2, -2.2, 3.3, -3.3]  # in figure widths, flanking the anchor
        width = HUMAN_WIDTH * height / self.aspect
        groups: dict[str | None, int] = {}
        # A front figure's face may lean past its slot (a bow reaches forward): keep clear of it too.
        taken = [s.x for s in front] + [s.x + s.facing * POSES[self._pose(s.character.id)][K["Nose"]][0]
                                        * s.height / self.aspect for s in front if not is_animal(s.character)]
        for c in back:
            ref = self.behind.get(c.id)
            anchor = self.slots[ref].x if ref in self.slots else (front[-1].x if front else 0.5)
            n = groups.get(ref, 0)
            groups[ref] = n + 1
            # Flank the anchor, preferring a gap between front figures so the face stays visible.
            spots = [min(0.92, max(0.08, anchor + o * width)) for o in offsets[n % len(offsets):] + offsets]
            x = max(spots, key=lambda x: min([abs(x - t) for t in taken] + [1.6 * width]))
            taken.append(x)
            focus = self.slots.get(ref) or self.slots.get(self.key) or (front[0] if front else None)
            if self._pose(c.id) in GESTURES and self.key in self.slots:  # gesturing at the key character
                focus = self.slots[self.key]
            facing = 1 if focus is None or focus.x >= x else -1
            self.slots[c.id] = _Slot(c, x, back_ground, height * BACK_ROW_SCALE, facing, behind=True, layer=0)

    def _seat_riders(self) -> None:
        """Riders without a place of their own take their animal's; a framed rider dismounts."""
        for rider_id, animal_id in list(self.mounts.items()):
            animal = self.slots.get(animal_id)
            if rider_id in self.slots and self.slots[rider_id].layer != 0:
                del self.mounts[rider_id]
                self.pose_override[rider_id] = "stand"
                continue
            if animal is None:
                continue
            rider = self.story.character(rider_id)
            self.slots[rider_id] = _Slot(rider, animal.x, animal.ground, animal.height, animal.facing,
                                         behind=animal.behind, layer=animal.layer)

    def _off_frame(self, others: list[Character], anchor: str | None, height: float, ground: float) -> None:
        """Characters out of shot still get a (fully hidden) figure, on their side of the key."""
        order = self.scene.characters
        anchor_at = order.index(anchor) if anchor in order else len(order)
        for n, c in enumerate(others):
            side = -1 if order.index(c.id) < anchor_at else 1
            self.slots[c.id] = _Slot(c, 0.5 + side * (1.8 + 0.5 * n), ground, height, -side, layer=0)
        self._seat_riders()

    def key_prop(self) -> tuple[str | None, Character | None]:
        """The prop an insert shows: the scene's first prop, else the first thing held."""
        held = [(cid, self.scene.direction(cid).holds) for cid in self.scene.characters]
        held = [(cid, h) for cid, h in held if h]
        if self.scene.props:
            name = self.scene.props[0]
            kind = resolve_prop(name)
            holder = next((cid for cid, h in held if resolve_prop(h) == kind), None)
        elif held:
            holder, name = held[0]
        else:
            return None, None
        return name, (self.story.character(holder) if holder else None)

    def _ground_props(self, height: float, ground: float) -> None:
        """Props nobody holds rest on the ground between the first two figures (or beside one).

        When the shot cuts the figures above the feet, they sit in the foreground at the bottom
        edge instead, so the prop the story needs is still in the frame.
        """
        held = {resolve_prop(self.scene.direction(c).holds) for c in self.scene.characters
                if self.scene.direction(c).holds}
        loose = [p for p in self.scene.props if resolve_prop(p) not in held]
        front = sorted((s for s in self.slots.values() if not s.behind and s.character.id not in self.mounts),
                       key=lambda s: s.x)
        step = 0.3 * height / self.aspect
        if len(front) >= 2:
            base = (front[0].x + front[1].x) / 2
        elif front:
            base = front[0].x + front[0].facing * step * 1.2
        else:
            base = 0.5
        for n, name in enumerate(loose):
            kind = resolve_prop(name)
            size = PROP_SCALE[kind] * height
            x, y = base + (n - (len(loose) - 1) / 2) * step, ground - size / 2
            if kind == "carpet" and front:
                size = min(2.2, (front[-1].x - front[0].x) * self.aspect + 0.8 * height)
                x, y = (front[0].x + front[-1].x) / 2, ground
            elif ground > 1.0:
                y = 1.0 - size * 0.3
            self.props.append(PropPlacement(name=name, kind=kind, x=_r(x), y=_r(y), size=_r(size)))

    def _pose(self, cid: str) -> str:
        return self.pose_override.get(cid) or resolve_pose(self.scene.direction(cid).pose)

    # -- output ------------------------------------------------------------------------------
    def figures(self) -> list[Figure]:
        """Figures in drawing order (back row, animals, people on foot, riders, foreground), with props.

        An animal is drawn before the people of its row, so a horse or a camel never hides the
        face of someone standing beside it; a rider, drawn last, stays on the mount's back.
        """
        out = []
        order = sorted(self.slots.values(), key=lambda s: (
            s.layer, s.character.id in self.mounts, not is_animal(s.character), s.x))
        for s in order:
            figure = self._figure(s)
            out.append(figure)
            holds = self.scene.direction(s.character.id).holds
            if holds and figure.keypoints and not any(p.holder == figure.id for p in self.props):
                grip = _grip_xy(figure)
                size = PROP_SCALE[resolve_prop(holds)] * figure.height
                self.props.append(PropPlacement(name=holds, kind=resolve_prop(holds), x=round(grip[0], 5),
                                                y=round(grip[1], 5), size=round(size, 5), holder=figure.id,
                                                grip="both" if GRIP.get(figure.pose) == "both" else "one"))
        return out

    def _figure(self, s: _Slot) -> Figure:
        c, aspect = s.character, self.aspect
        direction = self.scene.direction(c.id)
        pose = self._pose(c.id)
        if is_animal(c):
            length, tall, _ = ANIMALS[c.kind]
            w, h = length * s.height / aspect, tall * s.height
            ridden = c.id in self.mounts.values()
            return Figure(id=c.id, kind=c.kind, x=_r(s.x), ground=_r(s.ground), height=_r(h), facing=s.facing,
                          pose="walk" if ridden or pose in ("walk", "run") else "stand", emotion=direction.emotion,
                          box=_box(s.x - w / 2, s.ground - h, s.x + w / 2, s.ground), behind=s.behind)
        height = s.height * BUILD_HEIGHT.get(c.build, 1.0)
        ground, x = s.ground, s.x
        mount = self.mounts.get(c.id)
        if mount:
            _, _, saddle = ANIMALS[self.story.character(mount).kind]
            pose = "ride"
            hips = 0.5 * height
            ground = s.ground - saddle * s.height + hips - 0.03 * height
            x = s.x - s.facing * 0.06 * s.height / aspect
        keypoints = place(pose, x, ground, height, s.facing, aspect, s.view)
        xs = [p[0] for p in keypoints]
        ys = [p[1] for p in keypoints]
        pad = 0.07 * height / aspect
        return Figure(id=c.id, kind=c.kind, x=_r(x), ground=_r(ground), height=_r(height), facing=s.facing,
                      pose=pose, emotion=direction.emotion, holds=direction.holds, keypoints=keypoints,
                      box=_box(min(xs) - pad, min(ys) - 0.16 * height, max(xs) + pad, max(ys) + 0.01 * height),
                      view=s.view, behind=s.behind, mount=mount)


def _grip_points(pose: str) -> list[tuple[float, float]]:
    """Unit-space wrist positions that hold a prop in a right-facing pose."""
    grip = GRIP.get(pose, "R")
    points = POSES[pose]
    names = ["RWrist", "LWrist"] if grip == "both" else [f"{grip}Wrist"]
    return [points[K[n]][:2] for n in names]


def _grip_xy(figure: Figure) -> tuple[float, float]:
    """Where a figure's hands hold a prop, in frame coordinates."""
    grip = GRIP.get(figure.pose, "R")
    if grip == "both":
        pts = [figure.keypoints[K["RWrist"]], figure.keypoints[K["LWrist"]]]
    else:
        side = grip if figure.facing >= 0 else ("L" if grip == "R" else "R")
        pts = [figure.keypoints[K[f"{side}Wrist"]]]
    return sum(p[0] for p in pts) / len(pts), sum(p[1] for p in pts) / len(pts)


def _mounts(scene: Scene, cast: list[Character]) -> dict[str, str]:
    """Rider id → animal id for every human whose pose is 'ride' while an animal is present."""
    animals = [c.id for c in cast if c.kind in RIDEABLE]
    mounts = {}
    for c in cast:
        if not is_animal(c) and resolve_pose(scene.direction(c.id).pose) == "ride" and animals:
            mounts[c.id] = animals.pop(0)
    return mounts


def _behind(scene: Scene, cast: list[Character], key: str | None) -> dict[str, str | None]:
    """Characters whose `place` is behind: id → the one they stand behind.

    That is the key character's counterpart, the first other person in the front row (the
    Bai, whose servants stand behind him), else the key character. When everyone is placed
    behind, nobody is: there is no one to stand behind.
    """
    back = [c.id for c in cast if scene.direction(c.id).place == "behind"]
    if len(back) == len(cast):
        return {}
    front = [c.id for c in cast if c.id not in back and not is_animal(c)]
    ref = next((cid for cid in front if cid != key), key if key in front else None)
    return {cid: ref for cid in back}


def _r(v: float) -> float:
    return round(v, 5)


def _box(x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
    return (_r(x0), _r(y0), _r(x1), _r(y1))
