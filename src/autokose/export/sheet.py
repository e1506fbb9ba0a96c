"""sheet.png: a contact sheet — every frame at a glance, numbered, with its caption's first line.

One image however long the board: up to 24 frames it is 4 columns of 360 px thumbnails. A
longer board gets more columns, so the sheet stays roughly square instead of a strip metres
tall, and thumbnails shrink so it is never wider than MAX_WIDTH (300 frames: 15 columns of
253 px, about 4096 × 3900 px). One file keeps the board's file names and links as they are;
the PDF is the paged view.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps

from autokose.board import Board
from autokose.export import font_path, frame_files, open_frame
from autokose.export.labels import Labels
from autokose.fsio import save_image
from autokose.story import Story

COLUMNS = 4
THUMB_W = 360
FIXED_GRID = 24
MAX_WIDTH = 4096
MIN_THUMB_W = 32
PAD = 18
HEADER_H = 56
LABEL_H = 30
BACKGROUND = (255, 255, 255)
INK = (30, 30, 30)
GREY = (120, 120, 120)
PLACEHOLDER = (236, 235, 231)


def write_sheet(board: Board, story: Story) -> Path:
    frames = {i: open_frame(p) for i, p in frame_files(board, story).items()}
    return save_image(board.sheet_path, contact_sheet(story, frames))


def contact_sheet(story: Story, frames: dict[int, Image.Image], *, columns: int = COLUMNS,
                  thumb_w: int = THUMB_W) -> Image.Image:
    """Grid of thumbnails, at least `columns` wide (fewer for small boards); missing frames are grey boxes."""
    labels = Labels(story.language)
    fw, fh = next(iter(frames.values())).size if frames else (16, 9)
    cols, thumb_w = grid(len(story.scenes), fh / fw, columns=columns, thumb_w=thumb_w)
    rows = math.ceil(len(story.scenes) / cols)
    thumb_h = round(thumb_w * fh / fw)
    title_font = ImageFont.truetype(str(font_path(bold=True)), 26)
    number_font = ImageFont.truetype(str(font_path(bold=True)), 20)
    caption_font = ImageFont.truetype(str(font_path()), 15)
    header_h = HEADER_H
    label_h = LABEL_H
    width = cols * thumb_w + (cols + 1) * PAD
    height = header_h + rows * (thumb_h + label_h) + (rows + 1) * PAD

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    facts = labels.facts(len(story.scenes), sum(s.duration for s in story.scenes))
    title_room = width - 3 * PAD - caption_font.getlength(facts)
    if title_room >= title_font.getlength(story.title):  # facts only where the whole title still fits
        draw.text((width - PAD, PAD + 30), facts, font=caption_font, fill=GREY, anchor="rs")
    draw.text((PAD, PAD + 4), _fit(story.title, title_font, width - 2 * PAD), font=title_font, fill=INK)
    for n, scene in enumerate(story.scenes):
        row, col = divmod(n, cols)
        x = PAD + col * (thumb_w + PAD)
        y = header_h + PAD + row * (thumb_h + label_h + PAD)
        frame = frames.get(scene.index)
        if frame is None:
            draw.rectangle((x, y, x + thumb_w - 1, y + thumb_h - 1), fill=PLACEHOLDER)
            draw.text((x + thumb_w / 2, y + thumb_h / 2), _fit(labels["missing"], caption_font, thumb_w - 16),
                      font=caption_font, fill=GREY, anchor="mm")
        else:
            thumb = ImageOps.pad(frame, (thumb_w, thumb_h), Image.Resampling.LANCZOS, color=BACKGROUND)
            sheet.paste(thumb, (x, y))
            draw.rectangle((x, y, x + thumb_w - 1, y + thumb_h - 1), outline=(205, 205, 205))
        _number_tag(draw, str(scene.index), number_font, x + 8, y + 8)
        caption = (scene.caption.strip().splitlines() or [""])[0]
        draw.text((x, y + thumb_h + 7), _fit(caption, caption_font, thumb_w), font=caption_font, fill=INK)
    return sheet


def grid(n: int, aspect: float, *, columns: int = COLUMNS, thumb_w: int = THUMB_W) -> tuple[int, int]:
    """(columns, thumbnail width) for `n` frames of height/width `aspect`.

    Up to FIXED_GRID frames (the longest boards before 300-scene ones), `columns` wide (fewer for
    small boards), as sheets always were. Beyond that, enough columns for a grid about square,
    then narrower thumbnails once the sheet would pass MAX_WIDTH.
    """
    if n <= FIXED_GRID:
        return min(columns, n), thumb_w
    cell_w = thumb_w + PAD
    cell_h = round(thumb_w * aspect) + LABEL_H + PAD
    square = math.ceil(math.sqrt(n * cell_h / cell_w))  # columns of a square grid
    widest = (MAX_WIDTH - PAD) // (MIN_THUMB_W + PAD)  # tall frames: thumbnails no narrower than MIN_THUMB_W
    cols = min(max(min(columns, n), square), n, widest)
    fit = (MAX_WIDTH - (cols + 1) * PAD) // cols
    return cols, max(min(thumb_w, fit), MIN_THUMB_W)


def _number_tag(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, x: int, y: int) -> None:
    """The scene number on a dark rounded tag in the frame's corner: readable on any picture."""
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    w = max(right - left + 16, 32)
    h = bottom - top + 12
    draw.rounded_rectangle((x, y, x + w, y + h), radius=6, fill=(20, 20, 20))
    draw.text((x + w / 2, y + h / 2), text, font=font, fill=(255, 255, 255), anchor="mm")


def _fit(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
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
