"""Studio service latency on loopback: what the API, the job queue and SSE add to the drawing itself.

    .venv/bin/python benchmarks/bench_service.py [--submits 50] [--boards 5] [--rerenders 10]

Measures, against a real uvicorn server on 127.0.0.1 (one process: API + 2 light workers):
  submit latency       POST /api/boards → 202, on a server without workers (the API and SQLite alone)
  time to first frame  POST /api/boards (previz, 6 scenes, 960×540) → the first `frame` event on its SSE stream
  SSE event delay      when the client reads an event − when the worker wrote it (same clock)
  re-render overhead   POST .../scenes/2/render → the stream's final `status`, minus the job's own run
                       time (finished − started): queueing, claiming, SSE polling and HTTP, no drawing
Prints a markdown table with the CPU, ready for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from hardware import cpu_name  # benchmarks/hardware.py

TOKEN = "bench"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOGLINE = "Aldar Köse tricks the greedy bai out of his fur coat"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn with the Studio app in a thread (as `autokose serve` runs it, minus the process)."""

    def __init__(self, boards: Path, **kwargs):
        import uvicorn

        from autokose.service.api import create_app

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(create_app(boards, TOKEN, **kwargs), host="127.0.0.1",
                                                    port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(60)


def events(client, board: str, after: int = 0):
    """(time read, type, data) for each event of the board's stream after event `after`, until the server ends it."""
    current = {}
    with client.stream("GET", f"/api/boards/{board}/events", params={"after": after}) as response:
        for line in response.iter_lines():
            if not line:
                if "event" in current:
                    yield time.time(), current["event"], {**json.loads(current["data"]), "id": int(current["id"])}
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value


def stats(values: list[float], unit: float = 1000) -> str:
    values = sorted(values)
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))]
    return f"{statistics.median(values) * unit:.1f} | {p95 * unit:.1f} | {max(values) * unit:.1f} | {len(values)}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=50)
    parser.add_argument("--boards", type=int, default=5)
    parser.add_argument("--rerenders", type=int, default=10)
    args = parser.parse_args()
    import httpx

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with Server(Path(tmp) / "idle", start_workers=False) as idle, \
                httpx.Client(base_url=idle.url, headers=AUTH, timeout=60) as client:
            client.get("/api/boards")  # connection and first-request warm-up
            submit = []
            for seed in range(args.submits):
                t0 = time.perf_counter()
                r = client.post("/api/boards", json={"logline": LOGLINE, "scenes": 6, "seed": seed})
                submit.append(time.perf_counter() - t0)
                assert r.status_code == 202, r.text
        rows.append(("submit latency (POST /api/boards → 202, no workers)", stats(submit)))

        with Server(Path(tmp) / "live") as live, httpx.Client(base_url=live.url, headers=AUTH, timeout=120) as client:
            first_frame, delays, boards, last = [], [], [], {}
            for seed in range(args.boards):
                t0 = time.time()
                r = client.post("/api/boards", json={"logline": LOGLINE, "scenes": 6, "seed": seed})
                board = r.json()["id"]
                boards.append(board)
                seen_frame = False
                for at, kind, data in events(client, board):
                    delays.append(at - data["at"])
                    last[board] = data["id"]
                    if kind == "frame" and not seen_frame:
                        first_frame.append(at - t0)
                        seen_frame = True
                assert client.get(f"/api/boards/{board}").json()["status"] == "done"
            rows.append(("time to first frame (previz 960×540, 6 scenes)", stats(first_frame)))

            overhead, run = [], []
            for k in range(args.rerenders):
                board = boards[k % len(boards)]
                t0 = time.time()
                job = client.post(f"/api/boards/{board}/scenes/2/render").json()["job"]
                for at, kind, data in events(client, board, last[board]):
                    delays.append(at - data["at"])
                    last[board] = data["id"]
                    if kind == "status" and data["job"] == job and data["status"] == "done":
                        done_at = at
                info = client.get(f"/api/jobs/{job}").json()
                run.append(info["finished"] - info["started"])
                overhead.append(done_at - t0 - run[-1])
            rows.append(("one-panel re-render: the job's run time (drawing, manifest, exports)", stats(run)))
            rows.append(("one-panel re-render: API overhead (wall − run time)", stats(overhead)))
            rows.append(("SSE event delay (read − written)", stats(delays)))

    print(f"CPU: {cpu_name()} ({os.cpu_count()} logical cores)\n")
    print("| measure | median ms | p95 ms | max ms | n |\n|---|---:|---:|---:|---:|")
    for name, figures in rows:
        print(f"| {name} | {figures} |")


if __name__ == "__main__":
    main()
