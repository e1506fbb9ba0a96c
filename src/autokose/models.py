"""Load Stable Diffusion checkpoints from wherever users keep them (shared by render and training).

A `model` is one of:

- a Hugging Face repo id (`stable-diffusion-v1-5/stable-diffusion-v1-5`): read from the local
  HF cache when `HF_HUB_OFFLINE=1`, downloaded otherwise;
- a local diffusers folder (with `model_index.json`);
- a single `.safetensors` file in the original LDM layout (Civitai style). Its pipeline layout
  comes from a diffusers *config folder* (configs and tokenizers, no weights): by default the
  one shipped for the detected architecture, `config_dir("sd15" | "sdxl")`, or `config=`.

The architecture (SD 1.5 family or SDXL) is read from `model_index.json` or, for single files,
from the state-dict keys, so one code path serves both. Weights are read from safetensors
only; pickled `.ckpt`/`.bin`/`.pt` files are refused, never unpickled.

Public API
    config_dir(arch) -> Path
    detect_arch(model, config=None) -> "sd15" | "sdxl"
    resolve_device(device) -> str;  resolve_dtype(dtype, device) -> torch.dtype
    load_pipeline(model, *, sdxl, vae, config, controlnet, dtype, device) -> diffusers pipeline
        (controlnet: one spec, or a list of specs for a multi-ControlNet pipeline)
    load_vae(spec, *, arch, dtype) -> AutoencoderKL
    load_controlnet(spec, *, dtype) -> ControlNetModel
    load_components(model, *, sdxl, vae, config, dtype) -> Components  (for LoRA training:
        unet, vae, text encoders, tokenizers and a DDPM noise scheduler with the model's config)
    require_diffusion(); check_model(model, config=None) -> arch; check_weights(path, what) -> keys
    check_text_encoder_lora_support(what)  (transformers/peft combinations that cannot work)
"""

from __future__ import annotations

import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from autokose.errors import InputError, first_line

ARCHS = ("sd15", "sdxl")
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
# Keys only an SDXL checkpoint has: the second (OpenCLIP bigG) text encoder, in LDM or diffusers naming.
_SDXL_KEY_PREFIXES = ("conditioner.embedders.1.", "text_encoder_2.", "te2_text_model.")
# Every original-layout (LDM) Stable Diffusion checkpoint keeps its UNet under this prefix.
_LDM_UNET_PREFIX = "model.diffusion_model."
# The parts of a diffusers pipeline folder a text-to-image pipeline cannot do without.
_PIPELINE_PARTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
_WEIGHTED_PARTS = ("unet", "vae", "text_encoder", "text_encoder_2")
CORE_INSTALL = "--model needs the diffusion extra: pip install 'autokose[diffusion]' (install a torch build first)"
# transformers 5.24 wants peft >= 0.22 for text-encoder LoRAs (the newest peft was 0.21 when it came out).
TEXT_ENCODER_LORA = {"transformers": "5.24", "peft": "0.22"}


@dataclass
class LoraRef:
    """A LoRA file with its weight, as users give it: `file.safetensors[:weight]`."""

    path: str
    weight: float = 1.0

    @classmethod
    def parse(cls, spec: str) -> LoraRef:
        """`file.safetensors[:weight]`, the weight 1.0 when not given."""
        head, sep, tail = spec.rpartition(":")
        if sep:
            try:
                return cls(head, float(tail))
            except ValueError:
                pass
        return cls(spec, 1.0)


def config_dir(arch: str) -> Path:
    """The shipped diffusers config folder (configs + tokenizers, no weights) for `arch`."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r} (expected one of {ARCHS})")
    return Path(str(resources.files("autokose").joinpath("data", "models", arch)))


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def looks_like_repo_id(spec: str) -> bool:
    return bool(_REPO_ID.match(spec)) and not Path(spec).exists()


def how_to_get(repo_id: str) -> str:
    return (f"run `huggingface-cli download {repo_id}` on a connected machine (then copy ~/.cache/huggingface), "
            "or point the option at a local diffusers folder or .safetensors file")


def check_weights_file(path: Path) -> Path:
    """Refuse pickled weight files: loading them would run arbitrary code."""
    path = Path(path)
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise InputError(f"{path}: pickled weights ({path.suffix}) are refused because loading them can run code; "
                         "convert the file to .safetensors")
    if path.suffix.lower() != ".safetensors":
        raise InputError(f"{path}: expected a .safetensors file")
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    return path


def safetensors_keys(path: Path) -> list[str]:
    """The tensor names in a safetensors file, from its header alone.

    safetensors checks that the header's offsets cover the file exactly, so a truncated or
    garbage file fails here without reading gigabytes of weights.
    """
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            return list(f.keys())
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise InputError(f"{path}: not a readable safetensors file ({first_line(e)})") from None


def check_weights(path: Path | str, what: str) -> list[str]:
    """A weights file the `--what` option names: safetensors, present, readable; its tensor names."""
    keys = safetensors_keys(check_weights_file(Path(path)))
    if not keys:
        raise InputError(f"--{what} {path}: the safetensors file holds no tensors")
    return keys


# --------------------------------------------------------------------------- installed libraries
def require_diffusion() -> None:
    """One line instead of an import traceback when torch/diffusers are not installed (the core install)."""
    try:
        import diffusers  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        raise InputError(CORE_INSTALL) from None


def installed_version(package: str):
    """The installed version of `package` (a packaging Version), None when it is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    try:
        return Version(version(package))
    except PackageNotFoundError:
        return None


def check_text_encoder_lora_support(what: str) -> None:
    """Refuse, before any work, the transformers/peft pairs that cannot load a text-encoder LoRA."""
    from packaging.version import Version

    tf, peft = installed_version("transformers"), installed_version("peft")
    if tf is not None and peft is not None and tf >= Version(TEXT_ENCODER_LORA["transformers"]) \
            and peft < Version(TEXT_ENCODER_LORA["peft"]):
        raise InputError(peft_mismatch(what, tf, peft))


def peft_mismatch(what: str, tf=None, peft=None) -> str:
    tf = tf or installed_version("transformers")
    peft = peft or installed_version("peft")
    return (f"{what}: a text-encoder LoRA needs peft >= {TEXT_ENCODER_LORA['peft']} with transformers {tf}, "
            f"but peft {peft} is installed; fix: pip install -c requirements/lock.txt "
            f"'transformers<{TEXT_ENCODER_LORA['transformers']}' (or 'peft>={TEXT_ENCODER_LORA['peft']}')")


def is_peft_version_error(e: BaseException) -> bool:
    """transformers' own refusal of the installed peft, raised deep inside adapter loading."""
    return "peft version" in str(e).lower() or "version of peft" in str(e).lower()


# --------------------------------------------------------------------------- devices and dtypes
def resolve_device(device: str | None = None) -> str:
    import torch

    if device:
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"--device {device}: CUDA is not available on this machine")
        if device == "mps" and not torch.backends.mps.is_available():
            raise InputError("--device mps: MPS is not available on this machine")
        return device
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_dtype(dtype: Any = None, device: str = "cpu"):
    """fp16 on accelerators and fp32 on CPU unless asked otherwise."""
    import torch

    if dtype is None or dtype == "auto":
        return torch.float32 if device == "cpu" else torch.float16
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {"float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
             "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float32": torch.float32, "fp32": torch.float32, "float": torch.float32}
    try:
        return names[str(dtype).lower()]
    except KeyError:
        raise InputError(f"--dtype {dtype}: expected float16, bfloat16 or float32") from None


# --------------------------------------------------------------------------- what a spec points to
@dataclass(frozen=True)
class Source:
    """Where a model spec points: `kind` is 'file', 'folder' or 'hub'."""

    kind: str
    location: str


def locate(spec: str, what: str = "model") -> Source:
    """Classify a user's spec; fail early with a message naming what was looked for."""
    spec = str(spec).strip()
    if not spec:
        raise InputError(f"--{what}: empty")
    path = Path(spec).expanduser()
    if path.is_file():
        check_weights_file(path)
        return Source("file", str(path))
    if path.is_dir():
        return Source("folder", str(path))
    if path.suffix.lower() in PICKLE_SUFFIXES + (".safetensors",) or spec.startswith((".", "/", "~")):
        if path.suffix.lower() in PICKLE_SUFFIXES:
            check_weights_file(path)
        raise InputError(f"--{what} {spec}: no such file or folder")
    if looks_like_repo_id(spec):
        return Source("hub", spec)
    raise InputError(f"--{what} {spec}: no such file or folder, and not a Hugging Face repo id (owner/name)")


def check_part(spec: str, what: str, subfolders: tuple[str, ...] = ("",)) -> None:
    """A VAE or ControlNet spec, checked without loading it: a readable file, or a folder with
    config.json and safetensors weights (in one of `subfolders`), or a cached hub id when offline."""
    source = locate(spec, what)
    if source.kind == "file":
        check_weights(source.location, what)
    elif source.kind == "folder":
        folders = [Path(source.location) / sub for sub in subfolders]
        found = next((f for f in folders if (f / "config.json").is_file()), None)
        if found is None:
            raise InputError(f"--{what} {spec}: no config.json in the folder (give a diffusers {what} folder)")
        check_folder_weights(found, what)
    elif hub_offline():
        hub_file(source.location, "config.json", what=what)


def check_folder_weights(folder: Path, what: str) -> None:
    """A diffusers/transformers model folder holds readable safetensors weights (never only pickles)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise InputError(f"--{what}: no .safetensors weights in {folder} (pickled .bin weights are refused)")
    for f in files:
        check_weights(f, what)


def hub_file(repo_id: str, filename: str, *, subfolder: str | None = None, what: str = "model") -> Path:
    """A file of a hub repo from the cache (or downloaded when online); InputError when missing."""
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(repo_id, filename, subfolder=subfolder, local_files_only=hub_offline()))
    except Exception as e:  # LocalEntryNotFoundError, EntryNotFoundError, RepositoryNotFoundError, HTTP errors
        where = f"{subfolder}/{filename}" if subfolder else filename
        state = "not in the local Hugging Face cache (offline)" if hub_offline() else f"could not be fetched ({type(e).__name__})"
        raise InputError(f"--{what} {repo_id}: {where} {state}; {how_to_get(repo_id)}") from None


def _model_index(source: Source) -> dict:
    if source.kind == "folder":
        index = Path(source.location) / "model_index.json"
        if not index.is_file():
            raise InputError(f"--model {source.location}: not a diffusers folder (no model_index.json); "
                             "give a diffusers pipeline folder, a .safetensors file or a repo id")
    else:
        index = hub_file(source.location, "model_index.json")
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{index}: unreadable model_index.json ({e})") from None
    if not isinstance(data, dict):
        raise InputError(f"{index}: model_index.json must be a JSON object")
    if source.kind == "folder":
        _check_parts(Path(source.location), data)
    return data


def _check_parts(folder: Path, index: dict) -> None:
    """Every part a pipeline needs is a subfolder with its weights: diffusers' own errors are cryptic."""
    for part in _PIPELINE_PARTS + ("text_encoder_2", "tokenizer_2"):
        if index.get(part) in (None, [None, None]):
            continue
        if not (folder / part).is_dir():
            raise InputError(f"--model: no {part}/ in {folder} (is it a diffusers pipeline folder?)")
        if part in _WEIGHTED_PARTS:
            check_folder_weights(folder / part, "model")


def checkpoint_keys(path: Path | str) -> list[str]:
    """The keys of a single-file Stable Diffusion checkpoint; a LoRA, VAE or other file is refused."""
    keys = check_weights(path, "model")
    if not any(k.startswith(_LDM_UNET_PREFIX) for k in keys):
        raise InputError(f"--model {path}: not a Stable Diffusion checkpoint (no {_LDM_UNET_PREFIX}* UNet weights "
                         "among its tensors; a LoRA goes to --lora, a VAE to --vae)")
    return keys


def check_model(model: str, config: str | None = None) -> str:
    """Everything about `--model` that can be known without loading weights; its architecture.

    A hub id must be in the cache when offline (online it is fetched when loading); a folder
    must hold every pipeline part; a single file must be an SD checkpoint with a config folder.
    """
    source = locate(model)
    if source.kind == "hub" and not hub_offline():
        return "sd15"  # unknown until fetched; only the config folder check below depends on it
    arch = detect_arch(model)
    if source.kind == "file" and config and not (Path(config) / "model_index.json").is_file():
        raise InputError(f"--model-config {config}: no model_index.json (give a diffusers pipeline or config folder)")
    return arch


def arch_of_keys(keys) -> str:
    return "sdxl" if any(k.startswith(_SDXL_KEY_PREFIXES) for k in keys) else "sd15"


def detect_arch(model: str, config: str | None = None) -> str:
    """'sdxl' or 'sd15' from the folder's model_index.json or the single file's keys."""
    source = locate(model)
    if source.kind == "file":
        return arch_of_keys(checkpoint_keys(source.location))
    index = _model_index(source)
    return "sdxl" if ("text_encoder_2" in index or "XL" in index.get("_class_name", "")) else "sd15"


def import_ahead() -> None:
    """Import the diffusers and transformers classes that loading a pipeline touches (seconds, the
    first time, as diffusers imports lazily): a long-lived worker does it while it starts, not on
    its first board."""
    import diffusers
    import transformers

    for arch in ARCHS:
        for controlnet in (False, True):
            _pipeline_class(arch, controlnet)
    for name in ("AutoencoderKL", "ControlNetModel", "AutoPipelineForImage2Image", "DPMSolverMultistepScheduler"):
        getattr(diffusers, name)
    for name in ("CLIPTextModel", "CLIPTextModelWithProjection", "CLIPTokenizer"):
        getattr(transformers, name)


def _pipeline_class(arch: str, controlnet: bool):
    import diffusers

    name = {("sd15", False): "StableDiffusionPipeline", ("sd15", True): "StableDiffusionControlNetPipeline",
            ("sdxl", False): "StableDiffusionXLPipeline", ("sdxl", True): "StableDiffusionXLControlNetPipeline"}
    return getattr(diffusers, name[arch, controlnet])


def _hub_error(repo_id: str, what: str, e: Exception) -> InputError:
    if hub_offline():
        return InputError(f"--{what} {repo_id}: not found in the local Hugging Face cache (offline); {how_to_get(repo_id)}")
    return InputError(f"--{what} {repo_id}: could not be loaded ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
                      f"{how_to_get(repo_id)}")


_LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError)
# diffusers' own exception types (matched by name: their modules move between releases).
_LIBRARY_LOAD_ERRORS = {"SingleFileComponentError"}


@contextmanager
def _loading(source: Source, what: str, spec: str, detail: str = "", hint: str = ""):
    """Turn a library's load failure into one line naming the option, and for hub ids how to get them.

    RuntimeError covers weights whose shapes do not fit the configs (torch's size mismatch).
    """
    try:
        yield
    except InputError:
        raise
    except Exception as e:
        if not isinstance(e, _LOAD_ERRORS) and type(e).__name__ not in _LIBRARY_LOAD_ERRORS:
            raise
        if source.kind == "hub":
            raise _hub_error(source.location, what, e) from None
        raise InputError(f"--{what} {spec}: cannot load{detail} ({first_line(e)[:300]}){hint}") from None


# --------------------------------------------------------------------------- loaders
def load_vae(spec: str, *, arch: str = "sd15", dtype=None, config: str | None = None):
    """A separate VAE: HF id, diffusers folder (a VAE folder or a pipeline folder with vae/) or single file.

    A single file takes its layout from `config`/vae (a diffusers pipeline or config folder;
    default: the shipped one for `arch`). A folder or id whose config names `AutoencoderTiny`
    (taesd, taesdxl) loads as that: a tiny autoencoder that decodes several times faster than
    the KL VAE, with softer detail (previews, `--fast` drafts).
    """
    import diffusers

    source = locate(spec, "vae")
    with _loading(source, "vae", spec):
        if source.kind == "file":
            folder = Path(config) if config else config_dir(arch)
            return diffusers.AutoencoderKL.from_single_file(source.location, config=str(folder), subfolder="vae",
                                                            local_files_only=True, dtype=dtype)
        sub = "vae" if source.kind == "folder" and (Path(source.location) / "vae" / "config.json").is_file() else None
        offline = hub_offline() or source.kind == "folder"
        kind = diffusers.AutoencoderKL.load_config(source.location, subfolder=sub,
                                                   local_files_only=offline).get("_class_name")
        cls = diffusers.AutoencoderTiny if kind == "AutoencoderTiny" else diffusers.AutoencoderKL
        return cls.from_pretrained(source.location, subfolder=sub, dtype=dtype, use_safetensors=True,
                                   local_files_only=offline)


def load_controlnet(spec: str, *, dtype=None):
    """A ControlNet: HF id, diffusers folder, or a .safetensors file with its config.json beside it."""
    from diffusers import ControlNetModel

    source = locate(spec, "controlnet")
    with _loading(source, "controlnet", spec):
        if source.kind == "file":
            folder = Path(source.location).parent
            if not (folder / "config.json").is_file():
                raise InputError(f"--controlnet {spec}: a single ControlNet file needs its config.json beside it "
                                 "(or give the diffusers folder / repo id)")
            return ControlNetModel.from_single_file(source.location, config=str(folder), local_files_only=True,
                                                    dtype=dtype)
        return ControlNetModel.from_pretrained(source.location, dtype=dtype, use_safetensors=True,
                                               local_files_only=hub_offline() or source.kind == "folder")


def load_pipeline(model: str, *, sdxl: bool | None = None, vae: str | None = None, config: str | None = None,
                  controlnet: str | list[str] | None = None, dtype=None, device: str | None = None):
    """A ready text-to-image pipeline (ControlNet variant when `controlnet` is given).

    `controlnet` is one spec, or a list of specs: diffusers then wraps them in a
    MultiControlNetModel, whose images and conditioning scales are lists in the same order.
    `sdxl` overrides architecture detection; `config` is the diffusers config folder for a
    single file (default: the shipped one for the detected architecture). Moved to `device`
    (None: leave on CPU, e.g. for model CPU offload).
    """
    require_diffusion()
    source = locate(model)
    if source.kind == "file":
        checkpoint_keys(source.location)  # a LoRA or VAE given as --model, truncated files: one clear line
    arch = ("sdxl" if sdxl else "sd15") if sdxl is not None else detect_arch(model)
    torch_dtype = resolve_dtype(dtype, device or "cpu")
    extra: dict[str, Any] = {}
    if controlnet and isinstance(controlnet, str):
        extra["controlnet"] = load_controlnet(controlnet, dtype=torch_dtype)
    elif controlnet:
        extra["controlnet"] = [load_controlnet(spec, dtype=torch_dtype) for spec in controlnet]
    if vae:
        layout = config or (source.location if source.kind == "folder" else None)
        extra["vae"] = load_vae(vae, arch=arch, dtype=torch_dtype, config=layout)
    if arch == "sd15":
        # Storyboards are drafts: a false positive would black out a frame, so no safety checker.
        extra.update(safety_checker=None, requires_safety_checker=False)
    cls = _pipeline_class(arch, bool(controlnet))
    pipe = _load(cls, source, arch, config, torch_dtype, extra)
    pipe.set_progress_bar_config(disable=True)
    if device:
        pipe.to(device)
    return pipe


def _load(cls, source: Source, arch: str, config: str | None, torch_dtype, extra: dict):
    # A single file read with the shipped configs fails when its shapes are not the released ones.
    hint = "" if source.kind != "file" or config else (
        f"; if it is not a standard {arch} checkpoint, give its diffusers config folder with --model-config")
    with _loading(source, "model", source.location, f" as {arch}", hint):
        if source.kind == "file":
            folder = Path(config) if config else config_dir(arch)
            if not (folder / "model_index.json").is_file():
                raise InputError(f"--model {source.location}: config folder {folder} has no model_index.json "
                                 f"(a diffusers layout for {arch} without weights is needed for single files)")
            return cls.from_single_file(source.location, config=str(folder), local_files_only=True,
                                        dtype=torch_dtype, **extra)
        if source.kind == "folder":
            _model_index(source)  # a clear error for folders that are not pipelines
        return cls.from_pretrained(source.location, dtype=torch_dtype, use_safetensors=True,
                                   local_files_only=hub_offline() or source.kind == "folder", **extra)


@dataclass
class Components:
    """The raw parts training needs; `text_encoder_2`/`tokenizer_2` are None for SD 1.5."""

    arch: str
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    noise_scheduler: Any
    text_encoder_2: Any = None
    tokenizer_2: Any = None
    pipeline_class: Any = None


def load_components(model: str, *, sdxl: bool | None = None, vae: str | None = None, config: str | None = None,
                    dtype=None) -> Components:
    """Load through `load_pipeline` (same sources, same checks) and hand back its parts.

    `noise_scheduler` is a DDPMScheduler built from the model's scheduler config, as the
    diffusers training scripts use.
    """
    from diffusers import DDPMScheduler

    pipe = load_pipeline(model, sdxl=sdxl, vae=vae, config=config, dtype=dtype)
    if type(pipe.vae).__name__ == "AutoencoderTiny":
        raise InputError(f"--vae {vae}: a tiny autoencoder (taesd) is for fast previews; training needs a KL VAE "
                         "(the latents the model was trained on)")
    arch = "sdxl" if hasattr(pipe, "text_encoder_2") else "sd15"
    return Components(
        arch=arch, unet=pipe.unet, vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
        noise_scheduler=DDPMScheduler.from_config(pipe.scheduler.config),
        text_encoder_2=getattr(pipe, "text_encoder_2", None), tokenizer_2=getattr(pipe, "tokenizer_2", None),
        pipeline_class=type(pipe),
    )
