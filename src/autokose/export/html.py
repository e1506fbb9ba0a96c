"""board.html: one self-contained file that opens anywhere and can be mailed.

Frames are embedded as base64 PNG data URIs, CSS is inline and a few lines of JS open a frame
large. Every piece of text comes from users or an LLM, so all of it is escaped. Below each caption:
the dialogue (red rule, italic) and the artist's notes (labelled in the story's language, on a tinted
ground with a dashed rule, so a note is never read as part of the script).
"""

from __future__ import annotations

import base64
import io
from html import escape
from pathlib import Path

from PIL import Image

from autokose import __version__
from autokose.board import Board, frame_key
from autokose.errors import InputError
from autokose.export.settings import ExportSettings
from autokose.export import frame_files, load_scores
from autokose.export.labels import Labels
from autokose.fsio import write_text
from autokose.images import Unreadable, image_size
from autokose.story import Scene, Story

STATUSES = ("ok", "low", "none")
EMBED_PNG_LIMIT = 256_000  # bytes; larger frames are embedded as JPEG (see frame_uri)
JPEG_QUALITY = 90
# Summary keys the page puts into words (autokose.score writes them); others are listed as they are.
SUMMARY_KEYS = frozenset({"protagonist", "frames", "frames_ok", "frames_low", "frames_none", "mean_identity",
                          "min_identity", "worst_frame", "protagonist_consistency", "face_model", "face_threshold",
                          "clip_model", "clip_t_mean", "note", "id_swaps", "id_swap_faces", "id_swap_rate",
                          "id_swap_margin"})

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f3f1ec;color:#1f1f1f;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","DejaVu Sans",sans-serif}
header,main,footer{max-width:1500px;margin:0 auto;padding:0 28px}
header{padding-top:32px;padding-bottom:8px}
h1{font-size:30px;line-height:1.2;margin:0 0 10px}
.logline{font-size:18px;color:#444;margin:0 0 10px;max-width:70em}
.facts{font-size:13px;color:#777;margin:0 0 18px;letter-spacing:.02em}
.scores{display:flex;gap:18px;align-items:flex-start;background:#fff;border-radius:6px;padding:12px 16px;margin:0 0 20px;font-size:13px}
.scores h2{font-size:14px;margin:0 0 4px}
.scores p{margin:0 0 3px;color:#444}
.scores img{max-height:140px;max-width:45%;border-radius:4px}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(330px,1fr));gap:22px;padding-bottom:32px}
.panel{background:#fff;border-radius:6px;overflow:hidden;box-shadow:0 1px 3px rgba(0,0,0,.12);display:flex;flex-direction:column}
.frame{position:relative;margin:0;background:#222}
.frame button{display:block;width:100%;padding:0;border:0;background:none;cursor:zoom-in}
.frame img{display:block;width:100%;height:auto}
.placeholder{display:flex;align-items:center;justify-content:center;color:#888;font-size:14px;background:repeating-linear-gradient(45deg,#ecebe7 0 12px,#e3e1dc 12px 24px)}
.badge{position:absolute;top:8px;right:8px;padding:2px 9px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;font-variant-numeric:tabular-nums}
.ok{--c:#2e8b57}.low{--c:#e07b00}.none{--c:#8a8a8a}
.badge{background:var(--c)}
.dot{display:inline-block;width:9px;height:9px;border-radius:50%;background:var(--c);margin-right:5px}
.small,.scores .note{color:#888;font-size:12px}
.body{padding:12px 16px 14px;display:flex;flex-direction:column;gap:8px;flex:1}
.head{display:flex;justify-content:space-between;align-items:baseline;gap:10px}
.num{font-weight:700;font-size:16px}
.shot{color:#555;font-size:13px}
.dur{color:#777;font-size:13px;font-variant-numeric:tabular-nums;white-space:nowrap}
.caption{margin:0}
.dialogue{margin:0;padding-left:10px;border-left:3px solid #c0392b;font-style:italic;color:#333}
.notes{margin:0;padding:6px 10px;background:#f6f2e2;border-left:3px dashed #b8a55a;border-radius:0 4px 4px 0}
.notes{color:#4a4636;font-size:13.5px;white-space:pre-line}
.notes b{display:block;font-size:11px;font-weight:600;letter-spacing:.05em;text-transform:uppercase;color:#8a7d45}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 12px;margin:auto 0 0;padding-top:8px;border-top:1px solid #eee;font-size:12.5px}
dt{color:#888}dd{margin:0}
footer{color:#999;font-size:12px;padding-bottom:24px}
dialog{padding:0;border:0;background:transparent;max-width:96vw;max-height:96vh}
dialog::backdrop{background:rgba(0,0,0,.9)}
dialog:focus{outline:none}
dialog img{display:block;max-width:96vw;max-height:88vh;cursor:zoom-out}
dialog p{margin:10px 0 0;color:#eee;font-size:16px;text-align:center}
@media print{
@page{size:A4 landscape;margin:10mm}
body{background:#fff;font-size:9pt;line-height:1.35}
header,main,footer{max-width:none;padding:0}
header{padding:0 0 3mm}
h1{font-size:17pt;margin-bottom:2mm}.logline{font-size:10.5pt;margin-bottom:1mm}.facts{margin-bottom:3mm}
.scores{border:0.3mm solid #ccc;padding:2mm 3mm;margin:0;font-size:8pt}.scores img{max-height:28mm}
main{grid-template-columns:repeat(3,1fr);gap:4mm 5mm}
.panel{box-shadow:none;border-radius:0;break-inside:avoid}
.frame{background:none;border:0.3mm solid #ccc}
.body{padding:1.5mm 0 0;gap:1mm}
.num{font-size:10pt}.shot,.dur{font-size:8.5pt}
dl{display:block;border:0;padding:0;font-size:7.5pt;color:#777}
dt{display:none}dd{display:inline}dd~dt+dd::before{content:" · "}
.notes{padding:1mm 2mm;font-size:8pt}.notes b{font-size:6.5pt}
.badge,.dot,.dialogue,.notes,.placeholder{-webkit-print-color-adjust:exact;print-color-adjust:exact}
dialog,footer{display:none}
}
"""

JS = """
const zoom=document.getElementById('zoom'),big=zoom.querySelector('img'),cap=zoom.querySelector('p');
const shots=[...document.querySelectorAll('.frame button')];let at=0;
function show(k){at=(k+shots.length)%shots.length;const b=shots[at],i=b.querySelector('img'),p=b.closest('.panel');
big.src=i.src;big.alt=i.alt;cap.textContent=p.querySelector('.num').textContent+' — '+p.querySelector('.caption').textContent;
if(!zoom.open)zoom.showModal()}
shots.forEach((b,k)=>b.onclick=()=>show(k));zoom.onclick=()=>zoom.close();
document.onkeydown=e=>{if(zoom.open&&(e.key=='ArrowRight'||e.key=='ArrowLeft'))show(at+(e.key=='ArrowRight'?1:-1))};
"""


def write_html(board: Board, story: Story, settings: ExportSettings | None = None) -> Path:
    frames = {i: p.read_bytes() for i, p in frame_files(board, story).items()}
    heatmap = board.heatmap_path
    html = board_html(story, frames, load_scores(board), heatmap.read_bytes() if heatmap.is_file() else None)
    return write_text(board.html_path, html)


def board_html(story: Story, frames: dict[int, bytes], scores: dict | None = None,
               heatmap: bytes | None = None) -> str:
    """The viewer page. `frames` maps scene index → PNG bytes (missing scenes get a placeholder)."""
    labels = Labels(story.language)
    sizes = {i: _png_size(data, f"frames/{frame_key(i)}.png") for i, data in frames.items()}
    aspect = next(iter(sizes.values()), (16, 9))
    facts = labels.facts(len(story.scenes), sum(s.duration for s in story.scenes))
    panels = "\n".join(
        _panel(story, scene, labels, frames.get(scene.index), sizes.get(scene.index), aspect,
               _frame_score(scores, scene.index))
        for scene in story.scenes
    )
    return f"""<!DOCTYPE html>
<html lang="{escape(labels.code)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="AutoKöse {escape(__version__)}">
<title>{escape(story.title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{escape(story.title)}</h1>
<p class="logline">{escape(story.logline)}</p>
<p class="facts">{escape(facts)}</p>
{_scores_section(scores, heatmap, story, labels)}
</header>
<main>
{panels}
</main>
<footer>AutoKöse {escape(__version__)}</footer>
<dialog id="zoom"><img alt=""><p></p></dialog>
<script>{JS}</script>
</body>
</html>
"""


def _panel(story: Story, scene: Scene, labels: Labels, png: bytes | None, size: tuple[int, int] | None,
           aspect: tuple[int, int], score: dict | None) -> str:
    name = labels.scene(scene.index)
    if png is not None:
        w, h = size
        picture = (f'<button type="button"><img src="{frame_uri(png)}" width="{w}" height="{h}" '
                   f'alt="{escape(name)}"></button>')
    else:
        picture = (f'<div class="placeholder" style="aspect-ratio:{aspect[0]}/{aspect[1]}">'
                   f'{escape(labels["missing"])}</div>')
    badge = _badge(score, labels) if score is not None else ""
    cast = ", ".join(story.character(cid).display_name(story.language) for cid in scene.characters)
    rows = [
        (labels["characters"], cast or "—"),
        (labels["setting"], labels.setting(scene.setting)),
        (labels["time"], labels.term(scene.time)),
        (labels["angle"], labels.term(scene.angle)),
    ]
    meta = "".join(f"<dt>{escape(k)}</dt><dd>{escape(v)}</dd>" for k, v in rows)
    dialogue = (f'\n<p class="dialogue" title="{escape(labels["dialogue"])}">{escape(scene.dialogue)}</p>'
                if scene.dialogue and scene.dialogue.strip() else "")
    notes = (f'\n<p class="notes"><b>{escape(labels["notes"])}</b>{escape(scene.notes.strip())}</p>'
             if scene.notes.strip() else "")
    return f"""<article class="panel" id="scene-{frame_key(scene.index)}">
<figure class="frame">{picture}{badge}</figure>
<div class="body">
<div class="head"><span><span class="num">{escape(name)}</span> <span class="shot">{escape(labels.term(scene.shot))}</span></span><span class="dur">{escape(labels.seconds(scene.duration))}</span></div>
<p class="caption">{escape(scene.caption)}</p>{dialogue}{notes}
<dl>{meta}</dl>
</div>
</article>"""


def _frame_score(scores: dict | None, index: int) -> dict | None:
    if scores is None:
        return None
    frames = scores.get("frames") or {}
    entry = frames.get(frame_key(index), frames.get(str(index)))
    return entry if isinstance(entry, dict) else None


def _badge(score: dict, labels: Labels) -> str:
    identity = score.get("identity")
    status = score.get("status") if score.get("status") in STATUSES else "none"
    value = f"{identity:.2f}" if isinstance(identity, (int, float)) and status != "none" else "—"
    details = [f"{k} {_fmt(v)}" for k, v in score.items() if _is_scalar(v) and v is not None]
    per_character = score.get("characters")
    if isinstance(per_character, dict):  # which character pulled the frame's identity down
        details += [f"{cid} {_fmt(c.get('identity'))}" for cid, c in per_character.items() if isinstance(c, dict)]
    details = " · ".join(details)
    return (f'<span class="badge {status}" title="{escape(details)}">'
            f'{escape(labels["identity"])} {escape(value)}</span>')


def _scores_section(scores: dict | None, heatmap: bytes | None, story: Story, labels: Labels) -> str:
    """The scoring stage's summary in words, and its frame × frame heatmap."""
    if scores is None and heatmap is None:
        return ""
    summary = (scores or {}).get("summary")
    summary = summary if isinstance(summary, dict) else {}
    lines = [_counts_line(summary, labels), _identity_line(summary, story, labels), _models_line(summary, labels)]
    text = "".join(f"<p>{line}</p>" for line in lines if line)
    if isinstance(summary.get("note"), str) and summary["note"]:
        text += f'<p class="note">{escape(summary["note"])}</p>'
    image = f'<img src="{data_uri(heatmap)}" alt="{escape(labels["identity_title"])}">' if heatmap else ""
    return (f'<section class="scores"><div><h2>{escape(labels["identity_title"])}</h2>{text}</div>'
            f"{image}</section>")


def _counts_line(summary: dict, labels: Labels) -> str:
    parts = [f'<span class="dot {status}"></span>{escape(labels["score.frames_" + status])} {summary[key]}'
             for status in STATUSES if isinstance(summary.get(key := f"frames_{status}"), int)]
    return " · ".join(parts)


def _identity_line(summary: dict, story: Story, labels: Labels) -> str:
    parts = []
    if _is_number(summary.get("mean_identity")):
        parts.append(f"{labels['score.mean_identity']} {summary['mean_identity']:.2f}")
    if _is_number(summary.get("min_identity")):
        worst = summary.get("worst_frame")
        where = f" ({labels.scene(int(worst))})" if str(worst).isdigit() else ""
        parts.append(f"{labels['score.min_identity']} {summary['min_identity']:.2f}{where}")
    hero = summary.get("protagonist")
    if _is_number(summary.get("protagonist_consistency")) and hero in {c.id for c in story.characters}:
        name = story.character(hero).display_name(story.language)
        parts.append(f"{labels['score.protagonist_consistency']} {name} {summary['protagonist_consistency']:.2f}")
    if _is_number(summary.get("clip_t_mean")):
        parts.append(f"CLIP-T {summary['clip_t_mean']:.2f}")
    swaps, faces = summary.get("id_swaps"), summary.get("id_swap_faces")
    if isinstance(swaps, int) and isinstance(faces, int) and faces > 0:  # faces of one character worn by another
        parts.append(f"{labels['score.id_swaps']} {swaps}/{faces}")
    return escape(" · ".join(parts))


def _models_line(summary: dict, labels: Labels) -> str:
    models = []
    if summary.get("face_model"):
        threshold = summary.get("face_threshold")
        limit = f" ({labels['score.threshold']} {_fmt(threshold)})" if _is_number(threshold) else ""
        models.append(f"{summary['face_model']}{limit}")
    if summary.get("clip_model"):
        models.append(f"CLIP {summary['clip_model']}")
    other = [f"{k} {_fmt(v)}" for k, v in summary.items() if k not in SUMMARY_KEYS and _is_scalar(v)]
    line = (f"{labels['score.models']}: {', '.join(models)}" if models else "")
    return f'<span class="small">{escape(" · ".join(filter(None, [line, *other])))}</span>' if line or other else ""


def frame_uri(png: bytes) -> str:
    """A frame as a data URI: small PNGs (previz line art) byte-exact, large photo-like ones as JPEG.

    24 diffusion frames as PNG make a 25–40 MB page that no mail server takes; as JPEG q90 at
    full resolution it is a few MB.
    """
    if len(png) > EMBED_PNG_LIMIT:
        with Image.open(io.BytesIO(png)) as im:
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="JPEG", quality=JPEG_QUALITY)
        if buf.tell() < len(png) // 2:
            return data_uri(buf.getvalue(), "image/jpeg")
    return data_uri(png)


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def _png_size(data: bytes, name: str) -> tuple[int, int]:
    try:
        return image_size(io.BytesIO(data))
    except Unreadable as e:
        raise InputError(f"{name}: {e}") from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return "—" if value is None else str(value)
