"""Pose library: 18 OpenPose (COCO) body keypoints per named pose.

Poses are written once, in a body-relative unit space: x points the way the figure faces,
y points up, the feet stand on y = 0 and the top of the head is at y = 1. Every pose is a
three-quarter front view facing right, so the figure's right side is the near side (towards
the camera) and sits behind the body's centre line. `place` scales a pose into the frame and
mirrors it for figures facing left; mirroring also swaps left/right labels so the skeleton
still reads as a front view (an OpenPose model tells front from back by which side is which).
"""

from __future__ import annotations

KEYPOINT_NAMES = (
    "Nose", "Neck", "RShoulder", "RElbow", "RWrist", "LShoulder", "LElbow", "LWrist",
    "RHip", "RKnee", "RAnkle", "LHip", "LKnee", "LAnkle", "REye", "LEye", "REar", "LEar",
)  # fmt: skip
K = {name: i for i, name in enumerate(KEYPOINT_NAMES)}

# Keypoint index pairs that swap when a figure is mirrored or seen from the back.
_LEFT_RIGHT = ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17))

Point = tuple[float, float, float]


def _pose(**joints: tuple[float, float]) -> tuple[Point, ...]:
    """Build a pose from named joints; the far ear (LEar) is hidden in a three-quarter view."""
    missing = set(KEYPOINT_NAMES) - set(joints) - {"LEar"}
    if missing:
        raise ValueError(f"pose is missing {sorted(missing)}")
    far_ear = (joints["REar"][0] + 0.09, joints["REar"][1], 0.0)
    return tuple((*joints[n], 1.0) if n in joints else far_ear for n in KEYPOINT_NAMES)


def _head(nose: tuple[float, float], tilt: float = 0.0) -> dict[str, tuple[float, float]]:
    """Face keypoints around the nose; `tilt` lifts (+) or drops (-) the back of the head."""
    nx, ny = nose
    return {
        "Nose": (nx, ny),
        "REye": (nx - 0.04, ny + 0.022 + tilt * 0.3),
        "LEye": (nx - 0.002, ny + 0.022),
        "REar": (nx - 0.085, ny + 0.008 + tilt),
    }


_STAND_LEGS = {
    "RHip": (-0.045, 0.50), "RKnee": (-0.045, 0.27), "RAnkle": (-0.045, 0.035),
    "LHip": (0.045, 0.50), "LKnee": (0.05, 0.27), "LAnkle": (0.05, 0.035),
}  # fmt: skip
_SHOULDERS = {"Neck": (0.0, 0.82), "RShoulder": (-0.07, 0.80), "LShoulder": (0.07, 0.80)}

POSES: dict[str, tuple[Point, ...]] = {
    "stand": _pose(
        **_head((0.045, 0.915)), **_SHOULDERS, **_STAND_LEGS,
        RElbow=(-0.09, 0.655), RWrist=(-0.075, 0.515), LElbow=(0.09, 0.655), LWrist=(0.08, 0.515),
    ),
    "walk": _pose(
        **_head((0.065, 0.91)), Neck=(0.02, 0.815), RShoulder=(-0.05, 0.795), LShoulder=(0.09, 0.80),
        RElbow=(0.0, 0.655), RWrist=(0.075, 0.55), LElbow=(0.06, 0.66), LWrist=(0.0, 0.535),
        RHip=(-0.035, 0.50), RKnee=(-0.09, 0.28), RAnkle=(-0.16, 0.05),
        LHip=(0.045, 0.50), LKnee=(0.11, 0.29), LAnkle=(0.13, 0.035),
    ),
    "run": _pose(
        **_head((0.13, 0.875), tilt=0.01), Neck=(0.07, 0.79), RShoulder=(0.01, 0.775), LShoulder=(0.135, 0.785),
        RElbow=(0.09, 0.67), RWrist=(0.17, 0.73), LElbow=(0.02, 0.65), LWrist=(-0.06, 0.70),
        RHip=(-0.01, 0.49), RKnee=(-0.11, 0.31), RAnkle=(-0.25, 0.20),
        LHip=(0.07, 0.49), LKnee=(0.2, 0.33), LAnkle=(0.17, 0.10),
    ),
    "point": _pose(
        **_head((0.055, 0.915)), **_SHOULDERS, **_STAND_LEGS,
        RElbow=(-0.09, 0.655), RWrist=(-0.075, 0.515), LElbow=(0.2, 0.79), LWrist=(0.33, 0.815),
    ),
    "talk": _pose(
        **_head((0.05, 0.915)), **_SHOULDERS, **_STAND_LEGS,
        RElbow=(-0.09, 0.655), RWrist=(-0.075, 0.515), LElbow=(0.13, 0.66), LWrist=(0.22, 0.70),
    ),
    "hold": _pose(
        **_head((0.05, 0.91), tilt=0.005), **_SHOULDERS, **_STAND_LEGS,
        RElbow=(-0.03, 0.65), RWrist=(0.1, 0.655), LElbow=(0.14, 0.655), LWrist=(0.19, 0.665),
    ),
    "bow": _pose(
        **_head((0.275, 0.79), tilt=0.02), Neck=(0.15, 0.75), RShoulder=(0.1, 0.735), LShoulder=(0.21, 0.75),
        RElbow=(0.13, 0.61), RWrist=(0.19, 0.55), LElbow=(0.23, 0.62), LWrist=(0.21, 0.55),
        RHip=(-0.05, 0.50), RKnee=(-0.035, 0.27), RAnkle=(-0.045, 0.035),
        LHip=(0.035, 0.50), LKnee=(0.055, 0.27), LAnkle=(0.05, 0.035),
    ),
    "sit": _pose(
        **_head((0.045, 0.505)), Neck=(0.0, 0.41), RShoulder=(-0.07, 0.39), LShoulder=(0.07, 0.39),
        RElbow=(-0.11, 0.25), RWrist=(-0.06, 0.14), LElbow=(0.12, 0.25), LWrist=(0.12, 0.14),
        RHip=(-0.045, 0.10), RKnee=(-0.17, 0.06), RAnkle=(0.05, 0.025),
        LHip=(0.045, 0.10), LKnee=(0.19, 0.07), LAnkle=(-0.04, 0.03),
    ),
    "ride": _pose(
        **_head((0.05, 0.915)), **_SHOULDERS,
        RElbow=(0.0, 0.66), RWrist=(0.12, 0.61), LElbow=(0.12, 0.665), LWrist=(0.17, 0.615),
        RHip=(-0.04, 0.50), RKnee=(0.1, 0.43), RAnkle=(0.06, 0.22),
        LHip=(0.04, 0.50), LKnee=(0.14, 0.435), LAnkle=(0.1, 0.225),
    ),
    "argue": _pose(
        **_head((0.085, 0.905)), Neck=(0.035, 0.815), RShoulder=(-0.035, 0.795), LShoulder=(0.105, 0.80),
        RElbow=(-0.14, 0.63), RWrist=(-0.05, 0.53), LElbow=(0.2, 0.78), LWrist=(0.23, 0.93),
        RHip=(-0.04, 0.50), RKnee=(-0.06, 0.27), RAnkle=(-0.09, 0.035),
        LHip=(0.05, 0.50), LKnee=(0.1, 0.275), LAnkle=(0.12, 0.035),
    ),
    "laugh": _pose(
        **_head((0.025, 0.935), tilt=-0.025), Neck=(-0.01, 0.82), RShoulder=(-0.08, 0.80), LShoulder=(0.06, 0.80),
        RElbow=(-0.13, 0.64), RWrist=(-0.02, 0.57), LElbow=(0.12, 0.64), LWrist=(0.06, 0.565),
        RHip=(-0.05, 0.50), RKnee=(-0.07, 0.27), RAnkle=(-0.09, 0.035),
        LHip=(0.045, 0.50), LKnee=(0.08, 0.27), LAnkle=(0.1, 0.035),
    ),
}  # fmt: skip

# Words a writer may use for a pose, in any of the story languages.
POSE_ALIASES = {
    "standing": "stand", "wait": "stand", "think": "stand", "listen": "stand", "watch": "stand",
    "walking": "walk", "approach": "walk", "enter": "walk", "leave": "walk", "sneak": "walk", "lead": "walk",
    "running": "run", "flee": "run", "escape": "run", "chase": "run", "jump": "run",
    "pointing": "point", "gesture": "point", "show": "point",
    "speak": "talk", "say": "talk", "explain": "talk", "persuade": "talk", "trick": "talk", "offer": "talk",
    "holding": "hold", "give": "hold", "carry": "hold", "take": "hold", "receive": "hold", "drink": "hold",
    "bowing": "bow", "kneel": "bow", "greet": "bow", "beg": "bow",
    "sitting": "sit", "eat": "sit", "feast": "sit", "rest": "sit",
    "riding": "ride",
    "arguing": "argue", "shout": "argue", "threaten": "argue", "demand": "argue", "angry": "argue",
    "laughing": "laugh", "dance": "laugh", "celebrate": "laugh", "cheer": "laugh",
}  # fmt: skip

# Which wrist (in the right-facing pose) holds a carried prop: "both" = between the hands.
# Default "R", the near hand; argue shakes it in the raised far hand, sit rests it on the knee.
GRIP = {"hold": "both", "ride": "both", "bow": "both", "laugh": "both", "argue": "L", "sit": "L", "talk": "L"}


def resolve_pose(name: str | None) -> str:
    """The library pose for a blocking pose word; anything unknown stands."""
    key = (name or "").strip().lower().replace(" ", "_")
    return key if key in POSES else POSE_ALIASES.get(key, "stand")


def mirror(points: tuple[Point, ...] | list[Point]) -> list[Point]:
    """Face the other way: flip x and swap left/right labels (still a front view)."""
    out = [(-x, y, c) for x, y, c in points]
    return _swap_sides(out)


def back_view(points: tuple[Point, ...] | list[Point]) -> list[Point]:
    """Seen from behind: sides swap places and the face is hidden; both ears show."""
    out = _swap_sides(list(points))
    nose_x = points[K["Nose"]][0]
    ear_y = points[K["REar"]][1]
    head_x = (nose_x + points[K["REar"]][0]) / 2
    for name in ("Nose", "REye", "LEye"):
        x, y, _ = out[K[name]]
        out[K[name]] = (x, y, 0.0)
    out[K["REar"]] = (head_x + 0.045, ear_y, 1.0)
    out[K["LEar"]] = (head_x - 0.045, ear_y, 1.0)
    return out


def _swap_sides(points: list[Point]) -> list[Point]:
    for a, b in _LEFT_RIGHT:
        points[a], points[b] = points[b], points[a]
    return points


def near_side(facing: int) -> str:
    """'R' or 'L': the side of the body towards the camera (the same from the front or back)."""
    return "R" if facing >= 0 else "L"


def place(
    pose: str, x: float, ground: float, height: float, facing: int, aspect: float, view: str = "front"
) -> list[Point]:
    """Pose keypoints in normalised frame coordinates; points outside the frame get confidence 0.

    `x` is the body's centre line, `ground` the feet, `height` the standing height (all as
    fractions of the frame); `aspect` is width / height of the frame.
    """
    points = list(POSES[resolve_pose(pose)])
    if facing < 0:
        points = mirror(points)
    if view == "back":
        points = back_view(points)
    out = []
    for ux, uy, c in points:
        fx, fy = x + ux * height / aspect, ground - uy * height
        inside = 0.0 <= fx <= 1.0 and 0.0 <= fy <= 1.0
        out.append((round(fx, 5), round(fy, 5), c if inside else 0.0))
    return out
