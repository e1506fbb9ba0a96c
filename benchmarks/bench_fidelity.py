"""Logline fidelity: does the offline board tell the logline's story? (issue 10, "Measure")

For each logline (ru/kk/en, with animals, props and names): the offline writer's story, then a
small previz board. Measured per logline:

  named      the elements the logline names (writers.fidelity.logline_elements)
  in story   share of them story.json uses (not in writers.fidelity.missing_elements)
  drawn      share of them drawn in at least one frame: a figure or prop group in frames' SVG
             with that `data-character` / `data-kind` / `data-prop`, or a scene set there
  staging    staging-rule violations over the board (staging_rules.check_layout)
  repeats    caption sentences said a second time inside the board

Goals: 100% in story, 100% drawn, 0 violations, 0 repeats. Then the CPU time of an 8-scene
previz board at the default frame size (goal < 2 s). Run:

    .venv/bin/python benchmarks/bench_fidelity.py [--size 128x72] [--json boards/bench_fidelity.json]

Prints a markdown table (ready for docs/BENCHMARKS.md) and writes the per-logline JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from hardware import cpu_name  # benchmarks/hardware.py

# (language, logline): animals, props, places and custom names, in several grammatical cases.
# The writers' own list (tests/test_fidelity.py) is added to these when it is there.
LOGLINES = [
    ("ru", "Алдар Косе продаёт баю волшебную шубу на базаре."),
    ("ru", "Жантык и Улпан ведут верблюда через степь, а Алдар Косе хочет их обхитрить."),
    ("ru", "Алдар Косе на ослике встречает волка у реки и обманывает его."),
    ("ru", "Бай гонится за Алдаром Косе верхом на коне, но теряет свою камчу."),
    ("ru", "Алдар Косе меняет дырявый чапан на богатую шубу жадного бая."),
    ("ru", "Жадный купец покупает у Алдара Косе казан, который якобы варит сам."),
    ("ru", "Алдар Косе выменивает у бая барана за золотое яйцо."),
    ("ru", "Старуха с козой просит Алдара Косе спасти её от волка в горах."),
    ("ru", "Беркут уносит кошелёк бая, и Алдар Косе обещает его вернуть."),
    ("ru", "Собака бая лает на Алдара Косе у юрты, а он угощает её лепёшкой."),
    ("ru", "Мулла и бай спорят о кошельке с серебром на дороге."),
    ("kk", "Алдар Көсе қасқыр мен түйені алдап кетеді."),
    ("kk", "Алдар Көсе сараң байға сиқырлы тон сатады."),
    ("kk", "Алдар Көсе есегімен базарға барып, байдың әмиянын ұтып алады."),
    ("kk", "Бай Алдар Көсенің қамшысын сатып алмақ болады."),
    ("kk", "Алдар Көсе қошқарды жетелеп ауылға келеді."),
    ("kk", "Алдар Көсе бүркітті көріп, байды алдайды."),
    ("kk", "Алдар Көсе өзеннің жағасында итпен кездеседі."),
    ("kk", "Алдар Көсе ешкісін сатып, қазан сатып алады."),
    ("kk", "Жантық пен Ұлпан Алдар Көсені тауда кездестіреді."),
    ("en", "Aldar sells the Bai a magic shuba at the bazaar."),
    ("en", "Aldar Kose rides his donkey past a hungry wolf."),
    ("en", "A greedy merchant buys a camel from Aldar Kose at the market."),
    ("en", "Aldar Kose trades a patched chapan for the Bai's fur coat."),
    ("en", "The Bai's dog guards a golden egg in the courtyard."),
    ("en", "Aldar Kose and Zhantyk steal the Bai's purse in the mountains."),
    ("en", "An eagle steals the mullah's whip by the river."),
    ("en", "Aldar Kose sells the Bai a cauldron that cooks by itself."),
    ("en", "Aldar Kose herds a ram and a goat across the steppe at dusk."),
    ("en", "Ulpan rides a horse to the aul to warn Aldar Kose about the Bai."),
    ("en", "Aldar Kose tricks the Bai into trading his horse for a tymak."),
    ("ru", "Алдар Косе и Жантык продают баю верблюда и уходят с кошельком."),
]
SENTENCE = re.compile(r"(?<=[.!?…])\s+")
TESTS = Path(__file__).resolve().parents[1] / "tests"


def loglines() -> list[tuple[str, str]]:
    """Ours, then those of the writers' fidelity test (tests/test_fidelity.py) that are new: one
    measure over every logline anyone wrote down."""
    import importlib.util

    from autokose.language import detect_language

    found = list(LOGLINES)
    spec = importlib.util.spec_from_file_location("test_fidelity", TESTS / "test_fidelity.py")
    try:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        theirs = list(module.LOGLINES)
    except (FileNotFoundError, ImportError, AttributeError):
        return found
    seen = {text for _, text in found}
    return found + [(detect_language(text).value, text) for text in theirs if text not in seen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="128x72", help="Frame size of the fidelity boards, WxH.")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=Path("boards/bench_fidelity.json"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))

    from autokose.bible import load_bible
    from autokose.render import RenderSettings
    from autokose.render.previz import PrevizRenderer
    from autokose.staging import stage_story
    from autokose.writers import get_writer

    fidelity, check_layout = _fidelity_module(), _staging_rules()
    bible = load_bible(None)
    writer = get_writer("offline")
    renderer = PrevizRenderer(RenderSettings(width=width, height=height))
    rows = []
    for n, (lang, logline) in enumerate(loglines(), 1):
        story = writer.write(logline, scenes=args.scenes, seed=args.seed, bible=bible)
        layouts = stage_story(story, width / height)
        frames = list(renderer.render(story, layouts, [s.index for s in story.scenes]))
        drawn = [_drawn_groups(frame.svg or "") for frame in frames]
        row = {"n": n, "language": lang, "logline": logline, "title": story.title,
               "repeated_sentences": repeated_sentences(story)}
        if fidelity is not None:
            elements = fidelity.logline_elements(logline, bible)
            missing = {(e.kind, e.key) for e in fidelity.missing_elements(story, logline, bible)}
            row["elements"] = [{"kind": e.kind, "key": e.key, "in_story": (e.kind, e.key) not in missing,
                                "drawn": is_drawn(e, story, drawn)} for e in elements]
        if check_layout is not None:
            violations = [v for i, (lay, scene) in enumerate(zip(layouts, story.scenes))
                          for v in check_layout(lay, scene, layouts[i - 1] if i else None)]
            row["staging_violations"] = [str(v) for v in violations]
        rows.append(row)

    board_cpu_s = eight_scene_board_cpu()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"cpu": cpu_name(), "size": [width, height], "seed": args.seed,
                                     "eight_scene_board_cpu_s": board_cpu_s, "loglines": rows},
                                    ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print_table(rows, width, height, args.seed, board_cpu_s, fidelity is not None, check_layout is not None)
    print(f"\nper-logline JSON: {args.json}")


def _fidelity_module():
    try:
        from autokose.writers import fidelity
    except ModuleNotFoundError:
        return None
    return fidelity


def _staging_rules():
    try:
        from autokose.staging_rules import check_layout
    except ModuleNotFoundError:
        return None
    return check_layout


def _drawn_groups(svg: str) -> dict[str, set[str]]:
    """The figures and props a frame draws, by the kit's data attributes."""
    found: dict[str, set[str]] = {"character": set(), "kind": set(), "prop": set()}
    if not svg:
        return found
    for el in ET.fromstring(svg).iter():
        for attr, key in (("data-character", "character"), ("data-kind", "kind"), ("data-prop", "prop")):
            if el.get(attr):
                found[key].add(el.get(attr))
    return found


def is_drawn(element, story, drawn: list[dict[str, set[str]]]) -> bool:
    """True when some frame shows the element: its character or kind, its prop, or its setting."""
    from autokose.vocabulary import resolve_setting

    if element.kind == "place":
        return any(resolve_setting(scene.setting) == element.key for scene in story.scenes)
    if element.kind == "prop":
        return any(element.key in frame["prop"] for frame in drawn)
    key = str(element.key).lower()
    ids = {c.id for c in story.characters
           if key in {c.id.lower(), c.kind.lower(), c.name.lower(), *(v.lower() for v in c.names.values())}}
    return any(ids & frame["character"] or (element.kind == "animal" and element.key in frame["kind"])
               for frame in drawn)


def repeated_sentences(story) -> int:
    """Caption sentences said again inside one board (each repeat counts once)."""
    said = Counter(s.strip().lower() for scene in story.scenes for s in SENTENCE.split(scene.caption) if s.strip())
    return sum(count - 1 for count in said.values())


def eight_scene_board_cpu() -> float:
    """CPU seconds (this process) of writing, staging and drawing an 8-scene previz board at the
    default frame size, median of 3, after one warm-up run (imports and caches)."""
    from autokose.bible import load_bible
    from autokose.render import RenderSettings
    from autokose.render.previz import PrevizRenderer
    from autokose.staging import stage_story
    from autokose.writers import get_writer

    logline = LOGLINES[0][1]
    settings = RenderSettings()
    times = []
    for _ in range(4):
        t0 = time.process_time()
        story = get_writer("offline").write(logline, scenes=8, seed=0, bible=load_bible(None))
        layouts = stage_story(story, settings.width / settings.height)
        frames = list(PrevizRenderer(settings).render(story, layouts, [s.index for s in story.scenes]))
        assert len(frames) == 8
        times.append(time.process_time() - t0)
    return round(sorted(times[1:])[1], 3)


def print_table(rows, width, height, seed, board_cpu_s, measured_fidelity, measured_staging) -> None:
    def share(values) -> str:
        return f"{100 * sum(values) / len(values):.0f}%" if values else "–"

    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores) | frames {width}x{height} | offline writer, seed {seed}")
    print()
    print("| language | loglines | named elements | in story.json | drawn in ≥ 1 frame | staging violations per board "
          "| repeated sentences |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for lang in sorted({r["language"] for r in rows}, key=["ru", "kk", "en"].index):
        some = [r for r in rows if r["language"] == lang]
        elements = [e for r in some for e in r.get("elements") or []]
        staged = [len(r["staging_violations"]) for r in some if "staging_violations" in r]
        print(f"| {lang} | {len(some)} | {len(elements) if measured_fidelity else '–'} | "
              f"{share([e['in_story'] for e in elements]) if measured_fidelity else 'not measured'} | "
              f"{share([e['drawn'] for e in elements]) if measured_fidelity else 'not measured'} | "
              f"{f'{sum(staged) / len(staged):.2f}' if measured_staging else 'not measured'} | "
              f"{sum(r['repeated_sentences'] for r in some)} |")
    print()
    print("| # | lang | logline | named | in story.json | drawn | staging violations | repeated sentences |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    all_elements, violations = [], 0
    for row in rows:
        elements = row.get("elements")
        all_elements += elements or []
        named = str(len(elements)) if elements is not None else "not measured"
        in_story = share([e["in_story"] for e in elements]) if elements is not None else "not measured"
        drawn = share([e["drawn"] for e in elements]) if elements is not None else "not measured"
        staged = row.get("staging_violations")
        violations += len(staged or [])
        staging = str(len(staged)) if staged is not None else "not measured"
        text = row["logline"] if len(row["logline"]) <= 48 else row["logline"][:47] + "…"
        print(f"| {row['n']} | {row['language']} | {text} | {named} | {in_story} | {drawn} | {staging} | "
              f"{row['repeated_sentences']} |")
    repeats = sum(r["repeated_sentences"] for r in rows)
    total_in = share([e["in_story"] for e in all_elements]) if measured_fidelity else "not measured"
    total_drawn = share([e["drawn"] for e in all_elements]) if measured_fidelity else "not measured"
    total_staging = f"{violations / len(rows):.2f} per board" if measured_staging else "not measured"
    print(f"| **all** | | {len(rows)} loglines | {len(all_elements) if measured_fidelity else '–'} | **{total_in}** | "
          f"**{total_drawn}** | **{total_staging}** | **{repeats}** |")
    print()
    print(f"8-scene previz board (write + stage + draw + rasterise, default size), CPU time: {board_cpu_s:.3f} s; "
          f"goal < 2 s")


if __name__ == "__main__":
    main()
