"""Reference images → a training set: validated, face-cropped squares with captions.

A character is learnt from a folder of 10–15 photos or drawings. Each file is checked
(readable image, not tiny, not a decompression bomb, not a duplicate of an earlier one);
files that fail are skipped and reported, and training refuses to start when fewer than
`MIN_IMAGES` remain. Each kept image is cropped to the largest square that holds the
person's face (dlib's HOG detector; the centre when no face is found), resized to the
training resolution, and captioned: a `name.txt` beside `name.jpg` wins, else a template
from the character bible with the trigger token ("a photo of aldarkose, <appearance>").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageOps

from autokose import faces
from autokose.errors import InputError
from autokose.images import MAX_PIXELS, Unreadable, check_size, reading
from autokose.story import Character

# Three is the least DreamBooth can separate "this person" from "this photo" with;
# 10–15 varied images (angles, expressions, distances) give a usable identity.
MIN_IMAGES = 3
RECOMMENDED_IMAGES = 10
# Images are refused above this many pixels before any decoding (decompression bombs,
# 20000×20000 scans): 64 Mpx is 8000×8000, beyond any camera a user would crop a face from.
DEFAULT_CAPTION = "a photo of {trigger}, {appearance}"
CAPTION_SUFFIX = ".txt"
# Files that sit beside references without being one: never reported as skipped.
IGNORED_SUFFIXES = {CAPTION_SUFFIX, ".json", ".yaml", ".yml", ".md"}
# A face's centre sits this far down the square crop: room for the hat above, the body below.
FACE_HEIGHT_IN_CROP = 0.4


@dataclass
class TrainImage:
    """One prepared training image and what SDXL's size conditioning needs to know about it."""

    source: Path
    image: Image.Image  # RGB, resolution × resolution
    caption: str
    face: faces.FaceBox | None = None  # in `image`'s pixels
    face_embedding: np.ndarray | None = None  # 128-d dlib embedding, from the full-size image
    original_size: tuple[int, int] = (0, 0)  # (height, width) of the source image
    crop_top_left: tuple[int, int] = (0, 0)  # (top, left) of the crop, in resized pixels


@dataclass
class Skipped:
    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path.name}: {self.reason}"


@dataclass
class TrainingSet:
    images: list[TrainImage]
    skipped: list[Skipped] = field(default_factory=list)
    resolution: int = 512

    @property
    def face_embeddings(self) -> list[np.ndarray]:
        return [im.face_embedding for im in self.images if im.face_embedding is not None]


class Unusable(Exception):
    """An image that cannot be trained on; the message is the reason shown to the user."""


# --------------------------------------------------------------------------- captions
def caption_template_for(character: Character, template: str = DEFAULT_CAPTION) -> str:
    """The default caption for a character: the template filled from the bible entry."""
    trigger = character.trigger or character.id
    text = template.format(trigger=trigger, appearance=" ".join(character.appearance.split()),
                           name=character.name, id=character.id)
    return re.sub(r"[\s,]+$", "", text)


def read_caption(image_path: Path, default: str, trigger: str) -> str:
    """The caption in `image.txt` beside `image_path` (the trigger prepended if it is missing)."""
    caption_path = image_path.with_suffix(CAPTION_SUFFIX)
    if not caption_path.is_file():
        return default
    try:
        text = " ".join(caption_path.read_text(encoding="utf-8").split())
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{caption_path}: cannot read caption ({e})") from None
    if not text:
        return default
    if trigger and not re.search(rf"\b{re.escape(trigger)}\b", text, flags=re.IGNORECASE):
        text = f"{trigger}, {text}"
    return text


# --------------------------------------------------------------------------- loading
def list_candidates(folder: Path) -> list[Path]:
    """Files in `folder` that could be images (sorted; hidden files and captions left out)."""
    folder = Path(folder)
    if not folder.exists():
        raise InputError(f"--images {folder}: no such folder")
    if not folder.is_dir():
        raise InputError(f"--images {folder}: not a folder (give the folder that holds the reference images)")
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in IGNORED_SUFFIXES)


def load_image(path: Path, *, min_side: int, max_pixels: int = MAX_PIXELS,
               draft_side: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode `path` as upright RGB and give its stored (height, width), or raise Unusable.

    The size is checked from the header before the pixels are decoded, so a decompression
    bomb costs nothing. JPEGs are decoded at a reduced scale when `draft_side` allows.
    """
    try:
        with reading():
            image = Image.open(path)
            check_size(image, max_pixels)
            width, height = image.size
            if min(width, height) < min_side:
                raise Unusable(f"too small ({width}×{height}; the short side must be at least {min_side} px)")
            # The source's (height, width) once upright: EXIF orientations 5–8 swap the sides.
            turned = image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8)
            original_size = (width, height) if turned else (height, width)
            if draft_side and image.format == "JPEG":
                image.draft("RGB", (draft_side, draft_side))
            image = ImageOps.exif_transpose(image)
            image.load()
    except Unreadable as e:
        raise Unusable(str(e)) from None
    return to_rgb(image), original_size


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB; transparent pixels become white (cut-out characters on a blank page)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")


# --------------------------------------------------------------------------- duplicates
def fingerprint(image: Image.Image) -> tuple[int, np.ndarray]:
    """A difference hash (64 bits, survives resizing and re-encoding) and a 16×16 colour thumbnail."""
    grey = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BILINEAR), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    dhash = int("".join("1" if b else "0" for b in bits), 2)
    thumb = np.asarray(image.resize((16, 16), Image.Resampling.BILINEAR), dtype=np.float32)
    return dhash, thumb


def is_duplicate(a: tuple[int, np.ndarray], b: tuple[int, np.ndarray]) -> bool:
    """Same picture: structure (hash within 2 bits) and colours (mean difference < 4/255) agree.

    The thumbnail test keeps flat or similar-looking but different pictures apart.
    """
    return (a[0] ^ b[0]).bit_count() <= 2 and float(np.abs(a[1] - b[1]).mean()) < 4.0


# --------------------------------------------------------------------------- cropping
def square_crop(size: tuple[int, int], face: faces.FaceBox | None) -> tuple[int, int, int]:
    """(left, top, side) of the largest square in an image of `size` (w, h) around `face`.

    The face's centre lands at FACE_HEIGHT_IN_CROP of the square's height and in the middle
    horizontally, as far as the image's edges allow; no face: the centre of the image.
    """
    width, height = size
    side = min(width, height)
    if face is None:
        return (width - side) // 2, (height - side) // 2, side
    cx, cy = face.center
    left = round(cx - side / 2)
    top = round(cy - side * FACE_HEIGHT_IN_CROP)
    return min(max(left, 0), width - side), min(max(top, 0), height - side), side


def prepare_image(image: Image.Image, resolution: int, *, find_faces: bool) -> tuple[Image.Image, dict]:
    """Crop `image` to a face-centred square and resize it; returns the square and what was found."""
    face = None
    embedding = None
    if find_faces:
        boxes = faces.detect_faces(image)
        if boxes:
            face = boxes[0]
            embedding = faces.face_embedding(image, face)
    left, top, side = square_crop(image.size, face)
    square = image.crop((left, top, left + side, top + side))
    if side != resolution:
        square = square.resize((resolution, resolution), Image.Resampling.LANCZOS)
    scale = resolution / side
    crop_face = None
    if face is not None:
        crop_face = faces.FaceBox(*(round(v) for v in (
            (face.left - left) * scale, (face.top - top) * scale, (face.right - left) * scale, (face.bottom - top) * scale)))
    return square, {
        "face": crop_face, "face_embedding": embedding,
        "crop_top_left": (round(top * scale), round(left * scale)),
    }


# --------------------------------------------------------------------------- the whole set
def prepare_images(
    folder: Path | str,
    *,
    resolution: int,
    caption: str,
    trigger: str = "",
    min_side: int | None = None,
    min_images: int = MIN_IMAGES,
    max_pixels: int = MAX_PIXELS,
    find_faces: bool = True,
    what: str = "--images",
) -> TrainingSet:
    """Load, check, crop and caption every image in `folder`.

    `caption` is used for images without their own `.txt`; `min_side` defaults to half the
    training resolution (smaller sources would be upscaled into blur). Raises InputError
    naming every skipped file when fewer than `min_images` remain.
    """
    folder = Path(folder)
    min_side = resolution // 2 if min_side is None else min_side
    find_faces = find_faces and faces.available()
    kept: list[TrainImage] = []
    skipped: list[Skipped] = []
    seen: list[tuple[Path, tuple[int, np.ndarray]]] = []
    for path in list_candidates(folder):
        try:
            image, original_size = load_image(path, min_side=min_side, max_pixels=max_pixels, draft_side=resolution)
            print_ = fingerprint(image)
            for other, other_print in seen:
                if is_duplicate(print_, other_print):
                    raise Unusable(f"duplicate of {other.name}")
        except Unusable as e:
            skipped.append(Skipped(path, str(e)))
            continue
        seen.append((path, print_))
        square, found = prepare_image(image, resolution, find_faces=find_faces)
        kept.append(TrainImage(source=path, image=square, caption=read_caption(path, caption, trigger),
                               original_size=original_size, **found))
    if len(kept) < min_images:
        found_text = "no usable images" if not kept else f"only {len(kept)} usable image{'s' * (len(kept) != 1)}"
        why = f" (skipped: {'; '.join(str(s) for s in skipped)})" if skipped else ""
        raise InputError(f"{what} {folder}: {found_text}; at least {min_images} are needed, "
                         f"{RECOMMENDED_IMAGES}–15 recommended{why}")
    return TrainingSet(images=kept, skipped=skipped, resolution=resolution)

