"""The job service: a queue of board, render, export and training jobs in SQLite, and the worker
threads that run them through `config.resolve` and `pipeline.run` (one code path with the CLI).

Why SQLite in the boards folder (`<boards>/.autokose/jobs.sqlite`): the queue must outlive the
server. After a kill -9 the next start finds the jobs that were running (`recover`), queues them
again, and the re-run resumes: a board keeps every finished frame (`pipeline.run(resume=True)`),
a training run continues from its last checkpoint. WAL lets the API read while workers write;
every thread has its own connection, and claims are one `BEGIN IMMEDIATE` transaction, so two
workers never take the same job.

Why two kinds of worker: previz boards are cheap CPU work and run side by side (`light_threads`);
diffusion renders and LoRA training need the GPU and take it one job at a time per slot
(`heavy_slots`, one per GPU). Jobs on one board (or one character's LoRA) run in the order they were
submitted, never two at once: `claim` passes over a job whose board is held by a running or an older
queued job, so it waits its turn instead of failing on the board's lock ("board is busy").

No web framework here: api.py calls this, and the tests drive it directly.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, get_args

from pydantic import ValidationError

from autokose.errors import Cancelled, InputError, first_line, format_validation_error
from autokose.fsio import ensure_writable_dir

log = logging.getLogger("autokose")

Status = Literal["queued", "running", "done", "failed", "cancelled"]
Kind = Literal["board", "render", "export", "train"]
KINDS = get_args(Kind)
ACTIVE = ("queued", "running")
SCHEMA_VERSION = 1
SERVICE_DIR = ".autokose"  # under the boards folder: the queue and the service's own files, never a board
DB_NAME = "jobs.sqlite"
# A board is a folder directly under the boards folder; its name is one plain path component.
BOARD_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
CHARACTER_ID = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
FRAME_FILE = re.compile(r"^(\d{2,3})\.png$")
# The stages a render job runs: everything but the writer (the board's story.json is the story).
PROGRESS_INTERVAL = 0.25  # seconds between progress writes of one job (stage changes and ends always written)
ERROR_CHARS = 500
MAX_ATTEMPTS = 3  # starts of one job, restarts included, before recover() gives up on it

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,  -- submission order
    id       TEXT NOT NULL UNIQUE,
    kind     TEXT NOT NULL,
    board    TEXT,
    lock     TEXT,     -- what the job holds alone while it runs: 'board:<id>' or 'character:<id>'
    status   TEXT NOT NULL,
    params   TEXT NOT NULL,
    heavy    INTEGER NOT NULL,
    stage    TEXT,
    done     INTEGER NOT NULL DEFAULT 0,
    total    INTEGER NOT NULL DEFAULT 0,
    error    TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    cancel   INTEGER NOT NULL DEFAULT 0,  -- stop asked for while running
    owner    TEXT,     -- the JobStore (process) running it: recover() leaves its own jobs alone
    created  REAL NOT NULL,
    started  REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, heavy, seq);
CREATE INDEX IF NOT EXISTS jobs_lock ON jobs (lock, status);
CREATE INDEX IF NOT EXISTS jobs_board ON jobs (board, seq);
CREATE TABLE IF NOT EXISTS events (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    job  TEXT NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    at   REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS events_job ON events (job, id);
"""
_FIELDS = ("id", "kind", "board", "status", "params", "heavy", "stage", "done", "total", "error", "attempts",
           "created", "started", "finished")


@dataclass(frozen=True)
class Job:
    id: str
    kind: Kind
    board: str | None
    status: Status
    params: dict
    heavy: bool
    stage: str | None
    done: int
    total: int
    error: str | None
    attempts: int
    created: float
    started: float | None
    finished: float | None

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Job:
        data = {k: row[k] for k in _FIELDS}
        return cls(**{**data, "params": json.loads(data["params"]), "heavy": bool(data["heavy"])})

    def to_json(self) -> dict:
        return asdict(self)


def service_dir(boards: Path) -> Path:
    """`<boards>/.autokose`: the queue and uploads; not a board (board names cannot start with a dot)."""
    return Path(boards) / SERVICE_DIR


def db_path(boards: Path) -> Path:
    return service_dir(boards) / DB_NAME


def hold_service(boards: Path) -> int:
    """Hold the boards folder for this server's workers until the process ends; InputError when another
    server holds it. Two servers on one folder would each think the other's running jobs were left by
    a dead process (`recover`) and run them twice. An flock, so the kernel lets go even after kill -9.
    Returns the open descriptor (keep it open)."""
    import fcntl

    folder = service_dir(boards)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "serve.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise InputError(f"{boards}: another autokose serve runs the jobs of this boards folder; "
                         "stop it first, or give this one other --boards") from None
    return fd


def new_job_id() -> str:
    return "j-" + secrets.token_hex(6)


class JobStore:
    """The queue: jobs, their progress and their event log, in one SQLite file shared by threads and processes."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 10_000):
        self.path = Path(path)
        ensure_writable_dir(self.path.parent)  # a boards folder that cannot be written: one line, not a traceback
        self.busy_timeout_ms = busy_timeout_ms
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.changed = threading.Condition()  # notified on every change workers may be waiting for
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._create()

    # -- connections -------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections are not to be shared between threads)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                 timeout=self.busy_timeout_ms / 1000)
            db.row_factory = sqlite3.Row
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: a process kill loses nothing committed
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taking the write lock at once so read-then-update is atomic."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _create(self) -> None:
        with self._tx() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise InputError(f"{self.path}: job database version {version}, this AutoKöse reads version "
                                 f"{SCHEMA_VERSION}; move the file away to start an empty queue")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close every thread's connection (after the workers have stopped)."""
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()
        self._local = threading.local()

    def _notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait(self, timeout: float) -> None:
        """Sleep until something changes in this store (a submit, a finish) or `timeout` passes."""
        with self.changed:
            self.changed.wait(timeout)

    # -- jobs ------------------------------------------------------------------------
    def submit(self, kind: Kind, params: dict, *, board: str | None = None, heavy: bool = False) -> Job:
        """Queue a job. `params` must be JSON (what to run: see run_job's runners)."""
        if kind not in KINDS:
            raise InputError(f"unknown job kind {kind!r} (kinds: {', '.join(KINDS)})")
        lock = f"board:{board}" if board else (f"character:{params.get('character')}" if kind == "train" else None)
        job_id, now = new_job_id(), time.time()
        with self._tx() as db:
            db.execute("INSERT INTO jobs (id, kind, board, lock, status, params, heavy, created) "
                       "VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                       (job_id, kind, board, lock, json.dumps(params, ensure_ascii=False), int(heavy), now))
            self._status_event(db, job_id, "queued", None)
        self._notify()
        return self.get(job_id)

    def get(self, job_id: str) -> Job | None:
        row = self._db().execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_row(row) if row else None

    def jobs(self, *, board: str | None = None, limit: int | None = None) -> list[Job]:
        """Jobs, newest first (of one board when `board` is given)."""
        sql, args = "SELECT * FROM jobs", []
        if board is not None:
            sql, args = sql + " WHERE board = ?", [board]
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql, args = sql + " LIMIT ?", [*args, int(limit)]
        return [Job.from_row(r) for r in self._db().execute(sql, args)]

    def claim(self, *, heavy: bool) -> Job | None:
        """The oldest queued job of that class whose board (or character) is free, now running; None if none.

        A job waits while its board is held by a running job or by an older queued one, so the
        jobs of a board run one at a time, in the order they were submitted.
        """
        with self._tx() as db:
            row = db.execute(
                "SELECT seq, id FROM jobs AS j WHERE status = 'queued' AND heavy = ? AND NOT EXISTS ("
                "  SELECT 1 FROM jobs AS o WHERE o.lock = j.lock AND o.seq != j.seq"
                "  AND (o.status = 'running' OR (o.status = 'queued' AND o.seq < j.seq)))"
                " ORDER BY seq LIMIT 1", (int(heavy),)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = 'running', attempts = attempts + 1, started = ?, owner = ?, "
                       "error = NULL WHERE seq = ?", (time.time(), self.owner, row["seq"]))
            self._status_event(db, row["id"], "running", None)
        return self.get(row["id"])

    def progress(self, job_id: str, stage: str, done: int, total: int) -> None:
        """Record a job's progress and append it as a "progress" event, replacing the job's previous one.

        Progress is state, not history: a watcher that connects (or reconnects) late needs the latest
        only, so the event log of a long training run stays as short as its frames and statuses.
        """
        with self._tx() as db:
            db.execute("UPDATE jobs SET stage = ?, done = ?, total = ? WHERE id = ?", (stage, done, total, job_id))
            db.execute("DELETE FROM events WHERE job = ? AND type = 'progress'", (job_id,))
            self._event(db, job_id, "progress", {"stage": stage, "done": done, "total": total})

    def event(self, job_id: str, type: str, data: dict) -> int:  # noqa: A002  (the spec's name)
        with self._tx() as db:
            return self._event(db, job_id, type, data)

    @staticmethod
    def _event(db: sqlite3.Connection, job_id: str, type_: str, data: dict) -> int:
        cur = db.execute("INSERT INTO events (job, type, data, at) VALUES (?, ?, ?, ?)",
                         (job_id, type_, json.dumps(data, ensure_ascii=False), time.time()))
        return cur.lastrowid

    def _status_event(self, db: sqlite3.Connection, job_id: str, status: str, error: str | None) -> int:
        return self._event(db, job_id, "status", {"status": status, "error": error})

    def events(self, job_id: str, after: int = 0) -> list[dict]:
        """The job's events with an id above `after` (SSE replay after Last-Event-ID), oldest first."""
        rows = self._db().execute("SELECT * FROM events WHERE job = ? AND id > ? ORDER BY id", (job_id, after))
        return [_event_dict(r) for r in rows]

    def board_events(self, board: str, after: int = 0) -> list[dict]:
        """The events of every job of a board with an id above `after`, oldest first (one SSE stream per board)."""
        rows = self._db().execute("SELECT e.* FROM events AS e JOIN jobs AS j ON j.id = e.job "
                                  "WHERE j.board = ? AND e.id > ? ORDER BY e.id", (board, after))
        return [_event_dict(r) for r in rows]

    def _end(self, job_id: str, status: Status, error: str | None, *, only: tuple[str, ...]) -> Job | None:
        with self._tx() as db:
            placeholders = ",".join("?" * len(only))
            cur = db.execute(f"UPDATE jobs SET status = ?, error = ?, finished = ?, cancel = 0 "
                             f"WHERE id = ? AND status IN ({placeholders})",
                             (status, error, time.time(), job_id, *only))
            if cur.rowcount:
                self._status_event(db, job_id, status, error)
        self._notify()
        return self.get(job_id)

    def finish(self, job_id: str) -> Job | None:
        return self._end(job_id, "done", None, only=("running",))

    def fail(self, job_id: str, error: str) -> Job | None:
        """Failed with one line (the first line of `error`, shortened): what the user reads."""
        line = first_line(Exception(error)) if error else "failed"
        return self._end(job_id, "failed", line[:ERROR_CHARS], only=("running",))

    def mark_cancelled(self, job_id: str) -> Job | None:
        return self._end(job_id, "cancelled", None, only=ACTIVE)

    def requeue(self, job_id: str) -> Job | None:
        """A running job back in the queue (the service stops): the next start resumes it."""
        with self._tx() as db:
            cur = db.execute("UPDATE jobs SET status = 'queued', owner = NULL WHERE id = ? AND status = 'running'",
                             (job_id,))
            if cur.rowcount:
                self._status_event(db, job_id, "queued", None)
        self._notify()
        return self.get(job_id)

    def request_cancel(self, job_id: str) -> Job | None:
        """Cancel a job: a queued one at once, a running one at its next frame or step (see run_job);
        a finished one stays as it is. None for an unknown id."""
        with self._tx() as db:
            row = db.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            if row["status"] == "queued":
                db.execute("UPDATE jobs SET status = 'cancelled', finished = ? WHERE id = ?", (time.time(), job_id))
                self._status_event(db, job_id, "cancelled", None)
            elif row["status"] == "running":
                db.execute("UPDATE jobs SET cancel = 1 WHERE id = ?", (job_id,))
        self._notify()
        return self.get(job_id)

    def cancel_requested(self, job_id: str) -> bool:
        row = self._db().execute("SELECT cancel FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return bool(row and row["cancel"])

    def recover(self) -> list[str]:
        """At start-up: jobs left running by a process that died go back to the queue (those whose
        cancel was asked for become cancelled). Jobs this store runs itself are left alone, so a
        late call cannot take a job from under a live worker. Returns the ids queued again.

        A job that was already started MAX_ATTEMPTS times fails instead: a job that takes the server
        down with it (out of memory, say) would otherwise do so at every start."""
        with self._tx() as db:
            rows = db.execute("SELECT id, cancel, attempts FROM jobs WHERE status = 'running' AND owner IS NOT ?",
                              (self.owner,)).fetchall()
            requeued = []
            for row in rows:
                status = "cancelled" if row["cancel"] else "queued"
                error = None
                if status == "queued" and row["attempts"] >= MAX_ATTEMPTS:
                    status = "failed"
                    error = (f"the server stopped while running this job {row['attempts']} times (out of memory?); "
                             "submit it again to retry")
                db.execute("UPDATE jobs SET status = ?, owner = NULL, cancel = 0, finished = ?, error = ? WHERE id = ?",
                           (status, None if status == "queued" else time.time(), error, row["id"]))
                self._status_event(db, row["id"], status, error)
                if status == "queued":
                    requeued.append(row["id"])
        self._notify()
        return requeued

    def busy_board(self, board: str) -> bool:
        """Whether a queued or running job holds this board (a scene edit must wait: 409)."""
        row = self._db().execute("SELECT 1 FROM jobs WHERE board = ? AND status IN ('queued', 'running') LIMIT 1",
                                 (board,)).fetchone()
        return row is not None


def _event_dict(row: sqlite3.Row) -> dict:
    return {"id": row["id"], "job": row["job"], "type": row["type"], "data": json.loads(row["data"]), "at": row["at"]}


# --------------------------------------------------------------------------- running a job
Progress = Callable[[str, int, int], None]
Cancel = Callable[[], bool]


class JobProgress:
    """The `progress` callback of one job: progress written to the store a few times a second
    (a stage's first and last tick always), and a "frame" event for every frame file that lands.

    A frame has landed when frames/NN.png is new or replaced since the job started (its inode,
    mtime or size differ: the board writes files by renaming, so a redrawn frame is a new inode).
    Looked for on every render tick and whenever the stage changes, so frames the quality loop
    writes after its last tick are reported too, and once more when the job ends.
    """

    def __init__(self, store: JobStore, job_id: str, frames: Path | None = None,
                 interval: float = PROGRESS_INTERVAL):
        self.store, self.job_id, self.frames, self.interval = store, job_id, frames, interval
        self.seen = frame_files(frames) if frames is not None else {}
        self.stage: str | None = None
        self.last: tuple[str, int, int] | None = None
        self.written = 0.0
        self.pending = False

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.frames is not None and (stage == "render" or stage != self.stage):
            self.look_for_frames()
        now = time.monotonic()
        due = stage != self.stage or done >= total or now - self.written >= self.interval
        self.stage, self.last = stage, (stage, done, total)
        if due:
            self.store.progress(self.job_id, stage, done, total)
            self.written, self.pending = now, False
        else:
            self.pending = True

    def look_for_frames(self) -> None:
        now = frame_files(self.frames)
        landed = sorted((int(FRAME_FILE.match(name)[1]), name) for name, stat in now.items()
                        if self.seen.get(name) != stat)
        for index, name in landed:
            self.store.event(self.job_id, "frame", {"index": index, "file": f"frames/{name}"})
        self.seen = now

    def close(self) -> None:
        """The job ended: report frames not yet reported, and the last progress if it was held back."""
        if self.frames is not None:
            self.look_for_frames()
        if self.pending and self.last is not None:
            self.store.progress(self.job_id, *self.last)
            self.pending = False


def frame_files(frames: Path) -> dict[str, tuple[int, int, int]]:
    """frames/NN.png → (inode, mtime ns, size), symlinks left out."""
    found = {}
    try:
        entries = list(os.scandir(frames))
    except (FileNotFoundError, NotADirectoryError):
        return found
    for entry in entries:
        try:
            if FRAME_FILE.match(entry.name) and entry.is_file(follow_symlinks=False):
                st = entry.stat(follow_symlinks=False)
                found[entry.name] = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:  # replaced or removed between listing and looking
            continue
    return found


def board_dir(boards: Path, board: str | None) -> Path:
    """The folder of board `board`: a plain name directly under `boards`, never a path leading elsewhere."""
    if not board or not BOARD_NAME.match(board):
        raise InputError(f"{board!r} is not a board id")
    path = Path(boards) / board
    if path.is_symlink() or (path.exists() and not path.resolve().is_relative_to(Path(boards).resolve())):
        raise InputError(f"board {board}: its folder leads out of the boards folder")
    return path


def inside(root: Path, path: str | Path, what: str) -> Path:
    """`path` (symlinks followed) when it lies inside `root`, else InputError: a job never reads outside its folders."""
    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(root).resolve()):
        raise InputError(f"{what}: {path} is not inside {root}")
    return resolved


def character_dir(boards: Path, character: str) -> Path:
    """`<boards>/.autokose/characters/<id>`: a character's uploads (images/) and trained LoRA (lora/)."""
    if not CHARACTER_ID.match(character or ""):
        raise InputError(f"{character!r} is not a character id (a-z, 0-9, _; starting with a letter)")
    return service_dir(boards) / "characters" / character


def _with_device(overrides: dict, device: str | None) -> dict:
    """The GPU slot's device, unless the job names one."""
    if device and not overrides.get("device"):
        return {**overrides, "device": device}
    return overrides


def run_board(boards: Path, job: Job, progress: Progress, cancel: Cancel, device: str | None = None) -> None:
    """A new board from a logline or a story (params: {"overrides": {...}} or {"story": {...}, "overrides": {...}}).

    Resumes when the job was started before (a restart) or the board already holds a story:
    finished frames are kept, only the missing ones drawn, with the settings the board saved.
    """
    from autokose.board import Board
    from autokose.config import resolve, saved
    from autokose.pipeline import run
    from autokose.story import Story

    out = board_dir(boards, job.board)
    overrides = dict(job.params.get("overrides") or {})
    if job.heavy:
        overrides = _with_device(overrides, device)
    story = job.params.get("story")
    story = Story.from_json(json.dumps(story), source="story") if story is not None else None
    resume = job.attempts > 1 or Board(out).story_path.exists()
    cfg = resolve(saved(Board(out)) if resume else None, overrides)
    run(cfg, out, story=story, resume=resume, progress=progress, cancel=cancel)


def run_render(boards: Path, job: Job, progress: Progress, cancel: Cancel, device: str | None = None) -> None:
    """Redraw scenes of a board from its story.json (params: {"only": [n, ...], "picks": {"n": k}, "overrides"?}),
    with the board's saved settings, as `autokose render story.json --only n --pick n=k` does."""
    from autokose.board import Board
    from autokose.config import RENDER_STAGES, resolve, saved
    from autokose.pipeline import run

    out = board_dir(boards, job.board)
    board = Board(out)
    if not board.story_path.exists():
        raise InputError(f"board {job.board}: no story.json yet (make the board first)")
    try:
        picks = {int(k): int(v) for k, v in (job.params.get("picks") or {}).items()}
    except (TypeError, ValueError, AttributeError):
        raise InputError("picks: expected scene → candidate numbers, like {\"4\": 2}") from None
    overrides = {**(job.params.get("overrides") or {}), "only": job.params.get("only"), "picks": picks,
                 "stages": RENDER_STAGES}
    if job.heavy:
        overrides = _with_device(overrides, device)
    cfg = resolve(saved(board), overrides)
    run(cfg, out, story=board.load_story(), progress=progress, cancel=cancel)


def run_export(boards: Path, job: Job, progress: Progress, cancel: Cancel, device: str | None = None) -> None:
    """Write a board's exports (params: {"overrides": {"exports": [...], ...ExportSettings fields}})."""
    from autokose.pipeline import export

    export(board_dir(boards, job.board), dict(job.params.get("overrides") or {}), progress=progress, cancel=cancel)


def training_job_config(boards: Path, params: dict, device: str | None = None):
    """The TrainConfig of a train job's params: the job runs it, and the API builds it before queueing so a
    bad option is refused at once. Output in <boards>/.autokose/characters/<id>/lora; every folder it
    reads inside the service's own; the built-in bible only; a character the bible lacks gets the
    trigger `<id>_ak` unless one is given."""
    from autokose.bible import load_bible
    from autokose.cast.train import training_config

    options = dict(params)
    character = str(options.pop("character", ""))
    folder = character_dir(boards, character)
    images = inside(service_dir(boards), options.pop("images", folder / "images"), "images")
    options.pop("out", None)
    options.pop("characters", None)  # the built-in bible only: no file path from a request
    for key in ("base_config", "class_images"):  # other folders it reads: the service's own only
        if options.get(key):
            options[key] = str(inside(service_dir(boards), options[key], key))
    bible = load_bible(None)
    if character not in bible and not options.get("trigger"):
        options["trigger"] = f"{character}_ak"
    options = _with_device(options, device)
    return training_config(bible, character, images=images, out=folder / "lora", **options)


def run_train(boards: Path, job: Job, progress: Progress, cancel: Cancel, device: str | None = None) -> None:
    """Train a character's LoRA from its uploaded images (params: {"character", "images", "model", "steps", ...
    training_config's options}) into <boards>/.autokose/characters/<id>/lora; a restarted job resumes
    from its last checkpoint. A character the bible lacks gets the trigger `<id>_ak` unless one is given.

    Training has no cancel hook of its own: a cancel is honoured between steps by raising from
    `on_step` (the checkpoint on disk stays resumable).
    """
    from autokose.cast.train import train_character

    cfg = training_job_config(boards, job.params, device if job.heavy else None)
    out = Path(cfg.out)
    resume = job.attempts > 1 and out.is_dir()

    def on_step(step: int, total: int, loss: float) -> None:
        progress("train", step, total)
        if cancel():
            raise Cancelled("cancelled; the training resumes from its last checkpoint")

    train_character(cfg, resume=resume, force=not resume, on_step=on_step)


class _WarningEvents(logging.Handler):
    """The `autokose` logger's warnings of one job's thread, as "warning" events {"message"}."""

    def __init__(self, store: JobStore, job_id: str):
        super().__init__(logging.WARNING)
        self.store, self.job_id, self.thread = store, job_id, threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            try:
                self.store.event(self.job_id, "warning", {"message": first_line(Exception(record.getMessage()))})
            except Exception:  # a warning that cannot be stored must not fail the job
                self.handleError(record)


@contextmanager
def warning_events(store: JobStore, job_id: str) -> Iterator[None]:
    """What the CLI prints as `warning:` lines (a saved setting kept, a logline word unused), told to the
    job's watchers too: the same words as on the terminal, one event each."""
    handler = _WarningEvents(store, job_id)
    logger = logging.getLogger("autokose")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


RUNNERS: dict[str, Callable[..., None]] = {"board": run_board, "render": run_render, "export": run_export,
                                           "train": run_train}


def run_job(store: JobStore, boards: Path, job: Job, *, stopping: Cancel | None = None,
            device: str | None = None) -> Job:
    """Run a claimed job to its end and record how it ended; returns the job as stored.

    done; failed with one line (InputError: the user's mistake; anything else: "internal error: ..."
    and the traceback in the log); cancelled when a cancel was asked for; queued again when
    `stopping()` (the service shuts down) stopped it, so the next start resumes it.
    """
    stopping = stopping or (lambda: False)

    def cancel() -> bool:
        return stopping() or store.cancel_requested(job.id)

    frames = board_dir(boards, job.board) / "frames" if job.board and BOARD_NAME.match(job.board) else None
    progress = JobProgress(store, job.id, frames)
    try:
        runner = RUNNERS.get(job.kind)
        if runner is None:
            raise InputError(f"unknown job kind {job.kind!r}")
        with warning_events(store, job.id):
            runner(Path(boards), job, progress, cancel, device)
    except Cancelled:
        progress.close()
        if store.cancel_requested(job.id) or not stopping():
            store.mark_cancelled(job.id)
        else:
            store.requeue(job.id)
    except InputError as e:
        progress.close()
        store.fail(job.id, str(e))
    except ValidationError as e:
        progress.close()
        store.fail(job.id, format_validation_error(e))
    except Exception as e:
        log.exception("job %s (%s) failed", job.id, job.kind)
        progress.close()
        store.fail(job.id, f"internal error: {type(e).__name__}: {first_line(e)}")
    else:
        progress.close()
        store.finish(job.id)
    return store.get(job.id)


def needs_gpu(kind: str, params: dict, saved_model: str | None = None) -> bool:
    """Whether a job is heavy (a GPU slot's): it trains, or it draws with diffusion, because a model is
    given or the board was saved with one (`saved_model`: config.saved(board).render.diffusion.model).
    Exports draw nothing."""
    if kind == "train":
        return True
    if kind == "export":
        return False
    return bool((params.get("overrides") or {}).get("model") or saved_model)


# --------------------------------------------------------------------------- workers
class Workers:
    """Threads that take jobs from the store and run them: `light_threads` for previz work side by
    side, and one thread per GPU slot (`heavy_slots`) for diffusion and training, one job each at a time.

    With more than one slot, slot i runs its jobs on cuda:i unless a job names its device.
    """

    def __init__(self, store: JobStore, boards: Path, *, light_threads: int = 2, heavy_slots: int = 1,
                 poll: float = 0.5):
        self.store, self.boards = store, Path(boards)
        self.light_threads, self.heavy_slots, self.poll = light_threads, heavy_slots, poll
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Queue again the jobs a dead process left running (`recover`), then start the threads."""
        if self._threads:
            return
        self._stop.clear()
        recovered = self.store.recover()
        if recovered:
            log.info("resuming %d job(s) left running: %s", len(recovered), ", ".join(recovered))
        slots = [(False, None)] * self.light_threads
        slots += [(True, f"cuda:{i}" if self.heavy_slots > 1 else None) for i in range(self.heavy_slots)]
        for n, (heavy, device) in enumerate(slots):
            thread = threading.Thread(target=self._work, args=(heavy, device), daemon=True,
                                      name=f"autokose-{'heavy' if heavy else 'light'}-{n}")
            thread.start()
            self._threads.append(thread)

    def _work(self, heavy: bool, device: str | None) -> None:
        while not self._stop.is_set():
            try:
                job = self.store.claim(heavy=heavy)
                if job is None:
                    self.store.wait(self.poll)
                    continue
                run_job(self.store, self.boards, job, stopping=self._stop.is_set, device=device)
            except Exception:  # a database error must not end the thread: log it, wait, try again
                log.exception("job worker error")
                self._stop.wait(self.poll)

    def stop(self, timeout: float = 30.0) -> bool:
        """Stop the threads: running jobs stop at their next frame and go back to the queue (the next
        start resumes them). True when every thread ended within `timeout`."""
        self._stop.set()
        self.store._notify()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        alive = [t for t in self._threads if t.is_alive()]
        self._threads = alive
        return not alive
