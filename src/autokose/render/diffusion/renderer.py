"""The diffusion renderer: a board's scenes → frames with Stable Diffusion 1.5 / SDXL.

One `render()` call denoises the frames of a board in batches (one pipeline call per batch),
so consistent self-attention can couple them. Batches are fixed chunks of the story's scene
order (`batch_size`, default 8), which makes `--only 4` reproduce the pixels frame 4 got in a
full run:

- consistency off: frames are independent; only the requested frames are denoised.
- consistency on: frames depend on their batch-mates, so every batch holding a requested frame
  is denoised whole (only requested frames are returned). With more than one batch, the first
  batch always runs too and writes the reference bank that later batches attend to.

Prompts: each frame's prompt is encoded in a number of 75-token windows that depends on its own
prompt alone (`PROMPT_WINDOWS`, more when it needs more), never on another frame's length, so
editing one scene leaves the other frames' pixels as they were (`denoise_calls`).

Seeds: each frame's noise comes from its own CPU `torch.Generator` seeded with the scene's
seed (or the `seeds` override), so reruns are identical and a frame's noise does not depend on
its batch or device.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from autokose.cast import LoraRef
from autokose.errors import InputError
from autokose.render import Frame, RenderSettings
from autokose.render.diffusion import controls
from autokose.render.diffusion.prompts import build_negative, build_prompt, encode_prompts, windows_needed
from autokose.render.diffusion.settings import DiffusionSettings, frame_size
from autokose.staging import Layout
from autokose.story import Scene, Story

EMPTY = Layout(index=0, shot="wide", setting="")  # controls for a scene the staging stage left out
DEFAULT_BATCH = 8
# Every frame's prompt is encoded in at least this many 75-token windows: the writer's prompts
# take 1-4 (four characters), so a board's frames share one count and one batch as a rule.
PROMPT_WINDOWS = 4
LOW_VRAM_BATCH = 2


def warn(message: str) -> None:
    """A user-visible warning: the CLI shows the `autokose` logger's warnings on stderr."""
    logging.getLogger("autokose").warning(message)


def make_scheduler(name: str, config):
    """Scheduler `name` configured from the model's own scheduler config."""
    from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, LCMScheduler

    if name == "dpmpp_2m_karras":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2,
                                                       use_karras_sigmas=True)
    if name == "euler_a":
        return EulerAncestralDiscreteScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "lcm":
        return LCMScheduler.from_config(config)
    raise InputError(f"--scheduler {name}: expected dpmpp_2m_karras, euler_a, ddim or lcm")


@dataclass
class Session:
    """A loaded pipeline with its controls, kept for every render() call of one renderer."""

    pipe: object
    arch: str
    device: str
    dtype: object
    loras: list = field(default_factory=list)
    ip: controls.IpAdapterFiles | None = None
    refs: controls.ReferenceEmbeddings | None = None


class DiffusionRenderer:
    name = "diffusion"

    def __init__(self, settings: RenderSettings, assets: dict | None = None, progress=None):
        self.settings = settings
        self.options = DiffusionSettings.from_render(settings.diffusion)
        self.assets = assets or {}
        self.progress = progress  # (stage, done, total): denoising steps of the whole render
        self._session: Session | None = None
        self._warned: set[str] = set()

    # ------------------------------------------------------------------ loading
    def check(self) -> None:
        """Fail before anything is written when anything this render would load is unusable.

        Cheap: paths, safetensors headers, the (few, small) reference images and (offline) the
        hub cache; no weights are loaded. Covers the installed libraries, the model (and its config folder),
        the frame size, VAE, ControlNets, every LoRA (options and the characters' own), the
        IP-Adapter with its image encoder and, with it, the characters' reference images.
        """
        from autokose.models import check_model, check_part, require_diffusion

        require_diffusion()
        o = self.options
        arch = check_model(o.model, o.model_config_dir)
        if o.sdxl is not None:
            arch = "sdxl" if o.sdxl else "sd15"
        frame_size(self.settings.width, self.settings.height, arch)
        if o.vae:
            check_part(o.vae, "vae", ("", "vae"))
        for what, spec in (("controlnet", o.controlnet), ("lineart", o.lineart)):
            if spec:
                check_part(spec, what)
        for ref, character in self._lora_refs():
            controls.check_lora(ref, character)
        if o.ip_adapter:
            controls.check_ip_adapter(controls.resolve_ip_adapter(o.ip_adapter, arch))
            for cid, asset in self.assets.items():
                controls.check_references(cid, list(getattr(asset, "references", None) or []))

    def session(self) -> Session:
        if self._session is None:
            self._session = self._load()
        return self._session

    def _load(self) -> Session:
        from autokose.models import load_pipeline, resolve_device, resolve_dtype

        o = self.options
        device = resolve_device(o.device)
        dtype = resolve_dtype(o.dtype, device)
        nets = [spec for spec in (o.controlnet, o.lineart) if spec]  # the order of _control_inputs
        pipe = load_pipeline(o.model, sdxl=o.sdxl, vae=o.vae, config=o.model_config_dir,
                             controlnet=nets[0] if len(nets) == 1 else nets, dtype=dtype,
                             device=None if o.low_vram else device)
        arch = "sdxl" if getattr(pipe, "text_encoder_2", None) is not None else "sd15"
        pipe.scheduler = make_scheduler(o.scheduler, pipe.scheduler.config)
        session = Session(pipe, arch, device, dtype)
        session.loras = controls.apply_loras(pipe, self._lora_refs())
        if o.ip_adapter and not any(getattr(a, "references", None) for a in self.assets.values()):
            warn(f"--ip-adapter {o.ip_adapter}: no character in this story has reference images, "
                 "so it will change nothing")
        if o.ip_adapter:
            session.ip = controls.resolve_ip_adapter(o.ip_adapter, arch)
            controls.load_ip_adapter(pipe, session.ip)
            cache = Path(o.cache_dir) if o.cache_dir else controls.default_cache_dir()
            session.refs = controls.ReferenceEmbeddings(pipe, controls.encoder_id(session.ip), cache)
        # Decoding a batch image by image keeps the VAE's peak (SDXL decodes in fp32) from
        # dwarfing the UNet's: 8 SDXL frames peak at 11.6 instead of 38 GiB, at no cost in time
        # (docs/BENCHMARKS.md).
        pipe.vae.enable_slicing()
        if o.low_vram:
            pipe.enable_model_cpu_offload(device=device)
            pipe.vae.enable_tiling()
        return session

    def _lora_refs(self) -> list[tuple[LoraRef, str | None]]:
        refs = [(LoraRef.parse(spec), None) for spec in self.options.loras]
        refs += [(a.lora, cid) for cid, a in self.assets.items() if getattr(a, "lora", None)]
        return refs

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
        seeds = {i: (seeds or {}).get(i, sc.seed) for i, sc in scenes.items()}
        triggers = {cid: a.trigger for cid, a in self.assets.items() if getattr(a, "trigger", "")}
        texts = {sc.index: (build_prompt(story, sc, triggers), build_negative(story, sc, o.negative))
                 for sc in story.scenes}
        self._warn_missing_triggers(story, only, texts)
        windows = {i: max(PROMPT_WINDOWS, windows_needed(s.pipe, list(pair))) for i, pair in texts.items()}
        guided = o.cfg > 1.0 and getattr(s.pipe.unet.config, "time_cond_proj_dim", None) is None
        calls = denoise_calls(self.plan(story, only), windows, coupled=o.consistency > 0)
        consistency = None
        if o.consistency > 0:
            from autokose.render.diffusion.consistency import enable_consistent_attention

            consistency = enable_consistent_attention(s.pipe.unet, o.consistency, groups=2 if guided else 1,
                                                      seed=seeds[story.scenes[0].index])
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
                done = n * o.steps
                frames = self._denoise(s, story, [scenes[i] for i in call.rows], texts, call.windows, by_index,
                                       seeds, width, height, guided, consistency,
                                       on_step=lambda i, done=done: self._report(done + i + 1, len(calls) * o.steps))
                batch = [i for i, real in zip(call.rows, call.real) if real]
                for frame, real in zip(frames, call.real):
                    frame.meta["batch"] = batch
                    if real and frame.index in only:
                        yield frame
        finally:
            if consistency is not None:
                consistency.disable()

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
                trigger = getattr(asset, "trigger", "")
                written = texts[sc.index][0]
                if getattr(asset, "lora", None) and trigger and not re.search(rf"\b{re.escape(trigger)}\b", written,
                                                                              flags=re.IGNORECASE):
                    self._warn_once(f"scene {sc.index}: its written prompt lacks {cid}'s trigger '{trigger}', "
                                    f"so {cid}'s LoRA will hardly show; add the trigger or clear the prompt to rebuild it")

    def _denoise(self, s: Session, story: Story, batch: list[Scene], texts: dict[int, tuple[str, str]],
                 windows: int, layouts: dict[int, Layout], seeds: dict[int, int], width: int, height: int,
                 guided: bool, consistency, on_step=None) -> list[Frame]:
        import torch

        o = self.options
        prompts = [texts[sc.index][0] for sc in batch]
        negatives = [texts[sc.index][1] for sc in batch]
        emb = encode_prompts(s.pipe, prompts, negatives, windows)
        kwargs = dict(prompt_embeds=emb.prompt, negative_prompt_embeds=emb.negative, num_inference_steps=o.steps,
                      guidance_scale=o.cfg, width=width, height=height, output_type="pil",
                      generator=[torch.Generator("cpu").manual_seed(seeds[sc.index]) for sc in batch])
        if emb.pooled is not None:
            kwargs.update(pooled_prompt_embeds=emb.pooled, negative_pooled_prompt_embeds=emb.negative_pooled)
        used = [self._controls_meta(s)] * len(batch)
        kwargs.update(self._control_inputs(s, story, [layouts.get(sc.index, EMPTY) for sc in batch], width, height))
        if s.ip is not None:
            embeds, masks, who = self._ip_inputs(s, batch, layouts, width, height, guided)
            kwargs.update(ip_adapter_image_embeds=embeds, cross_attention_kwargs={"ip_adapter_masks": masks})
            s.pipe.set_ip_adapter_scale(o.ip_adapter_scale)
            used = [{**u, "ip_adapter": {**u["ip_adapter"], "characters": w}} for u, w in zip(used, who)]
        def step_end(pipe, i, t, callback_kwargs):
            if consistency is not None:
                callback_kwargs = consistency.on_step_end(pipe, i, t, callback_kwargs)
            if on_step is not None:
                on_step(i)
            return callback_kwargs

        kwargs["callback_on_step_end"] = step_end
        try:
            images = s.pipe(**kwargs).images
        except torch.cuda.OutOfMemoryError:
            raise InputError(f"out of GPU memory denoising {len(batch)} frames at {width}x{height}; "
                             "try --batch-size 2 or --low-vram") from None
        return [
            Frame(index=sc.index, image=img, seed=seeds[sc.index], meta={
                "renderer": "diffusion", "model": o.model, "arch": s.arch, "prompt": p, "negative_prompt": neg,
                "scheduler": o.scheduler, "steps": o.steps, "cfg": o.cfg, "width": width, "height": height,
                "dtype": str(s.dtype).removeprefix("torch."), "device": s.device, "consistency": o.consistency,
                "controls": u})
            for sc, img, p, neg, u in zip(batch, images, prompts, negatives, used)
        ]

    def _report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress("denoise", done, total)

    def _control_inputs(self, s: Session, story: Story, layouts: list[Layout], width: int, height: int) -> dict:
        """ControlNet images and scales: OpenPose, then lineart, as loaded.

        One ControlNet takes a list of images (one per frame). Several take one batch tensor
        per ControlNet, the form both the SD 1.5 and the SDXL multi-ControlNet pipelines accept
        for a batch of frames (SDXL refuses per-frame nested lists).
        """
        o = self.options
        used = []
        if o.controlnet:
            used.append((controls.pose_images(layouts, width, height), o.controlnet_scale))
        if o.lineart:
            used.append((controls.lineart_images(story, layouts, width, height), o.lineart_scale))
        if not used:
            return {}
        if len(used) == 1:
            return dict(image=used[0][0], controlnet_conditioning_scale=used[0][1])
        process = s.pipe.control_image_processor.preprocess
        return dict(image=[process(images, height=height, width=width) for images, _ in used],
                    controlnet_conditioning_scale=[scale for _, scale in used])

    def _controls_meta(self, s: Session) -> dict:
        o = self.options
        meta: dict = {"loras": [{"path": lo.path, "weight": lo.weight, "character": lo.character} for lo in s.loras]}
        if o.vae:
            meta["vae"] = o.vae
        if o.controlnet:
            meta["controlnet"] = {"model": o.controlnet, "scale": o.controlnet_scale, "control": "openpose"}
        if o.lineart:
            meta["lineart"] = {"model": o.lineart, "scale": o.lineart_scale, "control": "previz lineart"}
        if s.ip is not None:
            meta["ip_adapter"] = {"model": o.ip_adapter, "scale": o.ip_adapter_scale}
        return meta

    def _ip_inputs(self, s: Session, batch: list[Scene], layouts: dict[int, Layout], width: int, height: int,
                   guided: bool):
        """IP-Adapter embeddings and region masks: each referenced character conditions its own figure.

        Per frame, one image slot per character with references (left to right), masked to that
        figure's box from the layout; frames with fewer characters are padded with the
        unconditional embedding under an all-zero mask, so they get no IP-Adapter influence.
        Returns ([embeds], [masks], character ids per frame) in the pipeline's layout:
        embeds [2B (negatives, then positives), slots, …], masks [2B, slots, H, W].
        """
        import torch

        uncond, _ = s.refs.unconditional()
        frames = []
        for sc in batch:
            boxes = {f.id: f.box for f in layouts[sc.index].figures} if sc.index in layouts else {}
            items = []
            for cid in sc.characters:
                refs = [Path(p) for p in (getattr(self.assets.get(cid), "references", None) or [])]
                if refs:
                    items.append((cid, *s.refs.get(refs), box_mask(boxes.get(cid), width, height)))
            frames.append(items)
        slots = max([1] + [len(items) for items in frames])
        negs, poss, masks = [], [], []
        for items in frames:
            pad = slots - len(items)
            negs.append(torch.cat([neg for _, neg, _, _ in items] + [uncond] * pad, dim=1))
            poss.append(torch.cat([pos for _, _, pos, _ in items] + [uncond] * pad, dim=1))
            masks.append(torch.stack([m for *_, m in items] + [torch.zeros(height, width)] * pad))
        device, dtype = s.pipe._execution_device, s.pipe.unet.dtype
        embeds = torch.cat(negs + poss if guided else poss).to(device, dtype)
        mask = torch.stack(masks)
        mask = torch.cat([mask, mask]) if guided else mask
        return [embeds], [mask.to(device)], [[cid for cid, *_ in items] for items in frames]


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


def box_mask(box, width: int, height: int):
    """1 inside a figure's normalised box (x0, y0, x1, y1), 0 elsewhere; the whole frame without a box."""
    import torch

    mask = torch.zeros(height, width)
    if not box or box[2] <= box[0] or box[3] <= box[1]:
        return mask + 1
    x0, y0 = max(0, int(box[0] * width)), max(0, int(box[1] * height))
    x1, y1 = min(width, max(x0 + 1, round(box[2] * width))), min(height, max(y0 + 1, round(box[3] * height)))
    mask[y0:y1, x0:x1] = 1
    return mask
