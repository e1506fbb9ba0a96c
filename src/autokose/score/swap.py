"""ID swap (identity bleeding): a character's face that is someone else's face.

When several characters share a frame, attention mixes identities: the Bai's face may come out
as Aldar's (a LoRA or trigger that acted on the whole frame, shared self-attention tokens).
The per-character identity score only says "the Bai does not look like the Bai"; a swap says
whose face it is instead, which is what a director (and the quality loop) acts on.

A face assigned to character A is a swap to character B when, with `d_X` the distance of the
face to X's reference centroid (dlib embeddings, `score.face`):

    d_B < THRESHOLD            dlib's own rule calls the face B (0.6, the same-person line)
    d_B <= d_A - SWAP_MARGIN   and it is clearly more B than A

The first condition keeps a face that is nobody in particular (far from everyone, d ~ 0.8-0.95
on the real photos) a low identity, not a swap. The margin keeps two look-alike references
from flipping a coin: on ../shared/data/faces (4 people, one photo as the reference and the
other photo as the frame) a face is 0.35-0.53 from its own reference and 0.76-1.02 from the
others, so the nearest-other minus own gap is 0.24-0.55; 0.1 is well inside it (a real swap
clears it by 0.14 or more) and above the wobble of one person's photos (same-person distances
spread 0.35-0.53).

Every character with a face reference is compared, not only the frame's cast: a LoRA or
consistent attention that carries Aldar's face into a frame where he is not is bleeding too.
A face "could swap" when its character has a reference and some other character has one.
"""

from __future__ import annotations

from autokose.score.face import THRESHOLD

# How much closer to another character's reference than to its own a face must be (see above).
SWAP_MARGIN = 0.1


def looks_like(own: float | None, others: dict[str, float], *, margin: float = SWAP_MARGIN,
               threshold: float = THRESHOLD) -> str | None:
    """Whose face this is instead of its character's own (the nearest other); None when it is no swap."""
    if own is None or not others:
        return None
    nearest = min(others, key=lambda cid: (others[cid], cid))
    d = others[nearest]
    return nearest if d < threshold and d <= own - margin else None


def could_swap(own: float | None, others: dict[str, float]) -> bool:
    """A face counts in the swap rate when it has its own reference distance and another's to compare."""
    return own is not None and bool(others)


def frame_swaps(characters: dict[str, tuple[float | None, dict[str, float]]]) -> list[dict]:
    """A frame's swaps from each character's (own distance, distances to the others' references).

    `[{"character": A, "looks_like": B, "own": d_A, "other": d_B}]`, in the cast's order.
    """
    swaps = []
    for cid, (own, others) in characters.items():
        other = looks_like(own, others)
        if other is not None:
            swaps.append({"character": cid, "looks_like": other, "own": round(float(own), 4),
                          "other": round(float(others[other]), 4)})
    return swaps


def swap_rate(frames: list[dict[str, tuple[float | None, dict[str, float]]]]) -> dict:
    """Board level: `id_swaps` (swapped faces), `id_swap_faces` (faces that could swap), `id_swap_rate`."""
    faces = sum(could_swap(own, others) for frame in frames for own, others in frame.values())
    swaps = sum(len(frame_swaps(frame)) for frame in frames)
    return {"id_swaps": swaps, "id_swap_faces": faces,
            "id_swap_rate": round(swaps / faces, 4) if faces else None}
