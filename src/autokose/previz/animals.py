"""Side-view animals (donkey, horse, camel, wolf, dog, sheep, goat, eagle), drawn in a canonical box
and placed with one transform; a kind the kit lacks gets a neutral silhouette (with a warning), never a human.

Canonical space: 1 unit = the animal's height (ear tips to hooves), the hooves stand on
y = 1, the body is centred on x = 0 and the head points right.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

from autokose.previz.designs import PuppetDesign
from autokose.previz.svg import INK, circle, darker, ellipse, group, lighter, mix, n, path, place, polyline
from autokose.staging import Figure


def _leg_lines(xs: tuple[float, ...], top: float, swing: float) -> list[list[tuple[float, float]]]:
    """Polylines for two legs (front, back) down to the hooves; `swing` spreads a walking stride."""
    out = []
    for i, x in enumerate(xs):
        dx = swing * (1 if i % 2 == 0 else -1)
        knee = (x + dx * 0.5 + (0.012 if i % 2 == 0 else -0.018), top + (0.95 - top) * 0.5)
        out.append([(x, top), knee, (x + dx, 0.935)])
    return out


def _hooves(legs: list[list[tuple[float, float]]], width: float, colour: str) -> str:
    return "".join(path(f"M{x - width * 0.6:.3f} 0.925L{x + width * 0.65:.3f} 0.925L{x + width * 0.8:.3f} 0.985"
                        f"L{x - width * 0.7:.3f} 0.985Z", colour, INK, stroke_linejoin="round") for (x, _) in
                   (leg[-1] for leg in legs))


def _silhouette(parts: list[Callable[..., str]], legs: list[list[tuple[float, float]]], leg_width: float,
                colour: str, ink: float) -> str:
    """Body parts merged into one outlined shape: every part inked fat first, then filled on top.

    `parts` draw themselves given a fill and optional stroke arguments.
    """
    outline = [part(INK, INK, 2 * ink) for part in parts] + [polyline(leg, INK, leg_width + 2 * ink) for leg in legs]
    return "".join(outline) + "".join(polyline(leg, colour, leg_width) for leg in legs) + "".join(
        part(colour) for part in parts)


def _donkey(d: PuppetDesign, walking: bool, ink: float) -> str:
    body, muzzle, mane, blanket, hooves = (d.c(k) for k in ("body", "muzzle", "mane", "blanket", "hooves"))
    far = darker(body, 0.2)
    swing = 0.05 if walking else 0.0
    ear = "M0 0Q-0.05 -0.1 -0.01 -0.2Q0.05 -0.1 0.04 0.0Z"
    far_legs, near_legs = _leg_lines((0.14, -0.36), 0.56, -swing), _leg_lines((0.22, -0.27), 0.56, swing)
    parts = [
        partial(ellipse, -0.05, 0.5, 0.38, 0.17),
        partial(path, "M0.08 0.42Q0.2 0.26 0.3 0.17L0.42 0.22Q0.34 0.36 0.3 0.56Z"),
        partial(path, "M0.33 0.16Q0.44 0.1 0.52 0.2L0.61 0.3Q0.65 0.4 0.56 0.43Q0.46 0.43 0.4 0.36Q0.32 0.28 0.33 0.16Z"),
    ]
    return "".join([
        path("M-0.42 0.44Q-0.52 0.56 -0.49 0.74", None, INK, 0.04, stroke_linecap="round"),
        path("M-0.42 0.44Q-0.52 0.56 -0.49 0.74", None, body, 0.018, stroke_linecap="round"),
        path("M-0.49 0.72Q-0.54 0.8 -0.48 0.84Q-0.44 0.78 -0.49 0.72Z", mane, INK),
        "".join(polyline(leg, INK, 0.05 + 2 * ink) + polyline(leg, far, 0.05) for leg in far_legs),
        _hooves(far_legs, 0.05, hooves),
        group(path(ear, far, INK), "translate(0.3 0.17) rotate(-30)"),
        _silhouette(parts, near_legs, 0.056, body, ink),
        _hooves(near_legs, 0.056, hooves),
        ellipse(-0.06, 0.62, 0.22, 0.04, lighter(body, 0.4)),
        group([path(ear, body, INK), path("M0.005 -0.02Q-0.02 -0.1 0.0 -0.16Q0.025 -0.1 0.025 -0.02Z",
                                           lighter(body, 0.45))], "translate(0.35 0.16) rotate(-8)"),
        path("M0.19 0.33Q0.24 0.22 0.31 0.16", None, mane, 0.05, stroke_linecap="round"),
        ellipse(0.565, 0.37, 0.065, 0.055, mix(muzzle, body, 0.25), transform="rotate(40 0.565 0.37)"),
        path("M0.52 0.4Q0.55 0.43 0.6 0.41", None, INK, stroke_linecap="round"),
        circle(0.595, 0.355, 0.01, INK),
        ellipse(0.43, 0.21, 0.022, 0.018, INK),
        path("M-0.27 0.36Q-0.06 0.33 0.13 0.36L0.15 0.55Q-0.06 0.58 -0.28 0.55Z", blanket, INK),
        path("M-0.27 0.53Q-0.06 0.56 0.14 0.53", None, lighter(blanket, 0.5), 0.018, stroke_dasharray="0.02 0.015"),
    ])  # fmt: skip


def _horse(d: PuppetDesign, walking: bool, ink: float) -> str:
    body, muzzle, mane, blanket, hooves = (d.c(k) for k in ("body", "muzzle", "mane", "blanket", "hooves"))
    far = darker(body, 0.22)
    swing = 0.06 if walking else 0.0
    far_legs, near_legs = _leg_lines((0.13, -0.37), 0.5, -swing), _leg_lines((0.22, -0.28), 0.5, swing)
    parts = [
        partial(ellipse, -0.05, 0.44, 0.37, 0.15),
        partial(path, "M0.08 0.36Q0.2 0.18 0.32 0.05L0.44 0.11Q0.36 0.3 0.3 0.52Z"),
        partial(path, "M0.31 0.04Q0.41 -0.03 0.48 0.06L0.61 0.21Q0.64 0.29 0.56 0.31L0.45 0.25Q0.35 0.19 0.31 0.1Z"),
    ]
    return "".join([
        path("M-0.43 0.37Q-0.62 0.5 -0.55 0.82Q-0.5 0.66 -0.4 0.46Z", mane, INK),
        "".join(polyline(leg, INK, 0.045 + 2 * ink) + polyline(leg, far, 0.045) for leg in far_legs),
        _hooves(far_legs, 0.045, hooves),
        _silhouette(parts, near_legs, 0.05, body, ink),
        _hooves(near_legs, 0.05, hooves),
        path("M0.35 0.05L0.35 -0.04L0.41 0.03Z", body, INK, stroke_linejoin="round"),
        path("M0.35 0.03Q0.2 0.1 0.15 0.24Q0.1 0.31 0.09 0.36L0.17 0.33Q0.23 0.2 0.38 0.09Z", mane, INK),
        path("M0.57 0.2Q0.64 0.24 0.62 0.28Q0.6 0.32 0.55 0.31Q0.54 0.25 0.57 0.2Z", muzzle),
        circle(0.595, 0.25, 0.01, INK),
        ellipse(0.43, 0.09, 0.02, 0.017, INK),
        path("M0.43 0.05L0.58 0.22L0.4 0.28", None, darker(blanket, 0.35), 0.012),
        path("M-0.22 0.33Q-0.06 0.31 0.1 0.32L0.12 0.47Q-0.06 0.5 -0.24 0.47Z", blanket, INK),
        path("M-0.17 0.34Q-0.06 0.26 0.03 0.3Q0.07 0.27 0.08 0.33Z", "#5a3418", INK),
        polyline([(-0.05, 0.4), (-0.05, 0.55)], "#5a3418", 0.015),
    ])  # fmt: skip


def _far_legs(legs: list[list[tuple[float, float]]], width: float, colour: str, ink: float) -> str:
    return "".join(polyline(leg, INK, width + 2 * ink) + polyline(leg, darker(colour, 0.22), width) for leg in legs)


def _paws(legs: list[list[tuple[float, float]]], width: float, colour: str) -> str:
    """Soft rounded paws (wolf, dog) instead of hooves."""
    return "".join(ellipse(x + width * 0.35, 0.96, width * 0.85, width * 0.45, colour, INK) for (x, _) in
                   (leg[-1] for leg in legs))


def _camel(d: PuppetDesign, walking: bool, ink: float) -> str:
    """Bactrian camel: two humps, long legs, a long neck curving up to a small head."""
    body, muzzle, mane, blanket, hooves = (d.c(k) for k in ("body", "muzzle", "mane", "blanket", "hooves"))
    swing = 0.05 if walking else 0.0
    far_legs, near_legs = _leg_lines((0.2, -0.3), 0.56, -swing), _leg_lines((0.28, -0.22), 0.56, swing)
    parts = [
        partial(path, "M-0.4 0.5Q-0.42 0.34 -0.3 0.3Q-0.24 0.12 -0.14 0.14Q-0.06 0.16 -0.03 0.3Q0.02 0.14 0.12 0.15"
                      "Q0.22 0.17 0.24 0.32Q0.36 0.36 0.34 0.5Q0.3 0.62 0.0 0.62Q-0.34 0.63 -0.4 0.5Z"),
        partial(path, "M0.24 0.36Q0.36 0.42 0.42 0.3Q0.44 0.16 0.38 0.08L0.46 0.06Q0.52 0.2 0.46 0.4"
                      "Q0.38 0.52 0.26 0.5Z"),
        partial(path, "M0.36 0.1Q0.36 0.0 0.44 0.0Q0.54 0.02 0.5 0.12Q0.48 0.14 0.42 0.14Z"),
    ]
    return "".join([
        path("M-0.39 0.4Q-0.47 0.5 -0.44 0.62", None, INK, 0.035, stroke_linecap="round"),
        path("M-0.44 0.6Q-0.48 0.68 -0.43 0.7Q-0.41 0.65 -0.44 0.6Z", mane, INK),
        _far_legs(far_legs, 0.045, body, ink),
        _hooves(far_legs, 0.06, hooves),
        _silhouette(parts, near_legs, 0.05, body, ink),
        _hooves(near_legs, 0.062, hooves),
        path("M-0.25 0.16Q-0.18 0.1 -0.1 0.15M0.06 0.16Q0.13 0.11 0.2 0.18", None, mane, 0.04, stroke_linecap="round"),
        path("M0.39 0.15Q0.41 0.3 0.34 0.42", None, mane, 0.05, stroke_linecap="round"),
        path("M0.4 0.02L0.39 -0.03L0.43 0.01Z", body, INK),
        ellipse(0.495, 0.1, 0.025, 0.03, muzzle),
        circle(0.45, 0.05, 0.012, INK),
        path("M-0.06 0.3Q-0.01 0.28 0.04 0.3L0.05 0.46Q-0.01 0.48 -0.07 0.46Z", blanket, INK),
    ])  # fmt: skip


def _wolf(d: PuppetDesign, walking: bool, ink: float) -> str:
    """Wolf: a long low body, pricked ears, long snout, bushy tail hanging down."""
    body, muzzle = d.c("body"), d.c("muzzle")
    swing = 0.07 if walking else 0.0
    far_legs, near_legs = _leg_lines((0.3, -0.42), 0.55, -swing), _leg_lines((0.38, -0.34), 0.55, swing)
    parts = [
        partial(path, "M-0.55 0.46Q-0.56 0.3 -0.3 0.3Q0.1 0.26 0.34 0.3Q0.46 0.36 0.44 0.52Q0.4 0.64 0.2 0.62"
                      "Q-0.1 0.58 -0.3 0.64Q-0.54 0.64 -0.55 0.46Z"),
        partial(path, "M0.28 0.34Q0.38 0.18 0.5 0.16L0.6 0.2L0.78 0.28Q0.78 0.34 0.7 0.35L0.56 0.38"
                      "Q0.48 0.46 0.4 0.5Z"),
        partial(path, "M0.46 0.18L0.47 0.0L0.56 0.16Z"),
        partial(path, "M-0.52 0.36Q-0.74 0.42 -0.78 0.68Q-0.74 0.82 -0.68 0.76Q-0.62 0.56 -0.48 0.48Z"),
    ]
    return "".join([
        path("M0.42 0.18L0.4 0.02L0.5 0.15Z", darker(body, 0.25), INK),
        _far_legs(far_legs, 0.05, body, ink),
        _paws(far_legs, 0.05, darker(body, 0.22)),
        _silhouette(parts, near_legs, 0.055, body, ink),
        _paws(near_legs, 0.055, body),
        path("M0.38 0.46Q0.5 0.38 0.58 0.37L0.76 0.33Q0.7 0.38 0.56 0.4Q0.46 0.48 0.36 0.6Z", muzzle),
        path("M-0.4 0.58Q-0.1 0.52 0.25 0.56", None, muzzle, 0.04, stroke_linecap="round"),
        path("M-0.74 0.7Q-0.73 0.77 -0.69 0.75", None, muzzle, 0.04, stroke_linecap="round"),
        path("M0.49 0.15L0.5 0.06L0.53 0.14Z", darker(body, 0.4)),
        path("M0.54 0.23L0.6 0.22", None, INK, 0.022, stroke_linecap="round"),
        ellipse(0.775, 0.295, 0.02, 0.016, INK),
        path("M0.66 0.34L0.74 0.33", None, INK, stroke_linecap="round"),
        path("M-0.3 0.33Q0.0 0.28 0.3 0.32", None, darker(body, 0.2), 0.03, stroke_linecap="round"),
    ])  # fmt: skip


def _dog(d: PuppetDesign, walking: bool, ink: float) -> str:
    """Herding dog (tobet): short muzzle, one ear folded, a tail curled up over the back, a red collar."""
    body, muzzle, blanket = d.c("body"), d.c("muzzle"), d.c("blanket")
    swing = 0.06 if walking else 0.0
    far_legs, near_legs = _leg_lines((0.26, -0.38), 0.56, -swing), _leg_lines((0.34, -0.3), 0.56, swing)
    parts = [
        partial(ellipse, -0.04, 0.48, 0.44, 0.15),
        partial(path, "M0.22 0.42Q0.3 0.22 0.44 0.18L0.5 0.3Q0.44 0.44 0.38 0.56Z"),
        partial(ellipse, 0.48, 0.22, 0.12, 0.1),
        partial(path, "M0.54 0.18L0.7 0.24Q0.71 0.31 0.64 0.32L0.52 0.31Z"),
        partial(path, "M-0.42 0.4Q-0.6 0.32 -0.58 0.12Q-0.52 0.02 -0.46 0.1Q-0.52 0.24 -0.38 0.34Z"),
    ]
    return "".join([
        _far_legs(far_legs, 0.055, body, ink),
        _paws(far_legs, 0.055, darker(body, 0.22)),
        _silhouette(parts, near_legs, 0.06, body, ink),
        _paws(near_legs, 0.06, body),
        ellipse(0.6, 0.28, 0.09, 0.045, muzzle),
        ellipse(-0.02, 0.56, 0.3, 0.05, muzzle),
        path("M0.4 0.14Q0.34 0.2 0.38 0.34Q0.46 0.3 0.46 0.16Z", darker(body, 0.3), INK, stroke_linejoin="round"),
        ellipse(0.7, 0.25, 0.022, 0.018, INK),
        circle(0.53, 0.2, 0.014, INK),
        path("M0.32 0.22Q0.4 0.34 0.46 0.38", None, blanket, 0.045, stroke_linecap="round"),
        path("M0.64 0.32Q0.67 0.4 0.62 0.42Q0.6 0.36 0.62 0.32Z", "#d9546a"),
    ])  # fmt: skip


def _wool(cx: float, cy: float, rx: float, ry: float, count: int) -> str:
    """A cloud outline of small scallops around an ellipse: a fleece."""
    pts = []
    for i in range(count):
        a = 2 * math.pi * i / count
        pts.append((cx + rx * math.cos(a), cy + ry * math.sin(a)))
    d = f"M{n(pts[0][0])} {n(pts[0][1])}"
    for i in range(count):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % count]
        mx, my = (x0 + x1) / 2, (y0 + y1) / 2
        ox, oy = (mx - cx) * 0.28, (my - cy) * 0.28
        d += f"Q{n(mx + ox)} {n(my + oy)} {n(x1)} {n(y1)}"
    return d + "Z"


def _sheep(d: PuppetDesign, walking: bool, ink: float) -> str:
    """Fat-tailed ram: a scalloped fleece, a dark face, spiral horns, thin dark legs."""
    wool, face, hooves = d.c("body"), d.c("muzzle"), d.c("hooves")
    swing = 0.05 if walking else 0.0
    far_legs, near_legs = _leg_lines((0.2, -0.3), 0.6, -swing), _leg_lines((0.28, -0.22), 0.6, swing)
    fleece = _wool(-0.04, 0.46, 0.44, 0.2, 16)
    horn = ("M0.36 0.2Q0.26 0.08 0.34 0.04Q0.44 0.0 0.46 0.12Q0.46 0.22 0.38 0.22Q0.33 0.18 0.38 0.13"
            "Q0.41 0.12 0.41 0.16")
    return "".join([
        _far_legs(far_legs, 0.04, face, ink),
        _hooves(far_legs, 0.045, hooves),
        "".join(polyline(leg, INK, 0.045 + 2 * ink) + polyline(leg, face, 0.045) for leg in near_legs),
        _hooves(near_legs, 0.05, hooves),
        ellipse(-0.46, 0.52, 0.1, 0.1, wool, INK),
        path(fleece, wool, INK, stroke_linejoin="round"),
        path(_wool(-0.06, 0.44, 0.3, 0.12, 11), None, darker(wool, 0.1), 0.02),
        path("M0.3 0.3Q0.36 0.14 0.48 0.16Q0.6 0.2 0.62 0.34Q0.6 0.42 0.52 0.4Q0.42 0.36 0.36 0.42Z", face, INK),
        path("M0.37 0.18Q0.3 0.22 0.32 0.28Q0.37 0.26 0.4 0.22Z", face, INK),
        path(_wool(0.44, 0.15, 0.05, 0.035, 7), wool, INK),
        path(horn, "#d8c8a0", INK, stroke_linejoin="round"),
        circle(0.51, 0.25, 0.014, "#f4e9c8"),
        ellipse(0.6, 0.35, 0.014, 0.01, INK),
    ])  # fmt: skip


def _goat(d: PuppetDesign, walking: bool, ink: float) -> str:
    """Goat: lean angular body, horns sweeping back, a beard, a short tail standing up."""
    body, muzzle, hooves = d.c("body"), d.c("muzzle"), d.c("hooves")
    swing = 0.05 if walking else 0.0
    far_legs, near_legs = _leg_lines((0.18, -0.28), 0.56, -swing), _leg_lines((0.25, -0.2), 0.56, swing)
    parts = [
        partial(path, "M-0.38 0.42Q-0.36 0.34 -0.2 0.34L0.16 0.34Q0.3 0.36 0.3 0.5Q0.26 0.62 0.1 0.6L-0.24 0.6"
                      "Q-0.38 0.58 -0.38 0.42Z"),
        partial(path, "M0.16 0.4Q0.24 0.24 0.34 0.16L0.44 0.2Q0.36 0.34 0.3 0.52Z"),
        partial(path, "M0.32 0.14Q0.4 0.08 0.46 0.14L0.55 0.3Q0.55 0.36 0.49 0.35L0.4 0.28Q0.32 0.22 0.32 0.14Z"),
        partial(path, "M-0.36 0.38L-0.44 0.24L-0.34 0.34Z"),
    ]
    return "".join([
        _far_legs(far_legs, 0.04, body, ink),
        _hooves(far_legs, 0.045, hooves),
        _silhouette(parts, near_legs, 0.045, body, ink),
        _hooves(near_legs, 0.05, hooves),
        path("M0.36 0.12Q0.3 -0.02 0.16 0.0Q0.26 0.02 0.32 0.14Z", "#8a7a60", INK, stroke_linejoin="round"),
        path("M0.34 0.14L0.26 0.2L0.34 0.2Z", darker(body, 0.15), INK, stroke_linejoin="round"),
        path("M0.46 0.33Q0.46 0.44 0.5 0.47Q0.52 0.42 0.51 0.34Z", muzzle, INK, stroke_linejoin="round"),
        path("M-0.2 0.36Q0.0 0.4 0.14 0.36", None, darker(body, 0.18), 0.03, stroke_linecap="round"),
        ellipse(0.43, 0.18, 0.018, 0.014, "#c8a030"),
        path("M0.42 0.18L0.445 0.18", None, INK, 0.008),
        circle(0.535, 0.3, 0.008, INK),
    ])  # fmt: skip


def _eagle(d: PuppetDesign, walking: bool, ink: float) -> str:
    """Golden eagle (berkut) perched on a rock; `walking` (flying) spreads the wings above it."""
    body, nape, beak = d.c("body"), d.c("mane"), d.c("muzzle")
    rock = "#8a8478"
    talons = "".join(path(f"M{x:.2f} 0.74L{x - 0.03:.2f} 0.8L{x + 0.05:.2f} 0.8Z", "#e0b020", INK)
                     for x in (-0.04, 0.06))
    if walking:
        wings = (path("M-0.02 0.38Q-0.3 0.1 -0.48 0.04L-0.4 0.14L-0.46 0.16L-0.34 0.24L-0.38 0.28Q-0.2 0.36 -0.06 0.5Z",
                      darker(body, 0.1), INK, stroke_linejoin="round")
                 + path("M0.06 0.36Q0.3 0.06 0.48 0.02L0.42 0.12L0.48 0.14L0.36 0.22L0.4 0.26Q0.24 0.34 0.1 0.5Z",
                        body, INK, stroke_linejoin="round"))
    else:
        wings = ""
    fold = "" if walking else path("M-0.12 0.34Q0.06 0.3 0.12 0.46Q0.1 0.62 -0.08 0.78Q-0.18 0.6 -0.12 0.34Z",
                                   darker(body, 0.15), INK, stroke_linejoin="round")
    return "".join([
        path("M-0.48 1.0Q-0.46 0.84 -0.3 0.8Q0.0 0.74 0.3 0.8Q0.46 0.84 0.48 1.0Z", rock, INK),
        path("M-0.3 0.86Q-0.1 0.82 0.1 0.86", None, lighter(rock, 0.3), 0.02, stroke_linecap="round"),
        wings,
        path("M-0.1 0.62L-0.26 0.86L-0.08 0.84L-0.02 0.66Z", darker(body, 0.2), INK, stroke_linejoin="round"),
        path("M0.0 0.3Q0.18 0.36 0.16 0.56Q0.12 0.74 0.0 0.76Q-0.14 0.74 -0.16 0.54Q-0.14 0.34 0.0 0.3Z", body, INK),
        talons,
        fold,
        path("M0.0 0.34Q0.02 0.26 0.04 0.2Q0.16 0.1 0.22 0.2Q0.2 0.28 0.12 0.3Q0.08 0.36 0.0 0.38Z", nape, INK),
        path("M0.2 0.17Q0.3 0.18 0.3 0.26Q0.26 0.24 0.2 0.25Z", beak, INK, stroke_linejoin="round"),
        circle(0.16, 0.19, 0.016, "#2b2420"),
        path("M0.13 0.17L0.19 0.165", None, INK, 0.01),
    ])  # fmt: skip


def _neutral(d: PuppetDesign, walking: bool, ink: float) -> str:
    """A kind the kit lacks: a plain grey four-legged blob, no face, no clothes (never a human)."""
    grey = "#9a9a9a"
    legs = _leg_lines((0.26, -0.34), 0.6, 0.0) + _leg_lines((0.38, -0.22), 0.6, 0.0)
    parts = [partial(ellipse, 0.0, 0.5, 0.55, 0.2), partial(ellipse, 0.5, 0.34, 0.16, 0.13)]
    return _silhouette(parts, legs, 0.07, grey, ink) + ellipse(0.0, 0.46, 0.34, 0.08, lighter(grey, 0.2))


DRAWINGS = {"donkey": _donkey, "horse": _horse, "camel": _camel, "wolf": _wolf, "dog": _dog, "sheep": _sheep,
            "goat": _goat, "eagle": _eagle}  # fmt: skip
NEUTRAL = "unknown"  # data-drawing of a kind the kit lacks (the renderer warns about it)


def draw_animal(fig: Figure, design: PuppetDesign, width: int, height: int, ink: float) -> str:
    x0, y0, x1, y1 = fig.box
    scale = (y1 - y0) * height
    if scale <= 0:
        return ""
    draw = DRAWINGS.get(fig.kind)
    body = (draw or _neutral)(design, fig.pose in ("walk", "run"), ink / scale)
    x = (x0 + x1) / 2 * width
    return group(body, place(x, y1 * height - scale, scale, fig.facing), stroke_width=n(ink / scale),
                 class_="figure animal", data_character=fig.id, data_kind=fig.kind,
                 data_drawing=fig.kind if draw else NEUTRAL)
