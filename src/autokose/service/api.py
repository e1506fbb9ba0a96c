"""The Studio's HTTP API: a thin shell over the job store (service/jobs.py), `config.resolve` and the board.

Routes check and queue; they never draw. Whatever takes longer than reading a few files (a board, a
re-render, an export, training) is a job that a worker runs through `pipeline.run` like the CLI does,
so the web and the command line build the same boards. Bad input is refused before anything is
queued, with one line (`{"detail": "..."}`), as the CLI prints one `error:` line.

Everything a request names is checked, never trusted: board ids match BOARD_ID and are looked up
(never joined as a path), a file path must stay inside its board (no `..`, no absolute path, no
symlink out, not the `.autokose` folder), uploads are images by their content (a client's file
name and type are ignored) and are stored re-encoded under names we choose. Every route but the
page itself needs the token (Bearer header, or `?token=` where a browser cannot send a header:
EventSource and <img src>).
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import mimetypes
import os
import re
import secrets
import tempfile
import threading
import time
import zipfile
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path, PurePosixPath

from fastapi import APIRouter, Body, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import ValidationError
from starlette.background import BackgroundTask

from autokose.board import Board
from autokose.errors import InputError, first_line, format_validation_error
from autokose.fsio import png_bytes, write_bytes, write_json
from autokose.images import Unreadable, check_size, open_rgb, reading
from autokose.service.jobs import (CHARACTER_ID, JobStore, Workers, character_dir, db_path, hold_service, needs_gpu,
                                   service_dir, training_job_config)
from autokose.story import Story, check_text

log = logging.getLogger("autokose")

BOARD_ID = re.compile(r"^b-[0-9a-f]{12}$")
JOB_ID = re.compile(r"^j-[0-9a-f]{12}$")
# Scene fields a person edits in the studio (PATCH); index and seed are the board's, not the form's.
EDITABLE = frozenset({"caption", "action", "dialogue", "prompt", "shot", "angle", "characters", "blocking", "notes",
                      "duration", "setting", "time"})
IMAGE_FORMATS = frozenset({"PNG", "JPEG", "MPO", "WEBP"})  # MPO: the JPEG phones write (a JPEG + previews)
ACTIVE = ("queued", "running")
# Types the stdlib does not know (or guesses differently per machine); the rest come from mimetypes.
CONTENT_TYPES = {".png": "image/png", ".svg": "image/svg+xml", ".pdf": "application/pdf", ".mp4": "video/mp4",
                 ".gif": "image/gif", ".html": "text/html; charset=utf-8", ".json": "application/json",
                 ".csv": "text/csv; charset=utf-8", ".srt": "text/plain; charset=utf-8", ".vtt": "text/vtt",
                 ".edl": "text/plain; charset=utf-8", ".otio": "application/json", ".xml": "application/xml",
                 ".fcpxml": "application/xml"}
# A board's files are the user's text rendered (board.html, frames/NN.svg): served from the API's own origin,
# they must not run scripts that could read the token, so they are sandboxed.
# board.html is self-contained (frames as data: URIs), so it reads fine without its lightbox script.
FILE_HEADERS = {"Content-Security-Policy": "sandbox; default-src 'none'; img-src 'self' data:; font-src data:; "
                                           "style-src 'unsafe-inline'; media-src 'self'",
                "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
STATIC = Path(__file__).with_name("static")
# Run settings a request may not give: they name the server's files or its LLM endpoint and key (a request
# naming its own base_url would be sent the server's API key).
SERVER_ONLY = ("writer_options", "characters_file")
MAX_EVENT_ID = 2**62  # event ids are SQLite integers; a larger Last-Event-ID is no event of ours
SSE_POLL_S = 0.1  # a stream reads the event log this often: ~50 ms late on average, two small queries a poll
SSE_KEEPALIVE_S = 15.0


class BodyLimit:
    """Refuse request bodies over `limit` bytes with 413: at once from Content-Length, and while
    streaming for a chunked body, so an upload cannot fill the disk or memory before a route runs."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _send_json(send, 413, f"request body too large (the limit is {self.limit} bytes)")
        seen, started, refused = 0, False, False

        async def counted():
            """Past the limit: answer 413 now and tell the app the client left (it stops reading)."""
            nonlocal seen, refused
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit and not refused:
                    refused = True
                    if not started:
                        await _send_json(send, 413, f"request body too large (the limit is {self.limit} bytes)")
                    return {"type": "http.disconnect"}
            return message

        async def watched(message):
            nonlocal started
            if refused:  # the app's answer to the cut-off body (a 400): the client already has its 413
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counted, watched)


async def _send_json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(boards: Path, token: str, *, start_workers: bool = True, cors_origins: Iterable[str] = (),
               max_upload_bytes: int = 20_000_000, max_body_bytes: int = 100_000_000,
               light_threads: int = 2, heavy_slots: int = 1) -> FastAPI:
    """The Studio app serving the boards under `boards`. `start_workers`: run the job workers in this
    process (started and stopped with the app); False for a front end over a store another process runs.

    `max_upload_bytes` caps one uploaded image, `max_body_bytes` any request body (and so all images of
    one upload together)."""
    if not token:
        raise InputError("the server needs a token (give --token or set AUTOKOSE_TOKEN)")
    boards = Path(boards).resolve()
    store = JobStore(db_path(boards))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        """Workers live as long as the app: started (jobs a killed server left running are queued again
        and resume) and stopped with it (running jobs go back to the queue for the next start)."""
        workers = held = None
        if start_workers:
            held = hold_service(boards)  # one server runs a folder's jobs (`autokose serve` checked it already)
            workers = Workers(store, boards, light_threads=light_threads, heavy_slots=heavy_slots)
            workers.start()
        try:
            yield
        finally:
            if workers is not None:
                await asyncio.to_thread(workers.stop)
            if held is not None:
                os.close(held)  # the folder is free for the next server

    app = FastAPI(title="AutoKöse Studio", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.store, app.state.boards, app.state.token = store, boards, token
    api = APIRouter(prefix="/api")
    _routes(api, store, boards, max_upload_bytes)
    app.include_router(api)
    _errors(app)

    @app.get("/", include_in_schema=False)
    def index():
        """The page loads without a token: it reads ?token= from its own address and sends it with every call."""
        page = STATIC / "index.html"
        if not page.is_file():
            return HTMLResponse("<!doctype html><title>AutoKöse Studio</title><p>The studio page is not installed.")
        return FileResponse(page, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    # middleware, innermost first: the token is checked before any route reads a body; CORS (when configured)
    # answers a browser's preflight, which carries no token, before that; the body limit outermost
    app.add_middleware(TokenCheck, token=token)
    origins = list(cors_origins)
    if origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["*"],
                           allow_headers=["Authorization", "Content-Type", "Last-Event-ID"])
    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


class TokenCheck:
    """Every /api request needs the token (`Authorization: Bearer` or `?token=`, compared in constant
    time): checked before the route runs, so nothing of an unauthorised request's body is parsed or
    spooled. The page, its static files and /openapi.json hold no data and need none."""

    def __init__(self, app, token: str):
        self.app, self.expected = app, token.encode()

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "")
        if scope["type"] == "http" and (path == "/api" or path.startswith("/api/")) and not self._given(scope):
            body = json.dumps({"detail": "missing or wrong token (send Authorization: Bearer <token> or ?token=)"})
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body.encode()})
            return
        await self.app(scope, receive, send)

    def _given(self, scope) -> bool:
        from urllib.parse import parse_qs

        headers = dict(scope.get("headers") or [])
        header = headers.get(b"authorization", b"").decode("latin-1")
        if header[:7].lower() == "bearer ":
            given = header[7:].strip()
        else:
            given = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0]
        return secrets.compare_digest(given.encode("utf-8", "replace"), self.expected)


def _errors(app: FastAPI) -> None:
    """Every failure as one line of JSON: bad input 422, a bug 500 (logged with its traceback)."""

    @app.exception_handler(InputError)
    async def _input(request, e: InputError):
        return JSONResponse({"detail": first_line(e)}, status_code=422)

    @app.exception_handler(ValidationError)
    async def _model(request, e: ValidationError):
        return JSONResponse({"detail": format_validation_error(e)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _request(request, e: RequestValidationError):
        err = e.errors()[0] if e.errors() else {"loc": (), "msg": "invalid request"}
        if err.get("type") == "json_invalid":
            return JSONResponse({"detail": f"the request body is not valid JSON ({err.get('msg', '')})"},
                                status_code=422)
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        msg = str(err.get("msg", "invalid request"))
        return JSONResponse({"detail": f"{loc}: {msg}" if loc else msg}, status_code=422)

    @app.exception_handler(Exception)
    async def _bug(request, e: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error: {type(e).__name__}"}, status_code=500)


# -- board helpers -------------------------------------------------------------------


def _board(boards: Path, board_id: str) -> Board:
    """The board named `board_id`: regex-checked, then looked up; 404 for anything else."""
    if not BOARD_ID.match(board_id) or not (boards / board_id).is_dir() or (boards / board_id).is_symlink():
        raise HTTPException(404, f"no board {board_id!r}")
    return Board(boards / board_id)


def _story(board: Board) -> Story:
    if not board.story_path.is_file():
        raise HTTPException(409, "the board has no story yet (wait for its first job)")
    return board.load_story()


def _scene(story: Story, n: int) -> None:
    if not 1 <= n <= len(story.scenes):
        raise HTTPException(404, f"no scene {n} (the story has scenes 1–{len(story.scenes)})")


def _json_file(path: Path, board: Board | None = None):
    """A JSON document (of `board`: only when it lies inside it), or None when it is missing, unreadable
    or a link out of the board: a listing must not fail on one bad board, nor read a file elsewhere."""
    if board is not None and not board.contains(path):
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except (OSError, ValueError, RecursionError):
        return None


def board_files(board: Board) -> list[str]:
    """The board's files as relative paths: no hidden or temp files, nothing that leads out of the board."""
    root = board.root
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and not Path(dirpath, d).is_symlink())
        for name in sorted(filenames):
            path = Path(dirpath, name)
            if not name.startswith(".") and board.contains(path):
                found.append(path.relative_to(root).as_posix())
    return found


def board_file(board: Board, rel: str) -> Path:
    """The file `rel` names inside the board, or 404: no `..`, no absolute path, no hidden part (the
    `.autokose` folder, temp files), nothing that resolves out of the board (a symlink)."""
    parts = PurePosixPath(rel).parts
    if (not rel or rel.startswith(("/", "\\")) or "\\" in rel or "\x00" in rel or not parts
            or any(p in ("", ".", "..") or p.startswith(".") for p in parts)):
        raise HTTPException(404, "no such file in the board")
    path = board.root.joinpath(*parts)
    if not path.is_file() or not board.contains(path):
        raise HTTPException(404, "no such file in the board")
    return path


def board_summary(boards: Path, board_id: str, jobs: list) -> dict:
    """One line of the boards list: title and logline from the story (or the job that is writing it)."""
    story = _json_file(boards / board_id / "story.json", Board(boards / board_id)) or {}
    first = jobs[-1] if jobs else None
    params = first.params if first else {}
    logline = story.get("logline") or params.get("overrides", {}).get("logline") \
        or (params.get("story") or {}).get("logline")
    created = first.created if first else (boards / board_id).stat().st_mtime
    return {"id": board_id, "title": story.get("title"), "logline": logline,
            "status": jobs[0].status if jobs else ("done" if story else None),
            "scenes": len(story.get("scenes", [])) if isinstance(story.get("scenes"), list) else None,
            "created": created}


def board_detail(board: Board, board_id: str, jobs: list) -> dict:
    latest = jobs[0] if jobs else None
    manifest = _json_file(board.manifest_path, board) or {}
    frames = manifest.get("frames") if isinstance(manifest.get("frames"), dict) else {}
    return {
        "id": board_id,
        "status": latest.status if latest else None,
        "progress": {"stage": latest.stage, "done": latest.done, "total": latest.total} if latest else None,
        "error": latest.error if latest else None,
        "story": _json_file(board.story_path, board),
        "files": board_files(board),
        "frames": {str(int(k)) if k.isdigit() else k: {"file": v.get("file"), "sha256": v.get("sha256"),
                                                        "candidates": v.get("candidates", []), "kept": v.get("kept")}
                   for k, v in frames.items() if isinstance(v, dict)},
        "scores": _json_file(board.scores_path, board),
        "jobs": [j.to_json() for j in jobs],
    }


def _checked_story(data) -> Story:
    if not isinstance(data, dict):
        raise InputError("story: must be a JSON object (story.json's content)")
    return Story.from_json(json.dumps(data, ensure_ascii=False), "story")


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise InputError("the request body must be a JSON object")
    return body


# -- uploads ----------------------------------------------------------------------------


def checked_image(data: bytes, max_bytes: int) -> bytes:
    """An uploaded image re-encoded as PNG, or InputError: PNG, JPEG or WebP by content (the client's
    name and type say nothing), within `max_bytes`, its size checked from the header before decoding
    (autokose.images' bomb guard), verified whole, then decoded upright as RGB."""
    if len(data) > max_bytes:
        raise InputError(f"image too large (over the limit of {max_bytes} bytes)")
    try:
        with reading(), Image.open(io.BytesIO(data)) as image:
            check_size(image)
            if image.format not in IMAGE_FORMATS:
                raise Unreadable(f"{image.format} images are not accepted (PNG, JPEG or WebP)")
            image.verify()
        return png_bytes(open_rgb(io.BytesIO(data)))
    except Unreadable as e:
        raise InputError(str(e)) from None


def character_info(folder: Path, training=None) -> dict:
    """A character's uploads and LoRA, and its latest training job (`training`, a Job or None), so a page
    opened later still sees a training that runs or failed."""
    meta = _json_file(folder / "character.json") or {}
    images = folder / "images"
    lora = folder / "lora"
    return {"id": folder.name, "name": meta.get("name", folder.name),
            "images": len(list(images.glob("*.png"))) if images.is_dir() else 0,
            "trained": lora.is_dir() and any(lora.glob("*.safetensors")),
            "training": None if training is None else {
                "job": training.id, "status": training.status, "stage": training.stage, "done": training.done,
                "total": training.total, "error": training.error}}


# -- routes -------------------------------------------------------------------------------


def _routes(api: APIRouter, store: JobStore, boards: Path, max_upload: int) -> None:  # noqa: C901 (one route each)
    from autokose.config import resolve, saved

    # A scene edit writes the board under its lock; a job started meanwhile would fail on that lock
    # ("board is busy"). So, in this process, an edit starts only when no job holds the board, and no
    # job of that board is queued while the edit runs: both checks and their effect under one lock.
    guard, editing = threading.Lock(), set()

    @contextmanager
    def edit(board_id: str) -> Iterator[None]:
        with guard:
            if board_id in editing or store.busy_board(board_id):
                raise HTTPException(409, "a job is queued or running on this board; wait for it or cancel it")
            editing.add(board_id)
        try:
            yield
        except InputError as e:
            if "board is busy" in str(e):  # another process (a CLI run) holds the board
                raise HTTPException(409, "the board is busy (a run holds it); try again when it is done") from None
            raise
        finally:
            with guard:
                editing.discard(board_id)

    def submit(kind: str, params: dict, board_id: str, heavy: bool = False):
        with guard:
            if board_id in editing:
                raise HTTPException(409, "the board is being edited; try again in a moment")
            return store.submit(kind, params, board=board_id, heavy=heavy)

    @api.post("/boards", status_code=202)
    def create_board(body=Body(...)):
        """A new board from a logline (+ any run option) or a whole story; checked before it is queued."""
        overrides = dict(_object(body))
        refused = [key for key in SERVER_ONLY if key in overrides]
        if refused:
            raise InputError(f"{refused[0]}: set on the server, not by a request (the studio uses the server's own "
                             "LLM settings and character bible)")
        story = overrides.pop("story", None)
        if story is None and not overrides.get("logline"):
            raise InputError("logline: give a logline (or a story)")
        if story is not None:
            story = _checked_story(story)
        resolve(None, overrides, announce=False)
        board_id = "b-" + secrets.token_hex(6)
        (boards / board_id).mkdir()
        params = {"overrides": overrides}
        if story is not None:
            params["story"] = story.model_dump(mode="json")
        job = store.submit("board", params, board=board_id, heavy=needs_gpu("board", params))
        return {"id": board_id, "job": job.id}

    @api.get("/boards")
    def list_boards():
        by_board: dict[str, list] = {}
        for job in store.jobs():
            if job.board:
                by_board.setdefault(job.board, []).append(job)
        found = [board_summary(boards, p.name, by_board.get(p.name, [])) for p in boards.iterdir()
                 if BOARD_ID.match(p.name) and p.is_dir() and not p.is_symlink()]
        return sorted(found, key=lambda b: b["created"], reverse=True)

    @api.get("/boards/{board_id}")
    def get_board(board_id: str):
        board = _board(boards, board_id)
        return board_detail(board, board_id, store.jobs(board=board_id))

    @api.get("/boards/{board_id}/files/{rel:path}")
    def get_file(board_id: str, rel: str):
        path = board_file(_board(boards, board_id), rel)
        media = CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or \
            "application/octet-stream"
        return FileResponse(path, media_type=media, headers=FILE_HEADERS)

    @api.patch("/boards/{board_id}/scenes/{n}")
    def patch_scene(board_id: str, n: int, body=Body(...)):
        """Edit one scene's fields, validated as story.json is, saved atomically under the board's lock."""
        board = _board(boards, board_id)
        fields = _object(body)
        unknown = sorted(set(fields) - EDITABLE)
        if unknown:
            raise InputError(f"{unknown[0]}: not an editable scene field ({', '.join(sorted(EDITABLE))})")
        try:
            check_text(fields)
        except ValueError as e:
            raise InputError(str(e)) from None
        with edit(board_id), board.lock():
            story = _story(board)
            _scene(story, n)
            data = story.model_dump(mode="json")
            data["scenes"][n - 1].update(fields)
            try:
                edited = Story.model_validate(data)
            except ValidationError as e:
                raise InputError(f"scene {n}: {format_validation_error(e)}") from None
            board.save_story(edited)
        return edited.scenes[n - 1].model_dump(mode="json")

    def _render(board_id: str, n: int, picks: dict | None) -> dict:
        board = _board(boards, board_id)
        _scene(_story(board), n)
        params = {"only": [n]}
        if picks:
            params["picks"] = picks
        cfg = resolve(saved(board), {"only": [n], "picks": {int(k): v for k, v in (picks or {}).items()}},
                      announce=False)
        heavy = needs_gpu("render", params, cfg.render.diffusion.model if cfg.render.diffusion else None)
        return {"job": submit("render", params, board_id, heavy).id}

    @api.post("/boards/{board_id}/scenes/{n}/render", status_code=202)
    def render_scene(board_id: str, n: int):
        return _render(board_id, n, None)

    @api.post("/boards/{board_id}/scenes/{n}/pick", status_code=202)
    def pick_candidate(board_id: str, n: int, body=Body(...)):
        k = _object(body).get("candidate")
        if not isinstance(k, int) or isinstance(k, bool) or k < 0:
            raise InputError("candidate: give the candidate's number (an integer, 0 or more)")
        return _render(board_id, n, {str(n): k})

    @api.post("/boards/{board_id}/scenes/{n}/move")
    def move_scene(board_id: str, n: int, body=Body(...)):
        """Reorder: the scene's files are renumbered with it (scenes.edit_board), nothing is drawn."""
        from autokose.scenes import edit_board, move

        board = _board(boards, board_id)
        to = _object(body).get("to")
        if not isinstance(to, int) or isinstance(to, bool):
            raise InputError("to: give the new position (an integer)")
        with edit(board_id):
            _scene(_story(board), n)
            _, done, restaged = edit_board(board.root, lambda story: move(story, n, to))
        return {"story": done.story.model_dump(mode="json"), "restaged": restaged}

    @api.post("/boards/{board_id}/export", status_code=202)
    def export_board(board_id: str, body=Body(...)):
        board = _board(boards, board_id)
        overrides = dict(_object(body))
        _story(board)
        resolve(saved(board), overrides, announce=False)
        return {"job": submit("export", {"overrides": overrides}, board_id).id}

    @api.post("/boards/{board_id}/cancel")
    def cancel_board(board_id: str):
        """Cancel the board's queued and running jobs; answers the latest job as it is then."""
        _board(boards, board_id)
        jobs = store.jobs(board=board_id)
        if not jobs:
            raise HTTPException(404, "no job on this board")
        for job in jobs:
            if job.status in ACTIVE:
                store.request_cancel(job.id)
        return store.get(jobs[0].id).to_json()

    @api.get("/boards/{board_id}/events")
    async def board_events(board_id: str, request: Request, after: int | None = None):
        _board(boards, board_id)
        last = request.headers.get("last-event-id", "")
        start = int(last) if last.isdigit() and len(last) < 19 else (after or 0)
        if not 0 <= start <= MAX_EVENT_ID:
            raise InputError(f"after: {start} is no event id")
        return StreamingResponse(event_stream(store, board_id, start), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @api.get("/boards/{board_id}/download.zip")
    def download(board_id: str):
        board = _board(boards, board_id)
        fd, tmp = tempfile.mkstemp(prefix="autokose-", suffix=".zip")
        os.close(fd)
        try:
            with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
                for rel in board_files(board):
                    z.write(board.root / rel, f"{board_id}/{rel}")
        except BaseException:
            os.unlink(tmp)
            raise
        return FileResponse(tmp, media_type="application/zip", filename=f"{board_id}.zip",
                            background=BackgroundTask(os.unlink, tmp))

    @api.post("/characters", status_code=201)
    async def upload_character(id: str = Form(...), name: str = Form(""),  # noqa: A002 (the form's field name)
                               images: list[UploadFile] = File(...)):
        """Reference images for a character: checked by content, stored re-encoded under our own names."""
        if not CHARACTER_ID.match(id):
            raise InputError("id: lowercase letters, digits and _, starting with a letter (at most 32)")
        pngs = []
        for upload in images:
            data = await upload.read(max_upload + 1)
            try:
                pngs.append(await asyncio.to_thread(checked_image, data, max_upload))
            except InputError as e:
                raise InputError(f"image {len(pngs) + 1}: {e}") from None
        folder = character_dir(boards, id)
        target = folder / "images"
        target.mkdir(parents=True, exist_ok=True)
        for png in pngs:
            write_bytes(target / f"{time.time_ns():x}-{secrets.token_hex(4)}.png", png)
        meta = _json_file(folder / "character.json") or {}
        write_json(folder / "character.json", {"id": id, "name": name.strip()[:80] or meta.get("name") or id})
        return {"id": id, "images": character_info(folder)["images"]}

    @api.get("/characters")
    def list_characters():
        root = service_dir(boards) / "characters"
        if not root.is_dir():
            return []
        latest = {}
        for job in store.jobs():  # newest first: the first train job of a character is its latest
            if job.kind == "train":
                latest.setdefault(job.params.get("character"), job)
        return [character_info(p, latest.get(p.name)) for p in sorted(root.iterdir())
                if CHARACTER_ID.match(p.name) and p.is_dir() and not p.is_symlink()]

    @api.post("/characters/{character}/train", status_code=202)
    def train(character: str, body=Body(...)):
        """Train a character's LoRA on its uploaded images; the settings are checked before queueing."""
        if not CHARACTER_ID.match(character) or not (character_dir(boards, character) / "images").is_dir():
            raise HTTPException(404, f"no character {character!r} (upload its images first)")
        folder = character_dir(boards, character)
        options = dict(_object(body))
        if not isinstance(options.get("model"), str) or not options["model"].strip():
            raise InputError("model: give the base model (a HF repo id, a diffusers folder or a .safetensors file)")
        for reserved in ("character", "images", "out", "characters", "base_config", "class_images"):
            if reserved in options:
                raise InputError(f"{reserved}: set by the server, not by the request")
        params = {"character": character, "images": str(folder / "images"), **options}
        training_job_config(boards, params)  # the job's own TrainConfig, built now so a bad option is a 422
        return {"job": store.submit("train", params, heavy=True).id}

    @api.get("/jobs/{job_id}")
    def get_job(job_id: str):
        job = store.get(job_id) if JOB_ID.match(job_id) else None
        if job is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return job.to_json()

    @api.post("/jobs/{job_id}/cancel")
    def cancel_job(job_id: str):
        if not JOB_ID.match(job_id) or store.get(job_id) is None:
            raise HTTPException(404, f"no job {job_id!r}")
        return store.request_cancel(job_id).to_json()


# -- server-sent events ----------------------------------------------------------------------


def sse(event_id: int | None, event: str, data: dict) -> str:
    """One server-sent event: `id:`, `event:` and one `data:` line of JSON, ended by a blank line."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def event_stream(store: JobStore, board_id: str, after: int, *, poll: float = SSE_POLL_S,
                       keepalive: float = SSE_KEEPALIVE_S) -> AsyncIterator[str]:
    """The events of the board's jobs after event `after`, in order, as they are written; ends once no
    job of the board is queued or running and its last events (the final status) were sent.

    The jobs' states are read before their events: when none was active then, every event they will
    ever have is in that read (a job's end and its status event are one transaction), so the stream
    never ends before the final status. Event ids grow in commit order, so `after` misses nothing.
    """
    quiet = time.monotonic()
    yield "retry: 3000\n\n"
    while True:
        active = await asyncio.to_thread(store.busy_board, board_id)
        for ev in await asyncio.to_thread(store.board_events, board_id, after):
            after = ev["id"]
            yield sse(ev["id"], ev["type"], {**ev["data"], "job": ev["job"], "at": ev["at"]})
            quiet = time.monotonic()
        if not active:
            return
        if time.monotonic() - quiet >= keepalive:
            yield ": keep-alive\n\n"
            quiet = time.monotonic()
        await asyncio.sleep(poll)
