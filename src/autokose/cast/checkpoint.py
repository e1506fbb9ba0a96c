"""Training checkpoints that survive `kill -9`: safetensors + JSON, written to a temp folder and renamed.

    checkpoints/step-000100/
        weights.safetensors   the trainable (LoRA) parameters, fp32, by parameter name
        state.safetensors     tensors of the optimizer, LR scheduler and grad scaler states
        state.json            everything else: step, those states' non-tensor parts, extras

Nested states (`optimizer.state_dict()` and friends) are split into tensors and JSON by
`flatten`, so loading never unpickles anything. A folder is complete once renamed from its
temp name, so a run killed mid-write leaves only an ignorable `.tmp-*` folder behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from autokose.errors import InputError

FOLDER = "checkpoints"
_NAME = re.compile(r"^step-(\d{6,})$")


@dataclass
class Checkpoint:
    step: int
    weights: dict[str, torch.Tensor]
    states: dict = field(default_factory=dict)  # name → nested state dict (optimizer, scheduler, scaler)
    extra: dict = field(default_factory=dict)
    path: Path | None = None


# --------------------------------------------------------------------------- nested state ⇄ tensors + JSON
def flatten(obj, tensors: dict[str, torch.Tensor], path: str = "s"):
    """`obj` as JSON, with each tensor moved into `tensors` under its path."""
    if isinstance(obj, torch.Tensor):
        tensors[path] = obj.detach().to("cpu").clone().contiguous()
        return {"__tensor__": path}
    if isinstance(obj, dict):
        return {"__dict__": [[k, flatten(v, tensors, f"{path}/{k}")] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{path}/{i}") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot checkpoint a {type(obj).__name__} at {path}")


def unflatten(obj, tensors: dict[str, torch.Tensor]):
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__tuple__" in obj:
            return tuple(unflatten(v, tensors) for v in obj["__tuple__"])
        return {k: unflatten(v, tensors) for k, v in obj["__dict__"]}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


# --------------------------------------------------------------------------- save / find / load
def checkpoint_dir(out: Path, step: int) -> Path:
    return Path(out) / FOLDER / f"step-{step:06d}"


def save_checkpoint(out: Path, step: int, weights: dict[str, torch.Tensor], states: dict, extra: dict) -> Path:
    """Write checkpoint `step` under `out/checkpoints/` atomically (temp folder, then rename)."""
    from safetensors.torch import save_file

    final = checkpoint_dir(out, step)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{os.getpid()}"
    _remove(tmp)
    tmp.mkdir()
    try:
        save_file({k: v.detach().to("cpu", torch.float32).contiguous() for k, v in weights.items()},
                  str(tmp / "weights.safetensors"))
        tensors: dict[str, torch.Tensor] = {}
        flat = flatten(states, tensors)
        save_file(tensors, str(tmp / "state.safetensors"))
        (tmp / "state.json").write_text(json.dumps({"step": step, "states": flat, "extra": extra}), encoding="utf-8")
        for f in tmp.iterdir():  # on disk before the rename makes the folder count
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if os.path.lexists(final):  # a rerun reached the same step (or a stray file has its name): replace it
            old = final.parent / f".old-{final.name}-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    return final


def _remove(path: Path) -> None:
    """Delete a folder, file or link if there is one: the old copy a swap replaced is whatever was there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink(missing_ok=True)


def check_folder(out: Path) -> None:
    """`out/checkpoints` is a folder or absent: a file there would stop the first checkpoint mid-run."""
    root = Path(out) / FOLDER
    if os.path.lexists(root) and not root.is_dir():
        raise InputError(f"{root}: not a folder, so no checkpoint can be saved; move it away "
                         "(or use --force to start over)")


def list_checkpoints(out: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (temp folders of interrupted writes are left out)."""
    root = Path(out) / FOLDER
    found = []
    for d in root.iterdir() if root.is_dir() else []:
        if (m := _NAME.match(d.name)) and (d / "state.json").is_file():
            found.append((int(m[1]), d))
    return sorted(found)


def latest_checkpoint(out: Path) -> Path | None:
    found = list_checkpoints(out)
    return found[-1][1] if found else None


def load_checkpoint(path: Path, max_step: int | None = None) -> Checkpoint:
    """Read a checkpoint folder; any damage (truncated or garbage files, a missing, mistyped or
    impossible step, a step past `max_step`) is one "unreadable checkpoint" InputError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    try:
        meta = json.loads((path / "state.json").read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("state.json is not a JSON object")
        step = _step(meta, path, max_step)
        weights = load_file(str(path / "weights.safetensors"))
        tensors = load_file(str(path / "state.safetensors"))
        states = unflatten(meta.get("states", {"__dict__": []}), tensors)
        extra = meta.get("extra", {})
        if not isinstance(states, dict) or not isinstance(extra, dict):
            raise ValueError("states and extra must be objects")
    except (OSError, UnicodeDecodeError, ValueError, SafetensorError, KeyError, TypeError, AttributeError,
            IndexError, RecursionError) as e:  # damaged files, and whatever a tampered structure raises while read
        raise InputError(f"{path}: unreadable checkpoint ({describe(e)}); "
                         "delete it to resume from an earlier one") from None
    return Checkpoint(step=step, weights=weights, states=states, extra=extra, path=path)


def _step(meta: dict, path: Path, max_step: int | None) -> int:
    """The checkpoint's step: an integer, the one its folder is named after, within the run's steps."""
    step = meta.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"'step' is {step!r}, not a step number")
    named = _NAME.match(path.name)
    if named and int(named[1]) != step:
        raise ValueError(f"'step' is {step} but the folder is {path.name}")
    if max_step is not None and step > max_step:
        raise ValueError(f"step {step} is beyond the run's {max_step} steps")
    return step


def describe(e: Exception) -> str:
    """One line: the message, named by its type where the message alone says little (a KeyError's key)."""
    if isinstance(e, RecursionError):
        return "nested too deeply"
    text = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return (text if text and not isinstance(e, (KeyError, TypeError, AttributeError, IndexError))
            else f"{type(e).__name__}: {text}")[:200]


def prune_checkpoints(out: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints; remove older ones and stale temp folders."""
    root = Path(out) / FOLDER
    if not root.is_dir():
        return
    for d in root.iterdir():
        if d.name.startswith((".tmp-", ".old-")) and not d.name.endswith(f"-{os.getpid()}"):
            _remove(d)
    found = list_checkpoints(out)
    for _, d in found[: max(0, len(found) - keep)]:
        _remove(d)
