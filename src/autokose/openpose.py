"""OpenPose controls: the keypoint JSON and the skeleton image an openpose ControlNet reads.

The skeleton is drawn the way the ControlNet annotator (controlnet_aux `draw_bodypose`) draws
it, because that is what openpose ControlNets were trained on: 17 limbs as filled ellipses
4 px wide in 60 % of the limb's colour, then 18 joints as 4 px discs in full colour, on black.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from autokose.poses import KEYPOINT_NAMES
from autokose.staging import Layout

OPENPOSE_VERSION = 1.3

# Keypoint index pairs (0-based, COCO-18 order) in the annotator's limb order.
LIMBS = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10),
    (1, 11), (11, 12), (12, 13), (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
# One colour per keypoint; limb i uses colour i (RGB).
COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
STICK_WIDTH = 4
JOINT_RADIUS = 4
LIMB_SHADE = 0.6


def people(layout: Layout, width: int, height: int) -> list[tuple[str, list[tuple[float, float, float]]]]:
    """(character id, pixel keypoints) for every figure with at least one visible keypoint."""
    out = []
    for figure, points in zip(layout.figures, layout.keypoints_px(width, height)):
        if figure.keypoints and any(c > 0 for _, _, c in points):
            out.append((figure.id, points))
    return out


def pose_json(layout: Layout, width: int, height: int) -> dict:
    """OpenPose JSON (as controlnet_aux and the OpenPose editor read it), plus `character_id`.

    Keypoints are pixels; an absent keypoint is (0, 0, 0) as OpenPose writes it.
    """
    return {
        "version": OPENPOSE_VERSION,
        "people": [
            {
                "character_id": cid,
                "pose_keypoints_2d": [v for x, y, c in points for v in ((round(x, 2), round(y, 2), c) if c > 0 else (0, 0, 0))],
                "face_keypoints_2d": [],
                "hand_left_keypoints_2d": [],
                "hand_right_keypoints_2d": [],
            }
            for cid, points in people(layout, width, height)
        ],
        "canvas_width": width,
        "canvas_height": height,
        "keypoint_names": list(KEYPOINT_NAMES),
    }


def draw_pose(layout: Layout, width: int, height: int) -> Image.Image:
    """The skeleton image for an openpose ControlNet: limbs of everyone first, then joints."""
    import cv2

    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    bodies = [points for _, points in people(layout, width, height)]
    for points in bodies:
        for (a, b), colour in zip(LIMBS, COLOURS):
            (x0, y0, c0), (x1, y1, c1) = points[a], points[b]
            if c0 <= 0 or c1 <= 0:
                continue
            length = math.hypot(x1 - x0, y1 - y0)
            angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
            polygon = cv2.ellipse2Poly((int((x0 + x1) / 2), int((y0 + y1) / 2)), (int(length / 2), STICK_WIDTH),
                                       int(angle), 0, 360, 1)
            cv2.fillConvexPoly(canvas, polygon, [int(v * LIMB_SHADE) for v in colour])
    for points in bodies:
        for (x, y, c), colour in zip(points, COLOURS):
            if c > 0:
                cv2.circle(canvas, (int(x), int(y)), JOINT_RADIUS, colour, thickness=-1)
    return Image.fromarray(canvas, "RGB")
