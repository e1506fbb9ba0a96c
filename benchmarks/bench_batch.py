"""Ray's overhead: the same boards through the plain local loop and through Ray, side by side.

    .venv/bin/python benchmarks/bench_batch.py [--sets previz,tiny] [--boards 12] [--scenes 8]
        [--workers 1,2] [--repeat 3] [--gpus-per-worker 0] [--model PATH] [--out bench_batch.json]

Sets: `previz` (the previz renderer, default exports) and `tiny` (a tiny random-weight SD 1.5
built by tests/tiny.py, 128x128, 4 steps, the default exports; or `--model` for a real one on a
GPU). Each repeat draws every board from scratch into a new folder:
- `local`: `run_batch` with `LocalPool` (the command without --ray);
- `ray N`: `run_batch` with `RayPool(workers=N)` on a new local Ray instance each repeat.
`startup s` is making the pool: the worker's imports (torch, diffusers) for local, which this process
pays once, on its first repeat; starting Ray and its actors (their imports included) for ray, every
repeat. `run s` is drawing the jobs. `overhead` is ray's run time against local's at the same
repeat, as a percentage; `total overhead` compares startup + run. Medians over repeats.
`--cli` also times the whole command, `autokose batch` against `autokose batch --ray local --workers N`,
each a new process (imports, Ray's start and stop, drawing): what a user waits for.
Run it with OMP_NUM_THREADS=1 for a fair comparison: Ray sets it to the actor's CPUs (1), and
NumPy/OpenCV in this process would otherwise use every core.
"""

from __future__ import annotations

import argparse
import json
import platform
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from autokose.batch import LocalPool, RayPool, load_jobs, run_batch

from hardware import cpu_name  # benchmarks/hardware.py

LOGLINES = ["Алдар Косе продаёт баю «золотое яйцо»", "Aldar Köse tricks the greedy bai with a magic fur coat",
            "Алдар Косе и ленивый бай делят урожай", "Aldar Köse sells the bai a pot that cooks by itself"]


def jobs_file(folder: Path, kind: str, boards: int, scenes: int, model: str | None) -> Path:
    extra = {}
    if kind == "tiny":
        if model is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
            import tiny

            model = str(tiny.tiny_sd15(folder / "models"))
        extra = {"model": model, "steps": 4, "width": 128, "height": 128}
    elif kind == "model":
        extra = {"model": model}
    lines = [json.dumps({"name": f"{kind}{i:02d}", "logline": LOGLINES[i % len(LOGLINES)], "seed": i, "scenes": scenes,
                         **extra}, ensure_ascii=False) for i in range(boards)]
    path = folder / f"{kind}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def timed_run(jobs, out: Path, pool, repeat: int) -> float:
    """One run of every job; repeats after the first draw them again (`force`) into the same folder."""
    t0 = time.perf_counter()
    outcomes = run_batch(jobs, out, pool, force=repeat > 0)
    seconds = time.perf_counter() - t0
    assert all(o.status == "done" for o in outcomes), [(o.job, o.error) for o in outcomes if o.status != "done"]
    return seconds


def cli_rows(kind: str, path: Path, args, root: Path) -> list[dict]:
    """The whole command, each run a new process; repeats after the first draw again (--force)."""
    autokose = Path(sys.executable).with_name("autokose")
    rows, local = [], []
    for runner in ["local", *(f"ray {w}" for w in args.workers)]:
        out = root / f"{kind}-cli-{runner.replace(' ', '')}"
        extra = [] if runner == "local" else ["--ray", "local", "--workers", runner.split()[1]]
        times = []
        for r in range(args.repeat):
            t0 = time.perf_counter()
            subprocess.run([str(autokose), "batch", str(path), "--out", str(out), *extra, *(["--force"] if r else [])],
                           check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            times.append(time.perf_counter() - t0)
        if runner == "local":
            local = times
        rows.append({"set": kind, "runner": f"cli {runner}", "run s": statistics.median(times), "startup s": 0.0,
                     "total s": statistics.median(times), "overhead %": 0.0,
                     "total overhead %": statistics.median((a - b) / b * 100 for a, b in zip(times, local))})
    return rows


def bench_set(kind: str, args, root: Path) -> list[dict]:
    path = jobs_file(root, kind, args.boards, args.scenes, args.model)
    jobs = load_jobs(path)
    rows = []
    local, local_total = [], []
    out = root / f"{kind}-local"
    for r in range(args.repeat):
        t0 = time.perf_counter()
        pool = LocalPool(out, jobs)  # a new worker each repeat: the local command loads its model every time
        startup = time.perf_counter() - t0
        local.append(timed_run(jobs, out, pool, r))
        local_total.append(local[-1] + startup)
        pool.close()
    rows.append({"set": kind, "runner": "local", "run s": statistics.median(local),
                 "startup s": statistics.median(t - s for t, s in zip(local_total, local)),
                 "total s": statistics.median(local_total), "overhead %": 0.0, "total overhead %": 0.0})
    for workers in args.workers:
        out = root / f"{kind}-ray{workers}"
        runs, totals = [], []
        for r in range(args.repeat):  # a new instance each repeat, like a new `autokose batch --ray local`
            t0 = time.perf_counter()
            pool = RayPool(out, jobs, address="local", workers=workers, gpus_per_worker=args.gpus_per_worker)
            startup = time.perf_counter() - t0
            runs.append(timed_run(jobs, out, pool, r))
            totals.append(runs[-1] + startup)
            pool.close()
        rows.append({"set": kind, "runner": f"ray {workers}", "run s": statistics.median(runs),
                     "startup s": statistics.median(t - s for t, s in zip(totals, runs)),
                     "total s": statistics.median(totals),
                     "overhead %": statistics.median((a - b) / b * 100 for a, b in zip(runs, local)),
                     "total overhead %": statistics.median((a - b) / b * 100 for a, b in zip(totals, local_total))})
    return rows + (cli_rows(kind, path, args, root) if args.cli else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="previz,tiny")
    parser.add_argument("--boards", type=int, default=12)
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--gpus-per-worker", type=float, default=None)
    parser.add_argument("--model", default=None, help="A real model for the `model` set (GPU).")
    parser.add_argument("--cli", action="store_true", help="Also time whole `autokose batch` commands.")
    parser.add_argument("--out", type=Path, default=Path("bench_batch.json"))
    args = parser.parse_args()
    args.workers = [int(w) for w in args.workers.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.sets.split(","):
            rows += bench_set(kind, args, Path(tmp))
    print(f"{args.boards} boards x {args.scenes} scenes, median of {args.repeat}; {cpu_name()}, "
          f"Python {platform.python_version()}")
    print(f"{'set':<8}{'runner':<9}{'startup s':>10}{'run s':>8}{'total s':>9}{'overhead %':>12}"
          f"{'total overhead %':>18}")
    for row in rows:
        print(f"{row['set']:<8}{row['runner']:<9}{row['startup s']:>10.2f}{row['run s']:>8.2f}{row['total s']:>9.2f}"
              f"{row['overhead %']:>12.1f}{row['total overhead %']:>18.1f}")
    args.out.write_text(json.dumps({"cpu": cpu_name(), "boards": args.boards, "scenes": args.scenes, "rows": rows},
                                   indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()
