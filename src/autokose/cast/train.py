"""DreamBooth-LoRA: teach SD 1.5 or SDXL one character from 10–15 reference images.

The recipe follows diffusers' `train_dreambooth_lora.py` / `train_dreambooth_lora_sdxl.py`:
frozen base model, peft LoRA on the UNet's attention projections (to_q, to_k, to_v,
to_out.0) and optionally on the text encoder(s), noise-prediction MSE on VAE latents,
captions that bind a rare trigger token ("aldarkose") to the person. Two things differ:

- Latents (and, without text-encoder training, prompt embeddings) are computed once: a
  character set is small, so each step costs one UNet forward and backward.
- Captions are encoded as the renderer encodes prompts (`autokose.prompt_embeds`): in
  75-token windows, not cut at 77 tokens, so every word of a long caption conditions the LoRA.
- Every random draw of step N (which images, which noise, which timesteps) comes from a
  generator seeded with (seed, N). A run resumed from a checkpoint therefore takes exactly
  the steps the uninterrupted run would have taken, with no RNG state to restore.

Outputs in `out/`: the LoRA in diffusers and kohya formats, `card.json`, the training crops
(`references/`), validation images (`validation/`), `train.log`, `train_config.json` and
`checkpoints/` (see `autokose.cast.checkpoint`).
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autokose.bible import Bible
from autokose.cast import checkpoint as ckpt
from autokose.cast.card import CARD_NAME, REFERENCES, base_model_fingerprint, build_card, save_references, write_card
from autokose.cast.dataset import DEFAULT_CAPTION, TrainingSet, caption_template_for, prepare_images
from autokose.cast.lora_export import (
    DIFFUSERS_WEIGHT_NAME,
    TEXT_ENCODER_TARGETS,
    UNET_TARGETS,
    save_diffusers,
    save_kohya,
)
from autokose.errors import InputError, format_validation_error
from autokose.fsio import ensure_writable_dir, save_image, write_json
from autokose.prompt_embeds import encode_windows, token_windows
from autokose.story import Character

CONFIG_NAME = "train_config.json"
LOG_NAME = "train.log"
VALIDATION = "validation"
RESOLUTION = {"sd15": 512, "sdxl": 1024}
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
# Options that may change when a run is resumed; every other one must match the run in OUT.
RESUMABLE_CHANGES = {"steps", "checkpoint_every", "checkpoints_total_limit", "render_validation", "validation_every",
                     "validation_prompts", "validation_steps", "device", "out"}
STORY_STYLE = "storyboard sketch, clean lines, muted colours"


class TrainConfig(BaseModel):
    """Every parameter of a training run; saved as `train_config.json` and in the card."""

    model_config = ConfigDict(extra="forbid")

    character: str
    name: str = ""
    trigger: str = Field(pattern=r"^[A-Za-z0-9_]+$", min_length=3, max_length=40)
    caption: str = Field(min_length=1, description="Caption for images without a .txt of their own.")
    images: str
    model: str
    out: str
    vae: str | None = None
    base_config: str | None = Field(None, description="Diffusers config folder for a single-file model.")
    sdxl: bool | None = None
    resolution: int | None = Field(None, ge=64, le=2048, description="Default: 512 for SD 1.5, 1024 for SDXL.")
    steps: int = Field(500, ge=1, le=1_000_000)
    batch_size: int = Field(1, ge=1, le=64)
    grad_accum: int = Field(1, ge=1, le=64)
    learning_rate: float = Field(1e-4, gt=0, le=1)
    text_encoder_lr: float | None = Field(None, gt=0, le=1)
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = Field(0, ge=0)
    rank: int = Field(16, ge=1, le=1024)
    alpha: float | None = Field(None, gt=0, description="LoRA alpha; default: the rank (scale 1).")
    train_text_encoder: bool = False
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    gradient_checkpointing: bool = False
    adam_8bit: bool = False
    snr_gamma: float | None = Field(None, gt=0, description="Min-SNR weighting (5.0 is the paper's).")
    noise_offset: float = Field(0.0, ge=0, le=1)
    flip: bool = Field(False, description="Random horizontal flips: off, characters are asymmetric.")
    class_images: str | None = Field(None, description="Folder of class images for prior preservation.")
    class_prompt: str | None = None
    num_class_images: int = Field(0, ge=0, le=10_000, description="Generate class images up to this many.")
    prior_loss_weight: float = Field(1.0, ge=0)
    checkpoint_every: int = Field(100, ge=0, description="0: no checkpoints.")
    checkpoints_total_limit: int = Field(2, ge=1)
    render_validation: bool = True
    validation_every: int = Field(0, ge=0, description="0: only after the last step.")
    validation_prompts: list[str] = Field(default_factory=list)
    validation_steps: int = Field(25, ge=1, le=200)
    seed: int = Field(0, ge=0, lt=2**32)
    device: str | None = None
    max_grad_norm: float = Field(1.0, gt=0)
    min_side: int | None = Field(None, ge=1, description="Smallest short side kept (default: resolution / 2).")

    @field_validator("lr_scheduler")
    @classmethod
    def _known_scheduler(cls, v: str) -> str:
        if v not in SCHEDULERS:
            raise ValueError(f"unknown LR scheduler '{v}' (choose from {', '.join(SCHEDULERS)})")
        return v

    @field_validator("resolution")
    @classmethod
    def _multiple_of_8(cls, v: int | None) -> int | None:
        if v is not None and v % 8:
            raise ValueError(f"must be a multiple of 8 (got {v})")
        return v

    @property
    def lora_alpha(self) -> float:
        return float(self.alpha if self.alpha is not None else self.rank)


def config_for(character: Character, *, trigger: str | None = None, caption: str | None = None,
               **options) -> TrainConfig:
    """A TrainConfig for a bible character: trigger, default caption and validation prompts from its entry."""
    trigger = trigger or character.trigger or character.id
    character = character.model_copy(update={"trigger": trigger})
    template = caption or DEFAULT_CAPTION
    try:
        default_caption = caption_template_for(character, template)
    except (KeyError, IndexError, ValueError) as e:
        raise InputError(f"--caption {template!r}: bad template ({e}); use {{trigger}}, {{appearance}}, {{name}}") from None
    if not options.get("validation_prompts"):
        # The training caption, then the trigger alone in a story frame: is the identity in the token?
        options["validation_prompts"] = [default_caption,
                                         f"{trigger} standing in the steppe beside a yurt, full body, {STORY_STYLE}"]
    try:
        return TrainConfig(character=character.id, name=character.name, trigger=trigger, caption=default_caption,
                           **options)
    except ValidationError as e:
        raise InputError(format_validation_error(e)) from None


def character_entry(bible: Bible, character: str, *, trigger: str | None = None) -> Character:
    """The bible's entry for `character`, or a new character named by its id when a trigger is given."""
    if character in bible:
        return bible[character]
    if not trigger:
        raise InputError(f"unknown character '{character}' (known: {', '.join(bible.characters)}); "
                         "give --trigger to train a new one")
    try:
        return Character(id=character, name=character, trigger=trigger)
    except ValidationError as e:
        raise InputError(format_validation_error(e)) from None


def training_config(bible: Bible, character: str, *, images: str | Path, model: str, out: str | Path | None = None,
                    vae: str | None = None, base_config: str | Path | None = None,
                    class_images: str | Path | None = None, trigger: str | None = None, caption: str | None = None,
                    **options) -> TrainConfig:
    """The TrainConfig every entry point (the CLI, a web form) builds a training run with.

    Local paths are made absolute, so `--resume` from another folder describes the same run;
    model and VAE specs that are no local path stay as they are (HF repo ids). `out` defaults
    to `characters/<id>`. Options are TrainConfig's fields.
    """
    entry = character_entry(bible, character, trigger=trigger)
    return config_for(entry, trigger=trigger, caption=caption, images=str(_absolute(images)), model=model_spec(model),
                      out=str(out or Path("characters") / character), vae=model_spec(vae) if vae else None,
                      base_config=str(_absolute(base_config)) if base_config else None,
                      class_images=str(_absolute(class_images)) if class_images else None, **options)


def model_spec(spec: str) -> str:
    """Local paths become absolute (so --resume from elsewhere agrees); repo ids stay as they are."""
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else spec


def _absolute(path: str | Path) -> Path:
    return Path(path).expanduser().resolve()


@dataclass
class TrainResult:
    out: Path
    card: Path
    steps: int
    final_loss: float | None
    seconds: float
    resumed_from: int | None = None
    skipped: list[str] | None = None


# (step, total steps, loss): the CLI draws a progress bar from this.
StepCallback = Callable[[int, int, float], None]


def train_character(config: TrainConfig, *, resume: bool = False, force: bool = False,
                    on_step: StepCallback | None = None, log: Callable[[str], None] | None = None) -> TrainResult:
    """Train the LoRA described by `config` into `config.out` (see the module docstring)."""
    trainer = LoraTrainer(config, resume=resume, force=force, on_step=on_step, log=log)
    return trainer.run()


# --------------------------------------------------------------------------- output folder
def output_names(character: str) -> set[str]:
    return {CARD_NAME, DIFFUSERS_WEIGHT_NAME, kohya_file_name(character), CONFIG_NAME, LOG_NAME,
            ckpt.FOLDER, VALIDATION, REFERENCES}


def kohya_file_name(character: str) -> str:
    return f"{character}_kohya.safetensors"


def check_output(out: Path, *, resume: bool, force: bool) -> None:
    """Check OUT can take this run without writing anything: a folder (or nothing yet, under a
    folder we may write in), and not holding another run unless asked."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out}: exists and is not a folder")
    nearest = next(p for p in [out, *out.parents] if os.path.lexists(p))
    if not nearest.is_dir() or not os.access(nearest, os.W_OK | os.X_OK):
        why = "permission denied" if nearest.is_dir() else f"{nearest} is not a folder"
        raise InputError(f"--out {out}: output folder is not writable ({why})")
    if resume and force:
        raise InputError("--resume and --force contradict each other; choose one")
    # A run that failed before training leaves only its log and config: nothing to protect.
    leftovers = [p for p in out.iterdir() if p.name not in (LOG_NAME, CONFIG_NAME)] if out.is_dir() else []
    if leftovers and not (resume or force):
        raise InputError(f"--out {out}: folder is not empty (use --resume to continue its training "
                         "or --force to start over)")


def create_output(out: Path, character: str, *, resume: bool) -> Path | None:
    """Make OUT writable (creating it and missing parents) and, unless resuming, clear a previous
    run's outputs. Returns the topmost folder it created (None if OUT existed), so that a run
    failing early can take it away again."""
    made = next((p for p in reversed([out, *out.parents]) if not os.path.lexists(p)), None)
    ensure_writable_dir(out, f"--out {out}")
    if not resume:  # only what a training run writes: never a user's other files
        for name in output_names(character):
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    return made


def remove_unfinished(out: Path, made: Path) -> None:
    """After a failed run in a folder it created (`made` being the topmost new one): remove it
    again while it holds only this run's set-up files (log, config, empty folders). A folder with
    a checkpoint or anything else stays: that is progress to resume, not a leftover."""
    if not out.is_dir() or not all(_setup_file(p) for p in out.iterdir()):
        return
    shutil.rmtree(out)
    folder = out
    while folder != made and folder.parent != folder:
        folder = folder.parent
        try:
            folder.rmdir()
        except OSError:  # not empty (someone else's file) or gone: stop there
            return


def _setup_file(path: Path) -> bool:
    """What a run writes before training (its log, its config, folders still empty): safe to delete."""
    if path.is_symlink():
        return False
    if path.is_dir():
        return not any(path.iterdir())
    return path.name in (LOG_NAME, CONFIG_NAME)


def reconcile(out: Path, config: TrainConfig) -> TrainConfig:
    """On --resume: the command must describe the same training as the run in OUT."""
    saved_path = out / CONFIG_NAME
    if not saved_path.is_file():
        return config
    try:
        saved = TrainConfig.model_validate_json(saved_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{saved_path}: unreadable training config ({e}); use --force to start over") from None
    except ValidationError as e:
        raise InputError(f"{saved_path}: unreadable training config ({format_validation_error(e)}); "
                         "use --force to start over") from None
    for name in TrainConfig.model_fields:
        if name in RESUMABLE_CHANGES:
            continue
        if getattr(saved, name) != getattr(config, name):
            raise InputError(f"--resume: {name} is {getattr(config, name)!r} here but {getattr(saved, name)!r} "
                             f"in the run in {out}; use the same options (or --force to start over)")
    return config


def resume_checkpoint(out: Path, steps: int) -> ckpt.Checkpoint | None:
    """On --resume: the newest checkpoint in OUT (None when there is none yet), read and checked in
    full before any model loads, so a damaged one costs no loading time and prints nothing first."""
    ckpt.check_folder(out)
    path = ckpt.latest_checkpoint(out)
    if path is None:
        return None
    saved = ckpt.load_checkpoint(path, max_step=steps)
    losses = saved.extra.get("losses", [])
    if not isinstance(losses, list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in losses):
        problem = "its losses are not a list of numbers"
    elif not all(isinstance(saved.states.get(name), dict) for name in ("optimizer", "lr_scheduler")):
        problem = "no optimizer or LR scheduler state"
    else:
        return saved
    raise InputError(f"{path}: unreadable checkpoint ({problem}); delete it to resume from an earlier one")


def training_precision(mixed_precision: str, device: str) -> str:
    """'no', 'fp16' or 'bf16' for --mixed-precision on `device` (auto: half precision on a GPU only)."""
    import torch

    precision = mixed_precision
    if precision == "auto":
        precision = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if device.startswith("cuda") else "no"
    if precision != "no" and device == "cpu":
        raise InputError(f"--mixed-precision {precision}: needs a GPU (this run is on the CPU)")
    return precision


# --------------------------------------------------------------------------- reproducible randomness
def _seed_for(seed: int, stream: str, n: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{stream}:{n}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@lru_cache(maxsize=64)
def _epoch_order(count: int, epoch: int, seed: int, stream: str) -> tuple[int, ...]:
    import torch

    g = torch.Generator().manual_seed(_seed_for(seed, stream, epoch))
    return tuple(torch.randperm(count, generator=g).tolist())


def sample_indices(count: int, start: int, size: int, seed: int, stream: str = "order") -> list[int]:
    """Items start..start+size of an endless sequence of shuffled epochs over `count` items."""
    return [_epoch_order(count, p // count, seed, stream)[p % count] for p in range(start, start + size)]


# --------------------------------------------------------------------------- the trainer
class LoraTrainer:
    def __init__(self, config: TrainConfig, *, resume: bool = False, force: bool = False,
                 on_step: StepCallback | None = None, log: Callable[[str], None] | None = None):
        self.config = config
        self.out = Path(config.out)
        self.resume = resume
        self.force = force
        self.on_step = on_step or (lambda step, total, loss: None)
        self.echo = log or (lambda message: None)

    # -- logging -----------------------------------------------------------------------
    def log(self, message: str) -> None:
        with open(self.out / LOG_NAME, "a", encoding="utf-8") as f:
            f.write(message + "\n")
        self.echo(message)

    # -- set-up ------------------------------------------------------------------------
    def run(self) -> TrainResult:
        t0 = time.perf_counter()
        self.check_inputs()
        made = create_output(self.out, self.config.character, resume=self.resume)
        try:
            return self.train_into_out(t0)
        except BaseException:
            if made is not None:
                remove_unfinished(self.out, made)
            raise

    def check_inputs(self) -> None:
        """Everything a user can get wrong, checked before the first write or log line: OUT, the
        checkpoint to resume from, the device, the model and VAE (pickles refused from their names
        and headers alone) and every reference image. Sets the architecture, resolution, dataset
        and the checkpoint (`self.resumed`, None when starting at step 0)."""
        from autokose.models import (
            check_model,
            check_part,
            check_text_encoder_lora_support,
            detect_arch,
            require_diffusion,
            resolve_device,
        )

        cfg = self.config
        require_diffusion()
        if cfg.train_text_encoder:
            check_text_encoder_lora_support("--train-text-encoder")
        check_output(self.out, resume=self.resume, force=self.force)
        self.resumed = None
        if self.resume:
            reconcile(self.out, cfg)
            self.resumed = resume_checkpoint(self.out, cfg.steps)
        training_precision(cfg.mixed_precision, resolve_device(cfg.device))
        if cfg.class_images and not cfg.class_prompt:
            raise InputError("--class-images needs --class-prompt (e.g. 'a photo of a young Kazakh man')")
        check_model(cfg.model, cfg.base_config)
        if cfg.vae:
            check_part(cfg.vae, "vae", ("", "vae"))
        self.arch = ("sdxl" if cfg.sdxl else "sd15") if cfg.sdxl is not None else detect_arch(cfg.model, cfg.base_config)
        self.resolution = cfg.resolution or RESOLUTION[self.arch]
        self.dataset = prepare_images(cfg.images, resolution=self.resolution, caption=cfg.caption,
                                      trigger=cfg.trigger, min_side=cfg.min_side)

    def train_into_out(self, t0: float) -> TrainResult:
        """The run proper, once its inputs are checked and OUT exists."""
        cfg = self.config
        for s in self.dataset.skipped:
            self.log(f"skipped {s}")
        write_json(self.out / CONFIG_NAME, cfg.model_dump(mode="json"))
        self.log(f"{len(self.dataset.images)} images ({len(self.dataset.face_embeddings)} with a face), "
                 f"{self.arch} at {self.resolution} px, {cfg.steps} steps")

        self.setup_models()
        self.class_set = self.prepare_class_images() if cfg.class_images else None
        self.add_adapters()
        self.cache_inputs()
        self.setup_optimizer()
        start = self.restore() if self.resume else 0
        self.train(start)
        seconds = time.perf_counter() - t0
        card_path = self.export(seconds)
        return TrainResult(out=self.out, card=card_path, steps=cfg.steps, final_loss=self.final_loss(),
                           seconds=seconds, resumed_from=start if self.resume else None,
                           skipped=[str(s) for s in self.dataset.skipped])

    def setup_models(self) -> None:
        import torch
        from accelerate import Accelerator

        from autokose.models import load_components, resolve_device

        cfg = self.config
        device = resolve_device(cfg.device)
        self.precision = precision = training_precision(cfg.mixed_precision, device)
        self.weight_dtype = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        self.accelerator = Accelerator(mixed_precision=precision, cpu=device == "cpu")
        self.device = self.accelerator.device
        self.comps = load_components(cfg.model, sdxl=cfg.sdxl, vae=cfg.vae, config=cfg.base_config,
                                     dtype=self.weight_dtype)
        c = self.comps
        self.text_encoders = [te for te in (c.text_encoder, c.text_encoder_2) if te is not None]
        self.tokenizers = [tok for tok in (c.tokenizer, c.tokenizer_2) if tok is not None]
        for model in (c.unet, c.vae, *self.text_encoders):
            model.requires_grad_(False)
            model.to(self.device)
        # The VAE only encodes the references once and decodes validation images: fp32 avoids
        # the SDXL VAE's fp16 overflow at no cost worth mentioning.
        if c.vae.dtype != torch.float32:
            c.vae.to(torch.float32)

    def add_adapters(self) -> None:
        import torch
        from diffusers.training_utils import cast_training_params
        from peft import LoraConfig

        from autokose.models import is_peft_version_error, peft_mismatch

        cfg = self.config
        c = self.comps
        self.trained = {"unet": c.unet}
        # peft draws the initial LoRA weights from the global RNG: seed it, without disturbing the caller's.
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(_seed_for(cfg.seed, "init", 0))
            c.unet.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.lora_alpha, init_lora_weights="gaussian",
                                          target_modules=list(UNET_TARGETS)))
            if cfg.train_text_encoder:
                for name, te in zip(("text_encoder", "text_encoder_2"), self.text_encoders):
                    try:
                        te.add_adapter(LoraConfig(r=cfg.rank, lora_alpha=cfg.lora_alpha, init_lora_weights="gaussian",
                                                  target_modules=list(TEXT_ENCODER_TARGETS)))
                    except (ValueError, ImportError) as e:
                        if is_peft_version_error(e):
                            raise InputError(peft_mismatch("--train-text-encoder")) from None
                        raise
                    self.trained[name] = te
        # LoRA weights train in fp32 whatever the frozen weights' dtype.
        cast_training_params(list(self.trained.values()), dtype=torch.float32)
        if cfg.gradient_checkpointing:
            c.unet.enable_gradient_checkpointing()
            if cfg.train_text_encoder:
                for te in self.text_encoders:
                    te.gradient_checkpointing_enable()

    # -- cached inputs ---------------------------------------------------------------------
    def cache_inputs(self) -> None:
        """Encode every image to latents (and every caption to embeddings when the text encoders are frozen)."""
        self.latents = self.encode_images(self.dataset)
        self.captions = [item.caption for item in self.dataset.images]
        self.class_latents = self.encode_images(self.class_set) if self.class_set else None
        self.class_captions = [item.caption for item in self.class_set.images] if self.class_set else []
        self.token_ids = {}
        for caption in set(self.captions + self.class_captions):
            self.token_ids[caption] = token_windows(self.tokenizers, caption)
        self.embeddings = {}
        if not self.config.train_text_encoder:
            import torch

            with torch.no_grad():
                for caption, ids in self.token_ids.items():
                    self.embeddings[caption] = self.encode_prompt(ids)
        self.time_ids = {}
        if self.arch == "sdxl":
            for kind, data in (("instance", self.dataset), ("class", self.class_set)):
                for n, item in enumerate(data.images if data else []):
                    self.time_ids[kind, n] = list(item.original_size) + list(item.crop_top_left) + [self.resolution] * 2

    def encode_images(self, data: TrainingSet):
        """(mean, std) of each image's latent distribution; with `flip`, the mirrored image's too."""
        import numpy as np
        import torch

        vae = self.comps.vae
        out = []
        with torch.no_grad():
            for item in data.images:
                variants = [item.image] + ([item.image.transpose(0)] if self.config.flip else [])
                encoded = []
                for image in variants:
                    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
                    dist = vae.encode(pixels[None].to(self.device, torch.float32)).latent_dist
                    encoded.append((dist.mean[0], dist.std[0]))
                out.append(encoded)
        return out

    def encode_prompt(self, ids: list) -> tuple:
        """(prompt embeddings [1, 77 * windows, dim], pooled [1, dim] or None) for one caption's
        token windows ([tokenizer][window][77], from `token_windows`); with gradients unless the
        caller turns them off, so the text encoders' LoRA trains through it."""
        return encode_windows(self.text_encoders, [[per_tokenizer] for per_tokenizer in ids], self.device)

    # -- optimisation -------------------------------------------------------------------------
    def trainable_parameters(self) -> dict:
        return {f"{name}.{pname}": p for name, model in self.trained.items()
                for pname, p in model.named_parameters() if p.requires_grad}

    def setup_optimizer(self) -> None:
        import torch
        from diffusers.optimization import get_scheduler

        cfg = self.config
        groups = [{"params": [p for p in self.comps.unet.parameters() if p.requires_grad], "lr": cfg.learning_rate}]
        for name, model in self.trained.items():
            if name != "unet":
                groups.append({"params": [p for p in model.parameters() if p.requires_grad],
                               "lr": cfg.text_encoder_lr or cfg.learning_rate})
        optimizer_class = torch.optim.AdamW
        if cfg.adam_8bit:
            try:
                import bitsandbytes as bnb
            except ImportError:
                raise InputError("--adam-8bit needs bitsandbytes (pip install bitsandbytes)") from None
            optimizer_class = bnb.optim.AdamW8bit
        optimizer = optimizer_class(groups, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
        self.lr_scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.lr_warmup_steps,
                                          num_training_steps=cfg.steps)
        prepared = self.accelerator.prepare(*self.trained.values(), optimizer)
        self.models = dict(zip(self.trained, prepared[:-1]))
        self.optimizer = prepared[-1]
        self.losses: list[float] = []

    def states(self) -> dict:
        states = {"optimizer": self.optimizer.state_dict(), "lr_scheduler": self.lr_scheduler.state_dict()}
        if self.accelerator.scaler is not None:
            states["grad_scaler"] = self.accelerator.scaler.state_dict()
        return states

    def save_checkpoint(self, step: int) -> Path:
        path = ckpt.save_checkpoint(self.out, step, self.trainable_parameters(), self.states(),
                                    {"losses": self.losses, "seed": self.config.seed, "config": self.config.model_dump(mode="json")})
        ckpt.prune_checkpoints(self.out, self.config.checkpoints_total_limit)
        return path

    def restore(self) -> int:
        """Continue from the checkpoint `check_inputs` read; the step to continue from (0 if there is none)."""
        import torch

        saved = self.resumed
        if saved is None:
            self.log("no checkpoint to resume from; starting at step 0")
            return 0
        path = saved.path
        params = self.trainable_parameters()
        differ = set(params) ^ set(saved.weights)
        differ |= {name for name, p in params.items() if name in saved.weights and saved.weights[name].shape != p.shape}
        if differ:
            raise InputError(f"{path}: checkpoint does not match this model ({len(differ)} LoRA weights differ); "
                             "use --force to start over")
        try:
            self.optimizer.load_state_dict(saved.states["optimizer"])
            self.lr_scheduler.load_state_dict(saved.states["lr_scheduler"])
            if self.accelerator.scaler is not None and "grad_scaler" in saved.states:
                self.accelerator.scaler.load_state_dict(saved.states["grad_scaler"])
        except (KeyError, ValueError, TypeError, RuntimeError, IndexError) as e:
            raise InputError(f"{path}: unreadable checkpoint ({ckpt.describe(e)}); "
                             "delete it to resume from an earlier one") from None
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(saved.weights[name].to(p.device, p.dtype))
        self.losses = [float(v) for v in saved.extra.get("losses", [])][: saved.step]
        self.log(f"resumed from {path.relative_to(self.out)} at step {saved.step}/{self.config.steps}")
        return saved.step

    # -- the loop -------------------------------------------------------------------------------
    def train(self, start: int) -> None:
        cfg = self.config
        for model in self.models.values():
            model.train()
        for step in range(start + 1, cfg.steps + 1):
            lr = self.lr_scheduler.get_last_lr()[0]  # the rate this step uses
            loss = self.train_step(step)
            self.losses.append(loss)
            self.log(f"step {step}/{cfg.steps} loss {loss:.6f} lr {lr:.3g}")
            self.on_step(step, cfg.steps, loss)
            if not math.isfinite(loss):
                raise InputError(f"training diverged at step {step} (loss {loss}); lower --learning-rate "
                                 "or use --mixed-precision bf16/no")
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.steps:
                path = self.save_checkpoint(step)
                self.log(f"checkpoint {path.relative_to(self.out)}")
            if cfg.render_validation and cfg.validation_every and step % cfg.validation_every == 0 and step < cfg.steps:
                self.validate(step)

    def train_step(self, step: int) -> float:
        import torch

        cfg = self.config
        g = torch.Generator().manual_seed(_seed_for(cfg.seed, "step", step))
        total = 0.0
        for micro in range(cfg.grad_accum):
            position = ((step - 1) * cfg.grad_accum + micro) * cfg.batch_size
            loss = self.micro_batch_loss(position, g) / cfg.grad_accum
            self.accelerator.backward(loss)
            total += loss.item()
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    def batch(self, kind: str, position: int, g) -> tuple:
        """Latents, prompt embeddings (one [1, 77 * windows, dim] tensor per sample), pooled
        embeddings and SDXL time ids for one batch."""
        import torch

        cfg = self.config
        latents_cache, captions = ((self.latents, self.captions) if kind == "instance"
                                   else (self.class_latents, self.class_captions))
        indices = sample_indices(len(latents_cache), position, cfg.batch_size, cfg.seed, kind)
        latents, prompts, pooled, time_ids = [], [], [], []
        for n in indices:
            variants = latents_cache[n]
            mean, std = variants[int(torch.randint(len(variants), (1,), generator=g))]
            eps = torch.randn(mean.shape, generator=g).to(mean.device)
            latents.append(mean + std * eps)
            caption = captions[n]
            if cfg.train_text_encoder:
                prompt, pool = self.encode_prompt(self.token_ids[caption])
            else:
                prompt, pool = self.embeddings[caption]
            prompts.append(prompt)
            pooled.append(pool)
            if self.arch == "sdxl":
                time_ids.append(self.time_ids[kind, n])
        latents = torch.stack(latents)
        shift = getattr(self.comps.vae.config, "shift_factor", None) or 0.0
        latents = (latents - shift) * self.comps.vae.config.scaling_factor
        pooled = torch.cat(pooled) if self.arch == "sdxl" else None
        time_ids = torch.tensor(time_ids, dtype=torch.float32, device=self.device) if self.arch == "sdxl" else None
        return latents, prompts, pooled, time_ids

    def micro_batch_loss(self, position: int, g):
        import torch
        import torch.nn.functional as F
        from diffusers.training_utils import compute_snr

        cfg = self.config
        parts = [self.batch("instance", position, g)]
        if self.class_latents:
            parts.append(self.batch("class", position, g))
        latents = torch.cat([p[0] for p in parts])
        prompts = [prompt for p in parts for prompt in p[1]]
        scheduler = self.comps.noise_scheduler
        b = latents.shape[0]
        noise = torch.randn(latents.shape, generator=g)
        if cfg.noise_offset:
            noise += cfg.noise_offset * torch.randn((b, latents.shape[1], 1, 1), generator=g)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (b,), generator=g).long()
        noise, timesteps = noise.to(self.device), timesteps.to(self.device)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        if scheduler.config.prediction_type == "v_prediction":
            target = scheduler.get_velocity(latents, noise, timesteps)
        else:
            target = noise
        added = None
        if self.arch == "sdxl":
            added = {"text_embeds": torch.cat([p[2] for p in parts]), "time_ids": torch.cat([p[3] for p in parts])}
        with self.accelerator.autocast():
            pred = self.predict(noisy, timesteps, prompts, added)
        per_sample = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        if cfg.snr_gamma:
            snr = compute_snr(scheduler, timesteps)
            weight = torch.clamp(snr, max=cfg.snr_gamma) / snr
            if scheduler.config.prediction_type == "v_prediction":
                weight = torch.clamp(snr, max=cfg.snr_gamma) / (snr + 1)
            per_sample = per_sample * weight
        n = cfg.batch_size
        loss = per_sample[:n].mean()
        if self.class_latents:
            loss = loss + cfg.prior_loss_weight * per_sample[n:].mean()
        return loss

    def predict(self, noisy, timesteps, prompts: list, added: dict | None):
        """The UNet's prediction for a batch whose captions may take different numbers of windows.

        One UNet call needs one sequence length, and padding a caption with empty windows would
        change what it conditions on (the renderer batches only equal counts for the same
        reason). So samples go through in groups of equal length; with the usual captions of
        one window that is a single call, as before.
        """
        import torch

        unet = self.models["unet"]
        lengths = [p.shape[1] for p in prompts]
        if len(set(lengths)) == 1:
            return unet(noisy, timesteps, torch.cat(prompts), added_cond_kwargs=added).sample
        out = [None] * len(prompts)
        for length in sorted(set(lengths)):
            rows = [i for i, n in enumerate(lengths) if n == length]
            pick = torch.tensor(rows, device=noisy.device)
            part = unet(noisy[pick], timesteps[pick], torch.cat([prompts[i] for i in rows]),
                        added_cond_kwargs={k: v[pick] for k, v in added.items()} if added else None).sample
            for j, i in enumerate(rows):
                out[i] = part[j]
        return torch.stack(out)

    def final_loss(self) -> float | None:
        tail = self.losses[-10:]
        return round(sum(tail) / len(tail), 6) if tail else None

    # -- images: validation and class images --------------------------------------------------------
    def pipeline(self):
        """A text-to-image pipeline around the models being trained (their LoRA active)."""
        from diffusers import DPMSolverMultistepScheduler

        c = self.comps
        trained = {name: self.accelerator.unwrap_model(m) for name, m in getattr(self, "models", {}).items()}
        unet = trained.get("unet", c.unet)
        te = [trained.get(name, m) for name, m in zip(("text_encoder", "text_encoder_2"), self.text_encoders)]
        scheduler = DPMSolverMultistepScheduler.from_config(c.noise_scheduler.config)
        if self.arch == "sdxl":
            pipe = c.pipeline_class(vae=c.vae, text_encoder=te[0], text_encoder_2=te[1], tokenizer=c.tokenizer,
                                    tokenizer_2=c.tokenizer_2, unet=unet, scheduler=scheduler)
        else:
            pipe = c.pipeline_class(vae=c.vae, text_encoder=te[0], tokenizer=c.tokenizer, unet=unet,
                                    scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                    requires_safety_checker=False)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def generate(self, pipe, prompt: str, seed: int):
        import torch

        with torch.no_grad(), self.accelerator.autocast():
            return pipe(prompt, num_inference_steps=self.config.validation_steps, height=self.resolution,
                        width=self.resolution, generator=torch.Generator().manual_seed(seed)).images[0]

    def validate(self, step: int) -> list[str]:
        """Images for the validation prompts with the LoRA so far: `validation/step-NNNNNN_KK.png`."""
        pipe = self.pipeline()
        paths = []
        for k, prompt in enumerate(self.config.validation_prompts):
            rel = f"{VALIDATION}/step-{step:06d}_{k:02d}.png"
            save_image(self.out / rel, self.generate(pipe, prompt, self.config.seed + k))
            paths.append(rel)
        write_json(self.out / VALIDATION / "prompts.json", dict(enumerate(self.config.validation_prompts)))
        for model in self.models.values():
            model.train()
        self.log(f"validation images for step {step}: {', '.join(paths)}")
        return paths

    def prepare_class_images(self) -> TrainingSet:
        """Class images for prior preservation; generated with the base model up to `num_class_images`."""
        from autokose.cast.dataset import list_candidates

        cfg = self.config
        folder = Path(cfg.class_images)
        prompt = cfg.class_prompt
        folder.mkdir(parents=True, exist_ok=True)
        have = len(list_candidates(folder))
        if have < cfg.num_class_images:
            self.log(f"generating {cfg.num_class_images - have} class images in {folder}")
            pipe = self.pipeline()
            for n in range(have, cfg.num_class_images):
                save_image(folder / f"class-{n:05d}.png", self.generate(pipe, prompt, cfg.seed + 100_000 + n))
        return prepare_images(folder, resolution=self.resolution, caption=prompt, trigger="", min_side=cfg.min_side,
                              min_images=1, find_faces=False, what="--class-images")

    # -- outputs --------------------------------------------------------------------------------
    def export(self, seconds: float) -> Path:
        cfg = self.config
        validation = self.validate(cfg.steps) if cfg.render_validation else []
        models = {name: self.accelerator.unwrap_model(m) for name, m in self.models.items()}
        save_diffusers(self.out, self.comps.pipeline_class, models)
        training = {**cfg.model_dump(mode="json"), "alpha": cfg.lora_alpha, "arch": self.arch,
                    "resolution": self.resolution, "mixed_precision": self.precision,
                    "num_images": len(self.dataset.images), "seconds": round(seconds, 2),
                    "final_loss": self.final_loss()}
        kohya = kohya_file_name(cfg.character)
        save_kohya(self.out / kohya, models, arch=self.arch, output_name=cfg.character, base_model=cfg.model,
                   training=training)
        references = save_references(self.out, self.dataset)
        card = build_card(character=Character(id=cfg.character, name=cfg.name or cfg.character), trigger=cfg.trigger,
                          caption=cfg.caption, dataset=self.dataset, references=references,
                          lora=DIFFUSERS_WEIGHT_NAME, lora_kohya=kohya,
                          base_model=base_model_fingerprint(cfg.model, cfg.base_config), training=training,
                          validation=validation)
        path = write_card(self.out, card)
        self.log(f"done: {path} (final loss {self.final_loss()})")
        return path

