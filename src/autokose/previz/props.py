"""Key props of the tales, drawn in a canonical unit box and placed with one transform; each has its
own drawing (the patched chapan is never the fur coat: the swap the tale turns on must read).

Canonical space: the prop is 1 unit tall (its PropPlacement.size of the frame height), centred
on the origin, y down. Held long props (staff, whip) hang from the grip at the origin instead.
"""

from __future__ import annotations

import math

from autokose.previz.svg import (
    INK,
    circle,
    darker,
    ellipse,
    group,
    lighter,
    n,
    path,
    place,
    polygon,
    polyline,
    rect,
    tube,
)
from autokose.staging import PropPlacement

GOLD, GOLD_DARK, GLOW = "#f4c430", "#c8961e", "#ffe680"
WOOD, LEATHER = "#8a5a2e", "#7a4a26"
CARPET_RED, CARPET_BLUE, CARPET_GOLD = "#a8323a", "#2f4f8f", "#e0b040"


def _egg() -> str:
    rays = []
    for i in range(12):
        a = math.radians(i * 30 + 15)
        r0, r1 = 0.4, (0.74 if i % 2 else 0.6)
        w = math.radians(5)
        pts = [(math.cos(a - w) * r0, math.sin(a - w) * r0), (math.cos(a) * r1, math.sin(a) * r1),
               (math.cos(a + w) * r0, math.sin(a + w) * r0)]
        rays.append("M" + " L".join(f"{x:.3f} {y:.3f}" for x, y in pts) + "Z")
    return (path("".join(rays), GLOW, fill_opacity="0.85")
            + ellipse(0, 0.02, 0.29, 0.38, GOLD, INK)
            + path("M0.12 -0.3Q0.36 0.0 0.2 0.3Q0.05 0.42 -0.12 0.38Q0.2 0.2 0.12 -0.3Z", GOLD_DARK)
            + ellipse(-0.1, -0.14, 0.06, 0.11, "#fffbe6", fill_opacity="0.9")
            + _sparkle(0.36, -0.34, 0.08) + _sparkle(-0.4, 0.22, 0.06))


def _sparkle(x: float, y: float, r: float) -> str:
    return path(f"M{x:.2f} {y - r:.2f}Q{x:.2f} {y:.2f} {x + r:.2f} {y:.2f}Q{x:.2f} {y:.2f} {x:.2f} {y + r:.2f}"
                f"Q{x:.2f} {y:.2f} {x - r:.2f} {y:.2f}Q{x:.2f} {y:.2f} {x:.2f} {y - r:.2f}Z", "#fffbe6")


def _cauldron() -> str:
    iron = "#3b3836"
    legs = "".join(tube([(x, 0.3), (x * 1.1, 0.5)], iron, 0.07, 0.03) for x in (-0.3, 0.0, 0.3))
    handles = path("M-0.5 -0.1Q-0.68 -0.05 -0.56 0.1M0.5 -0.1Q0.68 -0.05 0.56 0.1", None, INK, 0.05)
    return (legs + handles
            + path("M-0.52 -0.18Q-0.55 0.42 0.0 0.42Q0.55 0.42 0.52 -0.18Z", iron, INK)
            + path("M-0.34 0.0Q-0.3 0.3 0.0 0.32", None, lighter(iron, 0.2), 0.04)
            + ellipse(0, -0.18, 0.58, 0.1, lighter(iron, 0.15), INK)
            + ellipse(0, -0.18, 0.48, 0.065, "#1a1716"))


def _fur_coat() -> str:
    fur, hide = "#efe2c4", "#8b5a2b"
    body = path("M-0.22 -0.46L0.22 -0.46L0.36 0.42L-0.36 0.42Z", hide, INK, stroke_linejoin="round")
    sleeves = (path("M-0.2 -0.44L-0.44 -0.1L-0.38 0.14L-0.22 -0.12Z", darker(hide, 0.08), INK, stroke_linejoin="round")
               + path("M0.2 -0.44L0.44 -0.1L0.38 0.14L0.22 -0.12Z", darker(hide, 0.08), INK, stroke_linejoin="round"))
    trims = (path("M-0.24 -0.48Q0.0 -0.34 0.24 -0.48L0.18 -0.36Q0.0 -0.24 -0.18 -0.36Z", fur, INK)
             + polyline([(0.0, -0.33), (0.04, 0.42)], fur, 0.07)
             + rect(-0.38, 0.36, 0.76, 0.09, fur, INK, rx="0.04")
             + ellipse(-0.41, 0.13, 0.06, 0.04, fur, INK) + ellipse(0.41, 0.13, 0.06, 0.04, fur, INK))
    return sleeves + body + trims


def _patched_chapan() -> str:
    """Aldar's thin chapan: a long striped robe of one cloth, bright square patches, a torn hem: no fur."""
    cloth, lining = "#8c7a64", "#b8a27e"
    body = path("M-0.2 -0.46L0.2 -0.46L0.32 0.36L0.18 0.44L0.08 0.37L-0.04 0.45L-0.16 0.38L-0.32 0.44Z",
                cloth, INK, stroke_linejoin="round")
    sleeve = darker(cloth, 0.08)
    sleeves = (path("M-0.19 -0.44L-0.42 -0.04L-0.34 0.08L-0.2 -0.14Z", sleeve, INK, stroke_linejoin="round")
               + path("M0.19 -0.44L0.42 -0.04L0.34 0.08L0.2 -0.14Z", sleeve, INK, stroke_linejoin="round"))
    stripes = "".join(polyline([(x, -0.4), (x * 1.45, 0.38)], lighter(cloth, 0.18), 0.02) for x in (-0.12, 0.12))
    patches = (rect(-0.2, -0.12, 0.14, 0.13, "#e0a030", INK, transform="rotate(-8)")
               + rect(0.06, 0.1, 0.15, 0.12, "#c0392b", INK, transform="rotate(6)")
               + rect(-0.24, 0.22, 0.12, 0.1, "#2f6f8f", INK)
               + rect(0.3, -0.08, 0.09, 0.08, "#e0a030", INK)
               + polyline([(-0.17, -0.1), (-0.08, -0.1)], INK, 0.01, stroke_dasharray="0.02 0.015"))
    collar = path("M-0.2 -0.46Q0.0 -0.36 0.2 -0.46L0.0 -0.16Z", lining, INK, stroke_linejoin="round")
    return sleeves + body + stripes + patches + collar


def _saddle() -> str:
    """A Kazakh saddle: a high carved pommel and cantle, a felt pad, a stirrup hanging below."""
    wood, pad = "#8a5a2e", "#a8323a"
    return (path("M-0.5 0.0Q-0.46 0.22 0.0 0.22Q0.46 0.22 0.5 0.0L0.42 -0.04Q0.0 0.1 -0.42 -0.04Z", pad, INK)
            + path("M-0.42 -0.04Q-0.44 -0.36 -0.3 -0.38Q-0.28 -0.16 -0.16 -0.06Q0.0 0.0 0.2 -0.06Q0.3 -0.26 0.4 -0.3"
                   "Q0.46 -0.14 0.42 -0.04Q0.0 0.1 -0.42 -0.04Z", wood, INK, stroke_linejoin="round")
            + path("M-0.3 -0.3Q-0.3 -0.14 -0.2 -0.08M0.34 -0.24Q0.3 -0.12 0.22 -0.08", None, GOLD, 0.03)
            + "".join(circle(x, 0.1, 0.025, GOLD, INK) for x in (-0.3, 0.0, 0.3))
            + polyline([(0.0, 0.18), (0.0, 0.36)], LEATHER, 0.03)
            + path("M-0.07 0.36L0.07 0.36L0.05 0.46L-0.05 0.46Z", None, INK, 0.03, stroke_linejoin="round"))


def _tymak() -> str:
    """A fur tymak off the head (sold, swapped, a "golden bird" under it): Aldar's colours, a pointed
    crown with its seams and knob, a thick scalloped fur brim and two ear flaps hanging down."""
    hat, fur = "#8a5a2b", "#c9a36b"
    flaps = "".join(path(f"M{x0} 0.05Q{x0 - side * 0.06} 0.34 {x0 + side * 0.1} 0.42Q{x0 + side * 0.2} 0.36 "
                         f"{x0 + side * 0.16} 0.05Z", fur, INK) for x0, side in ((-0.36, 1), (0.36, -1)))
    crown = path("M-0.32 0.02C-0.36 -0.26 -0.2 -0.46 0.02 -0.5C0.22 -0.44 0.36 -0.26 0.33 0.02Z", hat, INK)
    seams = path("M0.02 -0.48Q-0.1 -0.22 -0.12 0.0M0.02 -0.48Q0.16 -0.22 0.18 0.0", None, darker(hat, 0.3), 0.025)
    knob = circle(0.02, -0.5, 0.04, darker(hat, 0.25), INK)
    brim = path("M-0.42 -0.02Q-0.3 -0.1 -0.15 -0.05Q0.0 -0.12 0.15 -0.05Q0.3 -0.1 0.42 -0.02L0.4 0.16"
                "Q0.2 0.22 0.0 0.18Q-0.2 0.22 -0.4 0.16Z", fur, INK, stroke_linejoin="round")
    return flaps + crown + seams + knob + brim


def _coins() -> str:
    out = []
    for i, (x, y) in enumerate(((-0.3, 0.3), (0.0, 0.32), (0.3, 0.3), (-0.15, 0.18), (0.15, 0.18), (0.0, 0.06))):
        out.append(ellipse(x, y, 0.2, 0.08, GOLD if i % 2 else lighter(GOLD, 0.15), INK))
    out.append(ellipse(0.0, -0.12, 0.14, 0.2, GOLD, INK) + ellipse(0.0, -0.12, 0.07, 0.11, None, GOLD_DARK, 0.03))
    return "".join(out)


def _purse() -> str:
    return (path("M-0.12 -0.28Q-0.42 -0.05 -0.38 0.22Q-0.3 0.44 0.0 0.44Q0.3 0.44 0.38 0.22Q0.42 -0.05 0.12 -0.28Z",
                 "#6a2c70", INK)
            + path("M-0.16 -0.3Q0.0 -0.22 0.16 -0.3", None, GOLD, 0.06)
            + ellipse(-0.06, -0.38, 0.1, 0.07, GOLD, INK) + ellipse(0.08, -0.36, 0.1, 0.07, lighter(GOLD, 0.2), INK)
            + path("M-0.22 0.1Q0.0 0.2 0.22 0.1", None, lighter("#6a2c70", 0.35), 0.05))


def _tea_bowl() -> str:
    return (path("M-0.5 -0.12Q-0.46 0.4 0.0 0.42Q0.46 0.4 0.5 -0.12Z", "#f6f1e6", INK)
            + path("M-0.46 0.06Q0.0 0.2 0.46 0.06", None, "#2f5fa0", 0.07)
            + "".join(circle(x, 0.26, 0.035, "#2f5fa0") for x in (-0.22, 0.0, 0.22))
            + ellipse(0, -0.12, 0.5, 0.1, "#f6f1e6", INK) + ellipse(0, -0.11, 0.42, 0.065, "#a0622c"))


def _whip() -> str:
    return (path("M0.0 0.3Q0.25 0.55 0.12 0.8Q0.02 0.95 0.2 1.05", None, INK, 0.05, stroke_linecap="round")
            + tube([(0.0, -0.08), (0.0, 0.32)], LEATHER, 0.07, 0.03)
            + polyline([(0.0, 0.0), (0.0, 0.28)], lighter(LEATHER, 0.3), 0.02, stroke_dasharray="0.04 0.04"))


def _staff() -> str:
    return (tube([(0.0, -0.38), (0.02, 0.1), (-0.01, 0.6)], WOOD, 0.035, 0.012)
            + circle(0.0, -0.39, 0.035, darker(WOOD, 0.15), INK))


def _sack() -> str:
    cloth = "#cdb88e"
    return (path("M-0.14 -0.3Q-0.44 -0.1 -0.4 0.2Q-0.36 0.44 0.0 0.44Q0.36 0.44 0.4 0.2Q0.44 -0.1 0.14 -0.3Z",
                 cloth, INK)
            + path("M-0.12 -0.3L-0.2 -0.46L0.0 -0.38L0.2 -0.47L0.12 -0.3Z", cloth, INK, stroke_linejoin="round")
            + polyline([(-0.15, -0.3), (0.15, -0.3)], LEATHER, 0.05)
            + rect(0.05, 0.02, 0.16, 0.14, darker(cloth, 0.15), INK, stroke_dasharray="0.03 0.02"))


def _carpet_rolled() -> str:
    return (rect(-0.5, -0.14, 1.0, 0.28, CARPET_RED, INK, rx="0.1")
            + "".join(polyline([(x, -0.13), (x, 0.13)], CARPET_GOLD, 0.04) for x in (-0.3, 0.0, 0.3))
            + ellipse(0.5, 0.0, 0.07, 0.14, CARPET_BLUE, INK) + ellipse(0.5, 0.0, 0.03, 0.06, CARPET_GOLD))


def carpet_flat() -> str:
    """A carpet lying on the ground, seen at a low angle: 1 unit wide."""
    outer = [(-0.46, -0.07), (0.46, -0.07), (0.52, 0.08), (-0.52, 0.08)]
    inner = [(-0.41, -0.05), (0.41, -0.05), (0.45, 0.06), (-0.45, 0.06)]
    medallion = [(0.0, -0.04), (0.12, 0.0), (0.0, 0.05), (-0.12, 0.0)]
    side = [(-0.3, -0.03), (-0.24, 0.0), (-0.3, 0.035), (-0.36, 0.0)]
    other = [(-x, y) for x, y in side]
    return (polygon(outer, CARPET_RED, INK, stroke_linejoin="round") + polygon(inner, None, CARPET_GOLD, 0.012)
            + polygon(medallion, CARPET_BLUE, CARPET_GOLD, 0.008) + polygon(side, CARPET_GOLD)
            + polygon(other, CARPET_GOLD))


def _bundle() -> str:
    cloth = "#b0703a"
    return (ellipse(0, 0.08, 0.42, 0.34, cloth, INK)
            + path("M-0.12 -0.22L-0.3 -0.44L0.0 -0.3L0.3 -0.44L0.12 -0.22Z", darker(cloth, 0.1), INK, stroke_linejoin="round")
            + path("M-0.3 0.0Q0.0 0.2 0.3 0.0", None, lighter(cloth, 0.3), 0.04))


DRAWINGS = {
    "golden_egg": _egg, "cauldron": _cauldron, "fur_coat": _fur_coat, "coins": _coins, "purse": _purse,
    "tea_bowl": _tea_bowl, "whip": _whip, "staff": _staff, "sack": _sack, "carpet": _carpet_rolled,
    "bundle": _bundle, "patched_coat": _patched_chapan, "saddle": _saddle, "tymak": _tymak,
}  # fmt: skip
HANGING = {"whip", "staff"}  # drawn from the grip, not centred on it
CARRIED = {"fur_coat", "patched_coat", "sack", "purse", "bundle", "carpet", "saddle", "tymak"}  # hang below a single hand


def draw_prop(prop: PropPlacement, width: int, height: int, ink: float) -> str:
    """One prop placed in the frame; a carpet nobody holds lies flat on the ground."""
    scale = prop.size * height
    if scale <= 0:
        return ""
    kind = prop.kind if prop.kind in DRAWINGS else "bundle"
    body = carpet_flat() if kind == "carpet" and prop.holder is None else DRAWINGS[kind]()
    x, y = prop.x * width, prop.y * height
    if kind in CARRIED and prop.grip == "one":
        y += scale * 0.4
    tags = {"class_": "prop", "data_prop": kind, "data_kind": kind, "data_name": _attr(prop.name)}
    if kind in HANGING and prop.holder is None:  # lying on the ground
        return group(body, place(x, y, scale, rotate=-80.0), stroke_width=n(ink / scale), **tags)
    return group(body, place(x, y, scale), stroke_width=n(ink / scale), **tags)


def _attr(text: str) -> str:
    """A story's prop name as an XML attribute value."""
    return text.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
