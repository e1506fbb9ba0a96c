"""A run's settings (`RunConfig`) and how a board's saved settings meet the command line.

Every run writes its RunConfig into manifest.json. A later run on the same board (`--resume`,
`autokose render`) starts from those saved settings and changes only what the user gives
again, so leaving out `--model` on a resume cannot mix previz and diffusion frames in one
board. `resolve` says which saved settings it kept, so nothing changes silently.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from autokose.board import EXPORT_FILES
from autokose.errors import InputError, format_validation_error
from autokose.export.settings import ExportSettings
from autokose.render import MAX_SIDE, MIN_SIDE, RenderSettings
from autokose.render.quality import QualitySettings
from autokose.story import MAX_SCENES, check_logline

STAGES = ("write", "cast", "stage", "render", "score", "export")
RENDER_STAGES = list(STAGES[1:])  # drawing a story that exists: every stage but the writer
log = logging.getLogger("autokose")


class RunConfig(BaseModel):
    """Every parameter of a run; written to manifest.json so the board can be rebuilt."""

    model_config = ConfigDict(extra="forbid")

    logline: str | None = None
    scenes: int = Field(8, ge=1, le=MAX_SCENES)
    seed: int = Field(0, ge=0, lt=2**32)
    writer: str = "offline"
    writer_options: dict = Field(default_factory=dict)
    characters_file: str | None = None
    render: RenderSettings = Field(default_factory=RenderSettings)
    quality: QualitySettings = Field(default_factory=QualitySettings)
    stages: list[str] = Field(default_factory=lambda: list(STAGES))
    only: list[int] | None = None
    exports: list[str] = Field(default_factory=lambda: ["html", "pdf", "sheet"])
    export: ExportSettings = Field(default_factory=ExportSettings)

    @field_validator("stages")
    @classmethod
    def _known_stages(cls, stages: list[str]) -> list[str]:
        stages = [s.strip() for s in stages]
        if not any(stages):
            raise ValueError(f"no stage given (stages: {', '.join(STAGES)})")
        unknown = sorted(set(stages) - set(STAGES))
        if unknown:
            raise ValueError(f"unknown stage(s): {', '.join(map(repr, unknown))} (stages: {', '.join(STAGES)})")
        return stages

    @field_validator("exports")
    @classmethod
    def _known_exports(cls, exports: list[str]) -> list[str]:
        exports = [f.strip().lower() for f in exports if f.strip()]
        unknown = [f for f in exports if f not in EXPORT_FILES]
        if unknown:
            raise ValueError(f"unknown export format '{unknown[0]}' (formats: {', '.join(EXPORT_FILES)})")
        return list(dict.fromkeys(exports))


# Options of a run that belong to that run alone: never taken over from the saved settings.
PER_RUN = ("stages", "only", "exports")
QUALITY = ("best_of", "min_identity", "reroll_budget", "reroll_on_swap", "clip_model")
SIZE = ("width", "height")
# Command-line names of diffusion options whose RenderSettings.diffusion key differs.
DIFFUSION_KEYS = {"lora": "loras", "model_config": "model_config_dir"}
# Settings the command line gives as one comma-separated value ("0,0.6", "down,up").
COMMA_SEPARATED = ("consistency_steps", "consistency_blocks")
# Switches whose off form is not --no-NAME.
OFF_SWITCHES = {"consistency_masked": "--consistency-all"}


def option_names() -> set[str]:
    """Every name `resolve` takes: RunConfig's fields, quality, size, export and diffusion options."""
    from autokose.render.diffusion.settings import DiffusionSettings

    return ({k for k in RunConfig.model_fields if k not in ("render", "quality", "export")} | set(QUALITY) | {"picks"}
            | set(SIZE) | set(ExportSettings.model_fields) | set(DiffusionSettings.model_fields) | set(DIFFUSION_KEYS))


def saved(board) -> RunConfig | None:
    """The RunConfig a board's manifest records, or None for a board without one (hand-made)."""
    command = board.load_manifest().get("command")
    if not command:
        return None
    try:
        return RunConfig.model_validate(command)
    except ValidationError as e:
        raise InputError(f"{board.manifest_path}: unreadable saved settings ({format_validation_error(e)}); "
                         "fix or delete manifest.json") from None


def resolve(saved: RunConfig | None, overrides: dict, *, announce: bool = True) -> RunConfig:
    """The settings of this run: `saved` (a board's manifest) with `overrides` given on top.

    `overrides` maps option names (RunConfig fields, quality and size options, and the
    diffusion options under their command-line names: model, lora, steps, ...) to values;
    None means "not given". Saved settings the user did not give again are kept and logged
    (`announce=False`: kept silently, for a command such as `export` that draws nothing).
    `picks` add to the saved picks. Export options (ExportSettings' fields: fps, still, ...) are
    saved with the board like the render settings. Raises InputError for settings that do not fit together.
    """
    unknown = sorted(k for k, v in overrides.items() if v is not None and k not in option_names())
    if unknown:  # a typo ("sceens") would otherwise read as a diffusion option and ask for --model
        raise InputError(f"unknown option(s): {', '.join(unknown)}")
    if overrides.get("logline") is not None:
        check_logline(overrides["logline"])  # every entry point refuses the same loglines
    base = saved or RunConfig()
    given = {k: v for k, v in overrides.items() if v is not None}
    top = {k: given.pop(k) for k in list(given) if k in RunConfig.model_fields and k not in ("render", "quality")}
    data = base.model_dump()
    for field in PER_RUN:
        data[field] = top.pop(field, RunConfig.model_fields[field].get_default(call_default_factory=True))
    data.update(top)

    quality = data["quality"]
    quality.update({k: given.pop(k) for k in QUALITY if k in given})
    quality["picks"] = {**quality["picks"], **given.pop("picks", {})}

    data["export"].update({k: given.pop(k) for k in list(given) if k in ExportSettings.model_fields})

    render = data["render"]
    render.update(_frame_size(render, {k: given.pop(k) for k in SIZE if k in given}))
    diffusion = render["diffusion"]
    diffusion.update({DIFFUSION_KEYS.get(k, k): v for k, v in given.items() if v != []})
    if diffusion.get("model"):
        render["renderer"] = "diffusion"
    elif diffusion:
        raise InputError("diffusion options need --model (a HF repo id, a diffusers folder or a .safetensors file)")
    try:
        cfg = RunConfig.model_validate(data)
    except ValidationError as e:
        raise InputError(format_validation_error(e)) from None
    if saved is not None and announce:
        _log_kept(saved, overrides)
    return cfg


def _frame_size(render: dict, given: dict) -> dict:
    """The size options given, plus the other side when only one is given and the other is the
    default: `--width 768` means 768×432 (the default 16:9, in multiples of 8 as diffusion
    needs), not 768×540."""
    if len(given) != 1:
        return given
    (side, value), = given.items()
    other = "height" if side == "width" else "width"
    default = {k: RenderSettings.model_fields[k].default for k in SIZE}
    if render[other] != default[other] or not isinstance(value, int):
        return given
    derived = round(value * default[other] / default[side] / 8) * 8
    return {side: value, other: min(MAX_SIDE, max(MIN_SIDE, derived))}


def _log_kept(saved: RunConfig, overrides: dict) -> None:
    """Name the saved settings this run keeps because the user did not give them again."""
    given = {DIFFUSION_KEYS.get(k, k) for k, v in overrides.items() if v is not None and v != []}
    diffusion = saved.render.diffusion.given() if saved.render.diffusion is not None else {}
    kept = [(k, v) for k, v in diffusion.items() if k not in given]
    kept += [(k, getattr(saved.render, k)) for k in SIZE
             if k not in given and getattr(saved.render, k) != RenderSettings.model_fields[k].default]
    kept += [(k, getattr(saved.quality, k)) for k in QUALITY
             if k not in given and getattr(saved.quality, k) != QualitySettings.model_fields[k].default]
    kept += [(k, v) for k, v in saved.export.model_dump().items()
             if k not in given and v != ExportSettings.model_fields[k].default]
    if saved.characters_file and "characters_file" not in given:
        kept.append(("characters", saved.characters_file))
    if kept:
        log.warning("using the board's saved settings: %s (give an option again to change it)",
                    " ".join(_flag(k, v) for k, v in kept))


def _flag(key: str, value) -> str:
    """A saved setting as the command-line option that gives it, e.g. `--lora a.safetensors:0.8 --lora b`."""
    name = "--" + {v: k for k, v in DIFFUSION_KEYS.items()}.get(key, key).replace("_", "-")
    if value is True:
        return name
    if value is False:  # a switch that defaults on: --regional/--no-regional
        return OFF_SWITCHES.get(key, "--no-" + name.removeprefix("--"))
    if key in COMMA_SEPARATED:
        return f"{name} {','.join(str(v) for v in value)}"
    values = value if isinstance(value, list) else [value]
    return " ".join(f"{name} {v}" for v in values)
