"""sheet.png: a contact sheet — every frame at a glance, numbered, with its caption in full.

One image however long the board: up to 24 frames it is 4 columns of 360 px thumbnails. A
longer board gets more columns, so the sheet stays roughly square instead of a strip metres
tall, and thumbnails shrink so it is never wider than MAX_WIDTH (300 frames: 15 columns of
253 px, about 4096 × 3900 px). One file keeps the board's file names and links as they are;
the PDF is the paged view.

Captions are wrapped to the thumbnail's width over as many lines as they need (`wrap`), never
cut: the sheet is where a director reads the whole board at once. Each row is as tall as its
longest caption, so a long one costs one row some height, not every row.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from autokose.board import Board
from autokose.export import font_path, frame_files, open_frame
from autokose.export.labels import Labels, bind_short_words
from autokose.export.settings import ExportSettings
from autokose.fsio import save_image
from autokose.story import Story

COLUMNS = 4
THUMB_W = 360
FIXED_GRID = 24
MAX_WIDTH = 4096
MIN_THUMB_W = 32
PAD = 18
HEADER_H = 56
LABEL_H = 30  # below a thumbnail with a one-line caption
CAPTION_SIZE = 15
CAPTION_TOP = 7  # px from the thumbnail to the first caption line
CAPTION_LINE_H = 19
CAPTION_BOTTOM = 4
BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
GREY = (120, 120, 120)
PLACEHOLDER = (236, 235, 231)
NBSP = "\u00a0"


def write_sheet(board: Board, story: Story, settings: ExportSettings | None = None) -> Path:
    frames = {i: open_frame(p) for i, p in frame_files(board, story).items()}
    return save_image(board.sheet_path, contact_sheet(story, frames))


@dataclass(frozen=True)
class Sheet:
    """Where everything on a contact sheet goes, in pixels: the grid, each caption's lines, each row's top."""

    cols: int
    thumb_w: int
    thumb_h: int
    captions: tuple[tuple[str, ...], ...]  # per scene, wrapped to thumb_w
    row_label_h: tuple[int, ...]  # per row: as tall as its longest caption

    @property
    def width(self) -> int:
        return self.cols * self.thumb_w + (self.cols + 1) * PAD

    @property
    def height(self) -> int:
        rows = len(self.row_label_h)
        return HEADER_H + rows * self.thumb_h + sum(self.row_label_h) + (rows + 1) * PAD

    def cell(self, n: int) -> tuple[int, int]:
        """Top-left corner of the n-th thumbnail (0-based, row by row)."""
        row, col = divmod(n, self.cols)
        y = HEADER_H + PAD + sum(self.row_label_h[:row]) + row * (self.thumb_h + PAD)
        return PAD + col * (self.thumb_w + PAD), y


def sheet_layout(captions: list[str], aspect: float, *, columns: int = COLUMNS, thumb_w: int = THUMB_W) -> Sheet:
    """The sheet's geometry for these captions and frames of height/width `aspect`.

    The grid is chosen for the captions' mean height at the usual thumbnail width, so a board of
    long captions stays about square too; the captions are then wrapped at the width chosen.
    """
    font = caption_font()
    heights = [label_height(len(wrap(text, font, thumb_w))) for text in captions]
    mean = max(LABEL_H, round(sum(heights) / max(len(heights), 1)))
    cols, thumb_w = grid(len(captions), aspect, columns=columns, thumb_w=thumb_w, label_h=mean)
    wrapped = tuple(tuple(wrap(text, font, thumb_w)) for text in captions)
    rows = tuple(label_height(max(map(len, wrapped[r:r + cols]))) for r in range(0, len(wrapped), cols))
    return Sheet(cols, thumb_w, round(thumb_w * aspect), wrapped, rows)


def caption_font() -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(font_path()), CAPTION_SIZE)


def contact_sheet(story: Story, frames: dict[int, Image.Image], *, columns: int = COLUMNS,
                  thumb_w: int = THUMB_W) -> Image.Image:
    """Grid of thumbnails, at least `columns` wide (fewer for small boards); missing frames are grey boxes."""
    labels = Labels(story.language)
    fw, fh = next(iter(frames.values())).size if frames else (16, 9)
    geo = sheet_layout([scene.caption for scene in story.scenes], fh / fw, columns=columns, thumb_w=thumb_w)
    thumb_w, thumb_h = geo.thumb_w, geo.thumb_h
    title_font = ImageFont.truetype(str(font_path(bold=True)), 26)
    number_font = ImageFont.truetype(str(font_path(bold=True)), 20)
    font = caption_font()

    sheet = Image.new("RGB", (geo.width, geo.height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    facts = labels.facts(len(story.scenes), sum(s.duration for s in story.scenes))
    title_room = geo.width - 3 * PAD - font.getlength(facts)
    if title_room >= title_font.getlength(story.title):  # facts only where the whole title still fits
        draw.text((geo.width - PAD, PAD + 30), facts, font=font, fill=GREY, anchor="rs")
    draw.text((PAD, PAD + 4), fit_text(story.title, title_font, geo.width - 2 * PAD), font=title_font, fill=INK)
    for n, (scene, lines) in enumerate(zip(story.scenes, geo.captions)):
        x, y = geo.cell(n)
        frame = frames.get(scene.index)
        if frame is None:
            draw.rectangle((x, y, x + thumb_w - 1, y + thumb_h - 1), fill=PLACEHOLDER)
            draw.text((x + thumb_w / 2, y + thumb_h / 2), fit_text(labels["missing"], font, thumb_w - 16),
                      font=font, fill=GREY, anchor="mm")
        else:
            thumb = ImageOps.pad(frame, (thumb_w, thumb_h), Image.Resampling.LANCZOS, color=BACKGROUND)
            sheet.paste(thumb, (x, y))
            draw.rectangle((x, y, x + thumb_w - 1, y + thumb_h - 1), outline=(205, 205, 205))
        number_tag(draw, str(scene.index), number_font, x + 8, y + 8)
        for k, line in enumerate(lines):
            draw.text((x, y + thumb_h + CAPTION_TOP + k * CAPTION_LINE_H), line, font=font, fill=INK)
    return sheet


def label_height(lines: int) -> int:
    """Pixels below a thumbnail for a caption of `lines` lines: LABEL_H for one line or none, as sheets always were."""
    return max(LABEL_H, CAPTION_TOP + lines * CAPTION_LINE_H + CAPTION_BOTTOM)


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """`text` as lines no wider than `width` pixels, every word kept: greedy, word by word.

    Line breaks in the text are kept (blank lines dropped); short words stay with the next one
    (labels.bind_short_words) unless the pair alone is too wide; a single word wider than the
    thumbnail is broken between letters, the only way to keep all of it inside its column.
    """
    lines = []
    for paragraph in text.strip().splitlines():
        line = ""
        words = deque(bind_short_words(paragraph).split(" "))
        while words:
            word = words.popleft()
            if not word:
                continue
            joined = f"{line} {word}" if line else word
            if font.getlength(joined) <= width:
                line = joined
            elif line:  # the word starts the next line
                lines.append(line)
                line = ""
                words.appendleft(word)
            elif NBSP in word:  # "в юрту" alone is too wide: the words go their own ways
                words.extendleft(reversed(word.split(NBSP)))
            else:
                cut = 1
                while font.getlength(word[:cut + 1]) <= width:
                    cut += 1
                lines.append(word[:cut])
                words.appendleft(word[cut:])
        if line:
            lines.append(line)
    return lines


def grid(n: int, aspect: float, *, columns: int = COLUMNS, thumb_w: int = THUMB_W,
         label_h: int = LABEL_H) -> tuple[int, int]:
    """(columns, thumbnail width) for `n` frames of height/width `aspect`, captions `label_h` px tall on average.

    Up to FIXED_GRID frames (the longest boards before 300-scene ones), `columns` wide (fewer for
    small boards), as sheets always were. Beyond that, enough columns for a grid about square,
    then narrower thumbnails once the sheet would pass MAX_WIDTH.
    """
    if n <= FIXED_GRID:
        return min(columns, n), thumb_w
    cell_w = thumb_w + PAD
    cell_h = round(thumb_w * aspect) + label_h + PAD
    square = math.ceil(math.sqrt(n * cell_h / cell_w))  # columns of a square grid
    widest = (MAX_WIDTH - PAD) // (MIN_THUMB_W + PAD)  # tall frames: thumbnails no narrower than MIN_THUMB_W
    cols = min(max(min(columns, n), square), n, widest)
    fit = (MAX_WIDTH - (cols + 1) * PAD) // cols
    return cols, max(min(thumb_w, fit), MIN_THUMB_W)


def number_tag(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, x: int, y: int) -> None:
    """The scene number on a dark rounded tag in the frame's corner: readable on any picture."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w = max(right - left + 16, 32)
    h = bottom - top + 12
    draw.rounded_rectangle((x, y, x + w, y + h), radius=6, fill=(20, 20, 20))
    draw.text((x + w / 2, y + h / 2), text, font=font, fill=(255, 255, 255), anchor="mm")


def fit_text(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """`text` cut at a word (or letter) with '…' so it fits `width` pixels."""
    if font.getlength(text) <= width:
        return text
    words = text.split()
    while len(words) > 1 and font.getlength(" ".join(words) + "…") > width:
        words.pop()
    while len(words) > 1 and len(words[-1]) <= 2:  # no dangling "по…", "и…"
        words.pop()
    text = " ".join(words)
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip(" ,;:—-") + "…"
