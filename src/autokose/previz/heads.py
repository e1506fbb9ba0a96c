"""Puppet heads: hat, face and beard, drawn once in a canonical space.

Canonical space: the skull is a circle of radius 1 centred on the origin, the face looks to
the right (three-quarter view) and y points down. A head is placed into a frame with one
transform, so the same character with the same expression is the same SVG markup in every
frame. Strokes inherit their width from the placing group.
"""

from __future__ import annotations

from autokose.previz.designs import PuppetDesign
from autokose.previz.svg import INK, circle, darker, ellipse, lighter, mix, path, polygon, polyline

EXPRESSIONS = ("neutral", "sly", "happy", "laugh", "surprise", "fear", "angry", "sad", "stern", "grin", "greedy")
EMOTION_WORDS = {
    "calm": "neutral", "thoughtful": "neutral", "serious": "neutral",
    "cunning": "sly", "smug": "sly", "mischievous": "sly", "playful": "sly", "confident": "sly",
    "joy": "happy", "glad": "happy", "pleased": "happy", "smile": "happy", "smiling": "happy", "cheerful": "happy",
    "proud": "happy", "delighted": "happy", "triumphant": "happy",
    "laughing": "laugh", "amused": "laugh",
    "surprised": "surprise", "shock": "surprise", "shocked": "surprise", "amazed": "surprise",
    "astonished": "surprise", "curious": "surprise",
    "afraid": "fear", "scared": "fear", "frightened": "fear", "terrified": "fear",
    "anger": "angry", "furious": "angry", "rage": "angry", "annoyed": "angry", "outraged": "angry",
    "upset": "sad", "worried": "sad", "disappointed": "sad", "ashamed": "sad", "tired": "sad",
    "greed": "greedy", "eager": "greedy", "excited": "greedy", "hopeful": "happy",
    "suspicious": "stern", "wary": "stern", "distrustful": "stern", "skeptical": "stern", "sceptical": "stern",
    "determined": "stern", "stubborn": "stern", "disgusted": "angry", "indignant": "angry",
    "nervous": "fear", "anxious": "fear", "shy": "sad", "embarrassed": "sad", "bored": "neutral",
    "радость": "happy", "гнев": "angry", "злость": "angry", "удивление": "surprise", "смех": "laugh",
    "страх": "fear", "хитрость": "sly", "грусть": "sad", "жадность": "greedy",
}  # fmt: skip

SKIN_SHADE = 0.18
BLUSH = "#e8826e"
MOUTH = "#7a2a2a"
WHITE = "#fbf8f0"


def expression(emotion: str, pose: str, design: PuppetDesign) -> str:
    """The face to draw: the scene's emotion, else the character's resting face."""
    word = (emotion or "neutral").strip().lower()
    face = word if word in EXPRESSIONS else EMOTION_WORDS.get(word, "neutral")
    if face == "neutral":
        return "laugh" if pose == "laugh" else design.face
    return face


def head(design: PuppetDesign, face: str, view: str = "front") -> str:
    """Canonical head markup (see the module docstring)."""
    skin = design.c("skin")
    parts = [_behind(design)]
    rx = 1.02 if design.belly > 0.4 else (0.9 if design.female else 0.95)
    if view == "back":
        parts.append(_back_of_head(design, rx))
        parts.append(_hat(design, back=True))
        return "".join(parts)
    parts.append(ellipse(0, 0, rx, 1.0, skin, INK))
    parts.append(_ear(design))
    parts.append(_hair_front(design))
    parts.append(_eyes(face, design))
    parts.append(_nose(design))
    if design.hat != "horns":
        cheek = mix(skin, BLUSH, 0.55)
        parts.append(ellipse(0.0, 0.3, 0.17, 0.1, cheek))
    parts.append(_beard(design))
    parts.append(_mouth(face, design))
    parts.append(_moustache(design))
    parts.append(_hat(design))
    return "".join(parts)


# -- face --------------------------------------------------------------------------------------
def _eyes(face: str, design: PuppetDesign) -> str:
    out = []
    for x, s in ((0.02, 1.0), (0.52, 0.8)):  # near eye, far eye (smaller: turned away)
        if face in ("surprise", "fear", "greedy"):
            out.append(ellipse(x, -0.04, 0.2 * s, 0.23, WHITE, INK))
            out.append(circle(x + 0.05 * s, -0.02, 0.09, design.eyes if design.eyes != INK else INK))
        elif face in ("laugh", "happy"):
            out.append(polyline([(x - 0.15 * s, 0.0), (x, -0.14), (x + 0.15 * s, 0.0)], INK, 0.07))
        elif face == "sly":
            out.append(path(f"M{x - 0.15 * s:.2f} -0.06 Q{x:.2f} 0.1 {x + 0.15 * s:.2f} -0.06Z", INK))
            out.append(polyline([(x - 0.18 * s, -0.07), (x + 0.17 * s, -0.09)], INK, 0.06))
        else:
            if design.eyes != INK:
                out.append(ellipse(x, -0.03, 0.14 * s, 0.13, design.eyes, INK))
                out.append(ellipse(x + 0.03, -0.03, 0.035, 0.11, INK))
            else:
                out.append(ellipse(x + 0.02, -0.03, 0.085 * s, 0.12, INK))
                out.append(circle(x + 0.045, -0.07, 0.03, WHITE))
        if design.female and face not in ("laugh", "happy"):
            out.append(polyline([(x + 0.1 * s, -0.12), (x + 0.2 * s, -0.2)], INK, 0.04))
    out.append(_brows(face, design))
    return "".join(out)


BROWS = {  # (near inner y, near outer y, far inner y, far outer y); inner ends face the nose
    "neutral": (-0.3, -0.3, -0.3, -0.29),
    "sly": (-0.26, -0.28, -0.37, -0.33),
    "happy": (-0.34, -0.32, -0.34, -0.31),
    "laugh": (-0.36, -0.33, -0.36, -0.32),
    "surprise": (-0.46, -0.42, -0.46, -0.41),
    "fear": (-0.44, -0.34, -0.44, -0.33),
    "angry": (-0.19, -0.36, -0.19, -0.34),
    "stern": (-0.22, -0.32, -0.22, -0.31),
    "grin": (-0.17, -0.38, -0.17, -0.37),
    "sad": (-0.42, -0.28, -0.42, -0.27),
    "greedy": (-0.4, -0.36, -0.4, -0.35),
}


def _brows(face: str, design: PuppetDesign) -> str:
    ni, no, fi, fo = BROWS.get(face, BROWS["neutral"])
    colour = design.c("beard") if design.beard != "none" else design.c("hair")
    thick = 0.1 if design.beard == "long" else 0.075
    return polyline([(-0.16, no), (0.17, ni)], colour, thick) + polyline([(0.4, fi), (0.64, fo)], colour, thick * 0.9)


def _nose(design: PuppetDesign) -> str:
    tip = 0.86 if design.belly > 0.4 else 0.8
    return path(f"M0.66 0.02Q{tip} 0.16 0.64 0.25", None, darker(design.c("skin"), 0.32), 0.065,
                stroke_linecap="round")


def _mouth(face: str, design: PuppetDesign) -> str:
    lip = "#b03040" if design.female else ("#c87060" if design.beard in ("long", "short") else INK)
    if face == "laugh":
        return path("M0.06 0.36Q0.34 0.86 0.66 0.34Z", MOUTH, INK) + ellipse(0.34, 0.58, 0.12, 0.06, "#e07a7a")
    if face in ("surprise", "fear"):
        return ellipse(0.34, 0.5, 0.1, 0.15 if face == "surprise" else 0.1, MOUTH, INK)
    if face in ("happy", "greedy"):
        return path("M0.1 0.38Q0.34 0.64 0.6 0.36", None, lip, 0.07, stroke_linecap="round")
    if face == "sly":
        return (path("M0.12 0.46Q0.36 0.54 0.6 0.31", None, lip, 0.07, stroke_linecap="round")
                + polyline([(0.56, 0.26), (0.64, 0.36)], lip, 0.045))
    if face == "grin":
        return path("M0.02 0.34Q0.34 0.74 0.7 0.3Q0.36 0.46 0.02 0.34Z", WHITE, INK)
    if face in ("angry", "sad"):
        return path("M0.14 0.54Q0.34 0.38 0.56 0.52", None, lip, 0.07, stroke_linecap="round")
    if face == "stern":
        return polyline([(0.16, 0.47), (0.52, 0.45)], lip, 0.07)
    return path("M0.18 0.45Q0.34 0.52 0.52 0.43", None, lip, 0.065, stroke_linecap="round")


def _ear(design: PuppetDesign) -> str:
    skin = design.c("skin")
    if design.hat == "tymak":
        return ""  # under the ear flap
    if design.ears == "pointed":
        return polygon([(-0.58, -0.05), (-1.3, -0.5), (-0.62, 0.32)], skin, INK, stroke_linejoin="round")
    return ellipse(-0.64, 0.06, 0.17, 0.25, skin, INK) + path("M-0.6 -0.06Q-0.72 0.06 -0.62 0.18", None, INK)


# -- hair, beards ------------------------------------------------------------------------------
def _behind(design: PuppetDesign) -> str:
    """What shows behind the skull: braids, a veil, the far ear flap."""
    if design.hat == "tymak":
        return path("M0.66 -0.55L1.02 -0.45Q1.06 0.2 0.9 0.42L0.66 0.3Z", darker(design.c("hat_fur"), 0.15), INK)
    if design.hat == "saukele":
        veil = path("M-0.55 -0.9Q-1.5 0.2 -1.45 1.9L-0.35 1.6Q-0.7 0.5 -0.2 -0.6Z", lighter(design.c("hat"), 0.3), INK,
                    fill_opacity="0.92")
        hair = design.c("hair")
        braids = polyline([(-0.55, 0.2), (-0.72, 0.9), (-0.66, 1.7)], INK, 0.34) + polyline(
            [(-0.55, 0.2), (-0.72, 0.9), (-0.66, 1.7)], hair, 0.24)
        return veil + braids
    return ""


def _hair_front(design: PuppetDesign) -> str:
    hair = design.c("hair")
    if design.hat == "hair":
        return path("M-0.96 0.05C-1.05 -1.15 0.85 -1.3 0.96 -0.3C0.6 -0.62 0.05 -0.56 -0.45 -0.38L-0.62 0.08Z", hair, INK)
    if design.hat in ("skullcap", "round_cap", "turban"):
        return path("M-0.92 -0.4Q-0.98 0.0 -0.8 0.22L-0.7 -0.32Z", hair, INK)  # sideburn
    if design.hat == "none":
        return path("M-0.55 -0.72Q-0.1 -0.98 0.35 -0.86", None, lighter(design.c("skin"), 0.35), 0.09,
                    stroke_linecap="round")
    return ""


def _back_of_head(design: PuppetDesign, rx: float) -> str:
    """The back of the skull as an over-the-shoulder shot shows it: a narrow nape of neck below,
    an ear either side, and hair over the whole skull down to the nape, combed in strands from
    the crown. A skin band across the bottom (the old design) read as a chin under a black mask,
    a faceless figure facing the camera; hair to the bottom edge and strands read as a head seen
    from behind. A shaved head shows its scalp with a nape crease instead.
    """
    skin, hair = design.c("skin"), design.c("hair")
    nape = path("M-0.4 0.5L-0.44 1.25L0.44 1.25L0.4 0.5Z", darker(skin, SKIN_SHADE), INK, class_="nape")
    ears = ellipse(-rx + 0.02, 0.12, 0.16, 0.25, skin, INK) + ellipse(rx - 0.02, 0.12, 0.16, 0.25, skin, INK)
    if design.hat in ("none", "horns"):
        skull = ellipse(0, 0, rx, 1.0, skin, INK, class_="skull")
        crease = path("M-0.32 0.78Q0.0 0.88 0.32 0.78", None, darker(skin, 0.3), 0.06, stroke_linecap="round")
        shine = ellipse(-0.28, -0.45, 0.22, 0.14, lighter(skin, 0.3))
        return nape + ears + skull + shine + crease
    skull = ellipse(0, 0, rx, 1.0, hair, INK, class_="skull")
    strand = lighter(hair, 0.3)
    strands = "".join(
        path(f"M0.05 -0.78Q{n * 0.55:.2f} -0.2 {n * rx * 0.72:.2f} 0.78", None, strand, 0.05, stroke_linecap="round")
        for n in (-1.0, -0.45, 0.1, 0.62)
    )
    whorl = path("M0.05 -0.62Q0.22 -0.6 0.2 -0.46Q0.12 -0.36 0.0 -0.46", None, strand, 0.05, stroke_linecap="round")
    return nape + ears + skull + f'<g class="back-hair">{strands}{whorl}</g>'


def _beard(design: PuppetDesign) -> str:
    colour = design.c("beard")
    if design.beard == "long":
        return path("M-0.62 0.12C-0.75 0.95 -0.2 1.75 0.32 1.95C0.62 1.5 0.98 0.9 0.86 0.2C0.6 0.62 0.05 0.66 -0.62 0.12Z",
                    colour, INK)
    if design.beard == "short":
        return path("M-0.5 0.3C-0.5 0.9 0.0 1.3 0.36 1.32C0.66 1.0 0.85 0.65 0.8 0.3C0.55 0.62 0.0 0.68 -0.5 0.3Z",
                    colour, INK)
    return ""


def _moustache(design: PuppetDesign) -> str:
    if design.beard == "none":
        return ""
    colour = design.c("beard")
    droop = 0.58 if design.beard == "moustache" else 0.48
    return path(f"M0.02 {droop:.2f}Q0.1 0.3 0.36 0.32Q0.62 0.28 0.7 {droop - 0.04:.2f}Q0.52 0.42 0.36 0.43Q0.18 0.42 0.02 {droop:.2f}Z",
                colour, INK)


# -- hats --------------------------------------------------------------------------------------
def _hat(design: PuppetDesign, back: bool = False) -> str:
    hat, fur = design.c("hat"), design.c("hat_fur")
    kind = design.hat
    if kind == "tymak":
        crown = path("M-0.86 -0.8C-0.96 -1.55 -0.5 -2.3 0.08 -2.42C0.62 -2.25 0.98 -1.55 0.9 -0.8Z", hat, INK)
        seams = path("M0.08 -2.38Q-0.3 -1.6 -0.32 -0.92M0.08 -2.38Q0.46 -1.6 0.5 -0.92", None, darker(hat, 0.3))
        knob = circle(0.08, -2.46, 0.11, darker(hat, 0.25), INK)
        brim = path("M-1.14 -0.98" + _scallop((-1.14, -0.98), (1.1, -0.96), 6, 0.09) + "L1.08 -0.42"
                    + _scallop((1.08, -0.42), (-1.12, -0.4), 6, 0.07) + "Z", fur, INK)
        flap = path("M-1.08 -0.56" + _scallop((-1.08, -0.56), (-1.16, 0.62), 4, -0.07)
                    + "Q-0.95 0.9 -0.56 0.64L-0.5 -0.45Z", fur, INK)
        if back:
            return flap + _mirror(flap) + crown + seams + knob + brim
        return crown + seams + knob + brim + flap
    if kind == "round_cap":
        crown = path("M-0.92 -0.66C-1.0 -1.55 -0.42 -1.82 0.04 -1.82C0.5 -1.82 1.0 -1.55 0.92 -0.66Z", hat, INK)
        band = path("M-0.86 -1.05Q0.04 -1.2 0.9 -1.05", None, design.c("trim"), 0.1)
        brim = path("M-1.08 -0.92Q0.0 -1.06 1.04 -0.9L1.02 -0.44Q0.0 -0.56 -1.06 -0.42Z", fur, INK)
        return crown + band + brim
    if kind == "saukele":
        cone = path("M-0.8 -0.62L-0.26 -2.95Q-0.06 -3.15 0.1 -2.95L0.74 -0.62Z", hat, INK)
        bands = "".join(_cone_band(y, fur, design.c("trim")) for y in (-1.2, -1.85, -2.45))
        top = circle(-0.08, -3.12, 0.14, design.c("trim"), INK) + path(
            "M-0.08 -3.2Q0.3 -3.7 0.1 -4.0Q-0.1 -3.6 -0.08 -3.2Z", lighter(hat, 0.2), INK)
        headband = path("M-0.98 -0.9Q0.0 -1.02 0.94 -0.88L0.92 -0.5Q0.0 -0.6 -0.96 -0.48Z", fur, INK)
        beads = "".join(circle(x, -0.69, 0.06, design.c("trim")) for x in (-0.6, -0.2, 0.2, 0.6))
        pendant = polyline([(-0.9, -0.5), (-0.95, 0.45)], design.c("trim"), 0.07) + circle(-0.95, 0.5, 0.09, design.c("trim"), INK)
        return cone + bands + top + headband + beads + ("" if back else pendant)
    if kind == "turban":
        wrap = darker(hat, 0.12)
        body = ellipse(0.0, -0.98, 1.16, 0.72, hat, INK)
        lines = path("M-1.02 -0.88Q0.0 -0.5 1.06 -1.05M-1.0 -1.22Q0.05 -0.86 1.0 -1.42M-0.7 -1.52Q0.1 -1.22 0.72 -1.64",
                     None, wrap, 0.06)
        knot = ellipse(0.05, -1.72, 0.3, 0.18, hat, INK)
        return body + lines + knot
    if kind == "pointed":
        cone = path("M-0.84 -0.72Q-0.4 -1.7 0.3 -2.7Q0.48 -2.76 0.46 -2.5Q0.5 -1.6 0.86 -0.72Z", hat, INK)
        tassel = circle(0.34, -2.74, 0.13, design.c("sash") if design.c("sash") != hat else "#d4af37", INK)
        brim = path("M-1.08 -0.92Q0.0 -1.08 1.04 -0.9L1.02 -0.44Q0.0 -0.56 -1.06 -0.42Z", lighter(fur, 0.25), INK)
        return cone + tassel + brim
    if kind == "skullcap":
        cap = path("M-0.9 -0.46C-0.9 -1.2 0.9 -1.2 0.9 -0.46Q0.0 -0.62 -0.9 -0.46Z", hat, INK)
        zig = polyline([(-0.7, -0.62), (-0.45, -0.76), (-0.2, -0.64), (0.05, -0.78), (0.3, -0.64), (0.55, -0.76),
                        (0.75, -0.62)], lighter(hat, 0.45), 0.07)
        return cap + zig
    if kind == "horns":
        horn = darker(hat, 0.0)
        near = path("M-0.5 -0.72Q-0.9 -1.3 -0.72 -1.85Q-0.42 -1.35 -0.16 -0.9Z", horn, INK)
        far = path("M0.28 -0.88Q0.3 -1.5 0.62 -1.9Q0.72 -1.35 0.62 -0.8Z", horn, INK)
        return far + near
    return ""


def _scallop(a: tuple[float, float], b: tuple[float, float], bumps: int, amp: float) -> str:
    """Path segments from a to b as a row of fur bumps bulging `amp` to the left of a→b."""
    dx, dy = (b[0] - a[0]) / bumps, (b[1] - a[1]) / bumps
    length = (dx * dx + dy * dy) ** 0.5 or 1.0
    nx, ny = dy / length * amp, -dx / length * amp
    out = []
    for i in range(bumps):
        mx, my = a[0] + dx * (i + 0.5), a[1] + dy * (i + 0.5)
        out.append(f"Q{mx + nx * 2:.3f} {my + ny * 2:.3f} {a[0] + dx * (i + 1):.3f} {a[1] + dy * (i + 1):.3f}")
    return "".join(out)


def _mirror(markup: str) -> str:
    return f'<g transform="scale(-1 1)">{markup}</g>'


def _cone_band(y: float, fill: str, beads: str) -> str:
    """A crimson band across the saukele cone at height y, with a row of beads."""
    def half(yy: float) -> tuple[float, float]:  # cone edges at height yy
        t = (yy + 0.62) / (-2.95 + 0.62)
        return -0.8 + (0.54) * t, 0.74 - (0.64) * t

    (l0, r0), (l1, r1) = half(y + 0.12), half(y - 0.12)
    band = polygon([(l0, y + 0.12), (r0, y + 0.12), (r1, y - 0.12), (l1, y - 0.12)], fill, INK)
    dots = "".join(circle(l0 + (r0 - l0) * t, y, 0.045, beads) for t in (0.25, 0.5, 0.75))
    return band + dots
