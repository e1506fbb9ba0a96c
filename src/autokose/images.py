"""Reading the images people hand us: reference photos, training sets, frames on a board.

One place for what every reader needs: the size is checked from the header before a pixel is
decoded (a 50000×50000 PNG costs nothing), and whatever PIL raises on a bad file becomes an
`Unreadable` with a short reason a person can act on ("not an image", "too large (...)"),
never a library traceback or the repr of an in-memory buffer. Callers add the file's name.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from autokose.errors import first_line

MAX_PIXELS = 64_000_000  # far above any photo or frame we use, far below what exhausts memory


class Unreadable(Exception):
    """An image that cannot be used; the message is the reason, without the file name."""


@contextmanager
def reading() -> Iterator[None]:
    """Turn what PIL raises on a bad file inside the block into `Unreadable`."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own, lower limit applies
            yield
    except FileNotFoundError:
        raise Unreadable("not found") from None
    except Image.DecompressionBombError:
        raise Unreadable(f"too large (a decompression bomb by PIL's limit; the limit is {MAX_PIXELS / 1e6:.0f} Mpx)") \
            from None
    except UnidentifiedImageError:
        raise Unreadable("not an image") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt files
        raise Unreadable(f"unreadable image ({first_line(e)})") from None


def check_size(image: Image.Image, max_pixels: int = MAX_PIXELS) -> None:
    """Refuse an opened (not yet decoded) image whose header promises too many pixels."""
    width, height = image.size
    if width * height > max_pixels:
        raise Unreadable(f"too large ({width}×{height} = {width * height / 1e6:.0f} Mpx; "
                         f"the limit is {max_pixels / 1e6:.0f} Mpx)")


def image_size(source: Path | str | BinaryIO) -> tuple[int, int]:
    """(width, height) from the header alone; raises Unreadable."""
    with reading(), Image.open(source) as image:
        check_size(image)
        return image.size


def open_rgb(source: Path | str | BinaryIO) -> Image.Image:
    """The whole image, decoded, upright per its EXIF orientation, as RGB; raises Unreadable."""
    with reading(), Image.open(source) as image:
        check_size(image)
        return ImageOps.exif_transpose(image).convert("RGB")
