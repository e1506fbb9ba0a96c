"""The diffusion renderer: a board's scenes → frames, through the story-free DiffusionEngine.

A thin adapter: Story + layouts + identity assets → FrameRequests (prompt text from the
prompt builder, controls from `controls.py`, each referenced character's region from
`autokose.regions`) → engine → Frames with their meta.

One `render()` call denoises the frames of a board in batches (one pipeline call per batch),
so consistent self-attention can couple them. Batches are fixed chunks of the story's scene
order (`batch_size`, default 8), which makes `--only 4` reproduce the frame 4 of a full run (from
the same noise and prompt; bit for bit only in a call of the same batch size, as kernels round
differently per batch shape):

- consistency off: frames are independent; only the requested frames are denoised.
- consistency on: frames depend on their batch-mates, so every batch holding a requested frame
  is denoised whole (only requested frames are returned). With more than one batch, the first
  batch always runs too and writes the reference bank that later batches attend to.

Regions: with `regional` (the default) every character of a scene gets a Region: its figure's
box in the layout (the whole frame when the layout places no figure for it), its own words as
the region's prompt (`prompting.character_prompt`; the frame's prompt is then the shared one,
without them), its LoRA (the engine confines a LoRA to the regions of its owner) and, with an
IP-Adapter, its reference images. A written scene prompt stays the frame's prompt as written;
its characters' regions then carry LoRA and references only. Without `regional`, a character's
LoRA acts on the whole frame, and regions carry only IP-Adapter references and, with masked
consistency (`consistency_masked`, the default), the boxes inside which the frames of a board
share self-attention tokens: Aldar's tokens with Aldar's, the Bai's with the Bai's, backgrounds
with nobody.

Prompts: each frame's prompt is encoded in a number of 75-token windows that depends on its own
prompt alone (`engine.PROMPT_WINDOWS`, more when it needs more), never on another frame's length,
so editing one scene leaves the other frames' pixels as they were (`denoise_calls`).

Seeds: each frame's noise comes from its own CPU `torch.Generator` seeded with the scene's
seed (or the `seeds` override), so reruns are identical and a frame's noise does not depend on
its batch or device.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from autokose import regions
from autokose.prompting import build_negative, build_prompt, character_prompt, shared_prompt
from autokose.render import Frame, RenderSettings
from autokose.render.diffusion import controls
from autokose.render.diffusion.engine import DiffusionEngine, FrameRequest, Region, warn
from autokose.render.diffusion.settings import DEFAULT_SIZE, DiffusionSettings, frame_size
from autokose.staging import Layout
from autokose.story import Scene, Story

if TYPE_CHECKING:
    from autokose.cast import IdentityAssets

EMPTY = Layout(index=0, shot="wide", setting="")  # controls for a scene the staging stage left out
DEFAULT_BATCH = 8
LOW_VRAM_BATCH = 2


class DiffusionRenderer:
    name = "diffusion"

    def __init__(self, settings: RenderSettings, assets: dict[str, IdentityAssets] | None = None, progress=None,
                 cancel=None):
        self.settings = settings
        self.options = DiffusionSettings.from_render(settings.diffusion)
        self.assets: dict[str, IdentityAssets] = assets or {}
        # progress(stage, done, total): denoising steps of the whole render
        self.engine = DiffusionEngine(self.options, loras=[(a.lora, cid) for cid, a in self.assets.items() if a.lora],
                                      progress=progress, cancel=cancel)
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ loading
    def check(self) -> None:
        """Fail before anything is written when anything this render would load is unusable.

        The engine's check (libraries, model, frame size, VAE, ControlNets, every LoRA: the
        options' and the characters' own, IP-Adapter) and, with an IP-Adapter, the characters'
        reference images (a few small files, decoded to the end).
        """
        size = (self.settings.width, self.settings.height)
        self.engine.check(None if size == DEFAULT_SIZE else size)
        if self.options.ip_adapter:
            for cid, asset in self.assets.items():
                controls.check_references(cid, list(asset.references))

    def session(self):
        """The engine's loaded pipeline (loads it on first use)."""
        if not self.engine.loaded and self.options.ip_adapter and not any(
                a.references for a in self.assets.values()):
            warn(f"--ip-adapter {self.options.ip_adapter}: no character in this story has reference images, "
                 "so it will change nothing")
        return self.engine.session()

    # ------------------------------------------------------------------ planning
    def batch_size(self) -> int:
        if self.options.batch_size:
            return self.options.batch_size
        return LOW_VRAM_BATCH if self.options.low_vram else DEFAULT_BATCH

    def plan(self, story: Story, only: list[int]) -> list[list[int]]:
        """The batches (scene indices) to denoise, in order; see the module docstring."""
        wanted = [s.index for s in story.scenes if s.index in set(only)]
        size = self.batch_size()
        if self.options.consistency <= 0:
            return [wanted[i:i + size] for i in range(0, len(wanted), size)]
        order = [s.index for s in story.scenes]
        batches = [order[i:i + size] for i in range(0, len(order), size)]
        return [b for n, b in enumerate(batches) if any(i in only for i in b) or (n == 0 and len(batches) > 1)]

    # ------------------------------------------------------------------ rendering
    def render(self, story: Story, layouts: list[Layout], only: list[int],
               seeds: dict[int, int] | None = None) -> Iterator[Frame]:
        if not only:
            return
        s = self.session()
        o = self.options
        width, height = frame_size(self.settings.width, self.settings.height, s.arch)
        scenes = {sc.index: sc for sc in story.scenes}
        by_index = {lay.index: lay for lay in layouts}
        seeds = {sc.index: (seeds or {}).get(sc.index, sc.seed) for sc in story.scenes}
        triggers = {cid: a.trigger for cid, a in self.assets.items() if a.trigger}
        words = {sc.index: self._region_words(story, sc, by_index.get(sc.index), triggers) for sc in story.scenes}
        requests = {sc.index: FrameRequest(prompt=self._prompt(story, sc, words[sc.index], triggers),
                                           negative=build_negative(story, sc, o.negative),
                                           seed=seeds[sc.index], width=width, height=height)
                    for sc in story.scenes}
        # a trigger may sit in a region's words rather than in the shared prompt
        self._warn_missing_triggers(story, only, {i: (", ".join([r.prompt, *words[i].values()]), r.negative)
                                                  for i, r in requests.items()})
        # the region masks are made per call (`_with_inputs`); the window count needs only their words
        windows = {i: self.engine.windows(replace(r, regions=[Region(cid, None, prompt=p)
                                                              for cid, p in words[i].items()]))
                   for i, r in requests.items()}
        calls = denoise_calls(self.plan(story, only), windows, coupled=o.consistency > 0)
        consistency = self.engine.consistent_attention(seeds[story.scenes[0].index]) if o.consistency > 0 else None
        meta = self._meta(s)
        try:
            for n, call in enumerate(calls):
                if consistency is not None:  # coupled: one call per planned batch
                    if len(calls) == 1:
                        consistency.share()
                    elif n == 0:
                        consistency.write_bank(offload=o.low_vram)
                    else:
                        consistency.read_bank()
                    consistency.set_step(0, o.steps)
                rows = [self._with_inputs(story, scenes[i], requests[i], by_index.get(i), words[i])
                        for i in call.rows]
                images = self.engine.denoise(rows, windows=call.windows, consistency=consistency,
                                             span=(n * o.steps, len(calls) * o.steps))
                batch = [i for i, real in zip(call.rows, call.real) if real]
                for index, request, image, real in zip(call.rows, rows, images, call.real):
                    if real and index in only:
                        yield self._frame(index, request, image, meta, batch,
                                          build_prompt(story, scenes[index], triggers))
        finally:
            if consistency is not None:
                consistency.disable()

    def _region_words(self, story: Story, scene: Scene, layout: Layout | None,
                      triggers: dict[str, str]) -> dict[str, str]:
        """Regional: character id → its region's words, for every character of the scene.

        A character the layout places gets its own words; one it does not place keeps its words
        in the shared prompt (its region is the whole frame).
        """
        o = self.options
        if not (o.regional or self._masked_consistency):
            return {}
        placed = regions.figure_boxes(layout)
        return {cid: character_prompt(story, scene, cid, triggers)
                if o.regional and regions.has_box(placed.get(cid)) else "" for cid in scene.characters}

    @property
    def _masked_consistency(self) -> bool:
        """Whether frames share self-attention only inside their characters' regions (which they then need)."""
        return self.options.consistency > 0 and self.options.consistency_masked

    @staticmethod
    def _prompt(story: Story, scene: Scene, words: dict[str, str], triggers: dict[str, str]) -> str:
        """The frame's prompt: without the words its regions carry (all of it when they carry none)."""
        if not any(words.values()):
            return build_prompt(story, scene, triggers)
        return shared_prompt(story, scene, triggers, regional=[cid for cid, w in words.items() if w])

    def _with_inputs(self, story: Story, scene: Scene, request: FrameRequest, layout: Layout | None,
                     words: dict[str, str]) -> FrameRequest:
        """The scene's request with its control images and its characters' regions (see the module docstring).

        Made per pipeline call, so a board holds one batch of control images and masks at a time.
        """
        o = self.options
        width, height = request.width, request.height
        images = {}
        if o.controlnet:
            images["openpose"] = controls.pose_images([layout or EMPTY], width, height)[0]
        if o.lineart:
            images["lineart"] = controls.lineart_images(story, [layout or EMPTY], width, height)[0]
        parts = []
        if words:  # regional, or masked consistency: every character of the scene
            masks = regions.region_masks(layout, list(words), width, height)
            parts = [Region(cid, masks[cid], self._references(cid), prompt=text) for cid, text in words.items()]
        elif o.ip_adapter:  # each referenced character conditions its own figure's box
            referenced = [cid for cid in scene.characters if cid in self.assets and self.assets[cid].references]
            masks = regions.region_masks(layout, referenced, width, height)
            parts = [Region(cid, masks[cid], list(self.assets[cid].references)) for cid in referenced]
        return replace(request, controls=images, regions=parts)

    def _references(self, cid: str) -> list:
        asset = self.assets.get(cid)
        return list(asset.references) if self.options.ip_adapter and asset is not None else []

    def _meta(self, s) -> dict:
        o = self.options
        return {"renderer": "diffusion", "model": o.model, "arch": s.arch, "scheduler": o.scheduler, "steps": o.steps,
                "cfg": o.cfg, "dtype": str(s.dtype).removeprefix("torch."), "device": s.device,
                "consistency": o.consistency, "controls": self.engine.controls_meta()}

    def _frame(self, index: int, request: FrameRequest, image, meta: dict, batch: list[int], prompt: str) -> Frame:
        """The frame with its meta. `prompt` is the frame's whole prompt (shared words and every
        character's); with regions, `regional` says which words went where."""
        used = meta["controls"]
        if "ip_adapter" in used:
            used = {**used, "ip_adapter": {**used["ip_adapter"],
                                           "characters": [r.name for r in request.regions if r.references]}}
        extra = {}
        if self.options.regional:  # whose words and LoRA acted inside a box of its own
            owners = {lo["character"] for lo in used["loras"] if lo["character"]}
            extra["regional"] = {"base": self.options.regional_base, "shared_prompt": request.prompt,
                                 "characters": {r.name: r.prompt for r in request.regions
                                                if r.prompt or r.name in owners}}
        return Frame(index=index, image=image, seed=request.seed, meta={
            "renderer": meta["renderer"], "model": meta["model"], "arch": meta["arch"], "prompt": prompt,
            "negative_prompt": request.negative, "scheduler": meta["scheduler"], "steps": meta["steps"],
            "cfg": meta["cfg"], "width": request.width, "height": request.height, "dtype": meta["dtype"],
            "device": meta["device"], "consistency": meta["consistency"], "controls": used, "batch": batch, **extra})

    def _warn_once(self, message: str) -> None:
        """The quality loop calls render() once per round: each warning is shown once."""
        if message not in self._warned:
            self._warned.add(message)
            warn(message)

    def _warn_missing_triggers(self, story: Story, only: list[int], texts: dict[int, tuple[str, str]]) -> None:
        """A written prompt is used as written; say so when it lacks the trigger a character's LoRA needs."""
        for sc in story.scenes:
            if sc.index not in only or not sc.prompt.strip():
                continue
            for cid in sc.characters:
                asset = self.assets.get(cid)
                if asset is None or not asset.lora or not asset.trigger:
                    continue
                if not re.search(rf"\b{re.escape(asset.trigger)}\b", texts[sc.index][0], flags=re.IGNORECASE):
                    self._warn_once(f"scene {sc.index}: its written prompt lacks {cid}'s trigger '{asset.trigger}', so "
                                    f"{cid}'s LoRA will hardly show; add the trigger or clear the prompt to rebuild it")


@dataclass
class Call:
    """One pipeline call: a scene index per batch row, and the prompt window count of them all.

    `real[n]` is False for a filler row: a copy of another row, there only so that the frames
    keep their batch's size and their row in it (denoised, then dropped).
    """

    rows: list[int]
    windows: int
    real: list[bool]


def denoise_calls(batches: list[list[int]], windows: dict[int, int], coupled: bool) -> list[Call]:
    """The pipeline calls for `batches`; `windows` is each frame's own prompt window count.

    Padding windows are not neutral in cross-attention, so padding a frame to another frame's
    length would let editing one scene change every other frame. One call takes one window
    count, so the uncoupled frames of a batch are split by count: one call when, as usual,
    they agree. A split call keeps the batch's size and each frame's row, filling the other
    rows with copies, because CPU and GPU kernels may round differently for another batch
    shape: a frame's pixels then do not depend on its batch-mates' prompts at all. Coupled
    frames (consistency) stay in one call at the batch's largest count: they depend on each
    other anyway, and `--only` re-renders their whole batch.
    """
    calls = []
    for batch in batches:
        if coupled:
            calls.append(Call(batch, max(windows[i] for i in batch), [True] * len(batch)))
            continue
        for count in dict.fromkeys(windows[i] for i in batch):
            filler = next(i for i in batch if windows[i] == count)
            real = [windows[i] == count for i in batch]
            calls.append(Call([i if r else filler for i, r in zip(batch, real)], count, real))
    return calls
