"""`autokose character ...`: train a character's LoRA from reference images, inspect its card,
draw its sheet (turnaround and expressions: `autokose.render.sheet`).

A thin shell like cli.py: `cast.train.training_config` builds the run (bible entry, absolute
paths), `cast.train.train_character` trains; this file parses options and draws progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from autokose.app.flags import Compile, DeepCache, Fast
from autokose.app.terminal import console, literal, user_errors
from autokose.errors import InputError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Train and inspect character identity assets.")


@app.command()
def train(
    character: Annotated[str, typer.Argument(help="Character id from the bible (aldar, bai, ...) or a new id.")],
    images: Annotated[Path, typer.Option(help="Folder of 10–15 reference images (name.txt beside an image is its caption).")],
    model: Annotated[str, typer.Option(help="Base SD 1.5/SDXL model: HF repo id, diffusers folder or .safetensors file.")],
    out: Annotated[Optional[Path], typer.Option(help="Output folder (default: characters/<id>).")] = None,
    characters: Annotated[Optional[Path], typer.Option(help="Character bible YAML that overrides/extends the built-in cast.")] = None,
    trigger: Annotated[Optional[str], typer.Option(help="Rare token for the character (default: the bible's, e.g. aldarkose).")] = None,
    caption: Annotated[Optional[str], typer.Option(help="Caption template: {trigger}, {appearance}, {name}.")] = None,
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 500,
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    alpha: Annotated[Optional[float], typer.Option(help="LoRA alpha (default: the rank).")] = None,
    learning_rate: Annotated[float, typer.Option("--learning-rate", "--lr", help="Learning rate.")] = 1e-4,
    text_encoder_lr: Annotated[Optional[float], typer.Option(help="Text-encoder LoRA learning rate (default: --lr).")] = None,
    lr_scheduler: Annotated[str, typer.Option(help="constant, constant_with_warmup, linear, cosine, ...")] = "constant",
    lr_warmup_steps: Annotated[int, typer.Option(help="Warm-up steps.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 1,
    grad_accum: Annotated[int, typer.Option(help="Gradient accumulation steps.")] = 1,
    resolution: Annotated[Optional[int], typer.Option(help="Training resolution (default: 512 SD 1.5, 1024 SDXL).")] = None,
    train_text_encoder: Annotated[bool, typer.Option(help="Also train a LoRA on the text encoder(s).")] = False,
    mixed_precision: Annotated[str, typer.Option(help="auto, no, fp16 or bf16 (auto: bf16/fp16 on GPU, no on CPU).")] = "auto",
    gradient_checkpointing: Annotated[bool, typer.Option(help="Trade speed for memory (8–12 GB cards).")] = False,
    adam_8bit: Annotated[bool, typer.Option("--adam-8bit", help="8-bit AdamW (needs bitsandbytes).")] = False,
    snr_gamma: Annotated[Optional[float], typer.Option(help="Min-SNR loss weighting gamma (5.0 recommended).")] = None,
    noise_offset: Annotated[float, typer.Option(help="Noise offset (0.05–0.1 helps very dark/bright images).")] = 0.0,
    flip: Annotated[bool, typer.Option(help="Random horizontal flips (off: characters are asymmetric).")] = False,
    class_images: Annotated[Optional[Path], typer.Option(help="Class images folder: turns on prior preservation.")] = None,
    class_prompt: Annotated[Optional[str], typer.Option(help="Caption of the class images, e.g. 'a photo of a man'.")] = None,
    num_class_images: Annotated[int, typer.Option(help="Generate class images with the base model up to this many.")] = 0,
    prior_loss_weight: Annotated[float, typer.Option(help="Weight of the prior-preservation loss.")] = 1.0,
    checkpoint_every: Annotated[int, typer.Option(help="Save a resumable checkpoint every N steps (0: never).")] = 100,
    keep_checkpoints: Annotated[int, typer.Option(help="Checkpoints to keep.")] = 2,
    validation_every: Annotated[int, typer.Option(help="Validation images every N steps (0: only at the end).")] = 0,
    validation_prompt: Annotated[Optional[list[str]], typer.Option(help="Validation prompt (repeatable; default: from the bible).")] = None,
    validation_steps: Annotated[int, typer.Option(help="Denoising steps for validation images.")] = 25,
    validate: Annotated[bool, typer.Option(help="Render validation images.")] = True,
    seed: Annotated[int, typer.Option(help="Seed for everything random in training.")] = 0,
    device: Annotated[Optional[str], typer.Option(help="cuda, cpu or mps (default: best available).")] = None,
    vae: Annotated[Optional[str], typer.Option(help="Separate VAE (HF id, folder or file).")] = None,
    config: Annotated[Optional[str], typer.Option(help="Diffusers config folder for a single-file --model.")] = None,
    sdxl: Annotated[Optional[bool], typer.Option("--sdxl/--sd15", help="Architecture (default: detected).")] = None,
    min_side: Annotated[Optional[int], typer.Option(help="Skip images whose short side is smaller (default: resolution/2).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue an interrupted run in OUT from its last checkpoint.")] = False,
    force: Annotated[bool, typer.Option(help="Start over in a non-empty OUT (removes only training outputs).")] = False,
) -> None:
    """Train CHARACTER's identity LoRA (DreamBooth) from reference images; writes LoRA files and card.json."""
    from rich.text import Text

    from autokose.bible import load_bible

    with user_errors():
        bible = load_bible(characters)
        from autokose.cast.train import train_character, training_config

        cfg = training_config(
            bible, character, trigger=trigger, caption=caption, images=images, model=model, out=out, vae=vae,
            base_config=config, sdxl=sdxl, resolution=resolution, steps=steps, batch_size=batch_size, grad_accum=grad_accum,
            learning_rate=learning_rate, text_encoder_lr=text_encoder_lr, lr_scheduler=lr_scheduler,
            lr_warmup_steps=lr_warmup_steps, rank=rank, alpha=alpha, train_text_encoder=train_text_encoder,
            mixed_precision=mixed_precision, gradient_checkpointing=gradient_checkpointing, adam_8bit=adam_8bit,
            snr_gamma=snr_gamma, noise_offset=noise_offset, flip=flip,
            class_images=class_images, class_prompt=class_prompt,
            num_class_images=num_class_images, prior_loss_weight=prior_loss_weight,
            checkpoint_every=checkpoint_every, checkpoints_total_limit=keep_checkpoints, render_validation=validate,
            validation_every=validation_every, validation_prompts=validation_prompt or [],
            validation_steps=validation_steps, seed=seed, device=device, min_side=min_side,
        )
        with _training_progress(console, steps) as (on_step, log):
            result = train_character(cfg, resume=resume, force=force, on_step=on_step, log=log)
    console.print(Text("character trained:", style="green"),
                  literal(f"{result.card}  ({result.steps} steps, final loss {result.final_loss}, {result.seconds:.0f} s)"),
                  highlight=False, soft_wrap=True)
    console.print(literal(f"use it: add `card: {result.card}` to {character}'s entry in your --characters YAML"),
                  highlight=False, soft_wrap=True)


@app.command()
def show(
    card: Annotated[Path, typer.Argument(help="card.json, or the character folder that holds it.")],
    json_: Annotated[bool, typer.Option("--json", help="Print the whole card as JSON.")] = False,
) -> None:
    """Summarise a trained character's card."""
    from rich.console import Console
    from rich.table import Table

    from autokose.cast import card_file, load_card
    from autokose.cast.card import card_summary, dump

    with user_errors():
        data = load_card(card_file(card))
    if json_:
        typer.echo(dump(data))
        return
    table = Table(show_header=False)
    for label, value in card_summary(data):
        table.add_row(literal(label), literal(value))
    Console(highlight=False).print(table)


@app.command()
def sheet(
    character: Annotated[str, typer.Argument(help="Character id from the bible (aldar, bai, ...).")],
    out: Annotated[Path, typer.Option(help="Sheet folder to write (views/, sheet.png, sheet.json).", rich_help_panel="Output")],
    model: Annotated[Optional[str], typer.Option(help="SD 1.5/SDXL: HF repo id, diffusers folder or .safetensors file. Omit for previz.", rich_help_panel="Diffusion")] = None,
    characters: Annotated[Optional[Path], typer.Option(help="Character bible YAML that overrides/extends the built-in cast.", rich_help_panel="Identity")] = None,
    views: Annotated[Optional[str], typer.Option(help="Comma-separated views to draw (default: all): front, three_quarter_left, "
                                                      "three_quarter_right, profile, back, neutral, smiling, surprised, angry.", rich_help_panel="Output")] = None,
    seed: Annotated[int, typer.Option(help="Seed of every view (one seed: the same noise under each pose).", rich_help_panel="Diffusion")] = 0,
    width: Annotated[Optional[int], typer.Option(help="View width in pixels (default: 384 previz, 512 SD 1.5, 832 SDXL).", rich_help_panel="Output")] = None,
    height: Annotated[Optional[int], typer.Option(help="View height in pixels (default: 576 previz, 768 SD 1.5, 1216 SDXL).", rich_help_panel="Output")] = None,
    lora: Annotated[Optional[list[str]], typer.Option(help="LoRA file[:weight]; repeatable (the character's own LoRA is added unless given here).", rich_help_panel="Identity")] = None,
    ip_adapter: Annotated[Optional[str], typer.Option(help="IP-Adapter (h94 name or file): the character's references condition the figure.", rich_help_panel="Identity")] = None,
    ip_adapter_scale: Annotated[Optional[float], typer.Option(help="IP-Adapter scale.", rich_help_panel="Identity")] = None,
    controlnet: Annotated[Optional[str], typer.Option(help="OpenPose ControlNet that turns the figure (HF id, folder or file).", rich_help_panel="Identity")] = None,
    controlnet_scale: Annotated[Optional[float], typer.Option(help="ControlNet conditioning scale.", rich_help_panel="Identity")] = None,
    vae: Annotated[Optional[str], typer.Option(help="Separate VAE (HF id, folder or file).", rich_help_panel="Diffusion")] = None,
    scheduler: Annotated[Optional[str], typer.Option(help="dpmpp_2m_karras, euler_a, ddim, lcm or tcd (lcm/tcd: with an LCM or TCD LoRA, 4-8 steps, cfg 1-2).", rich_help_panel="Diffusion")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Denoising steps.", rich_help_panel="Diffusion")] = None,
    cfg: Annotated[Optional[float], typer.Option("--cfg", help="Classifier-free guidance scale.", rich_help_panel="Diffusion")] = None,
    device: Annotated[Optional[str], typer.Option(help="cuda, cpu or mps (default: best available).", rich_help_panel="Diffusion")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="float16, bfloat16 or float32 (default: fp16 on CUDA, fp32 on CPU).", rich_help_panel="Diffusion")] = None,
    low_vram: Annotated[Optional[bool], typer.Option("--low-vram", help="8–12 GB cards: model CPU offload, VAE slicing and tiling.", rich_help_panel="Diffusion")] = None,
    model_config: Annotated[Optional[str], typer.Option(help="Diffusers config folder for a single-file --model.", rich_help_panel="Diffusion")] = None,
    fast: Fast = None, deep_cache: DeepCache = None, compile: Compile = None,
    force: Annotated[bool, typer.Option(help="Write into a non-empty OUT that holds no sheet (only the sheet's files are replaced).", rich_help_panel="Output")] = False,
) -> None:
    """Draw CHARACTER's sheet: a turnaround and expressions, each view alone, sheet.png and sheet.json."""
    from rich.text import Text

    from autokose.bible import load_bible
    from autokose.config import DIFFUSION_KEYS
    from autokose.render.diffusion.settings import DiffusionSettings
    from autokose.render.sheet import character_assets, plan_sheet, references_yaml, write_sheet

    given = dict(model=model, lora=lora, ip_adapter=ip_adapter, ip_adapter_scale=ip_adapter_scale,
                 controlnet=controlnet, controlnet_scale=controlnet_scale, vae=vae, scheduler=scheduler, steps=steps,
                 cfg=cfg, device=device, dtype=dtype, low_vram=low_vram, model_config=model_config, fast=fast,
                 deep_cache=deep_cache, compile=compile)
    diffusion = {DIFFUSION_KEYS.get(k, k): v for k, v in given.items() if v is not None and v != []}
    with user_errors():
        if diffusion and not model:
            raise InputError("diffusion options need --model (a HF repo id, a diffusers folder or a .safetensors file)")
        settings = DiffusionSettings.from_render(diffusion) if model else None
        char, assets = character_assets(load_bible(characters), character)
        plan = plan_sheet(char, assets, diffusion=settings, seed=seed, width=width, height=height,
                          views=[v.strip() for v in views.split(",") if v.strip()] if views else None)
        with _view_progress(console, len(plan.views)) as progress:
            data = write_sheet(plan, out, force=force, progress=progress)
    console.print(Text("sheet written:", style="green"),
                  literal(f"{out}  ({len(data['views'])} views, {data['renderer']}; open {out / 'sheet.png'})"),
                  highlight=False, soft_wrap=True)
    if data["references"]:
        console.print(literal(f"use the views as {character}'s references: put these lines in your --characters YAML"),
                      highlight=False, soft_wrap=True)
        typer.echo(references_yaml(out, data))


class _view_progress:
    """A rich bar over the views on a terminal; nothing otherwise."""

    def __init__(self, console, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("views"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, disable=not console.is_terminal)
        self.total = total

    def __enter__(self):
        self.bar.__enter__()
        task = self.bar.add_task("views", total=self.total)
        return lambda done, total: self.bar.update(task, completed=done, total=total)

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)


class _training_progress:
    """A rich bar with loss and ETA on a terminal; plain log lines (every ~5%) otherwise."""

    def __init__(self, console, steps: int):
        self.console = console
        self.steps = steps

    def __enter__(self):
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=self.console, disable=not self.console.is_terminal)
        self.bar.__enter__()
        self.task = None
        every = max(1, self.steps // 20)

        def on_step(step: int, total: int, loss: float) -> None:
            if self.task is None:
                self.task = self.bar.add_task("training", total=total, completed=step - 1, loss=loss)
            self.bar.update(self.task, completed=step, total=total, loss=loss)

        def log(message: str) -> None:
            if message.startswith("step "):
                step = int(message.split()[1].split("/")[0])
                if self.console.is_terminal or (step % every and step != self.steps):
                    return
            self.bar.console.print(message, highlight=False, markup=False)

        return on_step, log

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)
