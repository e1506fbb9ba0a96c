"""The Studio's HTTP API (service/api.py): auth, boards made by jobs, files served safely, uploads checked
by content, scene edits, SSE, and a real server killed with -9 in the middle of 20 jobs."""

from __future__ import annotations

import hashlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("autokose.service.jobs")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from autokose.service.api import BodyLimit, board_file, create_app  # noqa: E402

TOKEN = "test-token-123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
LOGLINE = "Aldar Köse tricks the greedy bai out of his fur coat"
SMALL = {"logline": LOGLINE, "scenes": 3, "width": 128, "exports": ["html"]}


def wait_job(client, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/jobs/{job_id}", headers=AUTH).json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {job}")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def png(size=(32, 24), colour=(200, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width=100_000, height=100_000) -> bytes:
    """A tiny PNG whose header promises width×height pixels (the IHDR rewritten, its CRC fixed)."""
    data = bytearray(png((1, 1)))
    ihdr = 8 + 8  # signature, then length + type of the first chunk
    data[ihdr:ihdr + 8] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    crc = zlib.crc32(bytes(data[12:ihdr + 13]))
    data[ihdr + 13:ihdr + 17] = crc.to_bytes(4, "big")
    return bytes(data)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """One app with workers and one finished previz board (3 scenes, 128 px) for the read-only tests."""
    boards = tmp_path_factory.mktemp("boards")
    with TestClient(create_app(boards, TOKEN)) as client:
        r = client.post("/api/boards", json=SMALL, headers=AUTH)
        assert r.status_code == 202, r.text
        board, job = r.json()["id"], r.json()["job"]
        assert wait_job(client, job)["status"] == "done"
        yield client, boards, board


@pytest.fixture
def idle(tmp_path):
    """An app without workers: jobs stay queued, so 'busy' and cancel-while-queued can be seen."""
    boards = tmp_path / "boards"
    with TestClient(create_app(boards, TOKEN, start_workers=False)) as client:
        yield client, boards


# -- auth --------------------------------------------------------------------------


def test_token_required_by_header_or_query(served):
    client, _, board = served
    assert client.get("/api/boards").status_code == 401
    r = client.get("/api/boards", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "token" in r.json()["detail"]
    assert client.get("/api/boards?token=wrong").status_code == 401
    assert client.get(f"/api/boards/{board}/files/frames/01.png").status_code == 401
    assert client.get("/api/boards", headers=AUTH).status_code == 200
    assert client.get(f"/api/boards?token={TOKEN}").status_code == 200
    assert client.get("/").status_code == 200  # the page itself loads without a token


# -- a board from a logline ------------------------------------------------------------


def test_board_made_by_a_job_lists_frames_and_serves_them(served):
    client, boards, board = served
    detail = client.get(f"/api/boards/{board}", headers=AUTH).json()
    assert detail["status"] == "done" and detail["error"] is None
    assert len(detail["story"]["scenes"]) == 3
    assert {"frames/01.png", "frames/02.png", "frames/03.png", "story.json"} <= set(detail["files"])
    assert not any(f.startswith(".") for f in detail["files"])
    assert set(detail["frames"]) == {"1", "2", "3"}
    r = client.get(f"/api/boards/{board}/files/frames/02.png", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert hashlib.sha256(r.content).hexdigest() == detail["frames"]["2"]["sha256"]
    assert Image.open(io.BytesIO(r.content)).size[0] == 128
    listed = client.get("/api/boards", headers=AUTH).json()
    assert [b["id"] for b in listed] == [board] and listed[0]["scenes"] == 3 and listed[0]["status"] == "done"
    assert listed[0]["title"]
    z = zipfile.ZipFile(io.BytesIO(client.get(f"/api/boards/{board}/download.zip", headers=AUTH).content))
    names = z.namelist()
    assert f"{board}/frames/01.png" in names and f"{board}/story.json" in names
    assert not any(".autokose" in n for n in names)


@pytest.mark.parametrize("body, words", [
    ({"logline": ""}, "logline"),
    ({"logline": "   "}, "logline"),
    ({"logline": LOGLINE, "scenes": 0}, "scenes"),
    ({"logline": LOGLINE, "width": 10}, "width"),
    ({"logline": LOGLINE, "exports": ["docx"]}, "docx"),
    ({"logline": LOGLINE, "nonsense": 1}, "unknown option(s): nonsense"),
    ({"story": {"title": "x"}}, "story"),
    ([1, 2], "object"),
    # the server's own LLM endpoint, key and bible: a request naming a base_url would be sent the server's key
    ({"logline": LOGLINE, "writer": "llm", "writer_options": {"base_url": "http://127.0.0.1:9/v1"}}, "writer_options"),
    ({"logline": LOGLINE, "characters_file": "/etc/passwd"}, "characters_file"),
])
def test_bad_board_request_is_refused_before_anything_is_queued(idle, body, words):
    client, boards = idle
    r = client.post("/api/boards", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and words in detail
    assert client.app.state.store.jobs() == []
    assert not any(p.name.startswith("b-") for p in boards.iterdir())


def test_unknown_ids_are_404(served):
    client, _, board = served
    for url in ("/api/boards/b-000000000000", "/api/boards/nope", "/api/boards/b-000000000000/events",
                "/api/jobs/j-000000000000", "/api/jobs/x", f"/api/boards/{board}/scenes/9/render",
                "/api/characters/nobody/train", "/api/boards/B-ABCDEFABCDEF/cancel"):
        if url.endswith(("render", "train", "cancel")):
            r = client.post(url, headers=AUTH, json={"model": "m"})
        else:
            r = client.get(url, headers=AUTH)
        assert r.status_code == 404, (url, r.status_code, r.text)
        assert isinstance(r.json()["detail"], str)


# -- files: nothing outside the board ------------------------------------------------------


def test_file_paths_stay_inside_the_board(served, tmp_path):
    client, boards, board = served
    root = boards / board
    secret = tmp_path / "secret.png"
    secret.write_bytes(png())
    (root / "frames" / "out.png").symlink_to(secret)
    (root / "inside.png").symlink_to(root / "frames" / "01.png")
    try:
        from autokose.board import Board

        b = Board(root)
        for rel in ("../story.json", f"../{board}/story.json", "frames/../../.autokose/jobs.sqlite",
                    "/etc/passwd", str(secret), "frames/out.png", ".autokose/jobs.sqlite", "frames/.x.png",
                    "frames\\..\\..\\x", "frames", "", "no/such.png"):
            with pytest.raises(Exception) as e:
                board_file(b, rel)
            assert getattr(e.value, "status_code", None) == 404, rel
        assert board_file(b, "inside.png").is_file()  # a link that stays in the board is fine
        for url in (f"/api/boards/{board}/files/%2e%2e/%2e%2e/.autokose/jobs.sqlite",
                    f"/api/boards/{board}/files/..%2f..%2f.autokose%2fjobs.sqlite",
                    f"/api/boards/{board}/files//etc/passwd", f"/api/boards/{board}/files/frames/out.png",
                    f"/api/boards/{board}/files/%2Fetc%2Fpasswd"):
            r = client.get(url, headers=AUTH)
            assert r.status_code == 404, (url, r.status_code)
        assert "frames/out.png" not in client.get(f"/api/boards/{board}", headers=AUTH).json()["files"]
    finally:
        (root / "frames" / "out.png").unlink()
        (root / "inside.png").unlink()


# -- uploads ---------------------------------------------------------------------------


def test_upload_accepts_images_by_content_and_renames_them(served):
    client, boards, _ = served
    files = [("images", ("notes.txt", png(), "text/plain")), ("images", ("a.png", png((40, 40)), "image/png"))]
    r = client.post("/api/characters", data={"id": "timur", "name": "Timur"}, files=files, headers=AUTH)
    assert r.status_code == 201, r.text
    assert r.json() == {"id": "timur", "images": 2}
    stored = sorted((boards / ".autokose" / "characters" / "timur" / "images").iterdir())
    assert len(stored) == 2 and all(p.suffix == ".png" and p.name not in ("notes.txt", "a.png") for p in stored)
    assert all(Image.open(p).format == "PNG" for p in stored)
    listed = client.get("/api/characters", headers=AUTH).json()
    assert {"id": "timur", "name": "Timur", "images": 2, "trained": False, "training": None} in listed


@pytest.mark.parametrize("name, data, words", [
    ("photo.png", b"just some text, not a picture\n" * 10, "not an image"),
    ("bomb.png", bomb_png(), "too large"),
    ("anim.gif", None, "GIF"),
    ("cut.png", png()[:60], "image"),
])
def test_upload_refuses_what_is_not_a_usable_image(served, name, data, words):
    client, boards, _ = served
    if data is None:
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, format="GIF")
        data = buf.getvalue()
    r = client.post("/api/characters", data={"id": "bad_one"}, files=[("images", (name, data, "image/png"))],
                    headers=AUTH)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"] and "\n" not in r.json()["detail"]
    assert not (boards / ".autokose" / "characters" / "bad_one").exists()


def test_upload_refuses_a_bad_character_id(served):
    client, _, _ = served
    for cid in ("../x", "Timur", "a" * 33, "1abc"):
        r = client.post("/api/characters", data={"id": cid}, files=[("images", ("a.png", png(), "image/png"))],
                        headers=AUTH)
        assert r.status_code == 422, cid


def test_oversize_bodies_are_413(tmp_path):
    app = create_app(tmp_path / "boards", TOKEN, start_workers=False, max_body_bytes=50_000, max_upload_bytes=20_000)
    with TestClient(app) as client:
        big = os.urandom(60_000)
        r = client.post("/api/characters", data={"id": "big"}, files=[("images", ("a.png", big, "image/png"))],
                        headers=AUTH)
        assert r.status_code == 413 and "too large" in r.json()["detail"]
        # a body without Content-Length (chunked) is cut off while it streams in
        r = client.post("/api/boards", content=iter([b"{" + b" " * 30_000] * 3), headers=AUTH)
        assert r.status_code == 413
        # one image over the per-file limit inside a body under the total limit
        noisy = Image.frombytes("RGB", (100, 100), os.urandom(30_000))
        buf = io.BytesIO()
        noisy.save(buf, format="PNG")
        r = client.post("/api/characters", data={"id": "big"}, files=[("images", ("a.png", buf.getvalue()))],
                        headers=AUTH)
        assert r.status_code == 422 and "too large" in r.json()["detail"]


def test_body_limit_passes_small_bodies_through():
    seen = []

    async def app(scope, receive, send):
        seen.append((await receive())["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    client = TestClient(BodyLimit(app, 10))
    assert client.post("/", content=b"12345").status_code == 200
    assert client.post("/", content=b"12345678901").status_code == 413
    assert seen == [b"12345"]


# -- scene edits ---------------------------------------------------------------------------


def test_patch_then_render_redraws_only_that_frame(served):
    client, boards, board = served
    root = boards / board
    before = {n: (sha(root / f"frames/0{n}.png"), (root / f"frames/0{n}.png").stat().st_mtime_ns) for n in (1, 2, 3)}
    old = json.loads((root / "story.json").read_text())["scenes"][1]
    shot = "close_up" if old["shot"] != "close_up" else "wide"
    r = client.patch(f"/api/boards/{board}/scenes/2", json={"caption": "Новая подпись", "shot": shot}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["caption"] == "Новая подпись" and r.json()["seed"] == old["seed"]
    on_disk = json.loads((root / "story.json").read_text())["scenes"][1]
    assert on_disk["caption"] == "Новая подпись" and on_disk["shot"] == shot

    r = client.post(f"/api/boards/{board}/scenes/2/render", headers=AUTH)
    assert r.status_code == 202
    assert wait_job(client, r.json()["job"])["status"] == "done"
    after = {n: (sha(root / f"frames/0{n}.png"), (root / f"frames/0{n}.png").stat().st_mtime_ns) for n in (1, 2, 3)}
    assert after[1] == before[1] and after[3] == before[3]
    assert after[2][0] != before[2][0]
    frames = client.get(f"/api/boards/{board}", headers=AUTH).json()["frames"]
    assert frames["2"]["sha256"] == after[2][0]


@pytest.mark.parametrize("body, words", [
    ({"shot": "sideways"}, "shot"),
    ({"characters": ["nobody"]}, "nobody"),
    ({"seed": 5}, "seed"),
    ({"caption": "x" * 5000}, "caption"),
    ({"duration": -1}, "duration"),
    ('{"caption": "\\ud800"}', "surrogate"),
])
def test_bad_scene_edit_is_422_and_changes_nothing(served, body, words):
    client, boards, board = served
    story = (boards / board / "story.json").read_bytes()
    raw = body if isinstance(body, str) else json.dumps(body)
    r = client.patch(f"/api/boards/{board}/scenes/1", content=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"] and "\n" not in r.json()["detail"]
    assert (boards / board / "story.json").read_bytes() == story


def _hand_made_board(boards: Path) -> str:
    """A previz board made straight by the pipeline (an app without workers cannot make one)."""
    from autokose.config import resolve
    from autokose.pipeline import run

    board = "b-0123456789ab"
    run(resolve(None, {"logline": LOGLINE, "scenes": 3, "width": 128, "exports": ["html"]}), boards / board)
    return board


def test_edits_wait_for_jobs_and_cancel_frees_the_board(idle):
    client, boards = idle
    board = _hand_made_board(boards)
    r = client.post(f"/api/boards/{board}/scenes/1/render", headers=AUTH)
    assert r.status_code == 202
    job = r.json()["job"]
    r = client.patch(f"/api/boards/{board}/scenes/1", json={"caption": "x"}, headers=AUTH)
    assert r.status_code == 409 and "cancel" in r.json()["detail"]
    assert client.post(f"/api/boards/{board}/scenes/1/move", json={"to": 2}, headers=AUTH).status_code == 409
    r = client.post(f"/api/boards/{board}/cancel", headers=AUTH)
    assert r.status_code == 200 and r.json()["id"] == job and r.json()["status"] == "cancelled"
    assert client.get(f"/api/jobs/{job}", headers=AUTH).json()["status"] == "cancelled"
    assert client.patch(f"/api/boards/{board}/scenes/1", json={"caption": "x"}, headers=AUTH).status_code == 200
    # the run's own lock (a CLI run on the same board) is a 409 too, not a 500
    from autokose.board import Board

    with Board(boards / board).lock():
        r = client.patch(f"/api/boards/{board}/scenes/1", json={"caption": "y"}, headers=AUTH)
        assert r.status_code == 409


def test_move_reorders_scenes_with_their_frames(idle):
    client, boards = idle
    board = _hand_made_board(boards)
    root = boards / board
    first, third = sha(root / "frames/01.png"), sha(root / "frames/03.png")
    caption = json.loads((root / "story.json").read_text())["scenes"][0]["caption"]
    r = client.post(f"/api/boards/{board}/scenes/1/move", json={"to": 3}, headers=AUTH)
    assert r.status_code == 200, r.text
    assert r.json()["story"]["scenes"][2]["caption"] == caption
    assert sha(root / "frames/03.png") == first and sha(root / "frames/02.png") == third
    assert client.post(f"/api/boards/{board}/scenes/1/move", json={"to": 9}, headers=AUTH).status_code == 422


def test_pick_and_export_are_checked_before_queueing(idle):
    client, boards = idle
    board = _hand_made_board(boards)
    store = client.app.state.store
    assert client.post(f"/api/boards/{board}/scenes/1/pick", json={"candidate": "a"}, headers=AUTH).status_code == 422
    assert client.post(f"/api/boards/{board}/export", json={"exports": ["docx"]}, headers=AUTH).status_code == 422
    assert store.jobs() == []
    r = client.post(f"/api/boards/{board}/export", json={"exports": ["csv"]}, headers=AUTH)
    assert r.status_code == 202
    job = store.get(r.json()["job"])
    assert job.kind == "export" and job.params == {"overrides": {"exports": ["csv"]}} and not job.heavy


# -- a real server ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """uvicorn serving the app in a thread on a free loopback port."""

    def __init__(self, boards: Path, **kwargs):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(boards, TOKEN, **kwargs), host="127.0.0.1", port=self.port,
                                log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(30)


def read_sse(response) -> list[dict]:
    """The events of a text/event-stream response until the server closes it."""
    events, current = [], {}
    for line in response.iter_lines():
        if not line:
            if "event" in current:
                events.append({"id": int(current["id"]), "type": current["event"], "data": json.loads(current["data"])})
            current = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            current[key] = value
    return events


def test_sse_streams_progress_frames_and_status_then_replays(tmp_path):
    with Live(tmp_path / "boards") as live, httpx.Client(base_url=live.url, headers=AUTH, timeout=60) as api:
        r = api.post("/api/boards", json=SMALL)
        board, job = r.json()["id"], r.json()["job"]
        with api.stream("GET", f"/api/boards/{board}/events", params={"token": TOKEN}, headers={}) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            events = read_sse(stream)
        types = [e["type"] for e in events]
        assert {"progress", "frame", "status"} <= set(types)
        assert types[-1] == "status" and events[-1]["data"]["status"] == "done"
        assert all(e["data"]["job"] == job for e in events)
        ids = [e["id"] for e in events]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        frames = [e["data"] for e in events if e["type"] == "frame"]
        assert {f["index"] for f in frames} == {1, 2, 3}
        assert all(f["file"] == f"frames/0{f['index']}.png" for f in frames)
        # a client that reconnects gets only what it missed; the board is idle, so the stream ends
        with api.stream("GET", f"/api/boards/{board}/events", headers={"Last-Event-ID": str(ids[-3])}) as stream:
            assert [e["id"] for e in read_sse(stream)] == ids[-2:]
        with api.stream("GET", f"/api/boards/{board}/events", params={"after": ids[-2]}) as stream:
            assert [e["id"] for e in read_sse(stream)] == ids[-1:]
        # raw paths, exactly as sent (no client normalises the dots away)
        raw = http_raw(live.port, f"/api/boards/{board}/files/../../.autokose/jobs.sqlite")
        assert raw == 404
        assert http_raw(live.port, f"/api/boards/{board}/files/%2e%2e/%2e%2e/.autokose/jobs.sqlite") == 404
        assert http_raw(live.port, f"/api/boards/{board}/files/frames/01.png") == 200


def http_raw(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=AUTH)
        return conn.getresponse().status
    finally:
        conn.close()


def start_serve(boards: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "AUTOKOSE_TOKEN": TOKEN, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "autokose.app.serve", "--port", str(port), "--boards", str(boards)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.strip() == f"AutoKöse Studio: http://127.0.0.1:{port}/?token={TOKEN}", line
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/boards", headers=AUTH, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "timeout"
        time.sleep(0.1)


@pytest.mark.slow
def test_twenty_jobs_survive_kill_9_of_the_server(tmp_path):
    boards, port = tmp_path / "boards", free_port()
    proc = start_serve(boards, port)
    try:
        url = f"http://127.0.0.1:{port}"
        body = {"logline": LOGLINE, "scenes": 6, "width": 128, "exports": ["html"]}
        with ThreadPoolExecutor(20) as pool:
            made = list(pool.map(lambda s: httpx.post(f"{url}/api/boards", json={**body, "seed": s}, headers=AUTH,
                                                      timeout=30).json(), range(20)))
        assert len({m["id"] for m in made}) == 20
        deadline = time.monotonic() + 120
        while not any(b["status"] == "done" for b in httpx.get(f"{url}/api/boards", headers=AUTH).json()):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc = start_serve(boards, port)
        jobs = [httpx.get(f"{url}/api/jobs/{m['job']}", headers=AUTH).json() for m in made]
        assert any(j["status"] != "done" for j in jobs), "every job finished before the kill: nothing was tested"
        deadline = time.monotonic() + 300
        while any(j["status"] in ("queued", "running") for j in jobs):
            assert time.monotonic() < deadline, [j["status"] for j in jobs]
            time.sleep(0.5)
            jobs = [httpx.get(f"{url}/api/jobs/{m['job']}", headers=AUTH).json() for m in made]
        assert [j["status"] for j in jobs] == ["done"] * 20, [j.get("error") for j in jobs]
        assert any(j["attempts"] > 1 for j in jobs)  # some were running at the kill and resumed
        for m in made:
            frames = boards / m["id"] / "frames"
            assert sorted(p.name for p in frames.glob("*.png")) == [f"0{n}.png" for n in range(1, 7)]
            detail = httpx.get(f"{url}/api/boards/{m['id']}", headers=AUTH).json()
            assert set(detail["frames"]) == {str(n) for n in range(1, 7)}
    finally:
        proc.kill()
        proc.wait(10)


# -- autokose serve --------------------------------------------------------------------------


def test_serve_prints_the_url_and_binds_loopback(tmp_path, monkeypatch):
    import typer
    import uvicorn
    from typer.testing import CliRunner

    from autokose.app.serve import serve

    ran = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.update(kw, app=app))
    monkeypatch.setenv("AUTOKOSE_TOKEN", "from-env")
    cli = typer.Typer()
    cli.command()(serve)
    result = CliRunner().invoke(cli, ["--boards", str(tmp_path / "b"), "--port", "8123"])
    assert result.exit_code == 0, result.output
    assert "AutoKöse Studio: http://127.0.0.1:8123/?token=from-env" in result.output
    assert ran["host"] == "127.0.0.1" and ran["port"] == 8123
    assert ran["app"].state.token == "from-env" and (tmp_path / "b" / ".autokose" / "jobs.sqlite").is_file()
    result = CliRunner().invoke(cli, ["--boards", str(tmp_path / "b"), "--token", "given"])
    assert "?token=given" in result.output
    monkeypatch.delenv("AUTOKOSE_TOKEN")
    result = CliRunner().invoke(cli, ["--boards", str(tmp_path / "b")])
    token = result.output.strip().rsplit("token=", 1)[1]
    assert len(token) >= 32 and ran["app"].state.token == token


def test_cors_is_off_unless_origins_are_given(tmp_path):
    preflight = {"Origin": "http://elsewhere.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    with TestClient(create_app(tmp_path / "a", TOKEN, start_workers=False)) as client:
        r = client.get("/api/boards", headers={**AUTH, "Origin": "http://elsewhere.example"})
        assert "access-control-allow-origin" not in r.headers
        assert "access-control-allow-origin" not in client.options("/api/boards", headers=preflight).headers
        assert client.get("/openapi.json").status_code == 200  # the schema is public; no data in it
        assert client.get("/docs").status_code == 404  # Swagger UI would load from a CDN
    app = create_app(tmp_path / "b", TOKEN, start_workers=False, cors_origins=["http://elsewhere.example"])
    with TestClient(app) as client:
        r = client.options("/api/boards", headers=preflight)
        assert r.headers["access-control-allow-origin"] == "http://elsewhere.example"


def test_board_files_are_sandboxed(served):
    client, _, board = served
    r = client.get(f"/api/boards/{board}/files/board.html", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.headers["content-security-policy"].startswith("sandbox;")
    assert r.headers["x-content-type-options"] == "nosniff"


def test_event_stream_keeps_alive_while_quiet_and_ends_after_the_final_status():
    import asyncio

    from autokose.service.api import event_stream

    class Quiet:
        """A board whose job is busy for a few polls without a word, then ends."""

        polls = 0

        def busy_board(self, board):
            self.polls += 1
            return self.polls < 5

        def board_events(self, board, after):
            if self.polls < 5:
                return []
            return [{"id": 7, "job": "j-1", "type": "status", "data": {"status": "done", "error": None}, "at": 1.0}]

    async def collect():
        return [chunk async for chunk in event_stream(Quiet(), "b-1", 0, poll=0.01, keepalive=0.0)]

    chunks = asyncio.run(collect())
    assert chunks[0].startswith("retry:")
    assert chunks.count(": keep-alive\n\n") >= 3
    assert chunks[-1] == 'id: 7\nevent: status\ndata: {"status": "done", "error": null, "job": "j-1", "at": 1.0}\n\n'


def test_cancel_stops_a_running_board_and_keeps_its_frames(tmp_path):
    with TestClient(create_app(tmp_path / "boards", TOKEN)) as client:
        r = client.post("/api/boards", json={**SMALL, "scenes": 120}, headers=AUTH)
        board, job = r.json()["id"], r.json()["job"]
        frames = tmp_path / "boards" / board / "frames"
        deadline = time.monotonic() + 60
        while not (frames.is_dir() and any(frames.glob("*.png"))):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        r = client.post(f"/api/boards/{board}/cancel", headers=AUTH)
        assert r.status_code == 200 and r.json()["id"] == job
        ended = wait_job(client, job)
        assert ended["status"] == "cancelled", ended
        kept = len(list(frames.glob("*.png")))
        assert 1 <= kept < 120
        detail = client.get(f"/api/boards/{board}", headers=AUTH).json()
        assert detail["status"] == "cancelled" and len(detail["frames"]) == kept


def test_training_is_checked_then_queued_as_a_heavy_job(idle):
    client, boards = idle
    files = [("images", (f"{k}.png", png(colour=(k * 40, 90, 90)), "image/png")) for k in range(3)]
    assert client.post("/api/characters", data={"id": "timur"}, files=files, headers=AUTH).status_code == 201
    store = client.app.state.store
    for body, words in (({"steps": 5}, "model"), ({"model": "m", "steps": -1}, "steps"),
                        ({"model": "m", "bogus": 1}, "bogus"), ({"model": "m", "out": "/tmp/x"}, "out")):
        r = client.post("/api/characters/timur/train", json=body, headers=AUTH)
        assert r.status_code == 422 and words in r.json()["detail"], (body, r.text)
    assert store.jobs() == []
    r = client.post("/api/characters/timur/train", json={"model": "some/model", "steps": 5}, headers=AUTH)
    assert r.status_code == 202, r.text
    job = store.get(r.json()["job"])
    assert job.kind == "train" and job.heavy and job.board is None
    assert job.params["character"] == "timur" and job.params["steps"] == 5
    assert Path(job.params["images"]) == (boards / ".autokose" / "characters" / "timur" / "images").resolve()
    # the character list carries its latest training, so a page opened later still sees it
    listed = {c["id"]: c for c in client.get("/api/characters", headers=AUTH).json()}
    assert listed["timur"]["training"]["job"] == job.id and listed["timur"]["training"]["status"] == "queued"


def test_board_documents_linked_out_of_the_board_are_not_read(idle, tmp_path):
    client, boards = idle
    board = _hand_made_board(boards)
    secret = tmp_path / "elsewhere.json"
    secret.write_text(json.dumps({"title": "SECRET", "scenes": []}))
    (boards / board / "scores.json").symlink_to(secret)
    detail = client.get(f"/api/boards/{board}", headers=AUTH).json()
    assert detail["scores"] is None and "scores.json" not in detail["files"]
    (boards / board / "story.json").unlink()
    (boards / board / "story.json").symlink_to(secret)
    assert client.get(f"/api/boards/{board}", headers=AUTH).json()["story"] is None
    assert "SECRET" not in json.dumps(client.get("/api/boards", headers=AUTH).json())
    r = client.patch(f"/api/boards/{board}/scenes/1", json={"caption": "x"}, headers=AUTH)
    assert r.status_code == 422 and "symlink" in r.json()["detail"]
    assert json.loads(secret.read_text())["title"] == "SECRET"


def test_the_token_is_checked_before_the_body_is_read(idle):
    client, _ = idle
    r = client.post("/api/boards", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 401  # not a 422 about the JSON: an unauthorised body is never parsed
    r = client.post("/api/characters", files={"images": ("a.png", png(), "image/png")}, data={"id": "x"})
    assert r.status_code == 401


def test_an_event_id_out_of_range_is_a_clean_error(served):
    client, _, board = served  # its job is finished, so a stream ends after the replay
    r = client.get(f"/api/boards/{board}/events", headers={**AUTH, "Last-Event-ID": "9" * 25})
    assert r.status_code == 200 and "event: status" in r.text  # an id no event can have is ignored: full replay
    r = client.get(f"/api/boards/{board}/events?after=" + "9" * 25, headers=AUTH)
    assert r.status_code == 422 and "no event id" in r.json()["detail"]


def test_a_second_server_on_the_same_boards_folder_is_refused(tmp_path):
    from autokose.errors import InputError
    from autokose.service.jobs import hold_service

    boards = tmp_path / "boards"
    with TestClient(create_app(boards, TOKEN)):  # its workers hold the folder while it runs
        with pytest.raises(InputError, match="another autokose serve"):
            hold_service(boards)
    os.close(hold_service(boards))  # stopped: the folder is free again


def test_serve_refuses_a_boards_folder_it_cannot_write_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from autokose.app.cli import app

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    for boards in (blocker / "[x]ö", "/proc/[x]ö"):
        result = CliRunner().invoke(app, ["serve", "--boards", str(boards), "--token", "t"])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "not writable" in lines[0] and "[x]ö" in lines[0], result.stderr
    assert blocker.read_text() == "not a folder"
