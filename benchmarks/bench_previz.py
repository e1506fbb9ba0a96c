"""Previz speed: stage + SVG + rasterise, per frame and per 8-scene board.

Target: an 8-scene board in under 2 s on one CPU core. Run pinned to one core:

    taskset -c 0 .venv/bin/python benchmarks/bench_previz.py [--repeat 5] [--width 960 --height 540]

Prints a table (median of `--repeat` runs) and the CPU model, ready for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from hardware import cpu_name  # benchmarks/hardware.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    args = parser.parse_args()

    t0 = time.perf_counter()
    from autokose.previz.demo import board_story
    from autokose.previz.designs import design_for
    from autokose.render import RenderSettings
    from autokose.render.previz import PrevizRenderer, rasterise, scene_svg
    from autokose.staging import layout_scene, stage_story

    import_s = time.perf_counter() - t0
    story = board_story()
    designs = {c.id: design_for(c) for c in story.characters}
    w, h = args.width, args.height

    rows = []
    for scene in story.scenes:
        stage_t, svg_t, raster_t = [], [], []
        for _ in range(args.repeat):
            a = time.perf_counter()
            layout = layout_scene(story, scene)
            b = time.perf_counter()
            svg = scene_svg(layout, designs, w, h, scene.seed)
            c = time.perf_counter()
            rasterise(svg)
            d = time.perf_counter()
            stage_t.append(b - a), svg_t.append(c - b), raster_t.append(d - c)
        rows.append((scene.index, scene.shot.value, scene.setting, scene.time.value, len(svg),
                     *(statistics.median(t) * 1000 for t in (stage_t, svg_t, raster_t))))

    boards = []
    renderer = PrevizRenderer(RenderSettings(width=w, height=h))
    for _ in range(args.repeat):
        a = time.perf_counter()
        frames = list(renderer.render(story, stage_story(story), [s.index for s in story.scenes]))
        boards.append(time.perf_counter() - a)
    assert len(frames) == 8

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"CPU: {cpu_name()} | cores available to this process: {cores} | {w}x{h} | repeat {args.repeat}")
    print(f"import autokose previz modules: {import_s * 1000:.0f} ms (once per process)")
    print()
    print("| scene | shot | setting | time | SVG KiB | stage ms | SVG ms | rasterise ms | frame ms |")
    print("|---:|---|---|---|---:|---:|---:|---:|---:|")
    for index, shot, setting, tod, size, st, sv, ra in rows:
        print(f"| {index} | {shot} | {setting} | {tod} | {size / 1024:.0f} | {st:.2f} | {sv:.1f} | {ra:.1f} | {st + sv + ra:.1f} |")
    total = sum(r[5] + r[6] + r[7] for r in rows)
    print(f"| **sum** | | | | | | | | **{total:.0f}** |")
    print()
    print(f"8-scene board (stage + render + rasterise), median of {args.repeat}: "
          f"{statistics.median(boards):.3f} s (min {min(boards):.3f} s, max {max(boards):.3f} s); target < 2 s")


if __name__ == "__main__":
    main()
