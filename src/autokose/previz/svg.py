"""Small, deterministic SVG building blocks: number formatting, shapes, colours, geometry.

Every number goes through `n()` (fixed rounding) so the same layout gives byte-identical SVG.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

Pt = tuple[float, float]
INK = "#2b2420"  # outline colour shared by every drawing


def n(v: float) -> str:
    """A number: three decimals at most (canonical drawings live in a unit box), no '-0'."""
    s = f"{v:.3f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def attrs(fill: str | None = None, stroke: str | None = None, width: float | None = None, **extra) -> str:
    out = []
    out.append(f'fill="{fill or "none"}"')
    if stroke:
        out.append(f'stroke="{stroke}"')
    if width is not None:
        out.append(f'stroke-width="{n(width)}"')
    for key, value in extra.items():
        out.append(f'{_name(key)}="{value}"')
    return " ".join(out)


def _name(key: str) -> str:
    """Python keyword to SVG attribute: stroke_width → stroke-width, class_ → class."""
    return key.rstrip("_").replace("_", "-")


def path(d: str, fill: str | None = None, stroke: str | None = None, width: float | None = None, **extra) -> str:
    return f'<path d="{d}" {attrs(fill, stroke, width, **extra)}/>'


def poly_d(points: Iterable[Pt], closed: bool = True) -> str:
    pts = list(points)
    d = "M" + " L".join(f"{n(x)} {n(y)}" for x, y in pts)
    return d + ("Z" if closed else "")


def polygon(points: Iterable[Pt], fill: str | None, stroke: str | None = None, width: float | None = None,
            **extra) -> str:
    return path(poly_d(points), fill, stroke, width, **extra)


def polyline(points: Iterable[Pt], stroke: str, width: float, **extra) -> str:
    extra.setdefault("stroke_linecap", "round")
    extra.setdefault("stroke_linejoin", "round")
    return path(poly_d(points, closed=False), None, stroke, width, **extra)


def ellipse(cx: float, cy: float, rx: float, ry: float, fill: str | None, stroke: str | None = None,
            width: float | None = None, **extra) -> str:
    return f'<ellipse cx="{n(cx)}" cy="{n(cy)}" rx="{n(rx)}" ry="{n(ry)}" {attrs(fill, stroke, width, **extra)}/>'


def circle(cx: float, cy: float, r: float, fill: str | None, stroke: str | None = None, width: float | None = None,
           **extra) -> str:
    return f'<circle cx="{n(cx)}" cy="{n(cy)}" r="{n(r)}" {attrs(fill, stroke, width, **extra)}/>'


def rect(x: float, y: float, w: float, h: float, fill: str | None, stroke: str | None = None,
         width: float | None = None, **extra) -> str:
    return f'<rect x="{n(x)}" y="{n(y)}" width="{n(w)}" height="{n(h)}" {attrs(fill, stroke, width, **extra)}/>'


def group(body: str | Iterable[str], transform: str | None = None, **extra) -> str:
    inner = body if isinstance(body, str) else "".join(body)
    head = " ".join(([f'transform="{transform}"'] if transform else [])
                    + [f'{_name(k)}="{v}"' for k, v in extra.items()])
    return f"<g {head}>{inner}</g>" if head else f"<g>{inner}</g>"


def place(x: float, y: float, scale: float, facing: int = 1, rotate: float = 0.0) -> str:
    """Transform from a canonical drawing (origin at its anchor, facing right) into the frame."""
    rot = f" rotate({n(rotate)})" if abs(rotate) >= 0.05 else ""
    return f"translate({n(x)} {n(y)}){rot} scale({n(scale * facing)} {n(scale)})"


def tube(points: Sequence[Pt], fill: str, width: float, ink_width: float) -> str:
    """A limb: an inked outline stroke under a coloured stroke, round ends."""
    return polyline(points, INK, width + 2 * ink_width) + polyline(points, fill, width)


def rounded_d(points: Sequence[Pt], r: float = 0.25) -> str:
    """Closed path through `points` with each corner cut by a quadratic curve (r: fraction of edge)."""
    m = len(points)
    d = []
    for i in range(m):
        p0, p1, p2 = points[i - 1], points[i], points[(i + 1) % m]
        a = lerp(p1, p0, r)
        b = lerp(p1, p2, r)
        d.append(("M" if i == 0 else "L") + f"{n(a[0])} {n(a[1])}Q{n(p1[0])} {n(p1[1])} {n(b[0])} {n(b[1])}")
    return "".join(d) + "Z"


def smooth_d(points: Sequence[Pt], closed: bool = False) -> str:
    """A smooth curve through `points` (Catmull-Rom turned into cubic Béziers)."""
    pts = list(points)
    if closed:
        pts = [pts[-1], *pts, pts[0], pts[1]]
    else:
        pts = [pts[0], *pts, pts[-1]]
    d = [f"M{n(pts[1][0])} {n(pts[1][1])}"]
    for i in range(1, len(pts) - 2):
        p0, p1, p2, p3 = pts[i - 1], pts[i], pts[i + 1], pts[i + 2]
        c1 = (p1[0] + (p2[0] - p0[0]) / 6, p1[1] + (p2[1] - p0[1]) / 6)
        c2 = (p2[0] - (p3[0] - p1[0]) / 6, p2[1] - (p3[1] - p1[1]) / 6)
        d.append(f"C{n(c1[0])} {n(c1[1])} {n(c2[0])} {n(c2[1])} {n(p2[0])} {n(p2[1])}")
    return "".join(d) + ("Z" if closed else "")


# -- colours -----------------------------------------------------------------------------------
def rgb(c: str) -> tuple[int, int, int]:
    c = c.lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def hexc(r: float, g: float, b: float) -> str:
    return "#{:02x}{:02x}{:02x}".format(*(max(0, min(255, round(v))) for v in (r, g, b)))


def mix(a: str, b: str, t: float) -> str:
    """Blend colour `a` towards `b` by `t` (0 → a, 1 → b)."""
    ra, rb = rgb(a), rgb(b)
    return hexc(*(x + (y - x) * t for x, y in zip(ra, rb)))


def multiply(a: str, b: str) -> str:
    """Colour `a` lit by light of colour `b`."""
    return hexc(*(x * y / 255 for x, y in zip(rgb(a), rgb(b))))


def darker(c: str, t: float = 0.25) -> str:
    return mix(c, "#000000", t)


def lighter(c: str, t: float = 0.25) -> str:
    return mix(c, "#ffffff", t)


# -- geometry ----------------------------------------------------------------------------------
def lerp(a: Pt, b: Pt, t: float) -> Pt:
    return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t


def add(a: Pt, b: Pt, k: float = 1.0) -> Pt:
    return a[0] + b[0] * k, a[1] + b[1] * k


def sub(a: Pt, b: Pt) -> Pt:
    return a[0] - b[0], a[1] - b[1]


def length(v: Pt) -> float:
    return math.hypot(v[0], v[1])


def unit(v: Pt) -> Pt:
    d = length(v) or 1.0
    return v[0] / d, v[1] / d


def perp(v: Pt) -> Pt:
    """`v` turned a quarter to the right on screen (y down)."""
    return -v[1], v[0]


def convex_hull(points: Iterable[Pt]) -> list[Pt]:
    """Andrew's monotone chain; counter-clockwise on screen, no repeated end point."""
    pts = sorted({(round(x, 3), round(y, 3)) for x, y in points})
    if len(pts) <= 2:
        return pts

    def cross(o: Pt, a: Pt, b: Pt) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[Pt] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[Pt] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return lower[:-1] + upper[:-1]


def chord(poly: Sequence[Pt], origin: Pt, direction: Pt) -> tuple[Pt, Pt] | None:
    """Where the line origin + t·direction crosses a convex polygon: (entry, exit) or None."""
    ts = []
    m = len(poly)
    for i in range(m):
        a, b = poly[i], poly[(i + 1) % m]
        e = sub(b, a)
        den = direction[0] * e[1] - direction[1] * e[0]
        if abs(den) < 1e-9:
            continue
        w = sub(a, origin)
        t = (w[0] * e[1] - w[1] * e[0]) / den
        s = (w[0] * direction[1] - w[1] * direction[0]) / den
        if -1e-9 <= s <= 1 + 1e-9:
            ts.append(t)
    if len(ts) < 2:
        return None
    return add(origin, direction, min(ts)), add(origin, direction, max(ts))


def tag(markup: str, **extra) -> str:
    """`markup` with attributes added to its outermost element (a figure drawn elsewhere, tagged here)."""
    end = min(i for i in (markup.find(" "), markup.find(">")) if i > 0)
    return markup[:end] + "".join(f' {_name(k)}="{v}"' for k, v in extra.items()) + markup[end:]
