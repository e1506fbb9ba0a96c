"""board.pdf: the printable board: 1, 2, 3, 4, 6 or 9 panels a page, A4, A3, letter or tabloid.

Every page of a board has the same grid, so panels line up when pages are laid side by side on a
wall. The grid (columns × rows) is the one of the panel count's factorings that gives the largest
frames on the page (`layout`): two panels stand side by side on a landscape page and one above the
other on a portrait one; six are 3 × 2 landscape and 2 × 3 portrait. Below each frame: the heading
(scene, shot, duration), the caption, the dialogue, the notes, and a grey line of facts (cast,
setting, time, angle). The text wraps inside its cell; what does not fit even at the smallest type
is cut with "…" (see `_fit_blocks`), so nothing runs into the next panel.

Text is set in the shipped DejaVu Sans (embedded as a subset with a ToUnicode map, so captions
stay searchable and copyable). The creation date is fixed (see `creation_date`), so the same
board always gives the same bytes.
"""

from __future__ import annotations

import io
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fpdf import FPDF
from fpdf.fpdf import PAGE_FORMATS
from PIL import Image, ImageOps

from autokose import __version__
from autokose.board import Board
from autokose.export import font_path, frame_files, open_frame
from autokose.export.labels import Labels, bind_short_words
from autokose.export.settings import PAGE_SIZES, ExportSettings
from autokose.fsio import write_bytes
from autokose.story import Scene, Story

FONT = "DejaVu"
FIXED_DATE = datetime(2000, 1, 1, tzinfo=timezone.utc)
PRINT_DPI = 300
JPEG_QUALITY = 90
TEXT_SHARE = 0.3  # of a tall cell kept for text below the frame (notes need room on 1- and 2-panel pages)
MIN_TEXT_W = 60.0  # mm; text under a narrow (portrait) frame still gets a readable measure
WIDE_TEXT_W = 120.0  # mm; text this wide starts at a larger size
SIZES = (8.5, 8, 7.5, 7)
WIDE_SIZES = (10.5, 10, 9.5, 9, *SIZES)

INK = (30, 30, 30)
GREY = (110, 110, 110)
LIGHT = (200, 200, 200)
ACCENT = (192, 57, 43)


def line_h(size: float) -> float:
    """Line height in mm for a font size in points, at 1.2 leading."""
    return size * 25.4 / 72 * 1.2


@dataclass(frozen=True)
class Grid:
    """Page geometry in millimetres; the defaults are the board as it always was (A4 landscape, 3 × 2, 16:9)."""

    page_w: float = 297.0
    page_h: float = 210.0
    cols: int = 3
    rows: int = 2
    aspect: float = 9 / 16  # frame height / width
    margin_x: float = 12.0
    margin_top: float = 10.0
    header_h: float = 26.0
    footer_h: float = 9.0
    gap_x: float = 8.0
    gap_y: float = 6.0
    min_text_h: float = 26.0  # below each frame: heading, caption, dialogue, notes, facts

    @property
    def per_page(self) -> int:
        return self.cols * self.rows

    @property
    def cell_w(self) -> float:
        return (self.page_w - 2 * self.margin_x - (self.cols - 1) * self.gap_x) / self.cols

    @property
    def cell_h(self) -> float:
        usable = self.page_h - self.margin_top - self.header_h - self.footer_h
        return (usable - (self.rows - 1) * self.gap_y) / self.rows

    @property
    def frame_h(self) -> float:
        """As tall as the cell's width allows, leaving the text its share of the cell."""
        return min(self.cell_w * self.aspect, self.cell_h - max(self.min_text_h, TEXT_SHARE * self.cell_h))

    @property
    def frame_w(self) -> float:
        return self.frame_h / self.aspect

    @property
    def text_w(self) -> float:
        """Text lines run as wide as the frame above them (centred with it), never narrower than MIN_TEXT_W."""
        return min(self.cell_w, max(self.frame_w, MIN_TEXT_W))

    @property
    def sizes(self) -> tuple[float, ...]:
        """Body type sizes to try, largest first: wide cells (1 or 2 a page) start larger."""
        return WIDE_SIZES if self.text_w >= WIDE_TEXT_W else SIZES

    def cell(self, slot: int) -> tuple[float, float]:
        """Top-left corner of grid slot 0..per_page-1, row by row."""
        row, col = divmod(slot, self.cols)
        return (self.margin_x + col * (self.cell_w + self.gap_x),
                self.margin_top + self.header_h + row * (self.cell_h + self.gap_y))


def layout(settings: ExportSettings, aspect: float = 9 / 16) -> Grid:
    """The page grid for `settings` and frames of height/width `aspect`.

    Of the ways to lay settings.pdf_panels out as columns × rows, the one with the largest frames:
    it follows the page's shape and the frames' (portrait frames go more to a row), with no table
    of special cases to keep in step with PANELS_PER_PAGE. Ties go to more columns.
    """
    long, short = PAGE_SIZES[settings.page]
    page_w, page_h = (long, short) if settings.orientation == "landscape" else (short, long)
    n = settings.pdf_panels
    grids = [Grid(page_w, page_h, cols, n // cols, aspect) for cols in range(1, n + 1) if n % cols == 0]
    return max(grids, key=lambda g: (round(g.frame_w * g.frame_h, 6), g.cols))


def write_pdf(board: Board, story: Story, settings: ExportSettings | None = None) -> Path:
    frames = {i: open_frame(p) for i, p in frame_files(board, story).items()}
    return write_bytes(board.pdf_path, board_pdf(story, frames, created=creation_date(), settings=settings))


def _page_format(page: str) -> str | tuple[float, float]:
    """fpdf2's own name where it has one (A4 as the 595.28 × 841.89 pt readers call A4), else the size in mm.

    Portrait, as fpdf2 takes it; it turns the page for orientation "L".
    """
    return page.lower() if page.lower() in PAGE_FORMATS else tuple(sorted(PAGE_SIZES[page]))


def creation_date() -> datetime:
    """SOURCE_DATE_EPOCH when set (the reproducible-builds convention), else a fixed date.

    Not the clock: two runs of the same story give byte-identical PDFs (manifest.json keeps
    the real times).
    """
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    return datetime.fromtimestamp(int(epoch), timezone.utc) if epoch.isdigit() else FIXED_DATE


def board_pdf(story: Story, frames: dict[int, Image.Image], *, created: datetime = FIXED_DATE,
              settings: ExportSettings | None = None) -> bytes:
    """The PDF bytes. `frames` maps scene index → image; missing scenes get a placeholder."""
    labels = Labels(story.language)
    settings = settings or ExportSettings()
    w, h = next(iter(frames.values())).size if frames else (16, 9)
    grid = layout(settings, h / w)
    pages = math.ceil(len(story.scenes) / grid.per_page)
    pdf = FPDF(orientation=settings.orientation[0].upper(), unit="mm", format=_page_format(settings.page))
    pdf.set_auto_page_break(False)
    pdf.set_margins(grid.margin_x, grid.margin_top)
    pdf.c_margin = 0
    pdf.add_font(FONT, "", str(font_path()))
    pdf.add_font(FONT, "B", str(font_path(bold=True)))
    pdf.set_title(story.title)
    pdf.set_subject(story.logline)
    pdf.set_lang(labels.code)
    pdf.set_creator(f"AutoKöse {__version__}")
    pdf.set_creation_date(created)

    for n, scene in enumerate(story.scenes):
        slot = n % grid.per_page
        if slot == 0:
            pdf.add_page()
            _page_header(pdf, story, labels, grid, first=pdf.page_no() == 1)
            _page_footer(pdf, labels, grid, pdf.page_no(), pages)
        _panel(pdf, story, scene, labels, frames.get(scene.index), grid, *grid.cell(slot))
    return bytes(pdf.output())


def _page_header(pdf: FPDF, story: Story, labels: Labels, grid: Grid, *, first: bool) -> None:
    """Page 1: title, board facts and logline. Later pages: title and facts just above the rule."""
    width = grid.page_w - 2 * grid.margin_x
    rule_y = grid.margin_top + grid.header_h - 4
    facts = labels.facts(len(story.scenes), sum(s.duration for s in story.scenes))
    pdf.set_font(FONT, "", 8.5)
    facts_w = pdf.get_string_width(facts) + 2
    title_size, title_h = (17, 8) if first else (12, 6)
    title_y = grid.margin_top if first else rule_y - title_h - 2
    pdf.set_text_color(*GREY)
    pdf.set_xy(grid.page_w - grid.margin_x - facts_w, title_y + title_h - 5)
    pdf.cell(facts_w, 4, facts, align="R")
    pdf.set_font(FONT, "B", title_size)
    pdf.set_text_color(*INK)
    pdf.set_xy(grid.margin_x, title_y)
    pdf.cell(width - facts_w - 4, title_h, _fit_one_line(pdf, story.title, width - facts_w - 4))
    if first:
        size, lines = _fit_lines(pdf, story.logline, width, sizes=(10.5, 10, 9.5, 9, 8.5, 8), max_lines=3)
        pdf.set_text_color(*GREY)
        for k, line in enumerate(lines):
            pdf.set_xy(grid.margin_x, grid.margin_top + 10 + k * line_h(size))
            pdf.cell(width, line_h(size), line)
    pdf.set_draw_color(*LIGHT)
    pdf.set_line_width(0.3)
    pdf.line(grid.margin_x, rule_y, grid.page_w - grid.margin_x, rule_y)


def _page_footer(pdf: FPDF, labels: Labels, grid: Grid, page: int, pages: int) -> None:
    y = grid.page_h - grid.footer_h + 3
    pdf.set_font(FONT, "", 7.5)
    pdf.set_text_color(*GREY)
    pdf.set_xy(grid.margin_x, y)
    pdf.cell(60, 4, "AutoKöse")
    pdf.set_xy(grid.page_w - grid.margin_x - 60, y)
    pdf.cell(60, 4, f"{labels['page']} {page} / {pages}", align="R")


def _panel(pdf: FPDF, story: Story, scene: Scene, labels: Labels, frame: Image.Image | None,
           grid: Grid, x: float, y: float) -> None:
    bottom = y + grid.cell_h
    _frame(pdf, frame, labels, x + (grid.cell_w - grid.frame_w) / 2, y, grid.frame_w, grid.frame_h)
    y += grid.frame_h + 2.2
    x, w = x + (grid.cell_w - grid.text_w) / 2, grid.text_w

    # Heading: "Сцена 3 — крупный план" on the left, duration on the right.
    duration = labels.seconds(scene.duration)
    pdf.set_font(FONT, "", 8)
    dur_w = pdf.get_string_width(duration) + 1
    pdf.set_text_color(*GREY)
    pdf.set_xy(x + w - dur_w, y)
    pdf.cell(dur_w, 4.5, duration, align="R")
    pdf.set_font(FONT, "B", 9.5)
    pdf.set_text_color(*INK)
    pdf.set_xy(x, y)
    pdf.cell(w - dur_w, 4.5, _fit_one_line(pdf, f"{labels.scene(scene.index)} — {labels.term(scene.shot)}", w - dur_w))
    y += 5.5

    # Caption, dialogue in the accent colour, notes in grey; together they share the lines left.
    facts_h = 4.0
    room = bottom - y - facts_h
    texts = [(scene.caption, INK)]
    if scene.dialogue and scene.dialogue.strip():
        texts.append((_as_dialogue(scene.dialogue), ACCENT))
    if scene.notes.strip():
        texts.append((f"{labels['notes']}: {scene.notes.strip()}", GREY))
    size, blocks = _fit_blocks(pdf, texts, w, room, sizes=grid.sizes)
    for lines, colour in blocks:
        pdf.set_text_color(*colour)
        for line in lines:
            pdf.set_xy(x, y)
            pdf.cell(w, line_h(size), line)
            y += line_h(size)

    # Facts: who, where, when, angle — one grey line at the bottom of the cell.
    cast = ", ".join(story.character(cid).display_name(story.language) for cid in scene.characters)
    facts = " · ".join(p for p in (cast, labels.setting(scene.setting), labels.term(scene.time),
                                   labels.term(scene.angle)) if p)
    pdf.set_font(FONT, "", 7)
    pdf.set_text_color(*GREY)
    pdf.set_xy(x, bottom - facts_h + 0.5)
    pdf.cell(w, 3.5, _fit_one_line(pdf, facts, w))


def _frame(pdf: FPDF, frame: Image.Image | None, labels: Labels, x: float, y: float, w: float, h: float) -> None:
    if frame is None:
        pdf.set_fill_color(236, 235, 231)
        pdf.rect(x, y, w, h, style="F")
        pdf.set_font(FONT, "", 8.5)
        pdf.set_text_color(*GREY)
        pdf.set_xy(x, y + h / 2 - 2)
        pdf.cell(w, 4, labels["missing"], align="C")
    else:
        fw, fh = frame.size
        scale = min(w / fw, h / fh)
        iw, ih = fw * scale, fh * scale
        ix, iy = x + (w - iw) / 2, y + (h - ih) / 2
        pdf.image(_print_jpeg(frame, iw, ih), x=ix, y=iy, w=iw, h=ih)
        x, y, w, h = ix, iy, iw, ih
    pdf.set_draw_color(*LIGHT)
    pdf.set_line_width(0.2)
    pdf.rect(x, y, w, h)


def _print_jpeg(frame: Image.Image, w_mm: float, h_mm: float) -> io.BytesIO:
    """JPEG at print resolution: a board of 24 frames stays small enough to mail."""
    px = (round(w_mm / 25.4 * PRINT_DPI), round(h_mm / 25.4 * PRINT_DPI))
    if frame.width > px[0] or frame.height > px[1]:
        frame = ImageOps.contain(frame, px, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    frame.save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=0)  # 4:4:4 keeps thin coloured lines
    buf.seek(0)
    return buf


def _as_dialogue(text: str) -> str:
    """A dash marks a spoken line in print (colour may be lost), unless a speaker or quote already does."""
    text = text.strip()
    has_speaker = re.match(r"[^:«»\"“”]{1,40}:\s", text) is not None
    return text if has_speaker or text[:1] in "—–-«\"“" else f"— {text}"


def _wrap(pdf: FPDF, text: str, width: float) -> list[str]:
    if not text.strip():
        return []
    return [str(line) for line in pdf.multi_cell(width, 4, bind_short_words(text), dry_run=True, output="LINES")]


def _fit_lines(pdf: FPDF, text: str, width: float, *, sizes: tuple[float, ...],
               max_lines: int) -> tuple[float, list[str]]:
    size, blocks = _fit_blocks(pdf, [(text, None)], width, None, sizes=sizes, max_lines=max_lines)
    return size, blocks[0][0]


def _fit_blocks(pdf: FPDF, texts: list[tuple[str, object]], width: float, room: float | None, *,
                sizes: tuple[float, ...] = SIZES, max_lines: int | None = None):
    """Wrap texts at the largest font size whose lines fit `room` mm (or `max_lines`); else cut with '…'.

    How a cut is made: at the smallest size, the lines there are go out in rounds, in the blocks' order
    (caption, dialogue, notes): one line each, then up to two each, then the caption takes what it
    needs of the rest and the others what is left. A block that lost lines ends its last kept line
    with '…'. So a long note never hides the caption, and a long caption never hides the dialogue.
    """
    for size in sizes:
        pdf.set_font(FONT, "", size)
        limit = max_lines if max_lines is not None else int(room // line_h(size))
        if size != sizes[-1] and sum(pdf.get_string_width(text) for text, _ in texts) > limit * width:
            continue  # more lines than room even unwrapped end to end: no need to wrap (2000-character notes)
        blocks = [(_wrap(pdf, text, width), tag) for text, tag in texts]
        if sum(len(lines) for lines, _ in blocks) <= limit:
            return size, blocks
    # Still too long at the smallest size: see the docstring.
    quota, left = [0] * len(blocks), max(limit, 0)
    for share in (1, 2, None):  # one line each, then two each, then all the caption wants, then the others
        for k, (lines, _) in enumerate(blocks):
            give = min(len(lines) if share is None else min(len(lines), share), quota[k] + left) - quota[k]
            if give > 0:
                quota[k] += give
                left -= give
    kept = []
    for (lines, tag), n in zip(blocks, quota):
        cut = lines[:n]
        if cut and n < len(lines):
            cut[-1] = _fit_one_line(pdf, cut[-1] + "…", width)
        kept.append((cut, tag))
    return size, kept


def _fit_one_line(pdf: FPDF, text: str, width: float) -> str:
    """`text` on one line at the current font, cut with '…' when it is too wide."""
    if pdf.get_string_width(text) <= width:
        return text
    while text and pdf.get_string_width(text.rstrip() + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"
