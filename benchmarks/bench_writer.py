"""Offline writer speed: logline → Story (reading, casting, captions, prompts, validation).

    .venv/bin/python benchmarks/bench_writer.py [--repeat 20]

Times one `write` call per logline and scene count, after a warm-up call that loads the
lexicon and phrase files (a cold first call is reported separately).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from autokose.bible import builtin_bible
from autokose.writers import get_writer

LOGLINES = {
    "ru": "Алдар Косе держит в руках блестящее «золотое яйцо». Бай наклоняется вперёд, "
          "глаза широко раскрыты от удивления. Слуги Бая переглядываются позади.",
    "kk": "Алдар Көсе Байға «алтын жұмыртқаны» көрсетеді. Бай таңданып, алға еңкейеді.",
    "en": "At night at the bazaar, Aldar Köse sells a greedy merchant a magic kazan.",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    bible = builtin_bible()
    writer = get_writer("offline")
    t0 = time.perf_counter()
    writer.write(LOGLINES["ru"], scenes=8, seed=0, bible=bible)
    print(f"{platform.processor() or platform.machine()}: cold first call {time.perf_counter() - t0:.3f} s")
    print("| logline | scenes | median | max |\n|---|---|---|---|")
    for code, logline in LOGLINES.items():
        for scenes in (8, 24):
            times = []
            for seed in range(args.repeat):
                t0 = time.perf_counter()
                writer.write(logline, scenes=scenes, seed=seed, bible=bible)
                times.append(time.perf_counter() - t0)
            print(f"| {code} | {scenes} | {statistics.median(times) * 1000:.1f} ms | {max(times) * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
