"""Diffusion renderer: Stable Diffusion 1.5 / SDXL frames with identity and layout controls.

    settings.py     DiffusionSettings (the `--model ...` options with their defaults), frame size
    prompts.py      prompt assembly from story + bible, long-prompt encoding
    controls.py     LoRA, IP-Adapter (with cached reference embeddings), ControlNet OpenPose and lineart
    consistency.py  consistent self-attention across the frames of a board
    renderer.py     DiffusionRenderer: batches, seeds, schedulers, devices
"""

from autokose.render.diffusion.renderer import DiffusionRenderer
from autokose.render.diffusion.settings import DiffusionSettings

__all__ = ["DiffusionRenderer", "DiffusionSettings"]
