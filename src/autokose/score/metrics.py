"""Board-level numbers from per-frame scores: aggregates, the frame × frame matrix, its heatmap, ROC."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from importlib import resources

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def aggregate(identities: dict[str, float | None]) -> dict:
    """Mean and minimum identity over the frames that have one, and which frame is worst."""
    measured = {k: v for k, v in identities.items() if v is not None}
    if not measured:
        return {"mean_identity": None, "min_identity": None, "worst_frame": None}
    worst = min(measured, key=lambda k: (measured[k], k))
    return {"mean_identity": round(float(np.mean(list(measured.values()))), 4),
            "min_identity": round(measured[worst], 4), "worst_frame": worst}


def similarity_matrix(items: Sequence, similarity: Callable) -> list[list[float | None]]:
    """Symmetric matrix of `similarity(a, b)`, None where it is None (an unmeasured item's row)."""
    n = len(items)
    matrix: list[list[float | None]] = [[None] * n for _ in range(n)]
    for i in range(n):
        for j in range(i, n):
            value = similarity(items[i], items[j])
            matrix[i][j] = matrix[j][i] = None if value is None else round(float(value), 4)
    return matrix


def mean_off_diagonal(matrix: list[list[float | None]]) -> float | None:
    values = [v for i, row in enumerate(matrix) for j, v in enumerate(row) if i != j and v is not None]
    return round(float(np.mean(values)), 4) if values else None


def _colour(value: float | None) -> tuple[int, int, int]:
    """Red (0) → amber (0.5) → green (1); grey when unmeasured."""
    if value is None:
        return (215, 215, 215)
    v = float(np.clip(value, 0.0, 1.0))
    red, amber, green = np.array((200, 60, 50)), np.array((235, 180, 60)), np.array((60, 160, 90))
    rgb = red + (amber - red) * (v / 0.5) if v < 0.5 else amber + (green - amber) * ((v - 0.5) / 0.5)
    return tuple(int(c) for c in rgb)


def _font(size: int, bold: bool = False):
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(str(resources.files("autokose").joinpath("data", "fonts", name)), size)
    except OSError:
        return ImageFont.load_default()


def heatmap(matrix: list[list[float | None]], labels: Sequence[str], title: str, subtitle: str = "",
            *, cell: int = 44) -> Image.Image:
    """The matrix as a labelled colour grid with each value written in its cell (grey: unmeasured)."""
    n = len(labels)
    title_font, small_font, value_font = _font(15, bold=True), _font(12), _font(max(9, cell // 4))
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_width = max(measure.textlength(title, font=title_font), measure.textlength(subtitle, font=small_font))
    left, top = 40, 70
    size = (int(max(left + n * cell, 8 + text_width)) + 12, top + n * cell + 12)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 8), title, fill=(30, 30, 30), font=title_font)
    draw.text((8, 30), subtitle, fill=(90, 90, 90), font=small_font)
    for i, label in enumerate(labels):
        draw.text((left + i * cell + cell / 2, top - 4), label, fill=(60, 60, 60), font=small_font, anchor="md")
        draw.text((left - 6, top + i * cell + cell / 2), label, fill=(60, 60, 60), font=small_font, anchor="rm")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            x, y = left + j * cell, top + i * cell
            draw.rectangle((x, y, x + cell - 2, y + cell - 2), fill=_colour(value))
            text = "—" if value is None else f"{value:.2f}"
            draw.text((x + (cell - 2) / 2, y + (cell - 2) / 2), text, fill=(20, 20, 20), font=value_font, anchor="mm")
    return image


def roc(distances: Sequence[float], same: Sequence[bool]) -> dict:
    """ROC of "same person when distance <= t": AUC and the Youden's J threshold.

    The threshold is placed midway between the last distance called "same" and the next one,
    so it does not sit on a measured pair.
    """
    from sklearn.metrics import roc_auc_score, roc_curve

    d = np.asarray(distances, dtype=np.float64)
    y = np.asarray(same, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("ROC needs both same-person and different-person pairs")
    fpr, tpr, cuts = roc_curve(y, -d)
    best = int(np.argmax(tpr - fpr))
    cut = -cuts[best]
    above = d[d > cut]
    threshold = (cut + above.min()) / 2 if above.size else cut
    return {"auc": float(roc_auc_score(y, -d)), "youden_threshold": float(threshold),
            "youden_j": float(tpr[best] - fpr[best])}


def accuracy_at(distances: Sequence[float], same: Sequence[bool], threshold: float) -> float:
    """Fraction of pairs a threshold classifies right (same person when distance < threshold)."""
    d = np.asarray(distances, dtype=np.float64)
    return float(np.mean((d < threshold) == np.asarray(same, dtype=bool)))
