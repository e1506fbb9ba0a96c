"""ComfyUI's entry to AutoKöse's nodes: link this folder into ComfyUI/custom_nodes/.

    ln -s "$(autokose comfy path)" ComfyUI/custom_nodes/autokose

It holds no nodes itself, so upgrading autokose (pip) upgrades the nodes; it only needs
autokose installed in the Python that runs ComfyUI, and says so when it is not.
"""

import sys

try:
    from autokose.comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
except ModuleNotFoundError as e:
    if e.name not in ("autokose", "autokose.comfy"):
        raise
    raise ImportError(f"AutoKöse nodes: autokose is not installed in ComfyUI's Python ({sys.executable}); "
                      f"install it with `{sys.executable} -m pip install autokose`") from None

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
