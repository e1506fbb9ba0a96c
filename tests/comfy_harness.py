"""Run API-format graphs through a real ComfyUI tree, headless, in a process of their own.

    python tests/comfy_harness.py SPEC.json

SPEC: {"comfyui": the ComfyUI source tree (read-only; nothing is written into it),
       "base": a scratch folder ComfyUI uses as its base directory (models/, output/, temp/),
       "custom_nodes": a folder holding the link to AutoKöse's loader folder,
       "result": where to write the result JSON,
       "graphs": [{"name": ..., "prompt": {API-format graph}}, ...]}

Each graph is checked by ComfyUI's own `execution.validate_prompt` and run by a new
`execution.PromptExecutor` (a new one per graph: an executor caches every node's outputs). The
nodes come in through ComfyUI's own custom-node loader (`nodes.init_extra_nodes`). The result:
{"loaded": the AutoKöse node names in nodes.NODE_CLASS_MAPPINGS, "runs": [{"name", "valid",
"error", "node_errors", "success", "errors" (the execution_error messages), "executed" (the output
nodes that reported), "files" ([sha256, mtime_ns] of every file under ComfyUI's output folder after
the run), "stories" (board folder → its story.json after the run)}]}.

Why a subprocess: ComfyUI changes process-wide state on import (sys.path, logging, torch
settings, argument parsing) that must not leak into the rest of the test suite.

torchvision: ComfyUI imports it at module level for the Stable Cascade, Cosmos, ACE-audio and
WanMove model code only; the SD 1.5/SDXL path and AutoKöse's nodes never call it. The index's
torchvision wheels are CUDA builds whose C ops do not load against CPU torch (and a broken
torchvision breaks transformers' image processors too), so when no working torchvision is
installed the harness puts placeholder modules in its place while ComfyUI imports (they fail on first
use), and takes them out of sys.modules again once its nodes are loaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import sys
import types
import uuid
from pathlib import Path

TORCHVISION_MODULES = ("torchvision", "torchvision.transforms", "torchvision.transforms.functional",
                       "torchvision.models")


class _Unavailable(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise RuntimeError(f"torchvision is not installed: {self.__name__}.{name} is unavailable in this test")


def torchvision_or_placeholder() -> str:
    """A working torchvision, or placeholder modules that fail when used; says which."""
    try:
        import torchvision  # noqa: F401
        return "installed"
    except Exception:  # absent, or a CUDA build whose C ops fail against CPU torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    for library in ("transformers", "diffusers"):  # they decide once, and cache, whether torchvision is there:
        if importlib.util.find_spec(library) is not None:  # let them decide before the placeholder exists
            getattr(importlib.import_module(f"{library}.utils.import_utils"), "is_torchvision_available")()
    for name in TORCHVISION_MODULES:
        module = _Unavailable(name)
        module.__path__ = []
        module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
        sys.modules[name] = module
    for name in TORCHVISION_MODULES[1:]:
        parent, _, child = name.rpartition(".")
        setattr(sys.modules[parent], child, sys.modules[name])
    return "placeholder"


class ServerStub:
    """What PromptExecutor asks of ComfyUI's server: a client id, the last node, and messages."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.sockets_metadata = {}
        self.messages: list[tuple[str, dict]] = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))


def start_comfyui(spec: dict):
    """Import ComfyUI as main.py would (CPU, base directory in scratch) and load custom nodes."""
    sys.dont_write_bytecode = True
    sys.argv = sys.argv[:1]
    sys.path.insert(0, spec["comfyui"])
    torchvision = torchvision_or_placeholder()
    (Path(spec["base"]) / "custom_nodes").mkdir(parents=True, exist_ok=True)  # ComfyUI lists it
    import comfy.cli_args

    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.base_directory = spec["base"]
    import utils.extra_config  # noqa: F401  (before nodes, as main.py does)
    import folder_paths

    folder_paths.add_model_folder_path("custom_nodes", spec["custom_nodes"])
    import nodes

    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    if torchvision == "placeholder":  # imported and bound by now; gone again, so diffusers and transformers
        for name in TORCHVISION_MODULES:  # (which look for torchvision when they load) see none
            sys.modules.pop(name, None)
    return nodes, folder_paths, torchvision


def file_stamps(folder: Path) -> dict[str, list]:
    """path → [sha256, mtime_ns] of every file: the mtime tells "left alone" from "written again, same bytes"."""
    return {p.relative_to(folder).as_posix(): [hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns]
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_graph(prompt: dict, output: Path) -> dict:
    import execution

    prompt_id = str(uuid.uuid4())
    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    result = {"valid": bool(valid), "error": error, "node_errors": node_errors, "success": False, "errors": []}
    if not valid:
        return result
    server = ServerStub()
    executor = execution.PromptExecutor(server, cache_args={"lru": 0, "ram": 0})
    executor.execute(prompt, prompt_id, {"client_id": "harness"}, outputs)
    result["success"] = bool(executor.success) and any(e == "execution_success" for e, _ in executor.status_messages)
    result["errors"] = [{"node_type": d.get("node_type"), "exception_type": d.get("exception_type"),
                         "message": d.get("exception_message")}
                        for e, d in executor.status_messages if e in ("execution_error", "execution_interrupted")]
    result["executed"] = sorted({d.get("node") for e, d in server.messages if e == "executed" and d.get("node")})
    result["files"] = file_stamps(output)
    result["stories"] = {p.parent.relative_to(output).as_posix(): json.loads(p.read_text(encoding="utf-8"))
                         for p in sorted(output.rglob("story.json"))}
    return result


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    nodes, folder_paths, torchvision = start_comfyui(spec)
    output = Path(folder_paths.get_output_directory())
    output.mkdir(parents=True, exist_ok=True)
    loaded = sorted(k for k in nodes.NODE_CLASS_MAPPINGS if k.startswith("AutoKose"))
    runs = [{"name": g["name"], **run_graph(g["prompt"], output)} for g in spec["graphs"]]
    result = {"loaded": loaded, "torchvision": torchvision, "runs": runs}
    Path(spec["result"]).write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])
