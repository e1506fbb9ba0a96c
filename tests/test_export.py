"""Export: board.html, board.pdf and sheet.png from a hand-made board folder."""

from __future__ import annotations

import json
import re
import zlib
from html import escape

import numpy as np
import pytest
from PIL import Image, ImageDraw

from autokose.board import Board
from autokose.errors import InputError
from autokose.export import export_board
from autokose.export.labels import TEXT, Labels
from autokose.export.settings import ExportSettings
from autokose.story import Shot, Story

CAPTIONS = [
    "Алдар Косе держит «золотое яйцо» и улыбается.",
    "Бай наклоняется вперёд: <script>alert('x')</script> & глаза горят.",
    "Слуги переглядываются; Көсе қулықпен күледі — ә ғ қ ң ө ұ ү һ і.",
]


def make_story(n: int = 3, language: str = "ru") -> Story:
    scenes = []
    for i in range(1, n + 1):
        scenes.append({
            "index": i,
            "caption": CAPTIONS[(i - 1) % len(CAPTIONS)] if i <= len(CAPTIONS) else f"Сцена номер {i}: Бай считает монеты.",
            "characters": ["aldar", "bai"] if i % 2 else ["aldar"],
            "shot": ["wide", "close_up", "medium"][i % 3],
            "setting": "yurt",
            "time": "dusk",
            "dialogue": "Это яйцо несёт золото!" if i == 1 else None,
            "duration": 2.5,
        })
    return Story.model_validate({
        "title": "Золотое яйцо",
        "logline": "Алдар Косе продаёт баю «золотое яйцо».",
        "language": language,
        "characters": [
            {"id": "aldar", "name": "Aldar Köse", "names": {"ru": "Алдар Косе", "kk": "Алдар Көсе"}},
            {"id": "bai", "name": "the Bai", "names": {"ru": "Бай", "kk": "Бай"}},
        ],
        "scenes": scenes,
    })


def make_board(root, n: int = 3, missing: tuple[int, ...] = (), size=(192, 108), language: str = "ru"):
    board = Board(root)
    story = make_story(n, language)
    board.save_story(story)
    for i in range(1, n + 1):
        if i in missing:
            continue
        im = Image.new("RGB", size, (40 + 17 * i % 200, 90, 160))
        ImageDraw.Draw(im).ellipse((20, 20, 60 + 5 * i, 80), fill=(230, 190, 60))
        board.frame_path(i).parent.mkdir(exist_ok=True)
        im.save(board.frame_path(i))
    return board, story


def load(path) -> Image.Image:
    with Image.open(path) as im:
        return im.convert("RGB")


def pdf_runs(data: bytes) -> list[tuple[int, float, float, str]]:
    """Every shown string as (page, x, y, text), x and y the baseline start in points from the bottom left,
    mapped through its font's ToUnicode CMap (what a PDF reader would extract)."""
    objs = {int(n): body for n, body in re.findall(rb"(\d+) 0 obj\n(.*?)\nendobj", data, re.S)}

    def stream(n: int) -> bytes:
        head, _, rest = objs[n].partition(b"stream\n")
        # /Length, not stripping newlines: compressed bytes may end in \n or \r themselves.
        length = re.search(rb"/Length (\d+)", head)
        raw = rest[:int(length.group(1))] if length else rest.rsplit(b"endstream", 1)[0].rstrip(b"\r\n")
        return zlib.decompress(raw) if b"/FlateDecode" in head else raw

    def to_unicode(font_ref: int) -> dict[int, str]:
        cmap_ref = int(re.search(rb"/ToUnicode (\d+) 0 R", objs[font_ref]).group(1))
        pairs = re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", stream(cmap_ref).split(b"endcodespacerange")[-1])
        return {int(src, 16): bytes.fromhex(dst.decode()).decode("utf-16-be") for src, dst in pairs}

    fonts = {name: to_unicode(int(ref)) for name, ref in re.findall(rb"/(F\d+) (\d+) 0 R", data)}
    kids = re.search(rb"/Kids \[([^\]]*)\]", data).group(1)
    runs = []
    ops = rb"/(F\d+) [\d.]+ Tf|([\d.]+) ([\d.]+) Td|\(((?:\\.|[^\\)])*)\) Tj|<([0-9A-Fa-f]*)> Tj"
    for page_no, page in enumerate(re.findall(rb"(\d+) 0 R", kids), 1):
        content = stream(int(re.search(rb"/Contents (\d+) 0 R", objs[int(page)]).group(1)))
        cmap: dict[int, str] = {}
        x = y = 0.0
        for font, tx, ty, literal, hexcodes in re.findall(ops, content, re.S):
            if font:
                cmap = fonts[font]
                continue
            if tx:
                x, y = float(tx), float(ty)
                continue
            codes = bytes.fromhex(hexcodes.decode()) if hexcodes else re.sub(
                rb"\\(.)", lambda m: {b"n": b"\n", b"r": b"\r"}.get(m.group(1), m.group(1)), literal, flags=re.S)
            text = "".join(cmap.get(int.from_bytes(codes[k:k + 2], "big"), "\ufffd") for k in range(0, len(codes), 2))
            runs.append((page_no, x, y, text))
    return runs


def pdf_text(data: bytes) -> str:
    """What a PDF reader would extract: every shown string, page by page, one a line."""
    return "\n".join(text for *_, text in pdf_runs(data))


def pdf_pages(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b", data))


def test_exports_exist_and_are_self_contained(tmp_path):
    board, story = make_board(tmp_path / "b")
    paths = export_board(board, story, ["html", "pdf", "sheet"])
    assert set(paths) == {"html", "pdf", "sheet"}
    assert all(p.is_file() for p in paths.values())
    html = board.html_path.read_text(encoding="utf-8")
    assert '<html lang="ru">' in html
    assert html.count('src="data:image/png;base64,') == 3
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html
    for caption in CAPTIONS:
        assert escape(caption) in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp;" in html
    assert "<script>alert" not in html
    assert "«золотое яйцо»" in html and "Көсе қулықпен" in html
    assert "Алдар Косе, Бай" in html  # display names in the story's language
    assert "крупный план" in html and "юрта" in html and "сумерки" in html
    assert "Это яйцо несёт золото!" in html
    assert "badge" not in html.split("</style>")[1]


def test_html_language_follows_story(tmp_path):
    board, story = make_board(tmp_path / "b", language="kk")
    html = export_board(board, story, ["html"])["html"].read_text(encoding="utf-8")
    assert '<html lang="kk">' in html
    assert "Алдар Көсе" in html and "Сахна 1" in html and "ымырт" in html


def test_scores_show_badges_and_heatmap(tmp_path):
    board, story = make_board(tmp_path / "b")
    scores = {
        "frames": {
            "01": {"identity": 0.812, "status": "ok", "model": "facenet"},
            "02": {"identity": 0.41, "status": "low", "model": "facenet"},
            "03": {"identity": None, "status": "none", "model": "facenet"},
        },
        "summary": {"frames_ok": 1, "frames_low": 1, "frames_none": 1, "mean_identity": 0.611,
                    "min_identity": 0.41, "worst_frame": "02", "face_model": "dlib-resnet", "custom": 7},
    }
    (board.root / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
    Image.new("RGB", (60, 20), (200, 0, 0)).save(board.root / "scores_heatmap.png")
    html = export_board(board, story, ["html"])["html"].read_text(encoding="utf-8")
    body = html.split("</style>")[1]
    assert 'class="badge ok"' in body and "0.81" in body
    assert 'class="badge low"' in body and "0.41" in body
    assert 'class="badge none"' in body
    assert "низкое сходство 1" in body and "среднее 0.61" in body and "минимум 0.41 (Сцена 2)" in body
    assert "dlib-resnet" in body and "custom 7" in body
    assert body.count('src="data:image/png;base64,') == 4  # three frames + heatmap


def test_broken_scores_is_input_error(tmp_path):
    board, story = make_board(tmp_path / "b")
    (board.root / "scores.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(InputError, match="scores.json"):
        export_board(board, story, ["html"])


def test_missing_frame_gets_placeholder(tmp_path):
    board, story = make_board(tmp_path / "b", missing=(2,))
    paths = export_board(board, story, ["html", "pdf", "sheet"])
    html = paths["html"].read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 2
    assert html.count('class="placeholder"') == 1 and "кадр ещё не отрисован" in html
    assert "кадр ещё не отрисован" in pdf_text(paths["pdf"].read_bytes())
    sheet = load(paths["sheet"])
    full_board, _ = make_board(tmp_path / "full")
    full = load(export_board(full_board, story, ["sheet"])["sheet"])
    assert sheet.size == full.size and sheet.tobytes() != full.tobytes()


def test_pdf_has_extractable_captions_and_pages_grow(tmp_path):
    board, story = make_board(tmp_path / "small", n=3)
    small = export_board(board, story, ["pdf"])["pdf"].read_bytes()
    assert small.startswith(b"%PDF")
    text = " ".join(pdf_text(small).split())  # wrapped lines joined
    assert "Золотое яйцо" in text and "Алдар Косе продаёт баю" in text
    assert "«золотое" in text and "ә ғ қ ң ө ұ ү һ і" in text
    assert "Сцена 1 — крупный план" in text and "Сцена 2 — средний план" in text
    assert "<script>alert('x')</script> & глаза горят." in text
    assert "— Это яйцо несёт золото!" in text
    assert "стр. 1 / 1" in text

    big_board, big_story = make_board(tmp_path / "big", n=13)
    big = export_board(big_board, big_story, ["pdf"])["pdf"].read_bytes()
    assert len(re.findall(rb"/Type\s*/Page\b", small)) == 1
    assert len(re.findall(rb"/Type\s*/Page\b", big)) == 3
    assert "стр. 3 / 3" in pdf_text(big)


def test_long_caption_is_cut_not_spilled(tmp_path):
    board, story = make_board(tmp_path / "b", n=1)
    story.scenes[0].caption = "очень " * 300 + "КОНЕЦ"
    text = pdf_text(export_board(board, story, ["pdf"])["pdf"].read_bytes())
    assert "…" in text and "КОНЕЦ" not in text
    assert "— Это яйцо несёт золото!" in " ".join(text.split())  # the dialogue keeps its lines


def test_sheet_grid_depends_on_frame_count(tmp_path):
    sizes = {}
    for n in (2, 4, 6):
        board, story = make_board(tmp_path / f"b{n}", n=n)
        sizes[n] = load(export_board(board, story, ["sheet"])["sheet"]).size
    assert sizes[2][0] < sizes[4][0] == sizes[6][0]  # up to 4 columns
    assert sizes[4][1] < sizes[6][1]  # a second row
    assert load(tmp_path / "b6" / "sheet.png").getpixel((0, 0)) == (255, 255, 255)


def test_sheet_grid_for_long_boards_is_capped_and_about_square():
    from autokose.export.sheet import HEADER_H, LABEL_H, MAX_WIDTH, PAD, grid

    assert [grid(n, 9 / 16) for n in (1, 3, 8, 24)] == [(1, 360), (3, 360), (4, 360), (4, 360)]  # as it always was
    for n in (25, 100, 120, 300):
        cols, thumb_w = grid(n, 9 / 16)
        rows = -(-n // cols)
        width = cols * thumb_w + (cols + 1) * PAD
        height = HEADER_H + rows * (round(thumb_w * 9 / 16) + LABEL_H) + (rows + 1) * PAD
        assert cols > 4 and width <= MAX_WIDTH and 0.6 < height / width < 1.25, (n, cols, thumb_w, width, height)
    assert grid(300, 9 / 16) == (15, 253)
    assert grid(2, 64) == (2, 360) and grid(24, 16 / 9) == (4, 360)  # any shape of frame: as it always was
    assert grid(25, 64) == (25, 145)  # tall frames: never more columns than frames
    cols, thumb_w = grid(300, 64)
    assert cols * thumb_w + (cols + 1) * PAD <= MAX_WIDTH and thumb_w >= 32


def test_reruns_are_byte_identical(tmp_path):
    board, story = make_board(tmp_path / "b")
    first = {k: p.read_bytes() for k, p in export_board(board, story, ["html", "pdf", "sheet"]).items()}
    second = {k: p.read_bytes() for k, p in export_board(board, story, ["html", "pdf", "sheet"]).items()}
    assert first == second
    story.scenes[0].caption = "Другая подпись"
    changed = {k: p.read_bytes() for k, p in export_board(board, story, ["html", "pdf", "sheet"]).items()}
    assert all(changed[k] != first[k] for k in first)


def test_unknown_format_is_input_error(tmp_path):
    board, story = make_board(tmp_path / "b")
    with pytest.raises(InputError, match="unknown export format 'docx'"):
        export_board(board, story, ["html", "docx"])
    assert not board.html_path.exists()


def test_broken_frame_is_input_error(tmp_path):
    board, story = make_board(tmp_path / "b")
    board.frame_path(2).write_bytes(b"not a png")
    for fmt in ("html", "pdf", "sheet"):
        with pytest.raises(InputError, match="02.png"):
            export_board(board, story, [fmt])


def test_large_frames_are_embedded_as_jpeg(tmp_path):
    board, story = make_board(tmp_path / "b")
    noise = np.random.default_rng(0).integers(0, 256, (400, 700, 3), dtype=np.uint8)
    Image.fromarray(noise).save(board.frame_path(2))
    png_size = board.frame_path(2).stat().st_size
    html = export_board(board, story, ["html"])["html"].read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == 2  # small frames stay byte-exact PNG
    assert html.count('src="data:image/jpeg;base64,') == 1
    assert len(html) < png_size


def test_labels_count_and_time_in_each_language():
    ru, kk, en = Labels("ru"), Labels("kk"), Labels("en")
    assert [ru.scenes(n) for n in (1, 3, 5, 11, 21, 24)] == ["1 сцена", "3 сцены", "5 сцен", "11 сцен", "21 сцена", "24 сцены"]
    assert kk.scenes(8) == "8 сахна" and en.scenes(1) == "1 scene" and en.scenes(2) == "2 scenes"
    assert ru.seconds(2.5) == "2,5 с" and en.seconds(2.5) == "2.5 s" and ru.runtime(95) == "1 мин 35 с"
    assert ru.term(Shot.close_up) == "крупный план" and kk.term(Shot.close_up) == "ірі план"
    assert ru.setting("yurt") == "юрта" and ru.setting("юрта Бая") == "юрта Бая"


def test_pdf_date_is_fixed_unless_source_date_epoch(tmp_path, monkeypatch):
    board, story = make_board(tmp_path / "b")
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert b"/CreationDate (D:20000101000000Z)" in export_board(board, story, ["pdf"])["pdf"].read_bytes()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert b"/CreationDate (D:20231114221320Z)" in export_board(board, story, ["pdf"])["pdf"].read_bytes()


# --- PDF layouts, notes, the sheet's full captions ---------------------------------------------------------------

MM = 72 / 25.4  # points per millimetre


def long_text_story(tmp_path, n: int = 7):
    """A board whose scene 1 has caption, dialogue and notes each near the 2000-character limit (together too
    long for any cell), scene 2 such a note alone, and scene 3 a short note."""
    board, story = make_board(tmp_path / "b", n=n, size=(64, 36))
    story.scenes[0].caption = "очень " * 330 + "ФИНАЛ"
    story.scenes[0].dialogue = "Бай: " + "скажи " * 320 + "ВСЁ"
    story.scenes[0].notes = "шум ветра, " * 180 + "КОНЕЦ"
    story.scenes[1].notes = "шум ветра, " * 180 + "ТИШИНА"
    story.scenes[2].notes = "Камера медленно наезжает; звук: ветер."
    return board, story


def assert_text_inside_cells(data: bytes, grid) -> None:
    """Every panel's text sits below its own frame and above the next row: none spilled into another panel."""
    rows = [grid.cell(r * grid.cols)[1] for r in range(grid.rows)]
    for page, _, y_pt, text in pdf_runs(data):
        y = grid.page_h - y_pt / MM  # baseline, mm from the top
        if y < grid.margin_top + grid.header_h or y > grid.page_h - grid.footer_h:  # page header and footer
            continue
        assert any(top + grid.frame_h < y <= top + grid.cell_h + 0.01 for top in rows), (page, round(y, 1), text)


@pytest.mark.parametrize("per_page", [1, 2, 3, 4, 6, 9])
@pytest.mark.parametrize("orientation", ["landscape", "portrait"])
def test_pdf_layouts_page_count_and_cut_text(tmp_path, per_page, orientation):
    from autokose.export.pdf import layout

    board, story = long_text_story(tmp_path)
    settings = ExportSettings(pdf_panels=per_page, orientation=orientation)
    data = export_board(board, story, ["pdf"], settings)["pdf"].read_bytes()
    pages = -(-7 // per_page)
    assert pdf_pages(data) == pages
    text = pdf_text(data)
    assert f"стр. {pages} / {pages}" in text
    assert [int(n) for n in re.findall(r"Сцена (\d+) —", text)] == list(range(1, 8))  # every panel, in order
    runs = [t for *_, t in pdf_runs(data)]
    cut = {end: any(words in t and t.endswith("…") for t in runs)
           for words, end in (("очень", "ФИНАЛ"), ("скажи", "ВСЁ"), ("шум ветра", "КОНЕЦ"))}
    assert all(cut[end] != (end in text) for end in cut), cut  # each shown whole, or cut and saying so
    assert cut["КОНЕЦ"]  # together they fit no cell: the notes, last in line, lose lines but keep some
    assert "Заметки: Камера медленно наезжает; звук: ветер." in " ".join(text.split())
    assert_text_inside_cells(data, layout(settings, 36 / 64))


def test_pdf_grid_follows_page_shape_and_default_is_unchanged():
    from autokose.export.pdf import Grid, layout

    def shape(k, orientation, page="A4"):
        g = layout(ExportSettings(pdf_panels=k, orientation=orientation, page=page))
        return g.cols, g.rows

    assert [shape(k, "landscape") for k in (1, 2, 3, 4, 6, 9)] == [(1, 1), (2, 1), (3, 1), (2, 2), (3, 2), (3, 3)]
    assert [shape(k, "portrait") for k in (1, 2, 3, 4, 6, 9)] == [(1, 1), (1, 2), (1, 3), (2, 2), (2, 3), (3, 3)]
    assert shape(2, "portrait", "tabloid") == (1, 2) and shape(6, "landscape", "letter") == (3, 2)
    assert layout(ExportSettings()) == Grid()  # A4 landscape, six a page: the board as it always was
    assert layout(ExportSettings(pdf_panels=6), 16 / 9).cols == 6  # portrait frames: one row of tall cells
    for page in ("A4", "A3", "letter", "tabloid"):
        for orientation in ("landscape", "portrait"):
            for k in (1, 2, 3, 4, 6, 9):
                g = layout(ExportSettings(pdf_panels=k, page=page, orientation=orientation))
                x, y = g.cell(g.per_page - 1)
                assert x + g.cell_w <= g.page_w - g.margin_x + 1e-6 and y + g.cell_h <= g.page_h - g.footer_h + 1e-6
                assert g.frame_h >= 20 and g.cell_h - g.frame_h >= g.min_text_h - 1e-6 and g.frame_w <= g.cell_w + 1e-6


@pytest.mark.parametrize("page, orientation, size", [
    ("A4", "portrait", (595.28, 841.89)), ("A4", "landscape", (841.89, 595.28)),
    ("letter", "landscape", (792, 612)), ("letter", "portrait", (612, 792)),
    ("A3", "landscape", (1190.55, 841.89)), ("tabloid", "portrait", (792, 1224)),
])
def test_pdf_media_box_is_page_size_and_orientation(tmp_path, page, orientation, size):
    board, story = make_board(tmp_path / "b", n=2, size=(64, 36))
    data = export_board(board, story, ["pdf"], ExportSettings(page=page, orientation=orientation))["pdf"].read_bytes()
    boxes = re.findall(rb"/MediaBox \[0 0 ([\d.]+) ([\d.]+)\]", data)
    assert boxes and all(float(w) == pytest.approx(size[0], abs=0.5) and float(h) == pytest.approx(size[1], abs=0.5)
                         for w, h in boxes)


def test_notes_and_dialogue_in_pdf_and_html(tmp_path):
    board, story = make_board(tmp_path / "b", n=3, size=(64, 36))
    story.scenes[1].notes = "Звук: <script>alert(1)</script> & ветер; камера наезжает."
    story.scenes[1].dialogue = "Бай: Продай мне яйцо!"
    paths = export_board(board, story, ["pdf", "html"], ExportSettings(pdf_panels=2))
    text = " ".join(pdf_text(paths["pdf"].read_bytes()).split())
    assert "Заметки: Звук: <script>alert(1)</script> & ветер; камера наезжает." in text
    assert "Бай: Продай мне яйцо!" in text and "— Это яйцо несёт золото!" in text
    html = paths["html"].read_text(encoding="utf-8")
    assert ('<p class="notes"><b>Заметки</b>Звук: &lt;script&gt;alert(1)&lt;/script&gt; &amp; ветер; '
            'камера наезжает.</p>') in html
    assert "<script>alert(1)" not in html
    assert html.count('<p class="notes">') == 1  # only the panel that has notes
    assert html.count('<p class="dialogue"') == 2 and "Бай: Продай мне яйцо!" in html
    panel = html.split('id="scene-02"')[1].split("</article>")[0]
    assert panel.index('class="caption"') < panel.index('class="dialogue"') < panel.index('class="notes"')


def test_notes_are_labelled_in_the_story_language(tmp_path):
    board, story = make_board(tmp_path / "b", n=1, size=(64, 36), language="kk")
    story.scenes[0].notes = "Жел соғады"
    paths = export_board(board, story, ["pdf", "html"])
    assert "<b>Ескертпелер</b>Жел соғады" in paths["html"].read_text(encoding="utf-8")
    assert "Ескертпелер: Жел соғады" in pdf_text(paths["pdf"].read_bytes())
    for code in ("en", "ru", "kk"):  # each language has its own words, not English by fallback
        assert {"notes", "dialogue"} <= set(TEXT[code])
    assert Labels("en")["notes"] == "Notes" and Labels("ru")["dialogue"] == "Реплика"


def test_unknown_pdf_layout_is_refused():
    for bad in ({"pdf_panels": 5}, {"pdf_panels": 0}, {"page": "B5"}, {"orientation": "diagonal"}):
        with pytest.raises(ValueError):
            ExportSettings(**bad)
    with pytest.raises(ValueError, match="5 panels a page is not a layout"):
        ExportSettings(pdf_panels=5)


def test_wrap_keeps_every_word_and_each_line_fits():
    from PIL import ImageFont

    from autokose.export import font_path
    from autokose.export.sheet import CAPTION_SIZE, wrap

    font = ImageFont.truetype(str(font_path()), CAPTION_SIZE)
    text = ("Алдар Косе в лохмотьях входит в юрту бая и, не снимая шапки, садится у очага — "
            "бай смотрит на него с подозрением, а слуги перешёптываются у входа.")
    for width in (150, 200, 360):  # the longest word (перешёптываются) fits 150 px
        lines = wrap(text, font, width)
        assert len(lines) > 1
        assert " ".join(lines).split() == text.split()  # every word, in order, none cut
        assert all(font.getlength(line) <= width for line in lines)
        for line, after in zip(lines, lines[1:]):  # greedy: the next line's first word did not fit
            assert font.getlength(f"{line} {after.split(' ')[0]}") > width
        assert not any(line.endswith((" в", " и", " а", " у")) for line in lines)  # short words stay with the next
    word = "Көсеқулықпенкүледіәғқңөұүһі" * 3
    pieces = wrap(word, font, 60)
    assert "".join(pieces) == word and all(font.getlength(p) <= 60 for p in pieces) and len(pieces) > 3
    assert wrap("один\nдва\n\nтри", font, 500) == ["один", "два", "три"]
    assert wrap("   ", font, 100) == []


def test_sheet_row_grows_to_its_longest_caption(tmp_path):
    from PIL import ImageFont

    from autokose.export import font_path
    from autokose.export.sheet import CAPTION_LINE_H, CAPTION_SIZE, HEADER_H, PAD, THUMB_W, label_height, wrap

    board, story = make_board(tmp_path / "b", n=6, size=(64, 36))
    story.scenes[1].caption = "Короткая подпись."
    for scene in story.scenes[2:]:
        scene.caption = "Бай считает монеты."
    short = load(export_board(board, story, ["sheet"])["sheet"])
    long_caption = " ".join(f"слово{k}" for k in range(120)) + " КОНЕЦ"
    story.scenes[1].caption = long_caption
    tall = load(export_board(board, story, ["sheet"])["sheet"])
    font = ImageFont.truetype(str(font_path()), CAPTION_SIZE)
    lines = wrap(long_caption, font, THUMB_W)
    assert len(lines) > 10
    first_row_short = label_height(max(len(wrap(s, font, THUMB_W)) for s in (CAPTIONS[0], "Короткая подпись.")))
    assert tall.size[0] == short.size[0] and tall.size[1] - short.size[1] == label_height(len(lines)) - first_row_short
    # The caption's last line is drawn at the bottom of the grown label (ink under column 2), and the
    # second row starts below it (its thumbnail is where the grown row ends).
    thumb_h = round(THUMB_W * 36 / 64)
    last_line_y = HEADER_H + PAD + thumb_h + label_height(len(lines)) - CAPTION_LINE_H
    x2 = 2 * PAD + THUMB_W
    strip = np.asarray(tall.crop((x2, last_line_y, x2 + THUMB_W, last_line_y + 12)))
    assert (strip < 128).any()
    row2_y = HEADER_H + 2 * PAD + thumb_h + label_height(len(lines))
    assert tall.getpixel((PAD + 40, row2_y + thumb_h - 4)) != (255, 255, 255)  # inside the 5th frame
    assert tall.getpixel((PAD + 40, row2_y - PAD // 2)) == (255, 255, 255)  # the gap above it
