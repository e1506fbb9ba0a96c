"""Does the face metric tell people apart? ROC of dlib face distances on real photos.

    .venv/bin/python benchmarks/bench_face_roc.py [--faces ../shared/data/faces]

The folder holds one subfolder per person with two or more photos. Every pair of photos is
compared (distance between the embeddings of each photo's largest face); same-person pairs
should be closer than different-person ones. Prints every pair, the ROC AUC, the Youden's J
threshold and how the default threshold in `autokose.score.face` classifies the pairs.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

from autokose.faces import face_distance
from autokose.score import read_image
from autokose.score.face import FACE_MODEL, THRESHOLD, find_faces, identity_from_distance
from autokose.score.metrics import accuracy_at, roc

from hardware import cpu_name  # benchmarks/hardware.py

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def embed_folder(root: Path) -> tuple[dict[str, object], list[float]]:
    """person/photo → embedding of its largest face, and seconds per photo (detect + embed)."""
    embeddings, seconds = {}, []
    for path in sorted(p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES):
        image, problem = read_image(path)
        if image is None:
            print(f"skip {path}: {problem}")
            continue
        t0 = time.perf_counter()
        faces = find_faces(image)
        seconds.append(time.perf_counter() - t0)
        if not faces:
            print(f"skip {path}: no face found")
            continue
        embeddings[f"{path.parent.name}/{path.name}"] = faces[0].embedding
    return embeddings, seconds


def cpu() -> str:
    """The CPU's name and core count, for the record."""
    return f"{cpu_name()}, {os.cpu_count()} cores"


def pairs(embeddings: dict) -> list[tuple[str, str, bool, float]]:
    return [(a, b, a.split("/")[0] == b.split("/")[0], face_distance(ea, eb))
            for (a, ea), (b, eb) in itertools.combinations(embeddings.items(), 2)]


def time_frame(root: Path, repeats: int = 3) -> tuple[float, int]:
    """Seconds to find and embed the faces of a 960x540 frame as scoring does (upsample 1)."""
    from PIL import Image

    frame = Image.new("RGB", (960, 540), (200, 190, 170))
    photos = sorted(p for p in root.glob("*/*") if p.suffix.lower() in IMAGE_SUFFIXES)[:3]
    for n, path in enumerate(photos):
        image, _ = read_image(path)
        image = image.resize((round(image.width * 300 / image.height), 300))
        frame.paste(image, (40 + n * 310, 200))
    find_faces(frame, upsample=1)  # warm up (model loading)
    t0 = time.perf_counter()
    for _ in range(repeats):
        faces = find_faces(frame, upsample=1)
    return (time.perf_counter() - t0) / repeats, len(faces)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=REPO.parent / "shared" / "data" / "faces")
    args = parser.parse_args()
    embeddings, seconds = embed_folder(args.faces)
    rows = pairs(embeddings)
    print(f"{FACE_MODEL}; {len(embeddings)} photos of {len({k.split('/')[0] for k in embeddings})} people; "
          f"{cpu()}: detect+embed {sum(seconds) / max(len(seconds), 1):.2f} s/photo\n")
    print("| pair | same person | distance | identity |")
    print("|---|---|---|---|")
    for a, b, same, d in sorted(rows, key=lambda r: r[3]):
        print(f"| {a} – {b} | {'yes' if same else 'no'} | {d:.3f} | {identity_from_distance(d):.2f} |")
    same = [d for *_, s, d in rows if s]
    different = [d for *_, s, d in rows if not s]
    result = roc([r[3] for r in rows], [r[2] for r in rows])
    print(f"\nsame-person pairs: {len(same)}, distance {min(same):.3f}–{max(same):.3f}")
    print(f"different-person pairs: {len(different)}, distance {min(different):.3f}–{max(different):.3f}")
    print(f"ROC AUC: {result['auc']:.3f}")
    print(f"Youden's J threshold: {result['youden_threshold']:.3f} (J = {result['youden_j']:.2f})")
    accuracy = accuracy_at([r[3] for r in rows], [r[2] for r in rows], THRESHOLD)
    print(f"default threshold {THRESHOLD}: accuracy {accuracy:.3f}, "
          f"separates all pairs: {max(same) < THRESHOLD < min(different)}")
    seconds, found = time_frame(args.faces)
    print(f"960x540 frame, faces found and embedded as scoring does (upsample 1): {seconds:.2f} s ({found} faces)")


if __name__ == "__main__":
    main()
