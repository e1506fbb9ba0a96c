"""The diffusion engine: a loaded Stable Diffusion 1.5 / SDXL pipeline that denoises frame requests.

No Story here: a `FrameRequest` is a prompt, a negative, a seed, a size, control images by kind,
an optional init image (img2img) and the regions of the frame that reference images condition.
The storyboard renderer (`renderer.py`) turns a board into requests; video stylisation and
character sheets build their own. What the engine keeps between calls is what is costly to
make: the pipeline with its LoRAs, ControlNets and IP-Adapter, the img2img variant sharing its
weights, and the reference-image embeddings.

One `denoise()` is one pipeline call. Its requests share a size and a prompt window count
(`windows`), and either all or none have an init image (one strength): the pipeline takes one
of each per call. Each frame's noise comes from its own CPU `torch.Generator` seeded with the
request's seed, so a frame's noise does not depend on its batch or device.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from autokose.errors import InputError, check_cancel
from autokose.models import LoraRef
from autokose.prompt_embeds import encode_prompts, windows_needed
from autokose.render.diffusion import controls, faceid
from autokose.render.diffusion.settings import DiffusionSettings, check_size

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

# Every frame's prompt is encoded in at least this many 75-token windows: the writer's prompts
# take 1-4 (four characters), so a board's frames share one count and one batch as a rule.
PROMPT_WINDOWS = 4
CONTROL_KINDS = ("openpose", "lineart")  # in the order the ControlNets are loaded and called
TCD_ETA = 0.3  # TCDScheduler.step's default gamma, which the TCD LoRAs are used with


# The settings `_load` reads: an engine's other settings (steps, cfg, consistency, ...) act per call.
LOAD_FIELDS = {"model", "model_config_dir", "sdxl", "vae", "loras", "ip_adapter", "controlnet", "lineart", "regional",
               "scheduler", "device", "dtype", "low_vram", "cache_dir", "compile", "channels_last", "fused_qkv"}
# Sessions kept loaded between engines (`keep_warm`): load key → Session, least recently used first.
_WARM: OrderedDict[str, Session] | None = None
_WARM_LIMIT = 1


@contextmanager
def keep_warm(limit: int = 1) -> Iterator[None]:
    """Keep up to `limit` loaded pipelines between engines while inside, for a long-lived worker.

    A board run makes a new engine; loading its pipeline costs seconds on a GPU (minutes from a
    slow disk). A batch worker renders board after board with the same model, so inside this
    block an engine whose `load_key` matches a kept session takes it instead of loading again.
    The key covers everything `_load` reads (LoRA files by size and mtime too); what a call
    sets (steps, consistency, IP-Adapter scale) is set again by every call, so a board drawn
    on a warm session is the same, byte for byte, as one drawn cold (tests/test_batch.py).
    """
    global _WARM, _WARM_LIMIT
    outer = (_WARM, _WARM_LIMIT)
    _WARM, _WARM_LIMIT = (_WARM if _WARM is not None else OrderedDict()), max(1, limit)
    try:
        yield
    finally:
        if outer[0] is None:
            _WARM.clear()
        _WARM, _WARM_LIMIT = outer


def _warm_session(engine: DiffusionEngine) -> Session:
    key = engine.load_key()
    session = _WARM.pop(key, None)
    if session is None:
        while len(_WARM) >= _WARM_LIMIT:  # one GPU holds one pipeline: free the oldest before loading
            _WARM.popitem(last=False)
            _free_memory()
        session = engine._load()
    _WARM[key] = session
    return session


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def warn(message: str) -> None:
    """A user-visible warning: the CLI shows the `autokose` logger's warnings on stderr."""
    logging.getLogger("autokose").warning(message)


@dataclass
class Region:
    """A part of the frame one identity owns.

    `mask` is float [height, width], 1 inside the region (`autokose.regions.box_mask`).
    `references` condition it (IP-Adapter) inside `mask` only. With `settings.regional`, its
    `prompt` (the character's own words; the frame's prompt stays the shared one) and the LoRA
    whose owner is `name` act inside `mask` too (`regional.py`).
    """

    name: str
    mask: np.ndarray
    references: list[Path] = field(default_factory=list)
    prompt: str = ""


@dataclass
class FrameRequest:
    """One frame to denoise.

    `controls` maps a control kind ("openpose", "lineart") to its image at the frame's size;
    a request gives one for every ControlNet the engine loaded. With `init_image` the frame is
    denoised from it (img2img): `strength` 1 redraws it, near 0 keeps it.
    `noise` (img2img only): the initial latent noise, a tensor [C, H/8, W/8] (or [1, C, H/8, W/8])
    mixed into the init latents with the scheduler's `add_noise` instead of noise drawn from the
    seed, so a video can move one frame's noise along the flow to the next (temporal.warped_noise).
    The seed still draws the VAE encoder's sample of the init (a level or two of difference).
    `keep` (img2img only): float [height, width] in [0, 1], where the frame stays closer to its init:
    a pixel is denoised at strength x (1 - keep), so 1 keeps the init there (a lip-sync-friendly
    mouth in a stylised video).
    """

    prompt: str
    width: int
    height: int
    negative: str = ""
    seed: int = 0
    controls: dict[str, Image.Image] = field(default_factory=dict)
    init_image: Image.Image | None = None
    strength: float = 0.8
    regions: list[Region] = field(default_factory=list)
    noise: object = None  # torch.Tensor
    keep: np.ndarray | None = None


def make_scheduler(name: str, config):
    """Scheduler `name` configured from the model's own scheduler config."""
    from diffusers import (
        DDIMScheduler,
        DPMSolverMultistepScheduler,
        EulerAncestralDiscreteScheduler,
        LCMScheduler,
        TCDScheduler,
    )

    if name == "dpmpp_2m_karras":
        return DPMSolverMultistepScheduler.from_config(config, algorithm_type="dpmsolver++", solver_order=2,
                                                       use_karras_sigmas=True)
    if name == "euler_a":
        return EulerAncestralDiscreteScheduler.from_config(config)
    if name == "ddim":
        return DDIMScheduler.from_config(config)
    if name == "lcm":
        return LCMScheduler.from_config(config)
    if name == "tcd":
        return TCDScheduler.from_config(config)
    raise InputError(f"--scheduler {name}: expected dpmpp_2m_karras, euler_a, ddim, lcm or tcd")


@dataclass
class Session:
    """A loaded pipeline with its controls, kept for every call of one engine."""

    pipe: object
    arch: str
    device: str
    dtype: object
    loras: list = field(default_factory=list)
    regional: object = None  # a regional.RegionalController with settings.regional
    ip: controls.IpAdapterFiles | None = None
    refs: controls.ReferenceEmbeddings | None = None
    img2img: object = None  # the img2img variant of `pipe` (same weights), made on first use
    tuned: dict = field(default_factory=dict)  # what speed.tune switched on
    deep_cache: object = None  # a speed.DeepCache, attached on the first call that uses it


class DiffusionEngine:
    """Loads the model and controls of `settings` once and denoises FrameRequests with them.

    `loras` are (LoraRef, owner) pairs on top of `settings.loras`; the owner is a character id,
    or None. With `settings.regional`, an owned LoRA acts only inside the request regions named
    as its owner (nowhere in a frame without one); a LoRA without an owner acts on every frame.
    `progress(stage, done, total)` hears about denoising steps; `cancel()` is asked after every
    step, and True stops the call with `Cancelled` (a server's stop button need not wait for a
    whole batch).
    """

    def __init__(self, settings: DiffusionSettings, loras: Sequence[tuple[LoraRef, str | None]] = (),
                 progress: Callable[[str, int, int], None] | None = None,
                 cancel: Callable[[], bool] | None = None):
        self.settings = settings
        self.loras = [(LoraRef.parse(spec), None) for spec in settings.loras] + list(loras)
        self.progress = progress
        self.cancel = cancel
        self._session: Session | None = None

    # ------------------------------------------------------------------ loading
    def check(self, size: tuple[int, int] | None = None) -> str:
        """Fail (InputError) before anything is written when anything the engine would load is unusable.

        Cheap: paths, safetensors headers and (offline) the hub cache; no weights are loaded.
        Covers the installed libraries, the model (and its config folder), `size` when given,
        VAE, ControlNets, every LoRA and the IP-Adapter with its image encoder. Returns the
        architecture ("sd15" or "sdxl").
        """
        from autokose.models import check_model, check_part, require_diffusion

        require_diffusion()
        o = self.settings
        arch = check_model(o.model, o.model_config_dir)
        if o.sdxl is not None:
            arch = "sdxl" if o.sdxl else "sd15"
        if size is not None:
            check_size(*size)
        if o.vae:
            check_part(o.vae, "vae", ("", "vae"))
        for what, spec in (("controlnet", o.controlnet), ("lineart", o.lineart)):
            if spec:
                check_part(spec, what)
        for ref, owner in self.loras:
            controls.check_lora(ref, owner)
        if faceid.is_face_adapter(o.ip_adapter):
            faceid.check(o.ip_adapter, arch)
        elif o.ip_adapter:
            controls.check_ip_adapter(controls.resolve_ip_adapter(o.ip_adapter, arch))
        return arch

    def session(self) -> Session:
        if self._session is None:
            self._session = _warm_session(self) if _WARM is not None else self._load()
        return self._session

    def load_key(self) -> str:
        """What `_load` makes the session from: two engines with the same key can share one."""
        o = self.settings
        loras = []
        for ref, owner in self.loras:
            path = Path(ref.path)
            stat = path.stat() if path.is_file() else None
            loras.append([ref.path, ref.weight, owner, stat and [stat.st_size, stat.st_mtime_ns]])
        return json.dumps([o.model_dump(mode="json", include=LOAD_FIELDS), loras], sort_keys=True)

    @property
    def loaded(self) -> bool:
        """Whether the pipeline is loaded (`session()` loads it)."""
        return self._session is not None

    @property
    def arch(self) -> str:
        return self.session().arch

    def _load(self) -> Session:
        from autokose.models import load_pipeline, resolve_device, resolve_dtype
        from autokose.render.diffusion import speed

        o = self.settings
        device = resolve_device(o.device)
        dtype = resolve_dtype(o.dtype, device)
        nets = [spec for spec in (o.controlnet, o.lineart) if spec]  # CONTROL_KINDS order
        pipe = load_pipeline(o.model, sdxl=o.sdxl, vae=o.vae, config=o.model_config_dir,
                             controlnet=nets[0] if len(nets) == 1 else nets, dtype=dtype,
                             device=None if o.low_vram else device)
        arch = "sdxl" if getattr(pipe, "text_encoder_2", None) is not None else "sd15"
        pipe.scheduler = make_scheduler(o.scheduler, pipe.scheduler.config)
        session = Session(pipe, arch, device, dtype)
        cache = Path(o.cache_dir) if o.cache_dir else controls.default_cache_dir()
        session.loras = controls.apply_loras(pipe, self.loras, regional=o.regional)
        if faceid.is_face_adapter(o.ip_adapter):
            session.ip, session.refs = faceid.load(pipe, o.ip_adapter, arch, o.cache_dir)
        elif o.ip_adapter:
            session.ip = controls.resolve_ip_adapter(o.ip_adapter, arch)
            controls.load_ip_adapter(pipe, session.ip)
            session.refs = controls.ReferenceEmbeddings(pipe, controls.encoder_id(session.ip), cache)
        # Decoding a batch image by image keeps the VAE's peak (SDXL decodes in fp32) from
        # dwarfing the UNet's: 8 SDXL frames peak at 11.6 instead of 38 GiB, at no cost in time
        # (docs/BENCHMARKS.md).
        pipe.vae.enable_slicing()
        if o.low_vram:
            pipe.enable_model_cpu_offload(device=device)
            pipe.vae.enable_tiling()
        if o.regional:
            from autokose.render.diffusion.regional import OwnedLora, RegionalController

            owned = [OwnedLora(lo.name, lo.character, lo.weight) for lo in session.loras if lo.character]
            session.regional = RegionalController(pipe.unet, [pipe.text_encoder, getattr(pipe, "text_encoder_2", None)],
                                                  owned)
        # Last: IP-Adapter loading rebuilds the attention processors that fusing QKV sets.
        session.tuned = speed.tune(pipe, o, cache)
        return session

    def _img2img(self, s: Session):
        """The img2img pipeline over the same components (weights, LoRAs, IP-Adapter, scheduler)."""
        if s.img2img is None:
            from diffusers import AutoPipelineForImage2Image

            s.img2img = AutoPipelineForImage2Image.from_pipe(s.pipe)
            s.img2img.set_progress_bar_config(disable=True)
        return s.img2img

    # ------------------------------------------------------------------ what a call uses
    @property
    def guided(self) -> bool:
        """Whether calls run classifier-free guidance (batch rows doubled: unconditional, then conditional)."""
        return self.settings.cfg > 1.0 and getattr(self.session().pipe.unet.config, "time_cond_proj_dim", None) is None

    def windows(self, request: FrameRequest) -> int:
        """The 75-token window count of a request's own prompts and negative (at least PROMPT_WINDOWS)."""
        texts = [request.prompt, request.negative] + self.slot_prompts(request)[1:]
        return max(PROMPT_WINDOWS, windows_needed(self.session().pipe, texts))

    def slot_prompts(self, request: FrameRequest) -> list[str]:
        """The prompts of a request's attention-couple slots: shared, then one per region.

        A region's slot reads the shared prompt, then the region's own words: inside its box the
        style and setting still hold, and the character's words lead.
        """
        if not self.settings.regional:
            return [request.prompt]
        return [request.prompt] + [", ".join(p for p in (request.prompt.strip(), r.prompt.strip()) if p)
                                   for r in request.regions]

    def consistent_attention(self, seed: int, rate: float | None = None):
        """Switch consistent self-attention on (settings.consistency, or `rate`) and return its controller.

        The caller drives it per call (share / write_bank / read_bank, set_step) and disables it.
        A video's keyframe attention passes its own rate on the same blocks and steps.
        """
        from autokose.render.diffusion.consistency import enable_consistent_attention

        o = self.settings
        rate = o.consistency if rate is None else rate
        return enable_consistent_attention(self.session().pipe.unet, rate, blocks=o.consistency_blocks,
                                           step_range=o.consistency_steps, groups=2 if self.guided else 1, seed=seed)

    def _share_subjects(self, consistency, requests: list[FrameRequest], width: int, height: int,
                        masked: bool | None = None) -> None:
        """Masked consistency (settings.consistency_masked, or `masked`): frames lend and borrow tokens
        only inside the regions of the same character (named alike across frames); tokens outside
        every region (backgrounds) stay the frame's own. A call without regions then shares nothing."""
        if not (self.settings.consistency_masked if masked is None else masked):
            consistency.set_subjects(None)
            return
        from autokose.render.diffusion.consistency import subject_labels

        s = self.session()
        latent = self._latent_size(s, width, height)
        frames = [[(region.name, region.mask) for region in r.regions] for r in requests]
        consistency.set_subjects(subject_labels(frames, consistency.subject_ids, latent), latent)
        consistency.prepare(len(requests), s.pipe._execution_device, len(s.pipe.unet.config.block_out_channels))

    def controls_meta(self) -> dict:
        """The identity and layout controls every frame of this engine gets, for the manifest."""
        o, s = self.settings, self.session()
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

    # ------------------------------------------------------------------ denoising
    def denoise(self, requests: list[FrameRequest], *, windows: int | None = None, consistency=None,
                masked: bool | None = None, span: tuple[int, int] | None = None) -> list[Image.Image]:
        """The images of `requests`, in their order, from one pipeline call.

        `windows`: the prompt window count of the call (default: the largest the requests need).
        `consistency`: a controller from `consistent_attention`, stepped with the call; `masked`
        overrides settings.consistency_masked for it (a video's keyframes share every token).
        `span`: (steps done before this call, steps in all) for progress reports.
        """
        import torch

        from autokose.render.diffusion import speed

        if not requests:
            return []
        s, o = self.session(), self.settings
        width, height = self._call_size(requests)
        pipe, kwargs = self._pipe_and_image_inputs(s, requests)
        windows = windows or max(self.windows(r) for r in requests)
        regional = s.regional is not None and any(s.regional.acts(region) for r in requests for region in r.regions)
        if regional:  # every slot of the call encodes to one length
            windows = max(windows, windows_needed(s.pipe, [t for r in requests for t in self.slot_prompts(r)]))
        emb = encode_prompts(s.pipe, [r.prompt for r in requests], [r.negative for r in requests], windows)
        kwargs.update(prompt_embeds=emb.prompt, negative_prompt_embeds=emb.negative, num_inference_steps=o.steps,
                      guidance_scale=o.cfg, output_type="pil",
                      generator=[torch.Generator("cpu").manual_seed(r.seed) for r in requests])
        if o.scheduler == "tcd":  # the pipelines pass eta=0 unless told: TCD's own stochasticity is 0.3
            kwargs["eta"] = TCD_ETA
        if "image" not in kwargs:  # txt2img: the size of the latents to draw (img2img takes the init's)
            kwargs.update(width=width, height=height)
        if emb.pooled is not None:
            kwargs.update(pooled_prompt_embeds=emb.pooled, negative_pooled_prompt_embeds=emb.negative_pooled)
        kwargs.update(self._control_inputs(s, requests, width, height, img2img="image" in kwargs))
        if s.ip is not None:
            embeds, masks = self._ip_inputs(s, requests, width, height)
            kwargs.update(ip_adapter_image_embeds=embeds, cross_attention_kwargs={"ip_adapter_masks": masks})
            s.pipe.set_ip_adapter_scale(o.ip_adapter_scale)
        elif any(region.references for r in requests for region in r.regions):
            raise InputError("reference images condition a frame only with --ip-adapter")
        done, total = span or (0, o.steps)
        img2img = "image" in kwargs
        deep_cache = self._deep_cache(s)
        hooks = _Img2imgHooks(pipe.scheduler, self._initial_noise(s, requests, width, height, img2img),
                              self._keep_maps(s, requests, width, height, img2img))

        def step_end(pipe, i, t, callback_kwargs):
            hooks.step_end(pipe, i, callback_kwargs)
            if deep_cache is not None:
                deep_cache.step_end(i)
            if consistency is not None:
                callback_kwargs = consistency.on_step_end(pipe, i, t, callback_kwargs)
            if self.progress is not None:
                self.progress("denoise", done + i + 1, total)
            check_cancel(self.cancel)
            return callback_kwargs

        kwargs["callback_on_step_end"] = step_end
        if consistency is not None:
            self._share_subjects(consistency, requests, width, height, masked)
        try:
            with hooks, speed.during_call(o, deep_cache):
                if not regional:
                    return pipe(**kwargs).images
                state = self._regional_state(s, requests, emb, windows, width, height)
                with s.regional.active(state, self._latent_size(s, width, height)):
                    return pipe(**kwargs).images
        except torch.cuda.OutOfMemoryError:
            raise InputError(f"out of GPU memory denoising {len(requests)} frames at {width}x{height}; "
                             "try --batch-size 2 or --low-vram") from None

    def _deep_cache(self, s: Session):
        """The session's DeepCache when this engine's calls use it (attached once per session), else None."""
        if self.settings.deep_cache_interval <= 1:
            return None
        if s.deep_cache is None:
            from autokose.render.diffusion.speed import DeepCache

            s.deep_cache = DeepCache(s.pipe)
        return s.deep_cache

    def _initial_noise(self, s: Session, requests: list[FrameRequest], width: int, height: int, img2img: bool):
        """The requests' own initial noise as one batch tensor [B, C, h, w], or None (noise from the seeds)."""
        import torch

        given = [r.noise is not None for r in requests]
        if not any(given):
            return None
        if not all(given):
            raise InputError("one denoising call takes initial noise for all its frames or none")
        if not img2img:
            raise InputError("initial noise is taken only with an init image (img2img)")
        h, w = self._latent_size(s, width, height)
        shape = (s.pipe.vae.config.latent_channels, h, w)
        batch = []
        for r in requests:
            n = torch.as_tensor(r.noise)
            n = n[0] if n.ndim == 4 and n.shape[0] == 1 else n
            if tuple(n.shape) != shape:
                raise InputError(f"initial noise {tuple(n.shape)} does not fit a {width}x{height} frame "
                                 f"(expected {shape})")
            batch.append(n)
        return torch.stack(batch)

    def _keep_maps(self, s: Session, requests: list[FrameRequest], width: int, height: int, img2img: bool):
        """The requests' keep maps at latent size as one batch tensor [B, 1, h, w], or None."""
        import numpy as np
        import torch
        from PIL import Image

        if all(r.keep is None for r in requests):
            return None
        if not img2img:
            raise InputError("a keep map (lower strength in places) is taken only with an init image (img2img)")
        h, w = self._latent_size(s, width, height)
        maps = []
        for r in requests:
            keep = np.zeros((height, width), np.float32) if r.keep is None else np.asarray(r.keep, np.float32)
            if keep.shape != (height, width):
                raise InputError(f"keep map {keep.shape[1]}x{keep.shape[0]} does not fit a {width}x{height} frame")
            small = Image.fromarray(np.clip(keep, 0.0, 1.0)).resize((w, h), Image.BILINEAR)
            maps.append(torch.from_numpy(np.asarray(small, np.float32).copy()))
        return torch.stack(maps)[:, None]

    def _call_size(self, requests: list[FrameRequest]) -> tuple[int, int]:
        sizes = {(r.width, r.height) for r in requests}
        if len(sizes) > 1:
            raise InputError(f"one denoising call draws one frame size; got {', '.join(f'{w}x{h}' for w, h in sizes)}")
        return check_size(*sizes.pop())

    def _pipe_and_image_inputs(self, s: Session, requests: list[FrameRequest]) -> tuple[object, dict]:
        """txt2img, or img2img when the requests have init images (all of them, with one strength)."""
        inits = [r.init_image for r in requests if r.init_image is not None]
        if not inits:
            return s.pipe, {}
        if len(inits) != len(requests) or len({r.strength for r in requests}) > 1:
            raise InputError("one denoising call takes init images for all its frames or none, with one strength")
        strength = requests[0].strength
        if not 0.0 < strength <= 1.0 or int(self.settings.steps * strength) < 1:
            raise InputError(f"img2img strength {strength} with {self.settings.steps} steps denoises no step "
                             f"(give 0 < strength <= 1 and steps x strength >= 1)")
        images = [r.init_image.convert("RGB").resize((r.width, r.height)) if r.init_image.size != (r.width, r.height)
                  else r.init_image.convert("RGB") for r in requests]
        return self._img2img(s), dict(image=images, strength=strength)

    def _control_inputs(self, s: Session, requests: list[FrameRequest], width: int, height: int,
                        img2img: bool) -> dict:
        """ControlNet images and scales: OpenPose, then lineart, as loaded.

        One ControlNet takes a list of images (one per frame). Several take one batch tensor
        per ControlNet, the form both the SD 1.5 and the SDXL multi-ControlNet pipelines accept
        for a batch of frames (SDXL refuses per-frame nested lists). The img2img pipelines take
        them as `control_image` (their `image` is the init image).
        """
        o = self.settings
        loaded = {"openpose": (o.controlnet, o.controlnet_scale), "lineart": (o.lineart, o.lineart_scale)}
        option = {"openpose": "--controlnet", "lineart": "--lineart"}
        used = []
        for kind in CONTROL_KINDS:
            spec, scale = loaded[kind]
            given = [kind in r.controls for r in requests]
            if spec and not all(given):
                raise InputError(f"every frame needs a {kind} control image: the engine loaded a {kind} ControlNet")
            if not spec and any(given):
                raise InputError(f"a {kind} control image needs a {kind} ControlNet ({option[kind]})")
            if spec:
                used.append(([r.controls[kind] for r in requests], scale))
        unknown = sorted({k for r in requests for k in r.controls} - set(CONTROL_KINDS))
        if unknown:
            raise InputError(f"unknown control kind {unknown[0]!r} (kinds: {', '.join(CONTROL_KINDS)})")
        if not used:
            return {}
        key = "control_image" if img2img else "image"
        if len(used) == 1:
            return {key: used[0][0], "controlnet_conditioning_scale": used[0][1]}
        process = s.pipe.control_image_processor.preprocess
        return {key: [process(images, height=height, width=width) for images, _ in used],
                "controlnet_conditioning_scale": [scale for _, scale in used]}

    def _ip_inputs(self, s: Session, requests: list[FrameRequest], width: int, height: int):
        """IP-Adapter embeddings and masks: each region's references condition that region only.

        Per frame, one image slot per region with references (in the request's order), masked
        to the region; frames with fewer are padded with the unconditional embedding under an
        all-zero mask, so they get no IP-Adapter influence. Returns ([embeds], [masks]) in the
        pipeline's layout: embeds [2B (negatives, then positives), slots, …], masks [2B, slots, H, W].
        """
        import torch

        uncond, _ = s.refs.unconditional()
        frames = []
        for r in requests:
            items = []
            for region in r.regions:
                if not region.references:
                    continue
                if tuple(region.mask.shape) != (height, width):
                    raise InputError(f"region {region.name}: mask is {region.mask.shape[1]}x{region.mask.shape[0]}, "
                                     f"the frame {width}x{height}")
                neg, pos = s.refs.get([Path(p) for p in region.references])
                items.append((neg, pos, torch.as_tensor(region.mask, dtype=torch.float32)))
            frames.append(items)
        slots = max([1] + [len(items) for items in frames])
        negs, poss, masks = [], [], []
        for items in frames:
            pad = slots - len(items)
            negs.append(torch.cat([neg for neg, _, _ in items] + [uncond] * pad, dim=1))
            poss.append(torch.cat([pos for _, pos, _ in items] + [uncond] * pad, dim=1))
            masks.append(torch.stack([m for *_, m in items] + [torch.zeros(height, width)] * pad))
        guided = self.guided
        device, dtype = s.pipe._execution_device, s.pipe.unet.dtype
        embeds = torch.cat(negs + poss if guided else poss).to(device, dtype)
        mask = torch.stack(masks)
        mask = torch.cat([mask, mask]) if guided else mask
        return [embeds], [mask.to(device)]

    # ------------------------------------------------------------------ regional prompts and LoRA
    @staticmethod
    def _latent_size(s: Session, width: int, height: int) -> tuple[int, int]:
        factor = getattr(s.pipe, "vae_scale_factor", 8)
        return height // factor, width // factor

    def _regional_state(self, s: Session, requests: list[FrameRequest], emb, windows: int, width: int, height: int):
        """The attention-couple slots, weights and LoRA masks of one call (see `regional.py`).

        Rows are ordered as the UNet sees them: with guidance the unconditional rows first, which
        get the negative prompt in every slot. A region's slot prompt is encoded with its owner's
        text-encoder LoRA on.
        """
        import torch

        from autokose.render.diffusion.regional import CallState, pool, slot_weights

        latent = self._latent_size(s, width, height)
        masks = []
        for r in requests:
            frame = []
            for region in r.regions:
                if tuple(region.mask.shape) != (height, width):
                    raise InputError(f"region {region.name}: mask is {region.mask.shape[1]}x{region.mask.shape[0]}, "
                                     f"the frame {width}x{height}")
                frame.append(pool(torch.as_tensor(region.mask, dtype=torch.float32), latent))
            masks.append(frame)
        slots = 1 + max(len(r.regions) for r in requests)
        weights = slot_weights(masks, self.settings.regional_base, slots, latent)
        # each region's slot prompt, encoded in groups by owner (its text-encoder LoRA on)
        positive = [[emb.prompt[f] for f in range(len(requests))] for _ in range(slots)]
        by_owner: dict[str, list[tuple[int, int]]] = {}
        for f, r in enumerate(requests):
            for i, region in enumerate(r.regions):
                if s.regional.acts(region):
                    by_owner.setdefault(region.name, []).append((f, i))
                else:  # no words and no LoRA of its own: its share stays the shared prompt's
                    weights[0, f] += weights[i + 1, f]
                    weights[i + 1, f] = 0
        for owner, places in by_owner.items():
            texts = [self.slot_prompts(requests[f])[i + 1] for f, i in places]
            with s.regional.encoding(owner):
                encoded = encode_prompts(s.pipe, texts, [], windows).prompt
            for (f, i), e in zip(places, encoded):
                positive[i + 1][f] = e
        owners = [[None] * len(requests) for _ in range(slots)]
        for owner, places in by_owner.items():
            for f, i in places:
                owners[i + 1][f] = owner
        lora_masks = {}
        for owner, places in by_owner.items():
            m = torch.zeros(len(requests), *latent)
            for f, i in places:
                m[f] = torch.maximum(m[f], masks[f][i])
            lora_masks[owner] = m
        texts = torch.stack([torch.stack(row) for row in positive])  # [slots, frames, tokens, dim]
        if self.guided:
            texts = torch.cat([emb.negative[None].expand(slots, *emb.negative.shape), texts], dim=1)
            weights = torch.cat([weights, weights], dim=1)
            owners = [row + row for row in owners]
            lora_masks = {k: torch.cat([v, v]) for k, v in lora_masks.items()}
        device = s.pipe._execution_device
        return CallState(texts.to(device), weights.to(device), owners,
                         {k: v.to(device) for k, v in lora_masks.items()})


class _Img2imgHooks:
    """A request's own initial noise and keep map in a diffusers img2img call.

    Noise: while active, the scheduler's `add_noise` mixes in `noise` instead of the noise it is
    given. The img2img pipelines draw their initial noise inside `prepare_latents` from the
    generator and take no noise argument; `add_noise` is the one place that noise meets the init
    latents (and the only call to it in a diffusers img2img run), so replacing its noise there is
    how a request's own noise gets in. An instance attribute, removed on exit: the class is
    untouched.

    Keep maps (Differential Diffusion, Levin & Fried 2023): a pixel with keep k is denoised at
    strength x (1 - k). After each step, pixels whose own strength has not started yet are set
    back to the init latents noised to the next step's level (the same noise), so they enter the
    denoising later and end closer to the init; k = 1 ends exactly on the init latents. The init
    latents are the ones `add_noise` receives.
    """

    def __init__(self, scheduler, noise, keep):
        self.scheduler, self.noise, self.keep = scheduler, noise, keep
        self.init = self.drawn = None
        self.original = None

    def __enter__(self):
        if self.noise is None and self.keep is None:
            return self
        self.original = type(self.scheduler).add_noise.__get__(self.scheduler)
        given = self.noise

        def add_noise(samples, noise, timesteps):
            if given is not None:
                if noise.shape != given.shape:
                    raise RuntimeError(f"initial noise {tuple(given.shape)} does not match the pipeline's "
                                       f"{tuple(noise.shape)}")
                noise = given.to(device=noise.device, dtype=noise.dtype)
            if self.init is None:
                self.init, self.drawn = samples, noise
            return self.original(samples, noise, timesteps)

        self.scheduler.add_noise = add_noise
        return self

    def step_end(self, pipe, i: int, callback_kwargs: dict) -> None:
        """After loop step `i`: hold back the pixels whose strength starts later (keep maps)."""
        if self.keep is None or self.init is None:
            return
        import torch

        latents = callback_kwargs["latents"]
        steps = int(getattr(pipe, "num_timesteps", 0) or 0)
        if steps <= 0:
            return
        keep = self.keep.to(device=latents.device, dtype=latents.dtype)
        init = self.init.to(latents.dtype)
        if latents.shape[0] != init.shape[0]:  # classifier-free guidance does not double the latents; be safe
            return
        remaining = (steps - i - 1) / steps
        if remaining <= 0:
            latents = torch.where(keep >= 1.0, init, latents)
        else:
            # img2img runs the last `steps` timesteps of the schedule (first-order schedulers);
            # counted from the end, so schedulers without a begin index (DDIM) agree
            timesteps = self.scheduler.timesteps
            t_next = timesteps[len(timesteps) - steps + i + 1]
            renoised = self.original(init, self.drawn.to(latents.dtype), t_next.reshape(1).repeat(init.shape[0]))
            latents = torch.where((1.0 - keep) < remaining, renoised, latents)
        callback_kwargs["latents"] = latents

    def __exit__(self, *exc):
        if self.original is not None:
            self.scheduler.__dict__.pop("add_noise", None)
        return False
