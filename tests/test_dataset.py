"""Reference images → training set: validation, duplicates, bombs, face crops, captions."""

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from autokose import faces
from autokose.bible import builtin_bible
from autokose.cast.dataset import (
    MIN_IMAGES,
    caption_template_for,
    fingerprint,
    is_duplicate,
    prepare_images,
    square_crop,
)
from autokose.errors import InputError


def textured(seed: int, size=(96, 80)) -> Image.Image:
    """A distinct picture per seed: a coloured background, a block and some grain."""
    rng = np.random.default_rng(seed)
    w, h = size
    a = np.zeros((h, w, 3), np.uint8)
    a[:] = rng.integers(0, 256, 3)
    y, x = rng.integers(0, h // 2), rng.integers(0, w // 2)
    a[y:y + h // 3, x:x + w // 3] = rng.integers(0, 256, 3)
    return Image.fromarray((a + rng.integers(0, 40, a.shape)).clip(0, 255).astype(np.uint8))


def png_header_only(path, width: int, height: int) -> None:
    """A PNG that claims width×height but holds (almost) no pixels: a decompression-bomb stand-in."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.fixture
def refs(tmp_path):
    folder = tmp_path / "refs"
    folder.mkdir()
    for n in range(4):
        textured(n).save(folder / f"{n:02d}.png")
    return folder


def test_keeps_good_images_and_reports_each_bad_one(refs):
    textured(0).save(refs / "copy_of_00.jpg", quality=92)  # same picture, other format
    Image.new("RGB", (20, 20)).save(refs / "tiny.png")
    (refs / "notes.pdf").write_bytes(b"%PDF-1.4 not an image")
    truncated = (refs / "01.png").read_bytes()
    (refs / "broken.png").write_bytes(truncated[: len(truncated) // 2])
    png_header_only(refs / "bomb.png", 20000, 20000)
    png_header_only(refs / "huge.png", 12000, 12000)  # under PIL's own error limit, over ours
    (refs / ".DS_Store").write_bytes(b"junk")
    (refs / "00.txt").write_text("aldarkose grinning under his tymak")

    data = prepare_images(refs, resolution=64, caption="a photo of aldarkose")

    assert [im.source.name for im in data.images] == ["00.png", "01.png", "02.png", "03.png"]
    reasons = {s.path.name: s.reason for s in data.skipped}
    assert set(reasons) == {"copy_of_00.jpg", "tiny.png", "notes.pdf", "broken.png", "bomb.png", "huge.png"}
    assert reasons["copy_of_00.jpg"] == "duplicate of 00.png"
    assert reasons["tiny.png"].startswith("too small")
    assert reasons["notes.pdf"] == "not an image"
    assert reasons["broken.png"].startswith("unreadable image")
    assert reasons["bomb.png"].startswith("too large") and reasons["huge.png"].startswith("too large")
    for im in data.images:
        assert im.image.size == (64, 64) and im.image.mode == "RGB"
    assert data.images[0].caption == "aldarkose grinning under his tymak"
    assert data.images[1].caption == "a photo of aldarkose"


@pytest.mark.parametrize("count", [0, 1, MIN_IMAGES - 1])
def test_too_few_images_is_an_input_error(tmp_path, count):
    folder = tmp_path / "few"
    folder.mkdir()
    for n in range(count):
        textured(n).save(folder / f"{n}.png")
    (folder / "readme.doc").write_bytes(b"hello")
    with pytest.raises(InputError, match=f"at least {MIN_IMAGES} are needed") as e:
        prepare_images(folder, resolution=64, caption="x")
    assert "readme.doc: not an image" in str(e.value)


def test_missing_folder_and_file_instead_of_folder(tmp_path):
    with pytest.raises(InputError, match="no such folder"):
        prepare_images(tmp_path / "nope", resolution=64, caption="x")
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(InputError, match="not a folder"):
        prepare_images(tmp_path / "file.png", resolution=64, caption="x")


def test_bomb_is_refused_before_decoding(tmp_path):
    folder = tmp_path / "bombs"
    folder.mkdir()
    for n in range(3):
        png_header_only(folder / f"{n}.png", 20000, 20000)
    import tracemalloc

    tracemalloc.start()
    with pytest.raises(InputError, match="too large"):
        prepare_images(folder, resolution=64, caption="x")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50e6  # decoding one would take 1.2 GB


def test_caption_file_without_trigger_gets_it(refs):
    (refs / "02.txt").write_text("  a man   on a donkey \n")
    (refs / "03.txt").write_text("")
    data = prepare_images(refs, resolution=64, caption="a photo of aldarkose", trigger="aldarkose")
    assert data.images[2].caption == "aldarkose, a man on a donkey"
    assert data.images[3].caption == "a photo of aldarkose"


def test_caption_template_from_the_bible():
    aldar = builtin_bible()["aldar"]
    caption = caption_template_for(aldar)
    assert caption.startswith("a photo of aldarkose, cheerful beardless young Kazakh man")
    assert "\n" not in caption and "  " not in caption
    bare = aldar.model_copy(update={"appearance": ""})
    assert caption_template_for(bare) == "a photo of aldarkose"


def test_duplicates_survive_resize_but_flat_colours_differ():
    a = textured(7, (200, 160))
    assert is_duplicate(fingerprint(a), fingerprint(a.resize((100, 80))))
    assert not is_duplicate(fingerprint(a), fingerprint(textured(8, (200, 160))))
    red, blue = Image.new("RGB", (64, 64), "red"), Image.new("RGB", (64, 64), "blue")
    assert not is_duplicate(fingerprint(red), fingerprint(blue))


def test_transparent_images_go_on_white_and_exif_rotation_is_applied(tmp_path):
    folder = tmp_path / "modes"
    folder.mkdir()
    rgba = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    rgba.paste((200, 0, 0, 255), (0, 0, 32, 64))
    rgba.save(folder / "a.png")
    textured(1, (120, 64)).save(folder / "b.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    textured(2, (160, 96)).save(folder / "c.jpg", exif=exif.tobytes())
    data = prepare_images(folder, resolution=64, caption="x", find_faces=False)
    a = np.asarray(data.images[0].image)
    assert tuple(a[32, 60]) == (255, 255, 255) and tuple(a[32, 4]) == (200, 0, 0)
    assert data.images[1].original_size == (64, 120)
    assert data.images[2].original_size == (160, 96)  # (height, width) once upright


def test_square_crop_follows_the_face_and_stays_inside():
    face = faces.FaceBox(700, 100, 800, 200)
    left, top, side = square_crop((1000, 600), face)
    assert side == 600 and top == 0
    assert left <= 700 and 800 <= left + side <= 1000
    assert square_crop((1000, 600), None) == (200, 0, 600)
    # Tall portrait: the face sits in the upper part, the body below.
    left, top, side = square_crop((400, 1200), faces.FaceBox(150, 500, 250, 600))
    assert (left, side) == (0, 400) and top < 550 < top + side * 0.5


@pytest.mark.skipif(not faces.available(), reason="dlib not installed")
def test_face_aware_crop_on_real_photos(shared_data, tmp_path):
    folder = tmp_path / "people"
    folder.mkdir()
    sources = sorted(p for p in (shared_data / "faces").rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    for n, path in enumerate(sources):
        (folder / f"{n:02d}{path.suffix}").write_bytes(path.read_bytes())
    data = prepare_images(folder, resolution=128, caption="x")
    assert len(data.images) == len(sources)
    for item in data.images:
        assert item.face is not None and item.face_embedding.shape == (128,)
        cx, cy = item.face.center
        assert 0 < item.face.left and item.face.right < 128  # the whole face is in the crop
        assert 128 * 0.25 < cx < 128 * 0.75 and cy < 128 * 0.6
        # The crop finds the same person again.
        again = faces.detect_faces(item.image)
        assert again and faces.face_distance(faces.face_embedding(item.image, again[0]), item.face_embedding) < 0.6
