"""Human puppets: a flat-vector figure drawn along the 18 pose keypoints of a Figure.

Limbs are inked tubes, the robe is a rounded hull from the shoulders to below the knees, the
head is a canonical drawing (autokose.previz.heads) placed with one transform. Sizes are
fractions of the figure's standing height `u`, so a puppet keeps its proportions at any scale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

from autokose.poses import K, near_side
from autokose.previz.designs import PuppetDesign
from autokose.previz.heads import expression, head
from autokose.previz.props import draw_prop
from autokose.previz.svg import (
    INK,
    Pt,
    add,
    chord,
    circle,
    convex_hull,
    darker,
    ellipse,
    group,
    lerp,
    lighter,
    mix,
    n,
    path,
    perp,
    place,
    polygon,
    polyline,
    rounded_d,
    sub,
    tube,
    unit,
)
from autokose.staging import Figure, PropPlacement

HEAD_RADIUS = 0.09  # of standing height
SHIRT = "#efe6d2"
# Robe length as a fraction along the leg (hip → knee → ankle).
HEM = {"dress": 0.97, "ragged": 0.72}
HEM_DEFAULT = 0.66
# Aldar's patches: (across -1..1, down the robe 0..1, colour) in the robe's own frame.
PATCHES = ((-0.5, 0.18, "patch"), (0.42, 0.32, "patch2"), (-0.12, 0.5, "patch3"), (0.5, 0.66, "patch"),
           (-0.46, 0.8, "patch2"))  # fmt: skip


def ink_width(u: float) -> float:
    """Outline width for a figure `u` pixels tall: thin when small, capped when large."""
    return min(3.2, max(0.8, 0.0042 * u))


def draw_human(fig: Figure, design: PuppetDesign, width: int, height: int,
               held: Sequence[PropPlacement] = ()) -> str:
    """SVG group for one human (or spirit) figure, back to front; `held` props go in its hands."""
    P = [(x * width, y * height) for x, y, _ in fig.keypoints]
    u = fig.height * height
    ink = ink_width(u)
    f = fig.facing
    near = near_side(f)
    far = "L" if near == "R" else "R"

    def kp(name: str) -> Pt:
        return P[K[name]]

    neck = kp("Neck")
    hips = lerp(kp("RHip"), kp("LHip"), 0.5)
    axis = unit(sub(hips, neck))  # down the body
    fwd = perp(axis)
    fwd = (-fwd[0] * f, -fwd[1] * f)  # the way the figure faces

    robe = _robe_outline(P, design, u, axis, fwd)
    parts = []
    if design.tail:
        parts.append(_tail(hips, fwd, axis, u, ink, design))
    parts.append(_arm(P, far, design, u, ink, finger=fig.pose == "point"))
    legs = [near] if fig.mount else [far, near]
    trousers = design.c("robe") if fig.pose == "sit" else design.c("trousers")  # a seated robe covers the legs
    parts += [_leg(P, side, design, u, ink, f, trousers) for side in legs]
    parts.append(tube([neck, add(neck, axis, -0.07 * u)], design.c("skin"), 0.05 * u * design.width ** 0.5, ink))
    parts.append(path(rounded_d(robe, 0.22), design.c("robe"), INK, ink, stroke_linejoin="round"))
    parts.append(_robe_details(robe, P, design, u, ink, axis, fwd, fig.view))
    parts.append(_head(P, fig, design, u, ink))
    parts += [draw_prop(p, width, height, ink) for p in held]
    parts.append(_arm(P, near, design, u, ink, patch=design.robe == "patched"))
    return group(parts, data_character=fig.id, class_="figure")


def _robe_outline(P: list[Pt], design: PuppetDesign, u: float, axis: Pt, fwd: Pt) -> list[Pt]:
    """A convex robe: shoulders, hips (and belly), and a hem part-way down each leg."""
    neck = P[K["Neck"]]
    hips = lerp(P[K["RHip"]], P[K["LHip"]], 0.5)
    w = design.width
    sw, hw = 0.085 * u * w, 0.072 * u * w
    pts = [add(add(neck, axis, -0.015 * u), fwd, s * 0.05 * u * w) for s in (-1, 1)]
    pts += [add(add(neck, axis, 0.04 * u), fwd, s * sw) for s in (-1, 1)]
    pts += [add(hips, fwd, s * hw) for s in (-1, 1)]
    if design.belly:
        belly = lerp(neck, hips, 0.62)
        pts.append(add(belly, fwd, hw + design.belly * 0.18 * u))
        pts.append(add(lerp(neck, hips, 0.92), fwd, hw + design.belly * 0.12 * u))
    flare = (0.1 if design.robe == "dress" else 0.06) * u * w
    t = HEM.get(design.robe, HEM_DEFAULT)
    for side in ("R", "L"):
        leg = [P[K[f"{side}Hip"]], P[K[f"{side}Knee"]], P[K[f"{side}Ankle"]]]
        hem = _along(leg, t)
        pts += [add(hem, fwd, s * flare) for s in (-1, 1)]
    return convex_hull(pts)


def _along(points: list[Pt], t: float) -> Pt:
    """The point a fraction `t` of the way along a polyline."""
    pairs = list(pairwise(points))
    goal = t * sum(math.dist(a, b) for a, b in pairs)
    for i, (a, b) in enumerate(pairs):
        s = math.dist(a, b)
        if goal <= s or i == len(pairs) - 1:
            return lerp(a, b, min(1.0, goal / s) if s else 0.0)
        goal -= s
    return points[-1]


def _robe_details(robe: list[Pt], P: list[Pt], design: PuppetDesign, u: float, ink: float, axis: Pt, fwd: Pt,
                  view: str) -> str:
    neck = P[K["Neck"]]
    hips = lerp(P[K["RHip"]], P[K["LHip"]], 0.5)
    bottom = max(robe, key=lambda p: (p[0] - neck[0]) * axis[0] + (p[1] - neck[1]) * axis[1])
    depth = (bottom[0] - neck[0]) * axis[0] + (bottom[1] - neck[1]) * axis[1]
    out = []
    trim = design.c("trim")

    def across(s: float) -> tuple[Pt, Pt] | None:
        """The robe's width at a fraction `s` of the way from the neck to the hem."""
        return chord(robe, add(neck, axis, s * depth), fwd)

    if design.robe == "striped":
        for k in (-3, -2, -1, 0, 1, 2, 3):
            seg = chord(robe, add(neck, fwd, k * 0.032 * u * design.width), axis)
            if seg:
                a, b = add(seg[0], axis, ink * 1.5), add(seg[1], axis, -ink * 1.5)
                out.append(polyline([a, b], trim, 0.014 * u, stroke_linecap="butt"))
    if design.robe == "patched":
        colours = {"patch": design.c("patch"), "patch2": design.c("patch2"), "patch3": mix(design.c("robe"), "#7fc06a", 0.6)}
        for i, (a, s, colour) in enumerate(PATCHES):
            seg = across(s)
            if not seg:
                continue
            centre = lerp(seg[0], seg[1], 0.5 + a * 0.36)
            out.append(_patch(centre, 0.05 * u, axis, (i * 37 % 17) - 8, colours[colour], ink))
    if design.robe == "dress":  # velvet waistcoat over the dress
        top, waist = across(0.04), across(0.42)
        if top and waist:
            vest = [lerp(top[0], top[1], 0.1), lerp(top[1], top[0], 0.1), lerp(waist[1], waist[0], 0.08),
                    lerp(waist[0], waist[1], 0.08)]
            out.append(path(rounded_d(vest, 0.15), design.c("sash"), INK, ink))
            for s in (0.14, 0.24, 0.34):
                seg = across(s)
                if seg:
                    out.append(circle(*lerp(seg[0], seg[1], 0.62), 0.012 * u, trim, INK, ink * 0.6))
    if design.robe == "ragged":
        seg = chord(robe, add(neck, axis, depth * 0.97), fwd)
        if seg:
            teeth = []
            for i in range(5):
                a, b = lerp(seg[0], seg[1], i / 5), lerp(seg[0], seg[1], (i + 1) / 5)
                teeth.append(polygon([a, b, add(lerp(a, b, 0.5), axis, 0.05 * u)], design.c("robe"), INK, ink,
                                     stroke_linejoin="round"))
            out += teeth
    if view == "front":  # shirt collar and the robe's front opening
        collar = [add(neck, fwd, -0.028 * u), add(neck, fwd, 0.036 * u), add(add(neck, axis, 0.075 * u), fwd, 0.01 * u)]
        out.insert(0, polygon(collar, SHIRT, INK, ink, stroke_linejoin="round"))
        start = add(add(neck, axis, 0.06 * u), fwd, 0.012 * u)
        aim = unit(sub(add(add(neck, axis, depth), fwd, 0.035 * u * design.width), start))
        seg = chord(robe, start, aim)
        if seg:  # the front opening runs down to the hem, never past the robe's edge
            edge = trim if design.robe in ("trimmed", "dress") else darker(design.c("robe"), 0.3)
            width = (0.02 if design.robe == "trimmed" else 0.008) * u
            out.insert(0, polyline([start, add(seg[1], aim, -ink)], edge, width, stroke_linecap="butt"))
    if design.robe == "trimmed":  # gold hem band
        seg = chord(robe, add(neck, axis, depth - 0.02 * u), fwd)
        if seg:
            out.append(polyline(list(seg), trim, 0.022 * u, stroke_linecap="butt"))
    if design.robe != "dress":
        out.append(_sash(robe, neck, hips, axis, fwd, u, ink, design))
    return "".join(out)


def _patch(centre: Pt, side: float, axis: Pt, tilt: float, colour: str, ink: float) -> str:
    angle = math.atan2(axis[1], axis[0]) + math.radians(tilt)
    a, b = (math.cos(angle) * side / 2, math.sin(angle) * side / 2), (-math.sin(angle) * side / 2, math.cos(angle) * side / 2)
    corners = [add(add(centre, a, sa), b, sb) for sa, sb in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
    inner = [lerp(centre, c, 0.72) for c in corners]
    return (polygon(corners, colour, INK, ink, stroke_linejoin="round")
            + polygon(inner, None, lighter(colour, 0.5), ink * 0.7, stroke_dasharray=f"{n(ink * 1.6)} {n(ink * 1.4)}"))


def _sash(robe: list[Pt], neck: Pt, hips: Pt, axis: Pt, fwd: Pt, u: float, ink: float, design: PuppetDesign) -> str:
    centre = lerp(neck, hips, 0.8)
    seg = chord(robe, centre, fwd)
    if not seg:
        return ""
    half = 0.024 * u
    a, b = seg
    band = [add(a, axis, -half), add(b, axis, -half), add(b, axis, half), add(a, axis, half)]
    colour = design.c("sash")
    knot = lerp(a, b, 0.72)
    tails = [add(knot, axis, 0.0), add(add(knot, axis, 0.12 * u), fwd, 0.02 * u), add(add(knot, axis, 0.11 * u), fwd, -0.02 * u)]
    return (polygon(band, colour, INK, ink, stroke_linejoin="round")
            + polygon(tails, darker(colour, 0.12), INK, ink, stroke_linejoin="round")
            + circle(*knot, 0.02 * u, colour, INK, ink))


def _arm(P: list[Pt], side: str, design: PuppetDesign, u: float, ink: float, finger: bool = False,
         patch: bool = False) -> str:
    shoulder, elbow, wrist = P[K[f"{side}Shoulder"]], P[K[f"{side}Elbow"]], P[K[f"{side}Wrist"]]
    sleeve = 0.058 * u * (0.8 + 0.2 * design.width)
    cuff_colour = design.c("trim") if design.robe in ("trimmed", "dress") else darker(design.c("robe"), 0.2)
    direction = unit(sub(wrist, elbow))
    hand = add(wrist, direction, 0.022 * u)
    out = [tube([shoulder, elbow, wrist], design.c("robe"), sleeve, ink)]
    if patch:
        out.append(_patch(lerp(shoulder, elbow, 0.7), 0.032 * u, direction, 12, design.c("patch2"), ink))
    out.append(tube([lerp(elbow, wrist, 0.8), wrist], cuff_colour, sleeve * 1.08, ink))
    if finger:
        out.append(tube([hand, add(hand, direction, 0.045 * u)], design.c("skin"), 0.014 * u, ink))
    out.append(circle(*hand, 0.027 * u, design.c("skin"), INK, ink))
    return "".join(out)


def _leg(P: list[Pt], side: str, design: PuppetDesign, u: float, ink: float, facing: int, trousers: str) -> str:
    hip, knee, ankle = P[K[f"{side}Hip"]], P[K[f"{side}Knee"]], P[K[f"{side}Ankle"]]
    width = 0.052 * u * design.width ** 0.5
    boots = design.c("boots")
    foot = add(ankle, (facing * 0.03 * u, 0.012 * u))
    return (tube([hip, knee, ankle], trousers, width, ink)
            + tube([lerp(ankle, knee, 0.42), ankle], boots, width * 1.12, ink)
            + ellipse(foot[0], foot[1], 0.046 * u, 0.024 * u, boots, INK, ink))


def _tail(hips: Pt, fwd: Pt, axis: Pt, u: float, ink: float, design: PuppetDesign) -> str:
    start = add(hips, fwd, -0.05 * u)
    mid = add(add(start, fwd, -0.16 * u), axis, 0.12 * u)
    tip = add(add(start, fwd, -0.24 * u), axis, -0.02 * u)
    skin = design.c("skin")
    arrow = [add(tip, axis, -0.03 * u), add(tip, fwd, -0.045 * u), add(tip, axis, 0.035 * u)]
    return (path(f"M{start[0]:.1f} {start[1]:.1f}Q{mid[0]:.1f} {mid[1]:.1f} {tip[0]:.1f} {tip[1]:.1f}", None, INK,
                 0.022 * u + 2 * ink, stroke_linecap="round")
            + path(f"M{start[0]:.1f} {start[1]:.1f}Q{mid[0]:.1f} {mid[1]:.1f} {tip[0]:.1f} {tip[1]:.1f}", None, skin,
                   0.022 * u, stroke_linecap="round")
            + polygon(arrow, skin, INK, ink, stroke_linejoin="round"))


def _head(P: list[Pt], fig: Figure, design: PuppetDesign, u: float, ink: float) -> str:
    """Place the canonical head: centred behind the eyes, tilted with the neck→eyes line."""
    neck = P[K["Neck"]]
    eyes = lerp(P[K["REye"]], P[K["LEye"]], 0.5)
    f = fig.facing
    up = sub(eyes, neck)
    rest = (f * 0.03, -0.105)  # the neck→eyes line of an upright pose, in standing heights
    tilt = math.degrees(math.atan2(up[0], -up[1]) - math.atan2(rest[0], -rest[1]))
    r = HEAD_RADIUS * u * (1.18 if design.width < 1 and fig.kind == "spirit" else 1.0)
    a = math.radians(tilt)
    off = (f * 0.26 * r, -0.02 * r)  # canonical eye centre relative to the skull centre
    rot = (off[0] * math.cos(a) - off[1] * math.sin(a), off[0] * math.sin(a) + off[1] * math.cos(a))
    centre = (eyes[0] - rot[0], eyes[1] - rot[1] + 0.004 * u)
    face = expression(fig.emotion, fig.pose, design)
    return group(head(design, face, fig.view), place(centre[0], centre[1], r, f, tilt),
                 stroke_width=n(ink / r), class_="head", data_face=face)
