"""The storyboard folder: the contract between stages and with users.

    story.json       the Story (edit it, then `autokose render` it)
    frames/NN.png    rendered frames (+ NN.svg from the previz renderer)
    control/NN_pose.png, NN_pose.json   OpenPose skeletons for ControlNet
    manifest.json    versions, parameters, seeds, input hashes, timings
    board.html, board.pdf, sheet.png    exports
"""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from autokose import __version__
from autokose.errors import InputError
from autokose.fsio import ensure_writable_dir, read_json_object, sha256_file, write_json, write_text
from autokose.story import Story


MANIFEST_VERSION = 1


class Board:
    def __init__(self, root: Path | str):
        self.root = Path(root)

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

    def frame_path(self, index: int, ext: str = "png") -> Path:
        return self.root / "frames" / f"{index:02d}.{ext}"

    def pose_path(self, index: int, ext: str = "png") -> Path:
        return self.root / "control" / f"{index:02d}_pose.{ext}"

    # -- lifecycle -------------------------------------------------------------
    def prepare(self, *, resume: bool = False, force: bool = False) -> None:
        """Check the folder can take a new board; refuse to mix boards by accident."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise InputError(f"{root}: exists and is not a folder")
        if root.exists() and any(root.iterdir()) and not (resume or force):
            raise InputError(f"{root}: folder is not empty (use --resume to continue it or --force to overwrite)")
        ensure_writable_dir(root)
        if force:
            for sub in ("frames", "control"):
                for f in (root / sub).glob("*") if (root / sub).is_dir() else []:
                    f.unlink()

    def load_story(self) -> Story:
        return Story.load(self.story_path)

    def save_story(self, story: Story) -> None:
        write_text(self.story_path, story.to_json())

    def missing_frames(self, story: Story) -> list[int]:
        return [s.index for s in story.scenes if not self.frame_path(s.index).exists()]

    # -- manifest --------------------------------------------------------------
    def load_manifest(self) -> dict:
        if not self.manifest_path.exists():
            return {}
        return read_json_object(self.manifest_path, "manifest")

    def save_manifest(self, manifest: dict) -> None:
        manifest = dict(manifest)
        manifest["manifest_version"] = MANIFEST_VERSION
        manifest["updated"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        manifest.setdefault("created", manifest["updated"])
        manifest["environment"] = environment()
        if self.story_path.exists():
            manifest["story_sha256"] = sha256_file(self.story_path)
        write_json(self.manifest_path, manifest)


def environment() -> dict:
    """Versions that can change pixels, for exact reruns."""
    versions = {"autokose": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for dist in ("torch", "diffusers", "transformers", "peft", "pillow", "resvg-py", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return versions
