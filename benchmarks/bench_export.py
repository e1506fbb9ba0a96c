"""Export speed and file sizes for a full board: 24 frames of 960×540 with photo-like detail.

    .venv/bin/python benchmarks/bench_export.py [--scenes 24] [--repeat 3]

Frames are smooth noise (diffusion output compresses about as badly), so PNG and PDF sizes
are close to what a real board gives.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from autokose.board import Board
from autokose.export import export_board
from autokose.story import Story


def make_board(root: Path, scenes: int) -> tuple[Board, Story]:
    story = Story.model_validate({
        "title": "Алдар Косе и золотое яйцо",
        "logline": "Алдар Косе продаёт жадному баю «золотое яйцо», которое якобы несёт золото.",
        "language": "ru",
        "characters": [{"id": "aldar", "name": "Aldar Köse", "names": {"ru": "Алдар Косе"}},
                       {"id": "bai", "name": "the Bai", "names": {"ru": "Бай"}}],
        "scenes": [{"index": i, "caption": f"Сцена {i}: Алдар Косе показывает баю блестящее «золотое яйцо», "
                    "слуги переглядываются.", "characters": ["aldar", "bai"], "dialogue": "Это яйцо несёт золото!"}
                   for i in range(1, scenes + 1)],
    })
    board = Board(root)
    board.save_story(story)
    rng = np.random.default_rng(0)
    for i in range(1, scenes + 1):
        small = rng.integers(0, 256, (68, 120, 3), dtype=np.uint8)
        detail = rng.integers(-24, 24, (540, 960, 3))
        pixels = np.asarray(Image.fromarray(small).resize((960, 540), Image.Resampling.BICUBIC), dtype=np.int64)
        board.frame_path(i).parent.mkdir(exist_ok=True)
        Image.fromarray(np.clip(pixels + detail, 0, 255).astype(np.uint8)).save(board.frame_path(i))
    return board, story


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=24)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        board, story = make_board(Path(tmp) / "board", args.scenes)
        frames_mb = sum(p.stat().st_size for p in (board.root / "frames").glob("*.png")) / 1e6
        print(f"{platform.processor() or platform.machine()}, {args.scenes} frames 960x540 ({frames_mb:.1f} MB PNG)")
        for fmt in ("html", "pdf", "sheet"):
            times = []
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                path = export_board(board, story, [fmt])[fmt]
                times.append(time.perf_counter() - t0)
            print(f"{fmt:6s} best {min(times):6.2f} s   {path.stat().st_size / 1e6:6.2f} MB")


if __name__ == "__main__":
    main()
