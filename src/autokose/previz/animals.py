"""Side-view animals (donkey, horse), drawn in a canonical box and placed with one transform.

Canonical space: 1 unit = the animal's height (ear tips to hooves), the hooves stand on
y = 1, the body is centred on x = 0 and the head points right.
"""

from __future__ import annotations

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


DRAWINGS = {"donkey": _donkey, "horse": _horse}


def draw_animal(fig: Figure, design: PuppetDesign, width: int, height: int, ink: float) -> str:
    x0, y0, x1, y1 = fig.box
    scale = (y1 - y0) * height
    if scale <= 0:
        return ""
    body = DRAWINGS.get(fig.kind, _donkey)(design, fig.pose in ("walk", "run"), ink / scale)
    x = (x0 + x1) / 2 * width
    return group(body, place(x, y1 * height - scale, scale, fig.facing), stroke_width=n(ink / scale),
                 class_="figure", data_character=fig.id)
