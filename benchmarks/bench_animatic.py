"""Animatic speed: a 100-panel 1080p animatic.mp4, with and without camera moves.

    .venv/bin/python benchmarks/bench_animatic.py [--scenes 100] [--durations 3] [--fps 24]
        [--modes still,moves,gif] [--step 3] [--content photo|flat] [--dissolve 0] [--size 768x432]
        [--resolution 1080] [--repeat 1] [--out bench_animatic.json]

The board is `--scenes` frames of `--size` (768x432, the render default): `photo` frames are smooth
noise plus grain (diffusion output compresses about as badly: the worst case for x264), `flat`
frames are outlined shapes on a two-tone ground, like the previz renderer's. Russian captions are
burned in, scene numbers on, shots cycle through establishing, wide, medium, close-up, over the
shoulder and insert (so with moves on, 2 of 6 panels pan and 4 push in). `--durations 3` gives
every panel 3 s; `--durations 2,3,5` cycles through those. `--step` sets how many frames a moving
picture holds (animatic.MOVE_STEP; 3, "on threes", is what ships). Modes: `still` (--still),
`moves` (camera moves on) and `gif` (animatic.gif, one frame per panel at 640 px).

Each row is one write_mp4 / write_gif call, everything included (reading the PNGs, scaling,
composing, encoding, muxing): wall seconds, frames written per second, and this process's CPU
seconds (all its threads). The issue's target: 100 panels at 1080p on 2 cores in under 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from autokose.board import Board
from autokose.export import animatic
from autokose.export.animatic import write_gif, write_mp4
from autokose.export.settings import ExportSettings
from autokose.export.timing import total_frames
from autokose.story import Story

from hardware import cpu_name  # benchmarks/hardware.py

SHOTS = ["establishing", "wide", "medium", "close_up", "over_the_shoulder", "insert"]


def make_board(root: Path, scenes: int, durations: list[float], size: tuple[int, int],
               content: str = "photo") -> tuple[Board, Story]:
    story = Story.model_validate({
        "title": "Алдар Косе и золотое яйцо", "logline": "Алдар Косе продаёт баю «золотое яйцо».",
        "language": "ru",
        "characters": [{"id": "aldar", "name": "Aldar Köse", "names": {"ru": "Алдар Косе"}}],
        "scenes": [{"index": i, "caption": f"Сцена {i}: Алдар Косе показывает баю блестящее «золотое яйцо», "
                    "слуги переглядываются.", "characters": ["aldar"], "shot": SHOTS[(i - 1) % len(SHOTS)],
                    "duration": durations[(i - 1) % len(durations)]} for i in range(1, scenes + 1)],
    })
    board = Board(root)
    board.save_story(story)
    rng = np.random.default_rng(0)
    w, h = size
    for i in range(1, scenes + 1):
        board.frame_path(i).parent.mkdir(exist_ok=True)
        (flat_frame if content == "flat" else photo_frame)(rng, w, h).save(board.frame_path(i))
    return board, story


def photo_frame(rng, w: int, h: int) -> Image.Image:
    """Smooth noise plus grain: compresses about as badly as diffusion output (the worst case for x264)."""
    small = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    grain = rng.integers(-24, 24, (h, w, 3))
    pixels = np.asarray(Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC), dtype=np.int64)
    return Image.fromarray(np.clip(pixels + grain, 0, 255).astype(np.uint8))


def flat_frame(rng, w: int, h: int) -> Image.Image:
    """Flat shapes with outlines on a two-tone ground, like the previz renderer's frames."""
    image = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(120, 230, 3)))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, h * 2 // 3, w, h), fill=tuple(int(c) for c in rng.integers(60, 160, 3)))
    for _ in range(12):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        r = int(rng.integers(h // 20, h // 5))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(c) for c in rng.integers(0, 256, 3)),
                     outline=(30, 30, 30), width=3)
    return image


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--durations", default="3", help="seconds per panel, cycled: 3 or 2,3,5")
    parser.add_argument("--fps", default="24")
    parser.add_argument("--modes", default="still,moves", help="still, moves (animatic.mp4), gif (animatic.gif)")
    parser.add_argument("--dissolve", type=float, default=0.0)
    parser.add_argument("--size", default="768x432", help="frame size on the board")
    parser.add_argument("--content", choices=["photo", "flat"], default="photo",
                        help="photo: smooth noise + grain (like diffusion output); flat: previz-like shapes")
    parser.add_argument("--resolution", type=int, default=1080)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--step", type=int, default=animatic.MOVE_STEP,
                        help="frames a moving picture holds (2: on twos, the shipped value)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    durations = [float(d) for d in args.durations.split(",")]
    animatic.MOVE_STEP = args.step
    size = tuple(int(x) for x in args.size.lower().split("x"))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cpu_name()}, {cores} core(s) available; {args.scenes} {args.content} panels of {size[0]}x{size[1]}, "
          f"durations {args.durations} s, {args.fps} fps, {args.resolution}p, dissolve {args.dissolve:g} s, "
          f"moves on {args.step}s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        board, story = make_board(Path(tmp) / "board", args.scenes, durations, size, args.content)
        for mode in args.modes.split(","):
            settings = ExportSettings(fps=args.fps, resolution=args.resolution, still=mode == "still",
                                      dissolve=args.dissolve)
            frames = total_frames(story, settings.rate)
            for _ in range(args.repeat):
                t0, c0 = time.perf_counter(), cpu_seconds()
                path = (write_gif if mode == "gif" else write_mp4)(board, story, settings)
                wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
                row = {"mode": mode, "step": args.step, "content": args.content, "frames": frames,
                       "seconds": round(wall, 2), "fps": round(frames / wall, 1), "cpu_seconds": round(cpu, 2),
                       "mb": round(path.stat().st_size / 1e6, 2)}
                rows.append(row)
                print(f"{mode:6s} {frames} frames  {wall:6.2f} s  {frames / wall:6.1f} fps  cpu {cpu:6.2f} s  "
                      f"{row['mb']:6.2f} MB")
    if args.out:
        args.out.write_text(json.dumps({"cpu": cpu_name(), "cores": cores, "python": platform.python_version(),
                                        "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
