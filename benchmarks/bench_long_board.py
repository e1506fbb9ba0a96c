"""How previz + export time grows with the board: 8, 24, 100 and 300 scenes at 960×540.

    .venv/bin/python benchmarks/bench_long_board.py [--scenes 8,24,100,300] [--size 960x540]
                                                   [--out bench_long_board.json]

Each board is a full run of the pipeline (stages write,cast,stage,render,export; offline writer,
previz renderer, html + pdf + sheet) into a fresh folder, the way `autokose story "..." --scenes N`
runs it. Per-stage seconds are read from the board's manifest.json `timings` (what the pipeline
itself measured; "control" is the OpenPose files the stage stage writes), and the export is
timed once more per format to say where its time goes. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from autokose.config import RunConfig
from autokose.export import export_board
from autokose.pipeline import run
from autokose.render import RenderSettings

from hardware import cpu_name  # benchmarks/hardware.py

LOGLINE = "Алдар Косе продаёт жадному баю «золотое яйцо», которое якобы несёт золото."
STAGES = ["write", "cast", "stage", "render", "export"]
COLUMNS = ("write", "cast", "stage", "control", "render", "export")


def measure(scenes: int, width: int, height: int, root: Path) -> dict:
    out = root / f"board-{scenes}"
    cfg = RunConfig(logline=LOGLINE, scenes=scenes, stages=STAGES,
                    render=RenderSettings(width=width, height=height))
    t0 = time.perf_counter()
    board = run(cfg, out)
    wall = time.perf_counter() - t0
    timings = json.loads(board.manifest_path.read_text())["timings"]
    story = board.load_story()
    per_format = {}
    for fmt in ("html", "pdf", "sheet"):
        t = time.perf_counter()
        export_board(board, story, [fmt])
        per_format[fmt] = round(time.perf_counter() - t, 3)
    sizes = {name: round(path.stat().st_size / 1e6, 2)
             for name, path in (("html", board.html_path), ("pdf", board.pdf_path), ("sheet", board.sheet_path))}
    from PIL import Image

    with Image.open(board.sheet_path) as im:
        sheet_px = list(im.size)
    frames_mb = sum(p.stat().st_size for p in (board.root / "frames").glob("*.png")) / 1e6
    return {"scenes": scenes, "wall_s": round(wall, 3), "timings": timings, "export_by_format_s": per_format,
            "sizes_mb": sizes, "sheet_px": sheet_px, "frames_png_mb": round(frames_mb, 2),
            "render_ms_per_frame": round(1000 * timings.get("render", 0) / scenes, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", default="8,24,100,300", help="comma-separated board lengths")
    parser.add_argument("--size", default="960x540")
    parser.add_argument("--out", type=Path, default=Path("bench_long_board.json"), help="where to write the results")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    counts = [int(n) for n in args.scenes.split(",")]
    results = []
    print(f"{cpu_name()}, {os.cpu_count()} CPU(s); previz {width}x{height}; seconds per stage from manifest.json")
    head = f"{'scenes':>6} " + " ".join(f"{c:>8}" for c in COLUMNS) + f" {'wall':>8} {'ms/frame':>8}" \
           f" {'html s/MB':>11} {'pdf s/MB':>11} {'sheet s/MB':>11} {'sheet px':>11}"
    print(head)
    with tempfile.TemporaryDirectory() as tmp:
        for n in counts:
            r = measure(n, width, height, Path(tmp))
            results.append(r)
            t, f, s = r["timings"], r["export_by_format_s"], r["sizes_mb"]
            print(f"{n:>6} " + " ".join(f"{t.get(c, 0):>8.2f}" for c in COLUMNS)
                  + f" {r['wall_s']:>8.2f} {r['render_ms_per_frame']:>8.1f}"
                  + "".join(f" {f[k]:>5.2f}/{s[k]:<5.1f}" for k in ("html", "pdf", "sheet"))
                  + f" {'x'.join(map(str, r['sheet_px'])):>11}", flush=True)
    data = {"cpu": cpu_name(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "size": [width, height], "results": results}
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
