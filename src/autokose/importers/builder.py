"""Entries → boards: the part every import format shares.

Each format module reads its file into `Entry` objects (one prompt each, with the line it came
from); `build_boards` turns them into checked Story objects in memory, and `write_boards`
writes them, only after every board of the file was built and every target folder checked, so
a bad line leaves nothing behind.

Why these defaults (outside prompts are not Aldar tales):
- the prompt is the scene's prompt as written (`--style` words go before it), so the renderer
  draws exactly it (`prompting.build_prompt`);
- a neutral negative prompt is written into every scene: a blank one would mean the built-in
  Aldar negative ("modern clothing", beards);
- every frame gets its own seed, derived from `--seed`, the concept and the frame's place in it
  (`frame_seeds`), so frames never share seed 0 (which inflates any consistency score) and a
  concept added to the file leaves the other concepts' seeds as they were;
- no characters are cast: staging places no puppet and no pose skeleton; the subject of a
  ConsiStory+ concept is recorded in `extra.source`, not drawn as a figure.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from autokose.errors import InputError, format_validation_error
from autokose.story import MAX_CAPTION_CHARS, MAX_LOGLINE_CHARS, MAX_PROMPT_CHARS, MAX_SCENES, SURROGATE, Scene, Story

# Generic defects only: the built-in negative (vocabulary.yaml `prompt.negative`) adds "modern
# clothing", and the Aldar one beards; neither belongs in someone else's prompt set.
NEUTRAL_NEGATIVE = ("blurry, lowres, jpeg artifacts, deformed, bad anatomy, extra limbs, extra fingers, "
                    "fused fingers, malformed hands, text, watermark, signature, logo")
SEED_SPACE = 2**32

# Column (CSV/TSV header, JSONL key) → scene field. Names are compared lower-case with spaces and
# hyphens read as underscores. The first of PROMPT_COLUMNS present is the prompt; GROUP_COLUMNS
# name the board a row belongs to (the first present wins). Other columns are kept in the
# scene's `extra.source.columns`, never dropped.
PROMPT_COLUMNS = ("prompt", "description", "caption", "text")
GROUP_COLUMNS = ("board", "concept", "group", "subject")
FIELD_COLUMNS = {
    "caption": "caption", "action": "action", "dialogue": "dialogue", "notes": "notes",
    "shot": "shot", "shot_size": "shot", "angle": "angle",
    "setting": "setting", "location": "setting", "place": "setting",
    "time": "time", "time_of_day": "time",
    "negative": "negative_prompt", "negative_prompt": "negative_prompt",
    "seed": "seed", "duration": "duration",
}
# Shot-list words for a shot size or a time of day, beside the schema's own names.
SHOT_WORDS = {"ews": "establishing", "els": "establishing", "extreme_wide": "establishing", "ws": "wide",
              "ls": "wide", "long": "wide", "full": "wide", "ms": "medium", "mid": "medium", "cu": "close_up",
              "closeup": "close_up", "ecu": "close_up", "extreme_close_up": "close_up", "ots": "over_the_shoulder",
              "ins": "insert"}
TIME_WORDS = {"morning": "dawn", "sunrise": "dawn", "noon": "day", "afternoon": "day", "daytime": "day",
              "evening": "dusk", "sunset": "dusk", "twilight": "dusk", "midnight": "night"}


@dataclass(frozen=True)
class Entry:
    """One prompt read from a file, before it is a scene.

    `concept`: the board it belongs to ("" = one board named after the file). `fields`: scene
    fields the file gave (shot, setting, seed, ...), as read. `columns`: the file's other
    columns, kept in the scene's extra. `subject`: what the file says of the whole concept
    (ConsiStory+: domain, id, style, subject, concept_token), kept in the story's extra.
    """

    prompt: str
    line: int
    concept: str = ""
    fields: dict = field(default_factory=dict)
    columns: dict = field(default_factory=dict)
    subject: dict = field(default_factory=dict)
    row: int | None = None  # CSV/TSV: the data row (the header is row 0)


@dataclass(frozen=True)
class Options:
    """What the command line sets for every board of one import."""

    seed: int = 0
    scenes_per_board: int = MAX_SCENES
    style: str = ""  # words put before every prompt ("" = prompts as written)
    negative: str = NEUTRAL_NEGATIVE  # for scenes whose row gives none


@dataclass(frozen=True)
class Imported:
    """A board to write: its folder name and its story."""

    name: str
    story: Story


def column_key(name: str) -> str:
    """A header or key as FIELD_COLUMNS spells it: "Time of Day" → time_of_day."""
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def entry_from_mapping(values: dict, line: int, where: str, row: int | None = None) -> Entry:
    """A CSV row or JSONL object as an Entry: the prompt column, the group column, scene fields, the rest.

    `values` maps header names (as written) to cell values; empty cells count as absent.
    """
    given = {column_key(k): (k, v) for k, v in values.items() if v is not None and str(v).strip() != ""}
    prompt_key = next((k for k in PROMPT_COLUMNS if k in given), None)
    if prompt_key is None:
        raise InputError(f"{where}: no prompt (give a {', '.join(PROMPT_COLUMNS[:-1])} or "
                         f"{PROMPT_COLUMNS[-1]} value)")
    group_key = next((k for k in GROUP_COLUMNS if k in given), None)
    fields, columns = {}, {}
    for key, (name, value) in given.items():
        if key in (prompt_key, group_key):
            continue
        if key in FIELD_COLUMNS and FIELD_COLUMNS[key] not in fields:
            fields[FIELD_COLUMNS[key]] = value
        else:
            columns[str(name)] = value
    concept = str(given[group_key][1]).strip() if group_key else ""
    return Entry(str(given[prompt_key][1]), line, concept, fields, columns, row=row)


def check_prompt(text: str, where: str) -> str:
    """The prompt stripped, or an InputError naming `where` (file:line) for one no model can read."""
    if SURROGATE.search(text):
        raise InputError(f"{where}: not valid Unicode (a lone surrogate)")
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in text):
        raise InputError(f"{where}: contains control characters (NUL or other binary data)")
    text = text.strip()
    if not text:
        raise InputError(f"{where}: the prompt is empty")
    return text


def build_boards(entries: list[Entry], source: Path, fmt: str, options: Options) -> list[Imported]:
    """Every board of one file, checked: concepts in the order they first appear, each cut into
    boards of at most `options.scenes_per_board` scenes. Raises InputError naming file:line."""
    if not entries:
        raise InputError(f"{source}: no prompts in it")
    style = options.style.strip()
    prompts = [check_prompt((f"{style}, " if style else "") + e.prompt, f"{source}:{e.line}") for e in entries]
    for e, prompt in zip(entries, prompts):
        if len(prompt) > MAX_PROMPT_CHARS:
            raise InputError(f"{source}:{e.line}: the prompt is {len(prompt)} characters; the limit is "
                             f"{MAX_PROMPT_CHARS}")
    groups: dict[str, list[int]] = {}
    for n, e in enumerate(entries):
        groups.setdefault(e.concept, []).append(n)
    seeds = frame_seeds(entries, options.seed, source)
    boards, names = [], set()
    for concept, members in groups.items():
        base = unique_name(board_name(concept or source.stem), names)
        parts = [members[i:i + options.scenes_per_board] for i in range(0, len(members), options.scenes_per_board)]
        for k, part in enumerate(parts, 1):
            name = base if len(parts) == 1 else unique_name(f"{base}-{k:02d}", names)
            names.add(name)
            scenes = [_scene(entries[n], prompts[n], seeds[n], i, source, options) for i, n in enumerate(part, 1)]
            story = _story(concept or source.stem, entries[part[0]], scenes, source, fmt, options, (k, len(parts)))
            boards.append(Imported(name, story))
    return boards


def _scene(entry: Entry, prompt: str, seed: int, index: int, source: Path, options: Options) -> Scene:
    """Scene `index` of its board: `prompt` (checked, with --style) as written, the caption the file's
    (else its prompt), its own negative (else the import's), the file's fields, `extra.source`."""
    where = f"{source}:{entry.line}"
    fields = {"setting": "", **{k: v for k, v in entry.fields.items() if k != "seed"}}  # "": not given, not steppe
    for key, words in (("shot", SHOT_WORDS), ("time", TIME_WORDS), ("angle", {})):
        if key in fields:
            value = column_key(fields[key])
            fields[key] = words.get(value, value)
    caption = str(fields.pop("caption", "") or "").strip() or _cut(entry.prompt.strip(), MAX_CAPTION_CHARS)
    negative = str(fields.pop("negative_prompt", "") or "").strip() or options.negative
    found = {"line": entry.line}
    if entry.row is not None:
        found["row"] = entry.row
    if entry.columns:
        found["columns"] = {k: v if isinstance(v, (int, float, bool)) else str(v) for k, v in entry.columns.items()}
    try:
        return Scene(index=index, prompt=prompt, caption=caption, negative_prompt=negative, seed=seed,
                     extra={"source": found}, **fields)
    except ValidationError as e:
        raise InputError(f"{where}: {format_validation_error(e)}") from None


def _story(concept: str, first: Entry, scenes: list[Scene], source: Path, fmt: str, options: Options,
           part: tuple[int, int]) -> Story:
    """The board's story; `extra.source` says where it came from (file, format, concept, first and last line)."""
    found = {"file": source.name, "format": fmt, "concept": concept,
             "lines": [scenes[0].extra["source"]["line"], scenes[-1].extra["source"]["line"]]}
    if part[1] > 1:
        found["part"] = list(part)
    if first.subject:
        found.update(first.subject)
    found["seed"] = options.seed
    title = concept + (f" ({part[0]}/{part[1]})" if part[1] > 1 else "")
    logline = first.subject.get("id_prompt") or f"{len(scenes)} prompts imported from {source.name}"
    try:
        return Story(title=title, logline=_cut(logline, MAX_LOGLINE_CHARS), style=options.style.strip(),
                     characters=[], scenes=scenes, extra={"source": found})
    except ValidationError as e:
        raise InputError(f"{source}:{first.line}: {format_validation_error(e)}") from None


def frame_seeds(entries: list[Entry], seed: int, source: Path) -> list[int]:
    """One seed per entry: its own (a seed column), else one derived from `seed`, the concept and the
    frame's number in it (sha256, so stable across runs and machines). Derived seeds never repeat a
    seed of this file: a clash moves to the next free number."""
    given = [None if e.fields.get("seed") is None else _seed_value(e.fields["seed"], f"{source}:{e.line}")
             for e in entries]
    taken = {s for s in given if s is not None}
    counts: dict[str, int] = {}
    out = []
    for e, own in zip(entries, given):
        k = counts[e.concept] = counts.get(e.concept, 0) + 1
        if own is not None:
            out.append(own)
            continue
        digest = hashlib.sha256(f"{seed}\0{e.concept}\0{k}".encode("utf-8")).digest()
        derived = int.from_bytes(digest[:4], "big")
        while derived in taken:
            derived = (derived + 1) % SEED_SPACE
        taken.add(derived)
        out.append(derived)
    return out


def _seed_value(value, where: str) -> int:
    text = str(value).strip()
    if isinstance(value, bool) or not re.fullmatch(r"\d+(\.0+)?", text) or int(float(text)) >= SEED_SPACE:
        raise InputError(f"{where}: seed {value!r} is not a whole number from 0 to {SEED_SPACE - 1}")
    return int(float(text))


def board_name(text: str) -> str:
    """A board folder name from data (a concept, a file name), made as `autokose batch` makes a job's
    name, cut to leave room for a "-01-2" suffix within the 64 characters a name may have."""
    from autokose.batch.jobs import NAME, slug

    name = slug(text)[:56].strip("-_")
    return name if NAME.match(name) else "board"


def unique_name(name: str, taken: Iterable[str]) -> str:
    """`name`, or `name-2`, `name-3`, ... when a board of this import already has it."""
    taken = set(taken)
    if name not in taken:
        return name
    n = 2
    while f"{name}-{n}" in taken:
        n += 1
    return f"{name}-{n}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def write_boards(boards: list[Imported], out: Path, *, force: bool = False) -> list[Path]:
    """Write each board's story.json (atomically, through `Board`) into OUT/NAME/.

    Every target is checked first: a folder that is not empty is refused unless `force`, which
    deletes that board's files (frames, scores, exports: `Board.clear`) before the new story.
    """
    from autokose.board import Board
    from autokose.fsio import ensure_writable_dir

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder")
    for b in boards:
        target = out / b.name
        if target.exists() and not target.is_dir():
            raise InputError(f"{target}: exists and is not a folder (move it away)")
        if target.is_dir() and any(target.iterdir()) and not force:
            raise InputError(f"{target}: folder is not empty (use --force to replace its board)")
    ensure_writable_dir(out, "--out")
    written = []
    for b in boards:
        board = Board(out / b.name)
        with board.claim(fresh=not force):
            if force:
                board.clear()
            board.save_story(b.story)
        written.append(board.root)
    return written
