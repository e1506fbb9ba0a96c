"""Backgrounds per setting and time of day, flat colours only (fast to rasterise).

Each setting is a sky, a ground and a few set pieces standing on the horizon. Set pieces are
laid out for a wide shot and scaled about the horizon for closer shots, so the same place
reads the same from establishing to close-up. The seed only moves clouds, stars and grass.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from autokose.previz.svg import (
    INK,
    circle,
    darker,
    ellipse,
    group,
    lighter,
    mix,
    multiply,
    n,
    path,
    polygon,
    polyline,
    rect,
    smooth_d,
)
from autokose.vocabulary import is_interior, resolve_setting
from autokose.staging import Layout
from autokose.story import Shot, TimeOfDay

# How much closer the set pieces look than in a wide shot.
ZOOM = {Shot.establishing: 0.8, Shot.wide: 1.0, Shot.medium: 1.6, Shot.close_up: 2.4,
        Shot.over_the_shoulder: 1.8, Shot.insert: 2.6}  # fmt: skip


@dataclass(frozen=True)
class Light:
    """A time of day: sky colours (top → horizon), the sun or moon, and the tint of the land."""

    sky: tuple[str, str]
    ambient: str  # the land is lit by this colour (multiplied in)
    amount: float  # and hazed towards it by this much
    body: str  # sun or moon colour
    body_at: tuple[float, float]  # x (fraction of width), height above the horizon (fraction of it)
    body_size: float
    clouds: str | None
    stars: bool = False
    moon: bool = False


LIGHTS = {
    TimeOfDay.day: Light(("#8cc4ea", "#d8eef6"), "#ffffff", 0.0, "#fff4c2", (0.82, 0.7), 0.05, "#ffffff"),
    TimeOfDay.dawn: Light(("#8f9fd0", "#f6c8a8"), "#ffe4d8", 0.08, "#ffe2b0", (0.2, 0.12), 0.07, "#f8d0c8"),
    TimeOfDay.dusk: Light(("#4a4c86", "#f29a5c"), "#e8b0b0", 0.12, "#ffb060", (0.78, 0.06), 0.09, "#e8a0a0"),
    TimeOfDay.night: Light(("#0b1431", "#25386a"), "#5a70a8", 0.12, "#f4f0d8", (0.8, 0.68), 0.045, None, True, True),
}

# Inside, lamps and the smoke hole light the felt: a warm, dimmer light at night.
INDOOR = {TimeOfDay.day: "#ffffff", TimeOfDay.dawn: "#f6e6da", TimeOfDay.dusk: "#eed4c0", TimeOfDay.night: "#b89478"}

# Land colours before the light of the time of day is applied.
GRASS, GRASS_DARK, EARTH, HILL, HILL_FAR = "#c9bf7c", "#a9a05e", "#d2b48c", "#9fb27a", "#b7c4a6"
FELT, FELT_DARK, WOOD, WOOD_DARK = "#eadcc0", "#d9c6a2", "#b5783a", "#8a5528"
RED, BLUE, GOLD, WHITE = "#b3343c", "#2f4f8f", "#e0b040", "#f6f1e4"
AWNINGS = (("#c0392b", "#f3e6c8"), ("#2f6fa8", "#f3e6c8"), ("#d68a1e", "#6a2c70"), ("#3f8a4f", "#f3e6c8"))


class _Canvas:
    """What every set piece needs: frame size, horizon, zoom, the light, a seeded RNG."""

    def __init__(self, layout: Layout, width: int, height: int, seed: int):
        self.w, self.h = width, height
        self.hz = layout.horizon * height
        self.zoom = ZOOM.get(layout.shot, 1.0)
        self.light = LIGHTS[layout.time]
        self.indoor = is_interior(layout.setting)
        self.lamp = INDOOR[layout.time]
        self.rng = random.Random(seed)
        self.shot = layout.shot

    def c(self, colour: str) -> str:
        """A land colour under this time of day's light."""
        if self.indoor:
            return multiply(colour, self.lamp)
        lit = multiply(colour, self.light.ambient)
        return mix(lit, self.light.sky[1], self.light.amount)

    def zoomed(self, body: str, factor: float = 1.0) -> str:
        z = 1 + (self.zoom - 1) * factor
        if abs(z - 1) < 1e-6:
            return body
        cx, cy = self.w / 2, self.hz
        return group(body, f"translate({n(cx)} {n(cy)}) scale({z:.3f}) translate({n(-cx)} {n(-cy)})")

    @property
    def s(self) -> float:
        """Set-piece unit: the frame height of a wide shot."""
        return self.h


def draw_background(layout: Layout, width: int, height: int, seed: int) -> str:
    """The whole background for one layout."""
    cv = _Canvas(layout, width, height, seed)
    kind = resolve_setting(layout.setting)
    if is_interior(kind):
        return _yurt_interior(cv)
    parts = [_sky(cv), _sky_body(cv), _clouds(cv)]
    parts.append(cv.zoomed(FAR[kind](cv), 0.35))
    parts.append(_ground(cv, EARTH if kind in ("bazaar", "courtyard") else GRASS))
    parts.append(cv.zoomed(NEAR[kind](cv)))
    if cv.zoom <= 1.7 and kind != "bazaar":
        parts.append(_tufts(cv))
    return "".join(parts)


# -- sky and land ------------------------------------------------------------------------------
def _sky(cv: _Canvas) -> str:
    top, bottom = cv.light.sky
    bands = 6
    out = []
    for i in range(bands):
        y0 = cv.hz * (i / bands) ** 0.8
        y1 = cv.hz * ((i + 1) / bands) ** 0.8
        out.append(rect(0, y0, cv.w, y1 - y0 + 1, mix(top, bottom, i / (bands - 1))))
    return "".join(out)


def _sky_body(cv: _Canvas) -> str:
    lt = cv.light
    x = lt.body_at[0] * cv.w
    y = cv.hz * (1 - lt.body_at[1])
    r = lt.body_size * cv.h
    out = [circle(x, y, r * 1.6, lt.body, fill_opacity="0.3")]
    out.append(circle(x, y, r, lt.body))
    if lt.moon:
        out = [circle(x, y, r * 1.8, lt.body, fill_opacity="0.08"), circle(x, y, r, lt.body),
               circle(x + r * 0.45, y - r * 0.2, r * 0.85, mix(lt.sky[0], lt.sky[1], 0.25))]
    if lt.stars:
        d = []
        for _ in range(60):
            sx, sy = cv.rng.uniform(0, cv.w), cv.rng.uniform(0, cv.hz * 0.92)
            s = cv.rng.choice((0.8, 1.1, 1.6)) * cv.h / 540
            d.append(f"M{n(sx)} {n(sy - s)}L{n(sx + s)} {n(sy)}L{n(sx)} {n(sy + s)}L{n(sx - s)} {n(sy)}Z")
        out.append(path("".join(d), "#fff8d8"))
    return "".join(out)


def _clouds(cv: _Canvas) -> str:
    if cv.light.clouds is None:
        return ""
    out = []
    for _ in range(3):
        x = cv.rng.uniform(0.05, 0.95) * cv.w
        y = cv.rng.uniform(0.15, 0.55) * cv.hz
        s = cv.rng.uniform(0.05, 0.08) * cv.h
        blobs = [(0, 0, 1.6, 0.55), (-1.0, 0.15, 0.9, 0.45), (1.0, 0.15, 1.0, 0.45), (0.2, -0.35, 0.9, 0.6)]
        out.append("".join(ellipse(x + bx * s, y + by * s, rx * s, ry * s, cv.light.clouds, fill_opacity="0.85")
                           for bx, by, rx, ry in blobs))
    return "".join(out)


def _ground(cv: _Canvas, colour: str) -> str:
    """Three bands, lighter towards the horizon (no overlap: every pixel is filled once)."""
    out = []
    edges = (0.0, 0.12, 0.35, 1.0)
    for i in range(3):
        y0, y1 = (cv.hz + (cv.h - cv.hz) * edges[i], cv.hz + (cv.h - cv.hz) * edges[i + 1])
        tone = lighter(colour, 0.08) if i == 0 else darker(colour, 0.05 * i)
        out.append(rect(0, y0, cv.w, y1 - y0 + (1 if i < 2 else 0), cv.c(tone)))
    return "".join(out)


def _tufts(cv: _Canvas) -> str:
    d = []
    for _ in range(28):
        x = cv.rng.uniform(0, cv.w)
        t = cv.rng.uniform(0.05, 1.0)
        y = cv.hz + (cv.h - cv.hz) * t
        s = (0.006 + 0.018 * t) * cv.h * cv.zoom
        d.append(f"M{n(x - s)} {n(y - s * 1.2)}L{n(x - s * 0.3)} {n(y)}L{n(x)} {n(y - s * 1.6)}L{n(x + s * 0.3)} {n(y)}"
                 f"L{n(x + s)} {n(y - s * 1.1)}")
    return path("".join(d), None, cv.c(darker(GRASS_DARK, 0.1)), max(1.0, cv.h / 540), stroke_linejoin="round",
                stroke_linecap="round")


def _hills(cv: _Canvas, colour: str, rise: float, phase: float, waves: int = 3) -> str:
    pts = []
    for i in range(13):
        x = cv.w * (i / 12) * 1.2 - cv.w * 0.1
        y = cv.hz - rise * cv.h * (0.55 + 0.45 * math.sin(phase + i * waves * math.pi / 12))
        pts.append((x, y))
    d = smooth_d(pts) + f"L{n(cv.w * 1.1)} {n(cv.hz + 2)}L{n(-cv.w * 0.1)} {n(cv.hz + 2)}Z"
    return path(d, cv.c(colour))


# -- set pieces ----------------------------------------------------------------------------------
def yurt(cv: _Canvas, x: float, base: float, size: float, rich: bool = False) -> str:
    """A white felt yurt seen from outside: dome, wall, door, shanyrak on top."""
    w, h = size, size * 0.62
    felt = cv.c(WHITE)
    shade = cv.c(darker(WHITE, 0.12))
    wall_top = base - h * 0.45
    out = [
        path(f"M{n(x - w / 2)} {n(base)}L{n(x - w / 2)} {n(wall_top)}Q{n(x - w * 0.42)} {n(base - h * 0.95)} {n(x)} "
             f"{n(base - h)}Q{n(x + w * 0.42)} {n(base - h * 0.95)} {n(x + w / 2)} {n(wall_top)}L{n(x + w / 2)} {n(base)}Z",
             felt, INK, max(1.0, size / 160)),
        path(f"M{n(x + w * 0.18)} {n(base)}L{n(x + w / 2)} {n(base)}L{n(x + w / 2)} {n(wall_top)}Q{n(x + w * 0.42)} "
             f"{n(base - h * 0.95)} {n(x + w * 0.18)} {n(base - h * 0.98)}Z", shade),
        rect(x - w * 0.09, base - h * 0.4, w * 0.18, h * 0.4, cv.c(RED if rich else WOOD), INK, max(1.0, size / 200)),
        rect(x - w * 0.08, base - h * 1.04, w * 0.16, h * 0.06, cv.c(WOOD_DARK)),
    ]
    band = cv.c(RED if rich else "#a08060")
    out.append(path(f"M{n(x - w / 2)} {n(wall_top)}Q{n(x)} {n(wall_top - h * 0.08)} {n(x + w / 2)} {n(wall_top)}",
                    None, band, h * (0.09 if rich else 0.05)))
    if rich:
        d = "".join(f"M{n(x - w / 2 + w * k / 10)} {n(wall_top + h * 0.02)}l{n(w * 0.025)} {n(-h * 0.05)}"
                    f"l{n(w * 0.025)} {n(h * 0.05)}" for k in range(10))
        out.append(path(d, None, cv.c(GOLD), max(1.0, size / 180)))
        out.append(rect(x - w * 0.07, base - h * 0.36, w * 0.14, h * 0.3, None, cv.c(GOLD), max(1.0, size / 220)))
    return "".join(out)


def _far_steppe(cv: _Canvas) -> str:
    return _hills(cv, HILL_FAR, 0.07, 0.4) + _hills(cv, HILL, 0.035, 2.1, 2)


def _near_steppe(cv: _Canvas) -> str:
    return yurt(cv, cv.w * 0.12, cv.hz + 0.01 * cv.h, 0.07 * cv.h)


def _far_mountains(cv: _Canvas) -> str:
    peaks = [(-0.05, 0.1), (0.12, 0.42), (0.26, 0.22), (0.42, 0.5), (0.58, 0.28), (0.74, 0.46), (0.9, 0.2), (1.05, 0.36)]
    pts = [(x * cv.w, cv.hz - y * cv.hz * 0.8) for x, y in peaks]
    rock = polygon([(-0.1 * cv.w, cv.hz + 2), *pts, (1.1 * cv.w, cv.hz + 2)], cv.c("#8d8fa8"))
    snow = []
    for x, y in pts:
        if cv.hz - y > cv.hz * 0.25:
            k = (cv.hz - y) * 0.28
            snow.append(polygon([(x, y), (x + k * 0.55, y + k), (x + k * 0.15, y + k * 0.8), (x - k * 0.2, y + k * 1.05),
                                 (x - k * 0.6, y + k)], cv.c("#f4f6fa")))
    return rock + "".join(snow) + _hills(cv, HILL, 0.06, 1.0, 2)


def _near_mountains(cv: _Canvas) -> str:
    """A few boulders on the foothills."""
    d = []
    for x, y, r in ((0.07, 0.05, 0.03), (0.1, 0.055, 0.018), (0.92, 0.07, 0.035)):
        bx, by, br = cv.w * x, cv.hz + cv.h * y, cv.h * r
        d.append(f"M{n(bx - br * 1.3)} {n(by)}Q{n(bx - br * 1.2)} {n(by - br)} {n(bx - br * 0.2)} {n(by - br * 1.1)}"
                 f"Q{n(bx + br * 1.2)} {n(by - br * 0.9)} {n(bx + br * 1.3)} {n(by)}Z")
    return path("".join(d), cv.c("#9a948a"), INK, max(1.0, cv.h / 540))


def _near_road(cv: _Canvas) -> str:
    w, h, hz = cv.w, cv.h, cv.hz
    road = (f"M{n(w * 0.56)} {n(hz)}C{n(w * 0.5)} {n(hz + (h - hz) * 0.3)} {n(w * 0.2)} {n(hz + (h - hz) * 0.6)} "
            f"{n(w * 0.18)} {n(h * 1.2)}L{n(w * 0.82)} {n(h * 1.2)}C{n(w * 0.6)} {n(hz + (h - hz) * 0.6)} "
            f"{n(w * 0.6)} {n(hz + (h - hz) * 0.3)} {n(w * 0.58)} {n(hz)}Z")
    ruts = (f"M{n(w * 0.565)} {n(hz + 2)}C{n(w * 0.5)} {n(hz + (h - hz) * 0.35)} {n(w * 0.36)} {n(hz + (h - hz) * 0.6)} "
            f"{n(w * 0.38)} {n(h * 1.2)}M{n(w * 0.575)} {n(hz + 2)}C{n(w * 0.56)} {n(hz + (h - hz) * 0.35)} "
            f"{n(w * 0.56)} {n(hz + (h - hz) * 0.6)} {n(w * 0.62)} {n(h * 1.2)}")
    tree_x, tree_y = w * 0.86, hz + 0.02 * h
    tree = (polyline([(tree_x, tree_y), (tree_x - 0.01 * h, tree_y - 0.09 * h), (tree_x + 0.004 * h, tree_y - 0.15 * h)],
                     cv.c(WOOD_DARK), 0.012 * h)
            + ellipse(tree_x, tree_y - 0.16 * h, 0.06 * h, 0.035 * h, cv.c("#7f9550"), INK, 1.0)
            + ellipse(tree_x - 0.04 * h, tree_y - 0.12 * h, 0.04 * h, 0.025 * h, cv.c("#8aa05a"), INK, 1.0))
    stone = path(f"M{n(w * 0.3)} {n(hz + 0.03 * h)}l{n(0.012 * h)} {n(-0.07 * h)}l{n(0.02 * h)} {n(-0.004 * h)}"
                 f"l{n(0.008 * h)} {n(0.074 * h)}Z", cv.c("#a8a29a"), INK, 1.0)
    return path(road, cv.c("#dcc89a"), None) + path(ruts, None, cv.c("#c4ae7e"), max(1.0, 0.004 * h)) + tree + stone


def _near_aul(cv: _Canvas) -> str:
    """A village of yurts, one with smoke rising from its shanyrak."""
    spots = ((0.3, 0.0, 0.12), (0.62, 0.005, 0.1), (0.1, 0.03, 0.24), (0.86, 0.035, 0.26))
    out = [yurt(cv, cv.w * x, cv.hz + y * cv.h, s * cv.h) for x, y, s in spots]
    sx, sy = cv.w * 0.1, cv.hz + 0.03 * cv.h - 0.24 * 0.62 * cv.h * 1.04
    smoke = path(f"M{n(sx)} {n(sy)}q{n(-0.02 * cv.h)} {n(-0.04 * cv.h)} 0 {n(-0.08 * cv.h)}t0 {n(-0.08 * cv.h)}",
                 None, cv.c("#e8e4dc"), 0.014 * cv.h, stroke_linecap="round", stroke_opacity="0.7")
    return "".join(out) + smoke


def _near_river(cv: _Canvas) -> str:
    w, h, hz = cv.w, cv.h, cv.hz
    water = (f"M{n(-0.1 * w)} {n(hz + (h - hz) * 0.08)}C{n(0.3 * w)} {n(hz + (h - hz) * 0.02)} {n(0.6 * w)} "
             f"{n(hz + (h - hz) * 0.12)} {n(1.1 * w)} {n(hz + (h - hz) * 0.1)}L{n(1.1 * w)} {n(hz + (h - hz) * 0.3)}"
             f"C{n(0.6 * w)} {n(hz + (h - hz) * 0.36)} {n(0.3 * w)} {n(hz + (h - hz) * 0.22)} {n(-0.1 * w)} "
             f"{n(hz + (h - hz) * 0.3)}Z")
    glints = "".join(f"M{n(x * w)} {n(hz + (h - hz) * y)}h{n(0.04 * w)}" for x, y in
                     ((0.1, 0.18), (0.35, 0.2), (0.62, 0.24), (0.8, 0.19), (0.5, 0.15)))
    reeds = "".join(f"M{n(x * w)} {n(hz + (h - hz) * 0.34)}l{n(dx * h)} {n(-0.06 * h)}" for x, dx in
                    ((0.04, -0.005), (0.05, 0.004), (0.06, 0.01), (0.95, -0.006), (0.96, 0.003)))
    return (path(water, cv.c("#6fa3c8"), INK, 1.0) + path(glints, None, cv.c("#d8ecf6"), max(1.0, 0.004 * h),
                                                           stroke_linecap="round")
            + path(reeds, None, cv.c("#6a7a3a"), max(1.0, 0.004 * h), stroke_linecap="round"))


def _far_city(cv: _Canvas) -> str:
    hz, h, w = cv.hz, cv.h, cv.w
    colour = cv.c("#c9b28e")
    out = [rect(0.05 * w, hz - 0.08 * h, 0.9 * w, 0.08 * h + 2, colour)]
    for x, r in ((0.22, 0.05), (0.58, 0.07), (0.8, 0.045)):
        out.append(path(f"M{n(x * w - r * h)} {n(hz - 0.08 * h)}A{n(r * h)} {n(r * h)} 0 0 1 {n(x * w + r * h)} "
                        f"{n(hz - 0.08 * h)}Z", cv.c("#5f9aa8")))
    out.append(rect(0.68 * w, hz - 0.26 * h, 0.025 * h, 0.2 * h, colour))
    out.append(path(f"M{n(0.68 * w - 0.004 * h)} {n(hz - 0.26 * h)}l{n(0.0165 * h)} {n(-0.04 * h)}l{n(0.0165 * h)} "
                    f"{n(0.04 * h)}Z", cv.c("#5f9aa8")))
    return "".join(out)


def stall(cv: _Canvas, x: float, base: float, width: float, colours: tuple[str, str], goods: int) -> str:
    """A bazaar stall: posts, a counter with goods and a striped, scalloped awning."""
    h = width * 0.95
    stripe, gap = cv.c(colours[0]), cv.c(colours[1])
    ink = max(1.0, width / 120)
    top = base - h
    out = [polyline([(x - width / 2, base), (x - width / 2, top)], cv.c(WOOD_DARK), width * 0.04),
           polyline([(x + width / 2, base), (x + width / 2, top)], cv.c(WOOD_DARK), width * 0.04),
           rect(x - width / 2, base - h * 0.42, width, h * 0.42, cv.c(WOOD), INK, ink)]
    k = 6
    for i in range(k):
        out.append(rect(x - width * 0.58 + width * 1.16 * i / k, top - h * 0.08, width * 1.16 / k + 0.5, h * 0.2,
                        stripe if i % 2 == 0 else gap))
    scallop = "".join(f"a{n(width * 1.16 / k / 2)} {n(width * 1.16 / k / 2)} 0 0 0 {n(width * 1.16 / k)} 0" for _ in range(k))
    out.append(path(f"M{n(x - width * 0.58)} {n(top + h * 0.12)}{scallop}Z", stripe, INK, ink))
    out.append(rect(x - width * 0.58, top - h * 0.08, width * 1.16, h * 0.2, None, INK, ink))
    goods_y = base - h * 0.42
    if goods == 0:  # melons
        out += [ellipse(x + dx * width, goods_y - width * 0.06, width * 0.09, width * 0.065, cv.c("#c8b040"), INK, ink)
                for dx in (-0.28, -0.1, 0.08, 0.26)]
    elif goods == 1:  # pots
        out += [path(f"M{n(x + dx * width - width * 0.06)} {n(goods_y)}q{n(-width * 0.03)} {n(-width * 0.12)} "
                     f"{n(width * 0.06)} {n(-width * 0.14)}q{n(width * 0.09)} {n(width * 0.02)} {n(width * 0.06)} "
                     f"{n(width * 0.14)}Z", cv.c("#b0603a"), INK, ink) for dx in (-0.25, 0.0, 0.25)]
    elif goods == 2:  # hanging carpet
        out.append(rect(x - width * 0.3, top + h * 0.16, width * 0.6, h * 0.38, cv.c(RED), INK, ink))
        out.append(rect(x - width * 0.24, top + h * 0.2, width * 0.48, h * 0.3, None, cv.c(GOLD), ink * 1.5))
    else:  # bolts of cloth
        out += [rect(x + dx * width, goods_y - width * 0.12, width * 0.12, width * 0.12, cv.c(c), INK, ink)
                for dx, c in ((-0.32, "#6a2c70"), (-0.16, "#2f6fa8"), (0.0, "#e0a030"), (0.16, "#3f8a4f"))]
    return "".join(out)


def _near_bazaar(cv: _Canvas) -> str:
    base = cv.hz + 0.02 * cv.h
    spots = ((0.1, 0.3), (0.36, 0.26), (0.64, 0.28), (0.9, 0.3))
    return "".join(stall(cv, x * cv.w, base, wdt * cv.h, AWNINGS[i], i) for i, (x, wdt) in enumerate(spots))


def _far_courtyard(cv: _Canvas) -> str:
    return _hills(cv, HILL_FAR, 0.05, 1.3)


def _near_courtyard(cv: _Canvas) -> str:
    w, h, hz = cv.w, cv.h, cv.hz
    wall_h = 0.09 * h
    wall = cv.c("#d8b98a")
    merlons = "".join(f"M{n(x)} {n(hz - wall_h)}h{n(0.03 * h)}v{n(-0.02 * h)}h{n(-0.03 * h)}Z"
                      for x in [i * 0.06 * h for i in range(int(w / (0.06 * h)) + 2)])
    post_x = w * 0.06
    out = [rect(-2, hz - wall_h, w + 4, wall_h + 2, wall, INK, 1.0), path(merlons, wall, INK, 1.0),
           path(f"M0 {n(hz - wall_h * 0.45)}H{n(w)}", None, cv.c(darker("#d8b98a", 0.12)), max(1.0, 0.003 * h)),
           yurt(cv, w * 0.8, hz + 0.04 * h, 0.42 * h, rich=True),
           polyline([(post_x, hz + 0.06 * h), (post_x, hz - 0.1 * h)], cv.c(WOOD_DARK), 0.012 * h),
           polyline([(post_x - 0.03 * h, hz - 0.09 * h), (post_x + 0.03 * h, hz - 0.09 * h)], cv.c(WOOD_DARK), 0.01 * h)]
    poplar = (polyline([(w * 0.3, hz - wall_h), (w * 0.3, hz - wall_h - 0.05 * h)], cv.c(WOOD_DARK), 0.008 * h)
              + ellipse(w * 0.3, hz - wall_h - 0.16 * h, 0.035 * h, 0.13 * h, cv.c("#6f9a4a"), INK, 1.0))
    return poplar + "".join(out)


FAR = {"steppe": _far_steppe, "road": _far_steppe, "mountains": _far_mountains, "aul": _far_steppe,
       "river": _far_steppe, "bazaar": _far_city, "courtyard": _far_courtyard}  # fmt: skip
NEAR = {"steppe": _near_steppe, "road": _near_road, "mountains": _near_mountains, "aul": _near_aul,
        "river": _near_river, "bazaar": _near_bazaar, "courtyard": _near_courtyard}  # fmt: skip


# -- interior ------------------------------------------------------------------------------------
def _yurt_interior(cv: _Canvas) -> str:
    """Inside a yurt: kerege lattice wall, uyk roof poles up to the shanyrak, carpets, the juk."""
    w, h, hz = cv.w, cv.h, cv.hz
    night = cv.light.moon
    felt = cv.c(FELT)
    roof = darker(felt, 0.08)
    lattice_h = 0.24 * h
    top = hz - lattice_h
    ring_y, ring_r = hz - 0.62 * h, 0.16 * h
    inner = []
    inner.append(rect(-w, hz - 2 * h, 3 * w, 2 * h, roof))
    sky_top, sky_bottom = cv.light.sky
    inner.append(circle(w / 2, ring_y, ring_r, mix(sky_top, sky_bottom, 0.5)))
    poles = "".join(f"M{n(w / 2 + math.cos(a) * ring_r)} {n(ring_y + math.sin(a) * ring_r * 0.35)}"
                    f"L{n(w / 2 + math.cos(a) * w * 1.1)} {n(top)}"
                    for a in [math.pi * (0.02 + 0.96 * i / 15) for i in range(16)])
    inner.append(path(poles, None, cv.c(WOOD), max(1.5, 0.007 * h), stroke_linecap="round"))
    inner.append(rect(-w, top, 3 * w, lattice_h + 2, felt))
    step = 0.07 * h
    lat = []
    x = -w
    while x < 2 * w:
        lat.append(f"M{n(x)} {n(hz)}L{n(x + lattice_h)} {n(top)}M{n(x)} {n(hz)}L{n(x - lattice_h)} {n(top)}")
        x += step
    inner.append(path("".join(lat), None, cv.c(WOOD), max(1.0, 0.005 * h)))
    inner.append(rect(-w, top - 0.012 * h, 3 * w, 0.024 * h, cv.c(RED)))
    inner.append(circle(w / 2, ring_y, ring_r, None, cv.c(WOOD_DARK), 0.03 * h))
    cross = (f"M{n(w / 2 - ring_r)} {n(ring_y)}Q{n(w / 2)} {n(ring_y - ring_r * 0.9)} {n(w / 2 + ring_r)} {n(ring_y)}"
             f"M{n(w / 2)} {n(ring_y - ring_r)}Q{n(w / 2 + ring_r * 0.9)} {n(ring_y)} {n(w / 2)} {n(ring_y + ring_r)}"
             f"M{n(w / 2)} {n(ring_y - ring_r)}Q{n(w / 2 - ring_r * 0.9)} {n(ring_y)} {n(w / 2)} {n(ring_y + ring_r)}")
    inner.append(path(cross, None, cv.c(WOOD_DARK), 0.012 * h))
    if night:
        inner.append(circle(w / 2 - ring_r * 0.3, ring_y - ring_r * 0.2, 0.006 * h, "#fff8d8"))
    for x0, wd, colour in ((0.06, 0.2, RED), (0.74, 0.22, BLUE)):  # tus kiiz wall hangings
        rx, ry, rw, rh = x0 * w, top + 0.02 * h, wd * w, lattice_h * 0.8
        inner.append(rect(rx, ry, rw, rh, cv.c(colour), INK, 1.2))
        inner.append(rect(rx + rw * 0.08, ry + rh * 0.1, rw * 0.84, rh * 0.8, None, cv.c(GOLD), max(1.0, 0.005 * h)))
        cx, cy = rx + rw / 2, ry + rh / 2
        inner.append(polygon([(cx, cy - rh * 0.25), (cx + rw * 0.2, cy), (cx, cy + rh * 0.25), (cx - rw * 0.2, cy)],
                             cv.c(GOLD)))
    jx, jw = 0.3 * w, 0.16 * w  # the juk: chests with folded quilts
    inner.append(rect(jx - jw / 2, hz - 0.08 * h, jw, 0.08 * h, cv.c(WOOD), INK, 1.2))
    inner.append(rect(jx - jw * 0.35, hz - 0.065 * h, jw * 0.7, 0.05 * h, None, cv.c(GOLD), max(1.0, 0.003 * h)))
    for i, colour in enumerate((RED, "#3f8a4f", BLUE, "#d68a1e", RED)):
        inner.append(rect(jx - jw * 0.46, hz - 0.08 * h - (i + 1) * 0.022 * h, jw * 0.92, 0.022 * h, cv.c(colour),
                          INK, 1.0, rx=n(0.008 * h)))
    floor = [rect(-w, hz, 3 * w, 2 * h, cv.c("#c8a878"))]
    rug = [(0.12 * w, hz + 0.05 * h), (0.88 * w, hz + 0.05 * h), (1.3 * w, hz + 1.2 * h), (-0.3 * w, hz + 1.2 * h)]
    floor.append(polygon(rug, cv.c(RED), INK, 1.2))
    inset = [(0.17 * w, hz + 0.08 * h), (0.83 * w, hz + 0.08 * h), (1.2 * w, hz + 1.2 * h), (-0.2 * w, hz + 1.2 * h)]
    floor.append(polygon(inset, None, cv.c(GOLD), max(1.0, 0.006 * h)))
    floor.append(polygon([(0.5 * w, hz + 0.12 * h), (0.62 * w, hz + 0.22 * h), (0.5 * w, hz + 0.34 * h),
                          (0.38 * w, hz + 0.22 * h)], cv.c(BLUE), cv.c(GOLD), max(1.0, 0.004 * h)))
    body = "".join(inner) + "".join(floor)
    return cv.zoomed(body)


