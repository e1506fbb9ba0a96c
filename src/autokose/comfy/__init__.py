"""AutoKöse inside ComfyUI: the pipeline's stages as custom nodes (see docs/COMFYUI.md).

ComfyUI finds custom nodes in folders under its `custom_nodes/`; `LOADER` (printed by
`autokose comfy path`) is such a folder, a few lines that import this package, so the nodes
always come from the autokose installed in ComfyUI's Python and nothing is copied. The nodes
themselves are in `nodes.py`, the objects their custom types carry in `types.py`.
"""

from pathlib import Path

from autokose.comfy.nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

LOADER = Path(__file__).resolve().parent / "custom_node"

__all__ = ["LOADER", "NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
