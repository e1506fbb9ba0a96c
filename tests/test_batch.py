"""`autokose batch`: jobs files, the local loop, skipping and resuming, warm workers, and Ray.

The Ray test starts a real local cluster (`ray.init(num_cpus=2)`, loopback only), draws the same
jobs as the local loop, kills a worker actor in the middle of a board, and compares every file.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import tiny
from conftest import SHARED

from autokose.batch import LocalPool, load_jobs, run_batch
from autokose.batch.jobs import BATCH_DIR, read_record
from autokose.board import without_run_record

CLIP = SHARED / "video" / "short_hamilton_clip.mp4"
EGG = "Алдар Косе продаёт баю «золотое яйцо»"
COAT = "Aldar Köse tricks the greedy bai with a magic fur coat"


def jobs_file(path: Path, *entries) -> Path:
    path.write_text("\n".join(e if isinstance(e, str) else json.dumps(e, ensure_ascii=False) for e in entries) + "\n",
                    encoding="utf-8")
    return path


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "autokose.app.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "COLUMNS": "200"})


def board_files(root: Path) -> dict[str, bytes]:
    """Every file of a board, manifest.json less its run record (times, machine)."""
    files = {}
    for f in sorted(root.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            if f.name == "manifest.json":
                data = json.dumps(without_run_record(json.loads(data)), sort_keys=True).encode()
            files[str(f.relative_to(root))] = data
    return files


def video_job(model: Path, name: str = "v0") -> dict:
    """12 frames of the real clip at 64 px in parts of 4 (a keyframe, then 3 parts, the last two warming up)."""
    return {"name": name, "video": str(CLIP), "character": "aldar", "model": str(model), "steps": 2, "size": 64,
            "end": 0.4, "part_frames": 4, "part_overlap": 2, "strength": 0.5}


def video_files(out: Path, name: str) -> dict[str, bytes]:
    """A video job's drawn frames (warm-up ones too) and metrics. Not the MP4's bytes: FFmpeg's encoders
    have been seen to write different bytes for the same frames in one process (docs/SCALING.md)."""
    frames = out / f"{name}.frames"
    files = {str(f.relative_to(frames)): f.read_bytes() for f in sorted(frames.rglob("*.png"))}
    files["metrics"] = (out / f"{name}.metrics.json").read_bytes()
    return files


def assert_same_boards(a: Path, b: Path, names) -> None:
    for name in names:
        fa, fb = board_files(a / name), board_files(b / name)
        assert fa.keys() == fb.keys(), name
        differ = [k for k in fa if fa[k] != fb[k]]
        assert not differ, f"{name}: {differ}"


# --------------------------------------------------------------------------- the jobs file
def test_jobs_take_defaults_names_and_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    story = tmp_path / "s" / "story.json"
    story.parent.mkdir()
    subprocess.run([sys.executable, "-m", "autokose.app.cli", "story", EGG, "--scenes", "3", "--out", "b",
                    "--stages", "write"], check=True, capture_output=True)
    story.write_bytes((tmp_path / "b" / "story.json").read_bytes())
    path = jobs_file(tmp_path / "jobs.jsonl",
                     {"defaults": {"scenes": 4, "seed": 7}},
                     {"name": "egg", "logline": EGG},
                     "# a comment, then a blank line", "",
                     {"logline": COAT, "seed": 9, "soundtrack": "s/story.json"},
                     {"story": "s/story.json", "exports": ["html"]})
    jobs = load_jobs(path)
    assert [j.name for j in jobs] == ["egg", "board-005", "s"]
    assert [j.config["scenes"] for j in jobs[:2]] == [4, 4] and [j.config["seed"] for j in jobs] == [7, 9, 7]
    assert jobs[1].config["export"]["soundtrack"] == str(story)  # relative path made absolute for the workers
    assert jobs[2].story == str(story) and jobs[2].config["exports"] == ["html"]
    assert len({j.key for j in jobs}) == 3
    # the key follows what the output depends on: the story's bytes too
    story.write_text(story.read_text(encoding="utf-8").replace('"title": "', '"title": "X'), encoding="utf-8")
    assert load_jobs(path)[2].key != jobs[2].key and load_jobs(path)[0].key == jobs[0].key


def test_a_folder_of_boards_is_a_batch_starting_from_their_saved_settings(tmp_path):
    for name, seed in (("one", 1), ("two", 2)):
        subprocess.run([sys.executable, "-m", "autokose.app.cli", "story", EGG, "--scenes", "3", "--seed", str(seed),
                        "--out", str(tmp_path / "set" / name), "--stages", "write", "--width", "512"],
                       check=True, capture_output=True)
    (tmp_path / "set" / "not-a-board").mkdir()
    jobs = load_jobs(tmp_path / "set")
    assert [j.name for j in jobs] == ["one", "two"]
    assert [j.config["render"]["width"] for j in jobs] == [512, 512] and [j.config["seed"] for j in jobs] == [1, 2]


@pytest.mark.parametrize("line, words", [
    ('{"logline": "' + EGG + '", ', "not a JSON object"),
    ("[1, 2]", "not a JSON object"),
    ({"scenes": 3}, "give one of logline, story or video"),
    ({"logline": EGG, "story": "x.json"}, "got logline, story"),
    ({"logline": EGG, "sceens": 3}, "unknown option(s): sceens"),
    ({"logline": EGG, "scenes": 0}, "scenes"),
    ({"logline": EGG, "name": "../up"}, "name '../up'"),
    ({"logline": EGG, "name": "egg"}, "taken by line 1"),
    ({"story": "missing/story.json"}, "missing/story.json"),
    ({"video": "missing.mp4", "character": "aldar", "model": "m"}, "missing.mp4"),
    ({"logline": EGG, "model": "/nope/model"}, "--model /nope/model: no such file or folder"),
    ({"video": str(CLIP), "character": "aldar", "model": "/nope/m", "part_frames": 4, "part_overlap": 6},
     "is more than --part-frames 4"),
])
def test_a_bad_job_is_refused_with_its_line_before_anything_is_written(tmp_path, line, words):
    path = jobs_file(tmp_path / "jobs.jsonl", {"name": "egg", "logline": EGG}, line)
    r = cli("batch", path, "--out", tmp_path / "out", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "jobs.jsonl:2: " in r.stderr and words in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the local loop
def test_rerun_skips_finished_jobs_and_draws_a_changed_one_again(tmp_path):
    path = jobs_file(tmp_path / "jobs.jsonl", {"defaults": {"scenes": 3, "exports": ["html"]}},
                     {"name": "egg", "logline": EGG}, {"name": "coat", "logline": COAT})
    out = tmp_path / "out"
    r = cli("batch", path, "--out", out)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == [BATCH_DIR, "coat", "egg"]
    assert read_record(out, "egg")["state"] == "done"
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}

    r = cli("batch", path, "--out", out)
    assert r.returncode == 0 and r.stderr.count("skipped") >= 2, r.stderr
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps

    jobs_file(path, {"defaults": {"scenes": 3, "exports": ["html"]}},
              {"name": "egg", "logline": EGG, "seed": 5}, {"name": "coat", "logline": COAT})
    before = (out / "egg" / "frames" / "01.png").read_bytes()
    r = cli("batch", path, "--out", out)
    assert r.returncode == 0, r.stderr
    assert "egg: done" in r.stderr and "coat" in r.stderr
    assert (out / "egg" / "frames" / "01.png").read_bytes() != before  # seed 5 drawn from scratch
    assert json.loads((out / "egg" / "manifest.json").read_text())["command"]["seed"] == 5
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if "coat" in p.parts)


def test_a_started_job_resumes_keeping_its_finished_frames(tmp_path):
    path = jobs_file(tmp_path / "jobs.jsonl", {"name": "egg", "logline": EGG, "scenes": 4, "exports": ["html"]})
    out = tmp_path / "out"
    jobs = load_jobs(path)
    with LocalPool(out, jobs) as pool:
        run_batch(jobs, out, pool)
    whole = board_files(out / "egg")
    # as a batch killed in the middle of the board leaves it
    record = read_record(out, "egg")
    (out / BATCH_DIR / "egg.json").write_text(json.dumps({**record, "state": "started"}))
    (out / "egg" / "frames" / "03.png").unlink()
    kept = (out / "egg" / "frames" / "01.png").stat()
    with LocalPool(out, jobs) as pool:
        [outcome] = run_batch(jobs, out, pool)
    assert outcome.status == "done"
    assert (out / "egg" / "frames" / "01.png").stat().st_mtime_ns == kept.st_mtime_ns
    assert board_files(out / "egg") == whole


def test_a_failing_job_fails_alone_and_is_tried_again_on_the_next_run(tmp_path, monkeypatch):
    from autokose.batch.worker import Worker

    path = jobs_file(tmp_path / "jobs.jsonl", {"defaults": {"scenes": 2, "exports": ["html"]}},
                     {"name": "a", "logline": EGG}, {"name": "b", "logline": COAT}, {"name": "c", "logline": EGG})
    out = tmp_path / "out"
    jobs = load_jobs(path)
    real = Worker._board

    def broken(self, job, unit, force):
        if job.name == "b":
            raise RuntimeError("disk on fire\nsecond line")
        return real(self, job, unit, force)

    monkeypatch.setattr(Worker, "_board", broken)
    with LocalPool(out, jobs) as pool:
        outcomes = run_batch(jobs, out, pool)
    assert [(o.job, o.status) for o in outcomes] == [("a", "done"), ("b", "failed"), ("c", "done")]
    assert outcomes[1].error == "internal error: RuntimeError: disk on fire"
    assert read_record(out, "b")["state"] == "started"
    monkeypatch.setattr(Worker, "_board", real)
    with LocalPool(out, jobs) as pool:
        outcomes = run_batch(jobs, out, pool)
    assert [o.status for o in outcomes] == ["skipped", "done", "skipped"]


# --------------------------------------------------------------------------- warm workers (tiny model)
def tiny_jobs(tmp_path: Path, model: Path, names=("t1", "t2"), **extra) -> Path:
    base = {"scenes": 3, "model": str(model), "steps": 2, "width": 64, "height": 64, "exports": ["html"], **extra}
    loglines = [EGG, COAT, EGG + " снова", COAT + " again"]
    return jobs_file(tmp_path / "tiny.jsonl", {"defaults": base},
                     *({"name": n, "logline": loglines[i % 4], "seed": i + 1} for i, n in enumerate(names)))


@pytest.mark.slow
def test_a_warm_worker_loads_the_model_once_and_draws_what_a_cold_one_draws(store, tmp_path, monkeypatch):
    from autokose.render.diffusion.engine import DiffusionEngine

    jobs = load_jobs(tiny_jobs(tmp_path, tiny.tiny_sd15(store), consistency=0.5))
    loads = []
    real = DiffusionEngine._load
    monkeypatch.setattr(DiffusionEngine, "_load", lambda self: loads.append(1) or real(self))
    with LocalPool(tmp_path / "warm", jobs) as pool:
        run_batch(jobs, tmp_path / "warm", pool)
    assert len(loads) == 1
    for job in reversed(jobs):  # cold: a fresh worker per board, in the other order
        with LocalPool(tmp_path / "cold", [job]) as pool:
            run_batch([job], tmp_path / "cold", pool)
    assert len(loads) == 3
    assert_same_boards(tmp_path / "warm", tmp_path / "cold", ["t1", "t2"])


@pytest.mark.slow
@pytest.mark.skipif(not CLIP.is_file(), reason="the real test clip is not on this machine")
def test_a_video_job_in_parts_draws_what_stylize_draws(store, tmp_path):
    pytest.importorskip("av")
    from autokose.video.options import resolve_video

    model = tiny.tiny_sd15(store)
    spec = video_job(model)
    jobs = load_jobs(jobs_file(tmp_path / "jobs.jsonl", spec))
    out = tmp_path / "out"
    with LocalPool(out, jobs) as pool:
        [outcome] = run_batch(jobs, out, pool)
    assert outcome.status == "done", outcome.error
    assert read_record(out, "v0")["metrics"]["parts"]["count"] == 3
    options = {k: v for k, v in spec.items() if k not in ("name", "video")}
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the worker drew (--cpus-per-worker 1): CPU sums depend on the thread count
    try:
        resolve_video(options).run(CLIP, tmp_path / "one" / "v0.mp4")  # the same parts, one process, one call
    finally:
        torch.set_num_threads(before)
    assert video_files(out, "v0") == video_files(tmp_path / "one", "v0")
    assert (out / "v0.frames" / "warmup").is_dir() and (out / "v0.mp4").stat().st_size > 0


# --------------------------------------------------------------------------- Ray
@pytest.mark.slow
def test_ray_draws_the_local_bytes_and_survives_a_killed_worker(store, tmp_path):
    pytest.importorskip("ray")
    from autokose.batch import RayPool

    previz = [{"name": f"p{i}", "logline": (EGG, COAT)[i % 2], "seed": i, "scenes": 3, "exports": ["html", "sheet"]}
              for i in range(6)]
    model = str(tiny.tiny_sd15(store))
    # one frame a call: a board finished on a retry is then exact too (docs/SCALING.md)
    diffusion = [{"name": f"t{i}", "logline": (COAT, EGG)[i], "seed": 10 + i, "scenes": 8, "model": model, "steps": 4,
                  "width": 128, "height": 128, "batch_size": 1, "exports": ["html"]} for i in range(2)]
    videos = [video_job(Path(model))] if CLIP.is_file() else []
    path = jobs_file(tmp_path / "jobs.jsonl", *diffusion, *videos, *previz)
    jobs = load_jobs(path)
    names = [j.name for j in jobs if j.kind == "board"]

    local = tmp_path / "local"
    with LocalPool(local, jobs) as pool:
        assert [o.status for o in run_batch(jobs, local, pool)] == ["done"] * len(jobs)

    out = tmp_path / "ray"
    pool = RayPool(out, jobs, address="local", num_cpus=2)
    killed = []

    def kill_one():  # the worker drawing t0, once its first frame is on disk and the board is not finished
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed:
            if (out / "t0" / "frames" / "01.png").exists() and not (out / "t0" / "frames" / "07.png").exists():
                for unit, pid in pool.pids().items():
                    if unit.job == "t0":
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
            time.sleep(0.02)

    watcher = threading.Thread(target=kill_one)
    watcher.start()
    try:
        outcomes = run_batch(jobs, out, pool)
    finally:
        watcher.join()
        pool.close()
    assert killed, "the worker was never caught in the middle of t0"
    assert [o.status for o in outcomes] == ["done"] * len(jobs), [(o.job, o.error) for o in outcomes]
    assert outcomes[0].retries == 1 and sum(o.retries for o in outcomes) == 1
    assert len(outcomes[0].workers) == 1 and killed[0] not in outcomes[0].workers  # t0 finished elsewhere
    assert_same_boards(local, out, names)
    for video in videos:  # its parts drawn on whichever workers were free, joined on another
        assert video_files(local, video["name"]) == video_files(out, video["name"])


def test_worker_options_without_ray_are_refused(tmp_path):
    path = jobs_file(tmp_path / "jobs.jsonl", {"logline": EGG})
    r = cli("batch", path, "--out", tmp_path / "out", "--workers", "2")
    assert r.returncode == 2 and "--workers and --gpus-per-worker need --ray" in r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_cli_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray")
    path = jobs_file(tmp_path / "jobs.jsonl", {"defaults": {"scenes": 2, "exports": ["html"]}},
                     {"name": "egg", "logline": EGG}, {"name": "coat", "logline": COAT})
    r = cli("batch", path.name, "--out", "out", "--ray", "local", "--workers", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "2 job(s) on 2 worker(s) (Ray: local)" in r.stderr
    assert all((tmp_path / "out" / name / "frames" / "02.png").is_file() for name in ("egg", "coat"))
    r = cli("batch", path.name, "--out", "out", "--ray", "local", "--gpus-per-worker", "1", cwd=tmp_path)
    assert r.returncode == 2 and "--gpus-per-worker 1: the cluster has 0 GPU(s)" in r.stderr
    r = cli("batch", path.name, "--out", "out2", "--ray", "local", "--workers", "64", cwd=tmp_path)
    assert r.returncode == 2 and "64 worker(s) need 64 CPU(s) and 0 GPU(s); the cluster has" in r.stderr
    assert not (tmp_path / "out2").exists()


def test_an_output_this_batch_did_not_make_is_refused_unless_forced(tmp_path):
    subprocess.run([sys.executable, "-m", "autokose.app.cli", "story", COAT, "--scenes", "2", "--out",
                    str(tmp_path / "out" / "egg"), "--stages", "write"], check=True, capture_output=True)
    path = jobs_file(tmp_path / "jobs.jsonl", {"name": "egg", "logline": EGG, "scenes": 2, "exports": ["html"]})
    r = cli("batch", path, "--out", tmp_path / "out")
    assert r.returncode == 2 and "egg exists and this batch did not make it" in r.stderr, r.stderr
    assert "magic fur coat" in (tmp_path / "out" / "egg" / "story.json").read_text(encoding="utf-8")
    r = cli("batch", path, "--out", tmp_path / "out", "--force")
    assert r.returncode == 0, r.stderr
    assert "золотое яйцо" in (tmp_path / "out" / "egg" / "story.json").read_text(encoding="utf-8")


def test_names_keep_any_script_and_a_bom_is_no_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    story = tmp_path / "сказки" / "овцы" / "story.json"
    story.parent.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "autokose.app.cli", "story", EGG, "--scenes", "2", "--out", "b",
                    "--stages", "write"], check=True, capture_output=True)
    story.write_bytes((tmp_path / "b" / "story.json").read_bytes())
    path = tmp_path / "jobs.jsonl"
    path.write_bytes("\ufeff".encode() + json.dumps({"story": "сказки/овцы/story.json"}).encode() + b"\n"
                     + json.dumps({"logline": EGG, "name": "яйцо-2"}, ensure_ascii=False).encode() + b"\n")
    assert [j.name for j in load_jobs(path)] == ["овцы", "яйцо-2"]


def test_the_key_follows_the_characters_file(tmp_path):
    chars = tmp_path / "cast.yaml"
    chars.write_text("characters:\n  - id: aldar\n    appearance: a red chapan\n", encoding="utf-8")
    path = jobs_file(tmp_path / "jobs.jsonl", {"logline": EGG, "characters": str(chars)})
    key = load_jobs(path)[0].key
    chars.write_text("characters:\n  - id: aldar\n    appearance: a blue chapan\n", encoding="utf-8")
    os.utime(chars, ns=(1, 10**18))
    assert load_jobs(path)[0].key != key


@pytest.mark.parametrize("address, words", [("garbage", "--ray garbage: "), ("auto", "ray start --head")])
def test_a_bad_ray_address_is_one_line(tmp_path, address, words):
    pytest.importorskip("ray")
    path = jobs_file(tmp_path / "jobs.jsonl", {"logline": EGG})
    r = cli("batch", path, "--out", tmp_path / "out", "--ray", address)
    assert r.returncode == 2 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_an_in_process_worker_gives_back_the_callers_thread_count(store, tmp_path):
    torch = pytest.importorskip("torch")
    jobs = load_jobs(tiny_jobs(tmp_path, tiny.tiny_sd15(store), names=("t1",)))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with LocalPool(tmp_path / "out", jobs) as pool:  # draws with 1 thread (--cpus-per-worker)
            run_batch(jobs, tmp_path / "out", pool)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
