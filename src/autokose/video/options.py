"""What a user asks of a footage stylisation, as one dict of options → what `stylize` takes.

Why one place: the command line (`autokose video stylize`), a web form and a ComfyUI node all
give the same options and must draw the same video, so each is a thin shell over
`resolve_video(options) -> VideoJob`. Option names are the command's flags with underscores
(`character`, `style_lora`, `size`, `steps`, `ip_adapter`, ...); None (or an empty list) means
"not given", so the defaults live in `StylizeSettings` and `DiffusionSettings` alone.

The character comes from the bible exactly as a storyboard finds it (`render.sheet.character_assets`
→ `cast.identity_assets`: the bible entry, then its trained card for what the entry leaves out):
its trigger and appearance become the `character` words, its reference images the IP-Adapter's
references (and the face-identity metric's), and its own LoRA is loaded with the character's id as
owner, so with regional LoRA (the default) it acts inside the person, not on the background. A
`style_lora` is un-owned: the look of the whole frame. A LoRA given in `lora` that is the
character's own file replaces it (with the weight given there), as for character sheets.

`part_frames` / `part_overlap` cut the clip into parts a batch spreads over workers
(`stylize.prepare` → `draw_part` per part, anywhere, in any order → `finish`; `VideoJob.prepare`,
`.draw_part` and `.finish` call them with the job's settings); `VideoJob.run` draws the parts one
after another in this process, into the same files.

Everything that can be checked before a frame is drawn is checked by `VideoJob.check` (through
`stylize.check`: footage, span, size, model, LoRAs, ControlNets, IP-Adapter, extras; plus the CLIP
model and the references) and `check_output` (no earlier output overwritten unasked), so a bad
option never leaves a half-written output.

Public API
    OPTIONS                                  every option name resolve_video knows
    resolve_video(options, bible=None) -> VideoJob     InputError (one line) for a bad option
    VideoJob: settings, diffusion, loras, compare_baseline, clip_model, warnings;
        .engine(progress=None, cancel=None) -> DiffusionEngine
        .check(input, out) -> io.VideoInfo   refuse now what stylize would refuse midway
        .run(input, out, *, progress=None, resume=False) -> dict   stylize(...): the metrics
        .prepare(input, out, *, resume=False) -> (VideoInfo, parts); .draw_part(input, out, part);
        .finish(input, out, parts) -> dict     the same in parts, for a batch runner's workers
    check_output(out, *, resume=False, force=False)      OUT.mp4 may be written (or resumed)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ValidationError

from autokose.errors import InputError
from autokose.models import LoraRef
from autokose.render.diffusion.settings import DiffusionSettings
from autokose.video import io
from autokose.video.parts import Part
from autokose.video.stylize import (
    StylizeSettings, check, draw_part, finish, frames_dir, metrics_path, prepare, stylize)

if TYPE_CHECKING:
    from autokose.bible import Bible
    from autokose.render.diffusion.engine import DiffusionEngine

# Diffusion options, by the command's names (DiffusionSettings takes `model_config` as an alias;
# `lora` is its `loras`).
DIFFUSION_OPTIONS = ("model", "vae", "lora", "ip_adapter", "ip_adapter_scale", "controlnet", "controlnet_scale",
                     "lineart", "lineart_scale", "scheduler", "steps", "cfg", "device", "dtype", "low_vram",
                     "model_config", "fast", "deep_cache", "compile")
# StylizeSettings fields the bible fills in, never given as options.
FROM_BIBLE = ("character", "character_id", "references")
# StylizeSettings fields whose option has another name.
OPTION_NAMES = {"short_side": "size"}
STYLE_OPTIONS = tuple(OPTION_NAMES.get(f, f) for f in StylizeSettings.model_fields if f not in FROM_BIBLE)
# The character (an id of the bible; `bible`: a YAML file over the built-in cast), the style LoRA,
# and what the run measures besides the warp error.
OTHER_OPTIONS = ("character", "bible", "style_lora", "compare_baseline", "clip_model")
OPTIONS = (*OTHER_OPTIONS, *STYLE_OPTIONS, *DIFFUSION_OPTIONS)
NEEDS_MODEL = "stylising footage needs --model (a HF repo id, a diffusers folder or a .safetensors file)"


@dataclass
class VideoJob:
    """A stylisation, resolved: what to draw (`settings`), with which model and controls (`diffusion`),
    and the LoRAs owned by the character (on top of `diffusion.loras`, which act on the whole frame)."""

    settings: StylizeSettings
    diffusion: DiffusionSettings
    loras: list[tuple[LoraRef, str | None]] = field(default_factory=list)
    compare_baseline: bool = False
    clip_model: str | None = None
    warnings: list[str] = field(default_factory=list)  # options that will change nothing

    def engine(self, progress: Callable[[str, int, int], None] | None = None,
               cancel: Callable[[], bool] | None = None) -> DiffusionEngine:
        """A new engine for this job (weights load on its first use)."""
        from autokose.render.diffusion.engine import DiffusionEngine

        return DiffusionEngine(self.diffusion, loras=self.loras, progress=progress, cancel=cancel)

    def check(self, input: Path | str, out: Path | str) -> io.VideoInfo:
        """Refuse now (InputError) what would fail after the first file is written; the probed input.

        `stylize.check` (the output path, the settings against each other, the extras they need,
        the footage, its span and size, everything the engine would load: no weights are loaded),
        plus what only a caller knows of: the CLIP model, and with an IP-Adapter the character's
        reference images decoded to the end.
        """
        if self.clip_model:
            from autokose.score.clip import check_clip_model

            check_clip_model(self.clip_model)
        if self.diffusion.ip_adapter:
            from autokose.render.diffusion.controls import check_references

            check_references(self.settings.character_id or "character", [Path(r) for r in self.settings.references])
        return check(input, out, self.settings, self.engine())

    def run(self, input: Path | str, out: Path | str, *, progress: Callable[[str, int, int], None] | None = None,
            resume: bool = False, engine: DiffusionEngine | None = None) -> dict:
        """`stylize` this job from `input` into `out`; the metrics (also in OUT.metrics.json)."""
        return stylize(input, out, self.settings, engine or self.engine(), progress=progress, resume=resume,
                       compare_baseline=self.compare_baseline, clip_model=self.clip_model)

    def prepare(self, input: Path | str, out: Path | str, *, resume: bool = False,
                progress: Callable[[str, int, int], None] | None = None,
                engine: DiffusionEngine | None = None) -> tuple[io.VideoInfo, list[Part]]:
        """`stylize.prepare`: check, claim the frames folder, draw the shared keyframe; the parts."""
        return prepare(input, out, self.settings, engine or self.engine(), resume=resume, progress=progress)

    def draw_part(self, input: Path | str, out: Path | str, part: Part, *,
                  progress: Callable[[str, int, int], None] | None = None,
                  engine: DiffusionEngine | None = None) -> None:
        """`stylize.draw_part`: one part's frames (and baseline, with compare_baseline), resumed."""
        draw_part(input, out, self.settings, engine or self.engine(), part, progress=progress,
                  compare_baseline=self.compare_baseline)

    def finish(self, input: Path | str, out: Path | str, parts: list[Part], *,
               progress: Callable[[str, int, int], None] | None = None) -> dict:
        """`stylize.finish`: join the parts, write the video, measure it; the metrics."""
        return finish(input, out, self.settings, parts, progress=progress, compare_baseline=self.compare_baseline,
                      clip_model=self.clip_model)


def resolve_video(options: dict, bible: Bible | None = None) -> VideoJob:
    """The job `options` ask for (see the module docstring for the names).

    `bible`: a loaded bible (a server keeps one); else `options["bible"]` (a YAML file over the
    built-in cast), else the built-in cast. Raises InputError with one line naming the option for
    an unknown option, a missing `model` or `character`, an unknown character (listing the known
    ones), or a value out of range.
    """
    given = {k: v for k, v in options.items() if v is not None and not (isinstance(v, list | tuple) and not v)}
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise InputError(f"unknown video option(s): {', '.join(unknown)} (options: {', '.join(OPTIONS)})")
    if not given.get("model"):
        raise InputError(NEEDS_MODEL)
    if bible is None:
        from autokose.bible import load_bible

        bible = load_bible(given.get("bible"))
    if not given.get("character"):
        raise InputError("give --character: the id of the character the actor becomes "
                         f"(known: {', '.join(bible.characters)})")
    from autokose.render.sheet import character_assets

    character, assets = character_assets(bible, given["character"])

    diffusion = {k: given[k] for k in DIFFUSION_OPTIONS if k in given}
    loras = _specs(diffusion.pop("lora", []), "lora") + _specs(given.get("style_lora", []), "style_lora")
    diffusion = _validated(DiffusionSettings, {**diffusion, "loras": loras} if loras else diffusion,
                           {"loras": "lora", "model_config_dir": "model_config"})
    words = ", ".join(w.strip() for w in (assets.trigger, character.appearance or character.name) if w and w.strip())
    fields = {option: name for name, option in OPTION_NAMES.items()}
    style = {fields.get(k, k): given[k] for k in STYLE_OPTIONS if k in given}
    settings = _validated(StylizeSettings, {**style, "character": words, "character_id": character.id,
                                            "references": [str(r) for r in assets.references]},
                          OPTION_NAMES)

    named = {LoraRef.parse(spec).path for spec in diffusion.loras}
    own = [(assets.lora, character.id)] if assets.lora and assets.lora.path not in named else []
    job = VideoJob(settings, diffusion, own, compare_baseline=bool(given.get("compare_baseline")),
                   clip_model=given.get("clip_model"))
    if settings.background and not settings.separate:
        job.warnings.append("--background: the background is stylised apart only with --separate, "
                            "so it will change nothing")
    if diffusion.ip_adapter and not settings.references:
        job.warnings.append(f"--ip-adapter {diffusion.ip_adapter}: {character.id} has no reference images, "
                            "so it will change nothing")
    return job


def check_output(out: Path | str, *, resume: bool = False, force: bool = False) -> Path:
    """`out`, unless it would overwrite an earlier output (the video, its frames folder or its
    metrics) without `resume` or `force`. Cheap, so an entry point asks first; the path itself
    (an .mp4, not a folder) is `stylize.check`'s."""
    out = Path(out)
    if resume and force:
        raise InputError("give --resume (keep the frames drawn) or --force (draw them again), not both")
    if resume or force:
        return out
    earlier = [p for p in (out, frames_dir(out), metrics_path(out)) if p.is_file() or (p != out and p.exists())]
    if earlier:
        raise InputError(f"{earlier[0]} exists: give --resume to finish that video, or --force to draw it again")
    return out


def _specs(value, option: str) -> list[str]:
    """A LoRA option (one `file[:weight]` or a list of them) as a list, each a non-empty string."""
    specs = [value] if isinstance(value, str) else list(value)
    for spec in specs:
        if not isinstance(spec, str) or not LoraRef.parse(spec).path.strip():
            raise InputError(f"--{option.replace('_', '-')} {spec!r}: expected a LoRA file[:weight]")
    return specs


def _validated(model: type[BaseModel], data: dict, names: dict[str, str]):
    """`model(**data)`, or one line naming the option (`--size 10: ...`) that is wrong."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field_ = str(err["loc"][0]) if err["loc"] else ""
        option = "--" + names.get(field_, field_).replace("_", "-")
        shown = f" {err['input']}" if not isinstance(err.get("input"), dict | list) else ""
        raise InputError(f"{option}{shown}: {err['msg'].removeprefix('Value error, ')}") from None

