"""The job service (autokose.service.jobs): the queue's state machine, claims under contention, the
worker classes, real previz board/render/export jobs with their events, errors, cancel, and a
kill -9 of a worker process followed by a resume that keeps the finished frames."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from autokose.board import Board
from autokose.errors import InputError
from autokose.service import jobs
from autokose.service.jobs import JobStore, Workers, board_dir, db_path, run_job

LOGLINE = "Aldar Köse sells the greedy Bai a coat that keeps nobody warm"
SMALL = {"logline": LOGLINE, "scenes": 3, "width": 128, "height": 72, "seed": 1}


@pytest.fixture
def boards(tmp_path) -> Path:
    return tmp_path / "boards"


@pytest.fixture
def store(boards):
    s = JobStore(db_path(boards))
    yield s
    s.close()


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


def statuses(store: JobStore, job_id: str) -> list[str]:
    return [e["data"]["status"] for e in store.events(job_id) if e["type"] == "status"]


def frame_stat(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


# --------------------------------------------------------------------------- the queue
def test_state_machine_and_events(store, boards):
    assert db_path(boards).is_file() and db_path(boards).parent == boards / ".autokose"
    a = store.submit("board", {"overrides": {"logline": "x"}}, board="b-000000000001")
    b = store.submit("export", {"overrides": {}}, board="b-000000000002")
    assert a.id.startswith("j-") and len(a.id) == 14 and a.status == "queued" and a.attempts == 0
    assert [j.id for j in store.jobs()] == [b.id, a.id]  # newest first
    assert [j.id for j in store.jobs(board="b-000000000001")] == [a.id]
    assert store.claim(heavy=True) is None  # no heavy job queued
    claimed = store.claim(heavy=False)
    assert (claimed.id, claimed.status, claimed.attempts) == (a.id, "running", 1) and claimed.started
    for done in range(4):
        store.progress(a.id, "render", done, 3)
    store.progress(a.id, "render", 2, 3)
    assert [e["data"] for e in store.events(a.id) if e["type"] == "progress"] == [  # only the latest is kept
        {"stage": "render", "done": 2, "total": 3}]
    assert (store.get(a.id).stage, store.get(a.id).done, store.get(a.id).total) == ("render", 2, 3)
    mark = store.events(a.id)[-1]["id"]
    store.event(a.id, "frame", {"index": 2, "file": "frames/02.png"})
    done = store.finish(a.id)
    assert done.status == "done" and done.finished >= done.started
    later = store.events(a.id, after=mark)  # replay after Last-Event-ID
    assert [(e["type"], e["data"]) for e in later] == [("frame", {"index": 2, "file": "frames/02.png"}),
                                                       ("status", {"status": "done", "error": None})]
    assert all(e["id"] > mark for e in later)
    assert statuses(store, a.id) == ["queued", "running", "done"]
    assert store.finish(a.id).status == "done" and statuses(store, a.id)[-1] == "done"  # idempotent, no new event
    assert [e["job"] for e in store.board_events("b-000000000001")] == [a.id] * len(store.events(a.id))

    store.claim(heavy=False)
    failed = store.fail(b.id, "first line\nsecond line")
    assert failed.status == "failed" and failed.error == "first line"
    assert store.events(b.id)[-1]["data"] == {"status": "failed", "error": "first line"}
    assert store.get("j-nope") is None and store.request_cancel("j-nope") is None
    assert failed.to_json()["params"] == {"overrides": {}} and failed.to_json()["heavy"] is False
    with pytest.raises(InputError, match="unknown job kind"):
        store.submit("sing", {})


def test_jobs_of_a_board_run_one_at_a_time_in_order(store):
    first = store.submit("board", {}, board="b-1", heavy=True)
    second = store.submit("render", {}, board="b-1")  # light, but must wait for the older heavy job
    other = store.submit("render", {}, board="b-2")
    assert store.busy_board("b-1") and not store.busy_board("b-3")
    assert store.claim(heavy=False).id == other.id  # b-1's light job waits behind its queued heavy one
    assert store.claim(heavy=False) is None
    assert store.claim(heavy=True).id == first.id
    assert store.claim(heavy=False) is None  # b-1 is running
    store.finish(first.id)
    assert store.claim(heavy=False).id == second.id
    store.finish(second.id)
    store.finish(other.id)
    assert not store.busy_board("b-1")
    # two trainings of one character never overlap either
    t1 = store.submit("train", {"character": "aldar"}, heavy=True)
    store.submit("train", {"character": "aldar"}, heavy=True)
    t3 = store.submit("train", {"character": "bai"}, heavy=True)
    assert [store.claim(heavy=True).id, store.claim(heavy=True).id, store.claim(heavy=True)] == [t1.id, t3.id, None]


def test_no_job_is_claimed_twice(store, boards):
    ids = {store.submit("render", {}, board=f"b-{n:012x}").id for n in range(40)}
    other = JobStore(db_path(boards))  # a second store on the file: as another process would open it
    claimed: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def hammer(s: JobStore):
        start.wait()
        while (job := s.claim(heavy=False)) is not None:
            with lock:
                claimed.append(job.id)

    threads = [threading.Thread(target=hammer, args=(store if n % 2 else other,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    other.close()
    assert sorted(claimed) == sorted(ids)  # every job once, none twice
    assert {j.attempts for j in store.jobs()} == {1}


def test_cancel_queued_and_finished(store):
    job = store.submit("board", {}, board="b-1")
    cancelled = store.request_cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished
    assert store.claim(heavy=False) is None
    assert statuses(store, job.id) == ["queued", "cancelled"]
    done = store.submit("board", {}, board="b-2")
    store.claim(heavy=False)
    store.finish(done.id)
    assert store.request_cancel(done.id).status == "done" and not store.cancel_requested(done.id)


def test_recover_requeues_only_a_dead_process_jobs(store, boards):
    mine = store.submit("board", {}, board="b-1")
    store.claim(heavy=False)
    assert store.recover() == []  # this store runs it: left alone
    assert store.get(mine.id).status == "running"
    later = JobStore(db_path(boards))  # the next process
    assert later.recover() == [mine.id]
    assert later.get(mine.id).status == "queued"
    again = later.claim(heavy=False)
    assert again.attempts == 2
    asked = later.submit("board", {}, board="b-2")
    later.claim(heavy=False)
    later.request_cancel(asked.id)
    assert JobStore(db_path(boards)).recover() == [mine.id]  # b-2 had its cancel asked: cancelled, not queued
    assert later.get(asked.id).status == "cancelled"
    later.close()


def test_a_job_that_keeps_taking_the_server_down_fails_after_max_attempts(boards):
    from autokose.service.jobs import MAX_ATTEMPTS

    job = JobStore(db_path(boards)).submit("board", {}, board="b-1")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        server = JobStore(db_path(boards))  # a server starts, takes the job, and dies with it
        assert server.recover() == ([job.id] if attempt > 1 else [])
        assert server.claim(heavy=False).attempts == attempt
    last = JobStore(db_path(boards))
    assert last.recover() == []
    failed = last.get(job.id)
    assert failed.status == "failed" and f"{MAX_ATTEMPTS} times" in failed.error and failed.finished
    assert statuses(last, job.id)[-1] == "failed"


def test_database_of_another_version_is_refused(boards):
    path = db_path(boards)
    path.parent.mkdir(parents=True)
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(InputError, match="version 99"):
        JobStore(path)


def test_board_dir_stays_in_the_boards_folder(boards, tmp_path):
    boards.mkdir()
    assert board_dir(boards, "b-0123456789ab") == boards / "b-0123456789ab"
    for bad in ("../x", ".autokose", "", None, "a/b", "/etc"):
        with pytest.raises(InputError):
            board_dir(boards, bad)
    (tmp_path / "elsewhere").mkdir()
    (boards / "b-link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="leads out"):
        board_dir(boards, "b-link")


def test_job_progress_is_throttled_and_reports_landed_frames(tmp_path):
    class Recorder:
        def __init__(self):
            self.calls = []

        def progress(self, job_id, *tick):
            self.calls.append(("progress", *tick))

        def event(self, job_id, type_, data):
            self.calls.append((type_, data["index"], data["file"]))

    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "01.png").write_bytes(b"old")  # there before the job: not reported unless redrawn
    (frames / "02.png").write_bytes(b"old")
    rec = Recorder()
    progress = jobs.JobProgress(rec, "j-1", frames, interval=3600)
    progress("stage", 1, 3)
    progress("stage", 2, 3)  # held back: same stage, not the end, too soon
    (frames / "03.png").write_bytes(b"new")
    (frames / ".03.abcd1234.png").write_bytes(b"temp")  # a temp file is no frame
    progress("render", 1, 3)
    progress("render", 2, 3)
    (frames / "02.new").write_bytes(b"redrawn")
    os.replace(frames / "02.new", frames / "02.png")  # as the board writes: a new file renamed over the old
    progress("export", 1, 2)
    (frames / "10.png").write_bytes(b"late")
    progress.close()
    assert rec.calls == [("progress", "stage", 1, 3), ("frame", 3, "frames/03.png"), ("progress", "render", 1, 3),
                         ("frame", 2, "frames/02.png"), ("progress", "export", 1, 2), ("frame", 10, "frames/10.png")]
    progress("export", 2, 2)
    progress("export", 2, 3)
    progress.close()  # the last tick is always recorded
    assert rec.calls[-2:] == [("progress", "export", 2, 2), ("progress", "export", 2, 3)]


# --------------------------------------------------------------------------- workers
def test_light_jobs_run_side_by_side_heavy_ones_alone(store, boards, monkeypatch):
    spans: dict[str, list[tuple[float, float]]] = {"light": [], "heavy": [], "b-same": []}
    lock = threading.Lock()

    def fake_run_job(store_, boards_, job, *, stopping=None, device=None):
        t0 = time.monotonic()
        time.sleep(0.3)
        with lock:
            spans["heavy" if job.heavy else "light"].append((t0, time.monotonic()))
            if job.board == "b-same":
                spans["b-same"].append((t0, time.monotonic()))
        return store_.finish(job.id)

    monkeypatch.setattr(jobs, "run_job", fake_run_job)
    for n in range(4):
        store.submit("board", {}, board=f"b-light{n}")
    for n in range(3):
        store.submit("board", {}, board=f"b-heavy{n}", heavy=True)
    for _ in range(2):
        store.submit("render", {}, board="b-same")
    workers = Workers(store, boards, light_threads=2, heavy_slots=1, poll=0.05)
    workers.start()
    try:
        wait_for(lambda: all(j.status == "done" for j in store.jobs()), 30, "all jobs done")
    finally:
        assert workers.stop(10)

    def most_at_once(intervals):
        points = sorted([(a, 1) for a, _ in intervals] + [(b, -1) for _, b in intervals])
        now = best = 0
        for _, step in points:
            now += step
            best = max(best, now)
        return best

    assert most_at_once(spans["light"]) == 2
    assert most_at_once(spans["heavy"]) == 1
    assert most_at_once(spans["light"] + spans["heavy"]) == 3  # the GPU slot works beside the light threads
    assert most_at_once(spans["b-same"]) == 1 and len(spans["b-same"]) == 2


def test_a_failing_database_call_does_not_end_a_worker(store, boards, monkeypatch):
    real_claim, calls = store.claim, []

    def flaky_claim(*, heavy):
        calls.append(heavy)
        if len(calls) == 1:
            raise sqlite3.OperationalError("database is locked")
        return real_claim(heavy=heavy)

    monkeypatch.setattr(store, "claim", flaky_claim)
    monkeypatch.setattr(jobs, "run_job", lambda s, b, job, **kw: s.finish(job.id))
    job = store.submit("render", {}, board="b-1")
    workers = Workers(store, boards, light_threads=1, heavy_slots=0, poll=0.05)
    workers.start()
    try:
        wait_for(lambda: store.get(job.id).status == "done", 10, "the job after a database error")
    finally:
        workers.stop(10)


# --------------------------------------------------------------------------- real jobs
def test_board_render_and_export_jobs(store, boards, monkeypatch):
    board = "b-00000000000a"
    job = store.submit("board", {"overrides": SMALL}, board=board)
    written, record = [], store.progress
    monkeypatch.setattr(store, "progress", lambda *a: (written.append(a[1:]), record(*a)))
    done = run_job(store, boards, store.claim(heavy=False))
    assert (done.status, done.error, done.stage, done.done, done.total) == ("done", None, "export", 3, 3)
    events = store.events(job.id)
    frames = [e["data"] for e in events if e["type"] == "frame"]
    assert frames == [{"index": n, "file": f"frames/0{n}.png"} for n in (1, 2, 3)]
    for f in frames:
        assert (boards / board / f["file"]).is_file()
    assert {"write", "stage", "render", "export"} <= {stage for stage, _, _ in written}
    assert written[-1] == ("export", 3, 3) and ("render", 3, 3) in written  # every stage's end is written
    assert [e["data"] for e in events if e["type"] == "progress"] == [{"stage": "export", "done": 3, "total": 3}]
    assert statuses(store, job.id) == ["queued", "running", "done"]
    assert (boards / board / "board.html").is_file()

    root = boards / board
    kept = {n: frame_stat(root / f"frames/0{n}.png") for n in (1, 3)}
    render = store.submit("render", {"only": [2], "picks": {"2": 1}}, board=board)
    assert run_job(store, boards, store.claim(heavy=False)).status == "done"
    warnings = [e["data"]["message"] for e in store.events(render.id) if e["type"] == "warning"]
    assert any("--pick changes nothing on a previz board" in w for w in warnings)  # the CLI's warning lines
    assert not [e for e in store.events(job.id) if e["type"] == "warning" and "--pick" in e["data"]["message"]]
    assert [e["data"] for e in store.events(render.id) if e["type"] == "frame"] == [{"index": 2,
                                                                                     "file": "frames/02.png"}]
    assert {n: frame_stat(root / f"frames/0{n}.png") for n in (1, 3)} == kept  # only scene 2 was drawn

    export = store.submit("export", {"overrides": {"exports": ["csv"]}}, board=board)
    assert run_job(store, boards, store.claim(heavy=False)).status == "done"
    assert (root / "shots.csv").is_file()
    assert not [e for e in store.events(export.id) if e["type"] == "frame"]


def test_bad_input_fails_with_one_line(store, boards, caplog):
    job = store.submit("board", {"overrides": {**SMALL, "scenes": 0}}, board="b-00000000000b")
    failed = run_job(store, boards, store.claim(heavy=False))
    assert failed.status == "failed" and failed.error.startswith("scenes:") and "\n" not in failed.error
    assert not (boards / "b-00000000000b").exists()  # nothing was written
    assert store.events(job.id)[-1]["data"] == {"status": "failed", "error": failed.error}

    bad_story = store.submit("board", {"story": {"title": "no scenes"}}, board="b-00000000000c")
    failed = run_job(store, boards, store.claim(heavy=False))
    assert failed.id == bad_story.id and failed.status == "failed" and failed.error.startswith("story:")

    render = store.submit("render", {"only": [1]}, board="b-00000000000d")  # no board there
    assert "no story.json" in run_job(store, boards, store.claim(heavy=False)).error
    escape = store.submit("render", {"only": [1]}, board="../outside")
    assert run_job(store, boards, store.claim(heavy=False)).error == "'../outside' is not a board id"
    assert store.get(render.id).status == store.get(escape.id).status == "failed"


def test_unexpected_error_is_an_internal_error_line(store, boards, monkeypatch, caplog):
    def broken(*args):
        raise ZeroDivisionError("division by zero\nmore detail")

    monkeypatch.setitem(jobs.RUNNERS, "board", broken)
    store.submit("board", {}, board="b-00000000000e")
    failed = run_job(store, boards, store.claim(heavy=False))
    assert failed.error == "internal error: ZeroDivisionError: division by zero"
    assert "Traceback" in caplog.text  # the details go to the log, not to the user


def cancel_after_first_frame(monkeypatch, store: JobStore, job_id: str) -> None:
    real = Board.write_frame

    def write_then_cancel(self, frame, *args, **kwargs):
        entry = real(self, frame, *args, **kwargs)
        if frame.index == 1:
            store.request_cancel(job_id)
        return entry

    monkeypatch.setattr(Board, "write_frame", write_then_cancel)


def test_cancel_a_running_board_keeps_its_frames(store, boards, monkeypatch):
    board = "b-00000000000f"
    job = store.submit("board", {"overrides": {**SMALL, "scenes": 4}}, board=board)
    cancel_after_first_frame(monkeypatch, store, job.id)
    claimed = store.claim(heavy=False)
    assert store.get(job.id).status == "running"
    ended = run_job(store, boards, claimed)
    assert ended.status == "cancelled" and ended.error is None and not store.cancel_requested(job.id)
    frames = boards / board / "frames"
    assert sorted(p.name for p in frames.glob("*.png")) == ["01.png"]  # stopped at the next frame
    assert [e["data"]["index"] for e in store.events(job.id) if e["type"] == "frame"] == [1]
    first = frame_stat(frames / "01.png")
    monkeypatch.undo()
    again = store.submit("board", {"overrides": {**SMALL, "scenes": 4}}, board=board)  # continue it
    assert run_job(store, boards, store.claim(heavy=False)).status == "done"
    assert frame_stat(frames / "01.png") == first  # kept, not redrawn
    assert sorted(p.name for p in frames.glob("*.png")) == ["01.png", "02.png", "03.png", "04.png"]
    assert [e["data"]["index"] for e in store.events(again.id) if e["type"] == "frame"] == [2, 3, 4]


def test_stopping_workers_requeues_the_running_job(store, boards, monkeypatch):
    board = "b-000000000010"
    job = store.submit("board", {"overrides": SMALL}, board=board)
    workers = Workers(store, boards, light_threads=1, heavy_slots=0, poll=0.05)
    real, landed = Board.write_frame, threading.Event()

    def slow_write(self, frame, *args, **kwargs):
        entry = real(self, frame, *args, **kwargs)
        landed.set()
        time.sleep(0.3)
        return entry

    monkeypatch.setattr(Board, "write_frame", slow_write)
    workers.start()
    assert landed.wait(30)
    assert workers.stop(30)
    stopped = store.get(job.id)
    assert stopped.status == "queued" and stopped.attempts == 1  # back in the queue, not cancelled
    assert len(list((boards / board / "frames").glob("*.png"))) < 3
    monkeypatch.undo()
    assert run_job(store, boards, store.claim(heavy=False)).status == "done"
    assert store.get(job.id).attempts == 2


def test_train_job_runs_training_config_and_resumes(store, boards, monkeypatch):
    import autokose.cast.train as train

    calls = []

    def fake_train(cfg, *, resume, force, on_step):
        calls.append((cfg, resume, force))
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        for step in range(1, 4):
            on_step(step, 3, 0.1)

    monkeypatch.setattr(train, "train_character", fake_train)
    images = jobs.character_dir(boards, "kid") / "images"
    images.mkdir(parents=True)
    job = store.submit("train", {"character": "kid", "images": str(images), "model": "some/model", "steps": 3},
                       heavy=True)
    done = run_job(store, boards, store.claim(heavy=True))
    assert done.id == job.id
    assert (done.status, done.stage, done.done, done.total) == ("done", "train", 3, 3)
    cfg, resume, force = calls[0]
    assert Path(cfg.out) == jobs.character_dir(boards, "kid") / "lora" and cfg.trigger == "kid_ak"
    assert (cfg.steps, cfg.model, resume, force) == (3, "some/model", False, True)
    # a restarted training resumes from its checkpoint
    store.submit("train", {"character": "kid", "images": str(images), "model": "some/model"}, heavy=True)
    store.claim(heavy=True)  # ... the process dies; the next one recovers it
    JobStore(db_path(boards)).recover()
    again = store.claim(heavy=True)
    assert run_job(store, boards, again).attempts == 2
    assert calls[1][1:] == (True, False)
    # images from outside the service folder are refused
    outside = store.submit("train", {"character": "kid", "images": "/etc", "model": "m"}, heavy=True)
    failed = run_job(store, boards, store.claim(heavy=True))
    assert failed.id == outside.id and failed.status == "failed" and "is not inside" in failed.error
    sneaky = store.submit("train", {"character": "kid", "images": str(images), "model": "m", "class_images": "/etc"},
                          heavy=True)
    assert run_job(store, boards, store.claim(heavy=True)).error.startswith("class_images: /etc is not inside")
    assert store.get(sneaky.id).status == "failed"
    assert len(calls) == 2


def test_needs_gpu():
    assert jobs.needs_gpu("train", {})
    assert not jobs.needs_gpu("board", {"overrides": {"logline": "x"}})
    assert jobs.needs_gpu("board", {"overrides": {"model": "runwayml/stable-diffusion-v1-5"}})
    assert jobs.needs_gpu("render", {"only": [1]}, saved_model="some/model")  # the board was drawn with a model
    assert not jobs.needs_gpu("render", {"only": [1]})
    assert not jobs.needs_gpu("export", {"overrides": {}}, saved_model="some/model")


# --------------------------------------------------------------------------- kill -9 and restart
WORKER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from autokose.board import Board
    from autokose.service.jobs import JobStore, Workers, db_path

    real = Board.write_frame

    def slow_write(self, *args, **kwargs):  # a slow renderer: plenty of time to be killed after frame 1
        entry = real(self, *args, **kwargs)
        time.sleep(60)
        return entry

    Board.write_frame = slow_write
    boards = Path(sys.argv[1])
    Workers(JobStore(db_path(boards)), boards, light_threads=1, heavy_slots=0, poll=0.05).start()
    time.sleep(300)
""")


@pytest.mark.slow
def test_kill_9_then_restart_resumes_the_board(store, boards, tmp_path):
    board = "b-000000000011"
    job = store.submit("board", {"overrides": SMALL}, board=board)
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    child = subprocess.Popen([sys.executable, str(script), str(boards)], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    first = boards / board / "frames" / "01.png"
    try:
        wait_for(lambda: first.exists() or child.poll() is not None, 120, "the first frame")
        assert child.poll() is None, child.stderr.read().decode()[-2000:]
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL
    assert store.get(job.id).status == "running"  # as the killed process left it
    before = frame_stat(first)
    assert not (boards / board / "frames" / "03.png").exists()

    restarted = JobStore(db_path(boards))
    workers = Workers(restarted, boards, light_threads=1, heavy_slots=0, poll=0.05)
    workers.start()  # recover(), then resume
    try:
        ended = wait_for(lambda: (j := restarted.get(job.id)).status not in ("queued", "running") and j, 120,
                         "the resumed job")
    finally:
        assert workers.stop(30)
        restarted.close()
    assert (ended.status, ended.attempts, ended.error) == ("done", 2, None)
    assert frame_stat(first) == before  # the finished frame was kept, not drawn again
    root = boards / board
    assert sorted(p.name for p in (root / "frames").glob("*.png")) == ["01.png", "02.png", "03.png"]
    assert (root / "board.html").is_file() and (root / "board.pdf").is_file()
    manifest = Board(root).load_manifest()
    assert sorted(manifest["frames"]) == ["01", "02", "03"]
    assert statuses(store, job.id) == ["queued", "running", "queued", "running", "done"]
    # frame 1 landed in the killed process, before its render tick: the resumed run reports the frames it draws
    assert [e["data"]["index"] for e in store.events(job.id) if e["type"] == "frame"] == [2, 3]


def test_previz_boards_drawn_side_by_side_match_boards_drawn_alone(store, boards):
    """Light jobs share one process: two boards drawn at once in worker threads come out byte for byte as
    when drawn one after the other (no drawing state shared between threads)."""
    loglines = [LOGLINE, "Aldar Köse tricks the Bai with a golden egg"]
    for n, logline in enumerate(loglines):
        store.submit("board", {"overrides": {**SMALL, "logline": logline}}, board=f"b-side{n}")
    workers = Workers(store, boards, light_threads=2, heavy_slots=0, poll=0.05)
    workers.start()
    try:
        wait_for(lambda: all(j.status not in ("queued", "running") for j in store.jobs()), 120, "both boards")
    finally:
        assert workers.stop(30)
    assert [j.status for j in store.jobs()] == ["done", "done"]
    for n, logline in enumerate(loglines):
        store.submit("board", {"overrides": {**SMALL, "logline": logline}}, board=f"b-alone{n}")
        assert run_job(store, boards, store.claim(heavy=False)).status == "done"
        side, alone = boards / f"b-side{n}", boards / f"b-alone{n}"
        files = sorted(p.relative_to(side) for p in side.rglob("*") if p.is_file() and p.name != "manifest.json")
        assert len(files) > 10
        for rel in files:
            assert (side / rel).read_bytes() == (alone / rel).read_bytes(), rel
