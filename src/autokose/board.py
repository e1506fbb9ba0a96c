"""The storyboard folder: the contract between stages and with users.

    story.json       the Story (edit it, then `autokose render` it)
    frames/NN.png    rendered frames (+ NN.svg from the previz renderer)
    control/NN_pose.png, NN_pose.json   OpenPose skeletons for ControlNet
    candidates/NN_k.png, .svg, .json    candidates of the quality loop
    manifest.json    versions, parameters, seeds, input hashes, timings
    scores.json, scores_heatmap.png     identity scores
    board.html, board.pdf, sheet.png    exports (EXPORT_FILES): the board to read and print,
    animatic.mp4, animatic.gif          the animatic,
    timeline.otio, .xml, .fcpxml, .edl  the editorial timeline (OTIO, FCP7, FCPX, CMX 3600),
    shots.csv, captions.srt, .vtt       the shot list and the captions timed to the animatic

One run at a time: a run holds an exclusive lock on the folder (`Board.claim`), so a second run
on the same board fails at once instead of interleaving its files with the first one's. The
board only ever deletes the files named above (and leftover temp files of them): whatever else
a user keeps in the folder is theirs.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import cache
from importlib import metadata
from pathlib import Path

from PIL import Image

from autokose import __version__
from autokose.errors import InputError, first_line
from autokose.fsio import (ensure_writable_dir, png_bytes, read_json_object, sha256_file, temp_target, write_bytes,
                            write_json, write_text)
from autokose.images import Unreadable, check_size, reading
from autokose.staging import Layout
from autokose.story import Story

try:
    import fcntl
except ImportError:  # Windows: no flock; boards there are not locked
    fcntl = None

MANIFEST_VERSION = 1
LAYOUTS_VERSION = 1
SCORES_FILE = "scores.json"
HEATMAP_FILE = "scores_heatmap.png"
LAYOUTS_FILE = "layouts.json"
# Export format → the file it writes in the board folder (`autokose export --format`).
EXPORT_FILES = {
    "html": "board.html", "pdf": "board.pdf", "sheet": "sheet.png",
    "mp4": "animatic.mp4", "gif": "animatic.gif",
    "otio": "timeline.otio", "fcp7": "timeline.xml", "fcpx": "timeline.fcpxml", "edl": "timeline.edl",
    "csv": "shots.csv", "srt": "captions.srt", "vtt": "captions.vtt",
}
# Files the board writes, per sub-folder ("" is the board folder): the only ones it ever deletes.
_TOP_FILES = ("story.json", "manifest.json", SCORES_FILE, HEATMAP_FILE, LAYOUTS_FILE, *EXPORT_FILES.values())
OWNED = {
    "": re.compile(rf"^({'|'.join(map(re.escape, _TOP_FILES))})$"),
    "frames": re.compile(r"^\d{2,3}\.(png|svg)$"),
    "control": re.compile(r"^\d{2,3}_pose\.(png|json)$"),
    "candidates": re.compile(r"^\d{2,3}_\d+\.(png|svg|json)$"),
}
# Paths a run writes through or reads back; a symlink among them must stay inside the board.
LINK_CHECKED = ("story.json", "manifest.json", LAYOUTS_FILE, SCORES_FILE, "frames", "control", "candidates")
WRITE_PROBE = re.compile(r"^\.write-test-\d+$")  # fsio.ensure_writable_dir's probe, left by kill -9
# Where a scene edit (`autokose scenes`) stages the board it is making before swapping it in (see `rearrange`).
EDIT_DIR = ".scenes-edit"
SCENE_SUBS = ("frames", "control", "candidates")  # sub-folders whose files are named by scene


def frame_key(index: int) -> str:
    """Scene `index` as it names its files and manifest entry: '01'..'99', then '100'..'300'.

    Two digits at least, so boards of up to 99 scenes keep the names they always had; a
    longer board sorts by number (`frame_order`), never by these strings ('100' < '11').
    """
    return f"{index:02d}"


def frame_order(key: str) -> tuple:
    """Sort key for frame keys: by scene number; anything else (a hand-edited key) after them."""
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


class Board:
    def __init__(self, root: Path | str):
        self.root = _without_dotdot(Path(root))

    # -- paths ---------------------------------------------------------------
    @property
    def story_path(self) -> Path:
        return self.root / "story.json"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def html_path(self) -> Path:
        return self.root / "board.html"

    @property
    def pdf_path(self) -> Path:
        return self.root / "board.pdf"

    @property
    def sheet_path(self) -> Path:
        return self.root / "sheet.png"

    def export_path(self, fmt: str) -> Path:
        """The file export format `fmt` writes (EXPORT_FILES)."""
        return self.root / EXPORT_FILES[fmt]

    def sound_path(self, sound: str) -> Path:
        """A scene's `sound` (relative to the board) as a path; InputError when it is missing or leads out."""
        path = self.root / sound
        if not path.is_file():
            raise InputError(f"{path}: no such sound file (a scene's `sound` is relative to the board folder)")
        if not self.contains(path):
            raise InputError(f"{path}: is a symlink that leaves the board; copy the sound into the board folder")
        return path

    def frame_path(self, index: int, ext: str = "png") -> Path:
        return self.root / "frames" / f"{frame_key(index)}.{ext}"

    def pose_path(self, index: int, ext: str = "png") -> Path:
        return self.root / "control" / f"{frame_key(index)}_pose.{ext}"

    @property
    def layouts_path(self) -> Path:
        return self.root / LAYOUTS_FILE

    @property
    def scores_path(self) -> Path:
        return self.root / SCORES_FILE

    @property
    def heatmap_path(self) -> Path:
        return self.root / HEATMAP_FILE

    def candidate_path(self, index: int, k: int, ext: str = "png") -> Path:
        """Candidate k of scene `index` (the quality loop's best-of-K draws)."""
        return self.root / "candidates" / f"{frame_key(index)}_{k}.{ext}"

    def contains(self, path: Path) -> bool:
        """Whether `path`, symlinks followed, lies inside the board folder (a symlink loop does not)."""
        try:
            return path.resolve().is_relative_to(self.root.resolve())
        except (OSError, RuntimeError):  # RuntimeError: a symlink loop
            return False

    # -- lifecycle -------------------------------------------------------------
    @contextmanager
    def claim(self, *, fresh: bool) -> Iterator[Board]:
        """Hold the board for one run: create the folder if needed, lock it, check and tidy it.

        `fresh`: a new board, so the folder must be empty. Leftover temp files of a killed run
        are removed. If the run fails, a folder it created is removed again as long as nothing
        was finished in it, so a failed first run leaves nothing behind.
        """
        try:
            if self.root.exists() and not self.root.is_dir():
                raise InputError(f"{self.root}: exists and is not a folder")
            created = _make_dirs(self.root)
        except OSError as e:  # no permission, a file among the parents, a name too long
            raise InputError(f"{self.root}: output folder is not writable ({e.strerror or e})") from None
        try:
            with self.lock():
                self.finish_edit()
                self.check(fresh=fresh)
                ensure_writable_dir(self.root)
                self.remove_temp_files()
                yield self
        except BaseException:
            if created is not None:
                _remove_empty_dirs(self.root, created)
            raise

    @contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock on the board folder for as long as the block runs.

        flock on the folder itself: the kernel drops it when the process ends, kill -9
        included, so a lock is never stale and no lock file is left in the board.
        """
        if fcntl is None:
            yield
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(f"{self.root}: board is busy (another autokose run holds its lock); "
                                 "wait for it to finish") from None
            yield
        finally:
            os.close(fd)

    def check(self, *, fresh: bool = False) -> None:
        """Refuse a folder a run cannot safely write into, before anything is written."""
        root = self.root
        if fresh and any(root.iterdir()):
            raise InputError(f"{root}: folder is not empty (use --resume to continue it or --force to overwrite)")
        for name in LINK_CHECKED:
            self._check_link(root / name)
        for sub in ("frames", "control", "candidates"):
            if (root / sub).exists() and not (root / sub).is_dir():
                raise InputError(f"{root / sub}: exists and is not a folder (move it away)")
        for path in self.owned_files():
            if path.is_dir():
                raise InputError(f"{path}: is a folder where the board keeps a file (move it away)")

    def _check_link(self, path: Path) -> None:
        if path.is_symlink() and not self.contains(path):
            raise InputError(f"{path}: is a symlink that leaves the board or loops (to {os.readlink(path)}); "
                             "replace it with a real file or folder")

    def owned_files(self) -> Iterator[Path]:
        """The entries named like files the board writes (see OWNED); a user's own files are not listed.

        `check` refuses a folder under such a name, so after it these are all files (or links).
        """
        for sub, pattern in OWNED.items():
            folder = self.root / sub
            if folder.is_dir() and not folder.is_symlink():
                yield from (f for f in folder.iterdir() if pattern.match(f.name))

    def clear(self) -> None:
        """Delete the previous board's files (--force), so none of its frames or scores survive as orphans."""
        for path in list(self.owned_files()):
            path.unlink()

    def remove_temp_files(self) -> None:
        """Delete temp files of board files that a killed run left (`.01.k3j_x9a2.png`), nothing else."""
        for sub, pattern in OWNED.items():
            folder = self.root / sub
            if not folder.is_dir() or folder.is_symlink():
                continue
            for f in folder.iterdir():
                target = temp_target(f.name)
                leftover = (target is not None and pattern.match(target)) or (sub == "" and WRITE_PROBE.match(f.name))
                if leftover and f.is_file() and not f.is_symlink():
                    f.unlink()

    # -- scene edits -------------------------------------------------------------
    def scene_files(self, index: int) -> list[Path]:
        """The files of scene `index` in frames/, control/ and candidates/ (frame, SVG, pose, candidates)."""
        key = frame_key(index)
        found = []
        for sub in SCENE_SUBS:
            folder = self.root / sub
            if folder.is_dir() and not folder.is_symlink():
                found += sorted(f for f in folder.iterdir() if OWNED[sub].match(f.name) and _scene_of(f.name) == key)
        return found

    def rearrange(self, order: list[int | None], documents: dict[str, bytes]) -> None:
        """Renumber the scenes' files: new scene n takes the files of old scene `order[n-1]` (None: a new
        scene, no files; an old scene listed twice is copied; one not listed is deleted), and `documents`
        (name in the board → bytes: story.json, manifest.json, ...) replace theirs, all or nothing.

        Everything is first staged in EDIT_DIR (hard links, so no frame is copied), then a `ready` mark
        is written; only then are files swapped in. A kill before the mark leaves the board as it was
        (the stage is dropped at the next claim); after it, the next claim finishes the swap
        (`finish_edit`), so a board is never left half renumbered.
        """
        stage = self.root / EDIT_DIR
        if stage.exists():
            shutil.rmtree(stage)
        targets = []
        for new, old in enumerate(order, 1):
            for path in self.scene_files(old) if old is not None else []:
                name = frame_key(new) + path.name[len(frame_key(old)):]
                target = stage / path.parent.name / name
                target.parent.mkdir(parents=True, exist_ok=True)
                _link_or_copy(path, target)
                targets.append(f"{path.parent.name}/{name}")
        for name, data in documents.items():
            write_bytes(stage / "documents" / name, data)
        write_json(stage / "plan.json", {"scene_files": targets, "documents": sorted(documents)})
        write_text(stage / "ready", "")
        self.finish_edit()

    def finish_edit(self) -> None:
        """Swap in a staged scene edit (see `rearrange`) once it is marked ready; drop an unfinished one.

        Idempotent: files already swapped in are kept (the plan lists the whole new set), so a kill
        during the swap is finished by the next claim.
        """
        stage = self.root / EDIT_DIR
        if not stage.is_dir() or stage.is_symlink():
            return
        if not (stage / "ready").is_file():
            shutil.rmtree(stage)
            return
        plan = read_json_object(stage / "plan.json", "scene edit plan")
        keep = set(plan["scene_files"])
        for sub in SCENE_SUBS:
            folder = self.root / sub
            if folder.is_dir() and not folder.is_symlink():
                for f in folder.iterdir():
                    if OWNED[sub].match(f.name) and f"{sub}/{f.name}" not in keep:
                        f.unlink()
        for rel in plan["scene_files"]:
            staged = stage / rel
            if staged.exists():
                (self.root / rel).parent.mkdir(exist_ok=True)
                os.replace(staged, self.root / rel)
        for name in plan["documents"]:
            staged = stage / "documents" / name
            if staged.exists():
                os.replace(staged, self.root / name)
        shutil.rmtree(stage)

    def load_story(self) -> Story:
        self._check_link(self.story_path)
        return Story.load(self.story_path)

    def save_story(self, story: Story) -> None:
        write_text(self.story_path, story.to_json())

    def save_layouts(self, layouts: list[Layout], width: int, height: int) -> None:
        """layouts.json: staging's output (who stands where, in what pose) for the frame size it was made for.

        An artifact like the frames: the controls, the regions and the scorer read it, and a
        user (or the web studio) may move a figure in it; `load_layouts` gives it back.
        """
        write_json(self.layouts_path, layouts_document(layouts, width, height), only_if_changed=True)

    def load_layouts(self) -> tuple[list[Layout], int, int] | None:
        """(layouts, width, height) from layouts.json; None when the board has none (an older board)."""
        if not self.layouts_path.exists():
            return None
        self._check_link(self.layouts_path)
        data = read_json_object(self.layouts_path, "layouts")
        try:
            if data.get("version") != LAYOUTS_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {LAYOUTS_VERSION}")
            layouts = [Layout.model_validate(item) for item in data["layouts"]]
            return layouts, int(data["width"]), int(data["height"])
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(f"{self.layouts_path}: not a layouts file ({first_line(e)}); "
                             "delete it to stage the board again") from None

    def write_frame(self, frame, seconds: float, record=None, extra: dict | None = None) -> dict:
        """Write frame NN (and its SVG) and return its manifest entry (plus `extra`), handed to `record` first.

        The entry is recorded before the PNG lands (its hash taken from the encoded bytes): a kill
        between the two leaves an entry without its frame, which --resume drops and draws again,
        never a frame whose seed, prompt and settings are lost.
        """
        if frame.svg is not None:
            write_text(self.frame_path(frame.index, "svg"), frame.svg)
        path = self.frame_path(frame.index)
        png = png_bytes(frame.image)
        entry = {"file": path.relative_to(self.root).as_posix(), "seed": frame.seed,
                 "sha256": hashlib.sha256(png).hexdigest(), "seconds": round(seconds, 4), **frame.meta,
                 **(extra or {})}
        if record is not None:
            record(frame_key(frame.index), entry)
        write_bytes(path, png)
        return entry

    def missing_frames(self, story: Story) -> list[int]:
        return [s.index for s in story.scenes if not self.frame_path(s.index).exists()]

    def unreadable_frames(self, story: Story) -> dict[int, str]:
        """Scene index → why, for the frames on disk that do not decode (truncated, not a picture, a bomb).

        Found before the first write: a later stage tripping over one would leave a half-updated board.
        A symlink leading out of the board is not ours to judge (exports skip it).
        """
        broken = {}
        for scene in story.scenes:
            path = self.frame_path(scene.index)
            if not path.exists() or not self.contains(path):
                continue
            try:
                with reading(), Image.open(path) as im:
                    check_size(im)
                    im.load()
            except Unreadable as e:
                broken[scene.index] = str(e)
        return broken

    def check_frames(self, story: Story) -> None:
        """Raise for the first frame on disk that does not decode."""
        broken = self.unreadable_frames(story)
        if broken:
            raise self.unreadable(*next(iter(broken.items())))

    def unreadable(self, index: int, why: str) -> InputError:
        """The error for a frame that does not decode, saying how to draw it again."""
        return InputError(f"{self.frame_path(index)}: {why}; draw it again with "
                          f"`autokose render {self.story_path} --only {index}`")

    def frame_entries(self, story: Story, recorded: dict) -> dict:
        """The manifest's `frames` for the frames on disk: `recorded` entries that still match
        their file, and an entry derived from the file (file, seed, sha256) for any other frame.

        Frames get their entry before they are written (see `write_frame`), so a derived
        entry is for a frame put there by hand or by an older version; an entry whose frame never
        landed (a kill in between) is dropped, and --resume draws that frame again.
        """
        entries = {}
        for scene in story.scenes:
            key, path = frame_key(scene.index), self.frame_path(scene.index)
            if not path.is_file() or not self.contains(path):
                continue
            digest = sha256_file(path)
            entry = recorded.get(key)
            if not (isinstance(entry, dict) and entry.get("sha256") == digest):
                entry = {"file": path.relative_to(self.root).as_posix(), "seed": scene.seed, "sha256": digest}
            entries[key] = entry
        return entries

    # -- manifest --------------------------------------------------------------
    def load_manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {}
        self._check_link(self.manifest_path)
        manifest = read_json_object(self.manifest_path, "manifest")
        for key in ("command", "frames", "timings"):
            if not isinstance(manifest.get(key, {}), dict):
                raise InputError(f"{self.manifest_path}: '{key}' is not an object; delete manifest.json and run "
                                 "again with --resume to rebuild it from the board")
        return manifest

    def save_manifest(self, manifest: dict) -> None:
        """Write the manifest atomically; it is saved after every frame, so it is never behind the frames."""
        story_sha = sha256_file(self.story_path) if self.story_path.exists() else None
        write_json(self.manifest_path, self.manifest_document(manifest, story_sha))

    @staticmethod
    def manifest_document(manifest: dict, story_sha256: str | None) -> dict:
        """The manifest as it is saved: versions, times and environment stamped, frames in scene order."""
        manifest = dict(manifest)
        manifest["manifest_version"] = MANIFEST_VERSION
        manifest["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        manifest.setdefault("created", manifest["updated"])
        manifest["environment"] = environment()
        if isinstance(manifest.get("frames"), dict):  # by scene number, whatever order frames were drawn in
            manifest["frames"] = dict(sorted(manifest["frames"].items(), key=lambda item: frame_order(item[0])))
        if story_sha256 is not None:
            manifest["story_sha256"] = story_sha256
        return manifest


# What manifest.json records about a run rather than the board: when, how long, on what machine.
# Two runs that draw the same board write the same files but for these.
RUN_RECORD = ("created", "updated", "timings", "environment")
FRAME_RUN_RECORD = ("seconds",)


def without_run_record(manifest: dict) -> dict:
    """The manifest less its run record (RUN_RECORD, and each frame's FRAME_RUN_RECORD): what must be
    equal when two runs drew the same board (a batch on one machine or on a cluster)."""
    out = {k: v for k, v in manifest.items() if k not in RUN_RECORD}
    if isinstance(out.get("frames"), dict):
        out["frames"] = {key: {k: v for k, v in entry.items() if k not in FRAME_RUN_RECORD}
                         for key, entry in out["frames"].items()}
    return out


@cache
def environment() -> dict:
    """Versions that can change pixels, for exact reruns."""
    versions = {"autokose": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("torch", "diffusers", "transformers", "peft", "pillow", "resvg-py", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _without_dotdot(path: Path) -> Path:
    """`nope/../out` as `out`: creating it must not create `nope` just to step out of it.

    A `..` after a symlink is left alone: there it means the link target's parent.
    """
    if ".." not in path.parts:
        return path
    out = Path(path.parts[0]) if path.is_absolute() else Path()
    for part in path.parts[1:] if path.is_absolute() else path.parts:
        if part == ".." and out.name not in ("", "..") and not out.is_symlink():
            out = out.parent
        else:
            out = out / part
    return out


def _make_dirs(root: Path) -> Path | None:
    """Create `root` and any missing parents; returns the topmost folder created (None if none was)."""
    missing = [p for p in [root, *root.parents] if not p.exists()]
    root.mkdir(parents=True, exist_ok=True)
    return missing[-1] if missing else None


def _remove_empty_dirs(root: Path, top: Path) -> None:
    """Remove `root` and its parents up to `top` when a failed run left them empty."""
    for sub in sorted((p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()), reverse=True):
        if not any(sub.iterdir()):
            sub.rmdir()
    for folder in [root, *root.parents]:
        if not folder.is_dir() or any(folder.iterdir()):
            return
        folder.rmdir()
        if folder == top:
            return


def layouts_document(layouts: list[Layout], width: int, height: int) -> dict:
    """layouts.json's content."""
    return {"version": LAYOUTS_VERSION, "width": width, "height": height,
            "layouts": [lay.model_dump(mode="json") for lay in layouts]}


def _scene_of(name: str) -> str:
    """The frame key a scene file is named by: '03' for 03.png, 03_pose.json and 03_2.svg."""
    return re.match(r"^\d+", name)[0]


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (free, and safe: the board replaces files, never writes into them), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
