"""Diffusion: Stable Diffusion 1.5 / SDXL frames with identity and layout controls.

    settings.py     DiffusionSettings (the `--model ...` options with their defaults), frame size; no torch
    engine.py       DiffusionEngine: loads and holds the pipeline, denoises FrameRequests (no Story)
    controls.py     LoRA, IP-Adapter (with cached reference embeddings), ControlNet OpenPose and lineart
    consistency.py  consistent self-attention across the frames of a board
    regional.py     regional prompts (attention couple) and LoRAs confined to a character's region
    renderer.py     DiffusionRenderer: Story + layouts + identity assets → FrameRequests → engine → Frames
                    (prompt text from autokose.prompting, figure masks from autokose.regions)

The engine and the renderer are imported on first use, so `RenderSettings` (which holds a
DiffusionSettings) never imports torch or diffusers.
"""

from autokose.render.diffusion.settings import DiffusionSettings

__all__ = ["DiffusionEngine", "DiffusionRenderer", "DiffusionSettings", "FrameRequest", "Region"]


def __getattr__(name: str):
    if name == "DiffusionRenderer":
        from autokose.render.diffusion.renderer import DiffusionRenderer

        return DiffusionRenderer
    if name in ("DiffusionEngine", "FrameRequest", "Region"):
        from autokose.render.diffusion import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
