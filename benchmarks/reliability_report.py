"""Run the hostile-input cases of tests/test_hostile.py and print docs/RELIABILITY.md's table.

    .venv/bin/python benchmarks/reliability_report.py            # every case (tiny models, training: minutes)
    .venv/bin/python benchmarks/reliability_report.py --fast     # without the cases that need models
    .venv/bin/python benchmarks/reliability_report.py --heavy    # only those
    .venv/bin/python benchmarks/reliability_report.py --only markup,numbers --failures

Prints a markdown table (tried / clean refusals / clean boards / failures per category), then one
line per failure (case id and what happened). Per-case wall times go to --times FILE if given.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from hostile.cases import CASES  # noqa: E402
from hostile.harness import Env, execute  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="skip cases that need the tiny models or training")
    parser.add_argument("--heavy", action="store_true", help="only the cases that need the tiny models or training")
    parser.add_argument("--only", help="comma-separated category prefixes or case-id prefixes")
    parser.add_argument("--failures", action="store_true", help="list failures only (no table)")
    parser.add_argument("--times", type=Path, help="write 'seconds case-id' lines here")
    args = parser.parse_args()

    cases = [c for c in CASES if not (args.fast and c.heavy) and not (args.heavy and not c.heavy)]
    if args.only:
        prefixes = tuple(p.strip() for p in args.only.split(","))
        cases = [c for c in cases if c.id.startswith(prefixes) or c.category.startswith(prefixes)]
    env = Env(Path(tempfile.mkdtemp(prefix="autokose-hostile-")))
    tally: dict[str, Counter] = {}
    failures, times = [], []
    t_all = time.monotonic()
    for case in cases:
        t0 = time.monotonic()
        verdict, detail = execute(case, env)
        times.append((time.monotonic() - t0, case.id))
        tally.setdefault(case.category, Counter())[verdict] += 1
        if verdict == "FAIL":
            failures.append(f"{case.id}: {detail}")
            print(f"FAIL {case.id}: {detail}", file=sys.stderr, flush=True)
    seconds = time.monotonic() - t_all
    if args.times:
        args.times.write_text("".join(f"{t:7.2f} {i}\n" for t, i in sorted(times, reverse=True)))
    if not args.failures:
        print(table(tally))
        print(f"\n{len(cases)} cases in {seconds:.0f} s on {hardware()}.")
    print("\nFailures:" if failures else "\nNo failures.")
    for line in failures:
        print(f"- {line}")


def table(tally: dict[str, Counter]) -> str:
    rows = ["| category | tried | clean: error, exit 2 | clean: valid result, exit 0 | failures |",
            "|---|---:|---:|---:|---:|"]
    total = Counter()
    for category, counts in tally.items():
        total.update(counts)
        rows.append(_row(category, counts))
    rows.append(_row("**all**", total))
    return "\n".join(rows)


def _row(name: str, c: Counter) -> str:
    return f"| {name} | {sum(c.values())} | {c['error']} | {c['ok']} | {c['FAIL']} |"


def hardware() -> str:
    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}"


if __name__ == "__main__":
    main()
