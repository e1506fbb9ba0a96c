"""A batch's jobs: read from a JSONL file (or a folder of boards), checked, and cut into units.

The jobs file holds one JSON object per line (blank lines and lines starting with `#` are skipped):

    {"defaults": {"scenes": 6, "model": "/models/sd15"}}        # later lines start from these
    {"name": "egg", "logline": "Алдар Косе продаёт баю «золотое яйцо»", "seed": 3}
    {"name": "sheep", "story": "stories/sheep/story.json"}       # a story file, or a board folder
    {"name": "take-04", "video": "footage/take04.mp4", "character": "aldar", "style": "watercolour"}

A board job (`logline` or `story`) takes every option `autokose story`/`render` take, under the
names `config.resolve` knows (scenes, seed, model, lora, steps, width, exports, ...;
`characters` is the characters file); a `story` that names a board folder starts from that
board's saved settings. A video job takes `autokose video stylize`'s options (character, model,
style, strength, ...) plus `part_frames` (default 48): the clip is drawn in parts of that many
frames, which workers draw side by side. `name` (letters, digits, `-`, `_`) names the output:
the board folder `OUT/NAME/` or the video `OUT/NAME.mp4`; it defaults to `board-003` or the
footage's file name (letters of any script are kept: `{"story": "сказки/овцы/story.json"}` is `овцы`).

Everything is resolved here, on the machine that starts the batch: relative paths become
absolute (workers may start elsewhere), settings go through the same `config.resolve` and
`resolve_video` the CLI uses, and the result (a RunConfig, a video's options) travels with the
job, so a board comes out the same whichever worker draws it. Bad input is refused here with
one line naming the job file's line, before anything is written.

A unit is what one worker does at a time: a whole board, or one step of a video (prepare the
shared keyframe, draw a part, join and encode).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from autokose.errors import InputError
from autokose.fsio import json_lines, json_text, read_text, sha256_file, write_json

BATCH_DIR = ".autokose-batch"  # under the output folder: the batch's own records, never a board
NAME = re.compile(r"^[^\W_][\w-]{0,63}$")  # a folder or file name anywhere: letters (any script), digits, - and _
SOURCES = ("logline", "story", "video")
DEFAULT_PART_FRAMES = 48
# Option values that may be paths: made absolute when they name an existing file or folder
# (anything else, such as a Hugging Face id, is left as written).
PATH_OPTIONS = ("characters", "characters_file", "model", "vae", "lora", "controlnet", "lineart", "ip_adapter",
                "model_config", "bible", "style_lora", "clip_model", "soundtrack")


@dataclass(frozen=True)
class Unit:
    """One step of one job: ("board", 0), ("prepare", 0), ("part", k) or ("finish", 0)."""

    job: str
    step: str
    part: int = 0

    def __str__(self) -> str:
        return f"{self.job} (part {self.part + 1})" if self.step == "part" else self.job


@dataclass
class Job:
    """A checked job: what to make (`kind`), from what, with which settings, and its key.

    `key` is a digest of everything the output depends on (settings, the story file's bytes,
    the footage's size and time): a re-run skips a job whose finished record has the same key.
    """

    name: str
    kind: str  # "board" | "video"
    line: int
    config: dict = field(default_factory=dict)  # board: RunConfig as JSON
    story: str | None = None  # board: a story.json to render (None: written from config.logline)
    video: str | None = None  # video: the footage
    options: dict = field(default_factory=dict)  # video: resolve_video's options
    key: str = ""

    def output(self, out: Path) -> Path:
        return out / self.name if self.kind == "board" else out / f"{self.name}.mp4"


def load_jobs(source: Path | str, out: Path | str | None = None) -> list[Job]:
    """The jobs of a JSONL file, or of a folder whose sub-folders are boards (story.json each).

    Everything that can be checked without loading a model is checked here: the settings, the
    story files, the models' and LoRAs' files (`check_renderer`, `VideoJob.check`: paths and
    headers), and with `out` each video's footage, span and output path.
    """
    source = Path(source)
    if source.is_dir():
        boards = sorted(p for p in source.iterdir() if (p / "story.json").is_file())
        if not boards:
            raise InputError(f"{source}: no boards in it (sub-folders with a story.json)")
        entries = [(n, {"name": p.name, "story": str(p)}) for n, p in enumerate(boards, 1)]
    else:
        entries = _read_lines(source)
    jobs, names = [], {}
    defaults: dict = {}
    for line, entry in entries:
        if set(entry) == {"defaults"}:
            if not isinstance(entry["defaults"], dict):
                raise InputError(f"{source}:{line}: defaults must be an object")
            defaults = {**defaults, **entry["defaults"]}
            continue
        where = f"{source}:{line}" if not source.is_dir() else f"{source / entry['name']}"
        job = _job({**defaults, **entry}, line, where, None if out is None else Path(out))
        if job.name in names:
            raise InputError(f"{where}: the name {job.name!r} is taken by line {names[job.name]}")
        names[job.name] = line
        jobs.append(job)
    if not jobs:
        raise InputError(f"{source}: no jobs in it")
    return jobs


def _read_lines(path: Path) -> list[tuple[int, dict]]:
    from autokose.story import check_text

    text = read_text(path, "jobs file").removeprefix("\ufeff")
    return list(json_lines(text, str(path), "job", '{"logline": "..."}', check=check_text))


def _job(entry: dict, line: int, where: str, out: Path | None) -> Job:
    given = [s for s in SOURCES if entry.get(s) is not None]
    if len(given) != 1:
        raise InputError(f"{where}: give one of logline, story or video"
                         + (f" (got {', '.join(given)})" if given else ""))
    try:
        return _board_job(entry, line) if given[0] != "video" else _video_job(entry, line, out)
    except InputError as e:
        raise InputError(f"{where}: {e}") from None


def _name(entry: dict, default: str) -> str:
    """The name given (checked), or one made from `default` (a folder or file name, or "board-003")."""
    if "name" not in entry:
        return slug(default)
    name = entry["name"]
    if not isinstance(name, str) or not NAME.match(name):
        raise InputError(f"name {name!r}: letters, digits, - and _ (at most 64, not starting with - or _)")
    return name


def _absolute(options: dict) -> dict:
    """Option values that name existing files or folders, made absolute (see PATH_OPTIONS)."""
    out = dict(options)
    for key in PATH_OPTIONS:
        value = out.get(key)
        if isinstance(value, list):
            out[key] = [_absolute_path(v) for v in value]
        elif isinstance(value, str):
            out[key] = _absolute_path(value)
    return out


def _path_part(value: str) -> str:
    """The path an option value starts with: all of it, or a LoRA's `file` of `file:weight` (as `LoraRef`
    reads it)."""
    from autokose.models import LoraRef

    return value if Path(value).exists() else LoraRef.parse(value).path


def _local_path(value: str) -> Path | None:
    """The existing file or folder an option value names, or None (a Hugging Face id, a word)."""
    path = Path(_path_part(value))
    return path if path.exists() else None


def _absolute_path(value: str) -> str:
    head = _path_part(value)
    return str(Path(head).resolve()) + value[len(head):] if Path(head).exists() else value


def _board_job(entry: dict, line: int) -> Job:
    from autokose.board import Board
    from autokose.config import resolve, saved
    from autokose.story import Story

    options = _absolute({k: v for k, v in entry.items() if k != "name"})
    if "characters" in options:
        options["characters_file"] = options.pop("characters")
    story_file = options.pop("story", None)
    base = None
    digest = ""
    if story_file is not None:
        path = Path(str(story_file)).resolve()
        if path.is_dir():
            base = saved(Board(path)) if (path / "manifest.json").is_file() else None
            path = path / "story.json"
        Story.load(path)  # refused here, not on a worker
        story_file, digest = str(path), sha256_file(path)
    cfg = resolve(base, options, announce=False)
    if story_file is None and not cfg.logline:
        raise InputError("logline: give a logline (or a story)")
    if cfg.characters_file:
        from autokose.bible import load_bible

        load_bible(cfg.characters_file)
    from autokose.render import check_renderer

    check_renderer(cfg.render)  # the model's, LoRAs' and ControlNets' files; the characters' when it runs
    config = cfg.model_dump(mode="json")
    default = Path(story_file).parent.name if story_file else f"board-{line:03d}"
    job = Job(_name(entry, default), "board", line, config=config, story=story_file)
    job.key = _digest({"kind": "board", "config": config, "story": digest, "files": _stamps(options)})
    return job


def _video_job(entry: dict, line: int, out: Path | None) -> Job:
    from autokose.video.options import resolve_video

    options = _absolute({k: v for k, v in entry.items() if k not in ("name", "video")})
    options.setdefault("part_frames", DEFAULT_PART_FRAMES)
    video = Path(str(entry["video"])).resolve()
    if not video.is_file():
        raise InputError(f"video {entry['video']}: no such file")
    resolved = resolve_video(options)
    job = Job(_name(entry, video.stem), "video", line, video=str(video), options=options)
    if out is not None:  # the footage, its span, the parts, the model's files, the output path
        resolved.check(video, job.output(out))
    job.key = _digest({"kind": "video", "options": options, "video": _stamp(video), "files": _stamps(options)})
    return job


def slug(text: str) -> str:
    """A name from a folder or file name: runs of anything but letters, digits, - and _ become -."""
    name = re.sub(r"[^\w-]+", "-", text).strip("-_")[:64].strip("-_")
    return name if NAME.match(name) else "job"


def _stamp(path: Path) -> list:
    stat = path.stat()
    return [str(path), stat.st_size, stat.st_mtime_ns]


def _stamps(options: dict) -> list:
    """Size and time of the local files the options name (characters file, model, LoRAs, ...): a job
    whose model or characters file changed is drawn again. A folder: its files two levels down."""
    stamps = []
    for key in PATH_OPTIONS:
        values = options.get(key)
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(value, str):
                continue
            path = _local_path(value)
            if path is None:
                continue
            if path.is_file():
                stamps.append(_stamp(path))
            elif path.is_dir():
                stamps += [_stamp(p) for p in sorted([*path.glob("*"), *path.glob("*/*")]) if p.is_file()]
    return stamps


def _digest(data: dict) -> str:
    return hashlib.sha256(json_text(data).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- records
def record_path(out: Path, name: str) -> Path:
    return out / BATCH_DIR / f"{name}.json"


def read_record(out: Path, name: str) -> dict:
    """The job's record: {"key": ..., "state": "started" | "done", ...}, or {} when there is none."""
    try:
        record = json.loads(record_path(out, name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def write_record(out: Path, job: Job, state: str, **extra) -> None:
    write_json(record_path(out, job.name), {"key": job.key, "state": state, "kind": job.kind, **extra})


def foreign_output(out: Path, job: Job) -> Path | None:
    """What the job would write over without a record of it (a board made by hand, another batch's
    video): the first such path, or None. Made by this batch, it would have a record."""
    if read_record(out, job.name):
        return None
    target = job.output(out)
    if job.kind == "board":
        return target if target.is_dir() and any(target.iterdir()) or target.is_file() else None
    from autokose.video.stylize import frames_dir, metrics_path

    return next((p for p in (target, frames_dir(target), metrics_path(target)) if p.exists()), None)


def is_done(out: Path, job: Job) -> bool:
    record = read_record(out, job.name)
    return record.get("key") == job.key and record.get("state") == "done" and job.output(out).exists()
