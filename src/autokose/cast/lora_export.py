"""A trained LoRA in the two layouts people load: diffusers/peft and kohya (A1111, ComfyUI).

The diffusers file is what `pipe.load_lora_weights(folder)` reads: peft keys
(`unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight`), written
by the pipeline's own `save_lora_weights`, with the adapter config (rank, alpha) in its
metadata. The kohya file holds the same numbers under kohya-ss sd-scripts' names:

    lora_unet_<module with _>.lora_down.weight / .lora_up.weight / .alpha
    lora_te_text_model_encoder_layers_0_self_attn_q_proj.*        (SD 1.5 text encoder)
    lora_te1_* / lora_te2_*                                       (SDXL's two text encoders)

SD 1.5 UNet modules keep their diffusers names (kohya trains SD 1.x on the diffusers UNet);
SDXL's are renamed to the original (SGM) blocks, `input_blocks_4_1_...`, as kohya's SDXL
trainer writes them. `ss_*` metadata says rank, alpha and base model, as kohya's does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

from autokose.fsio import write_with

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
TEXT_ENCODER_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
DIFFUSERS_WEIGHT_NAME = "pytorch_lora_weights.safetensors"
SAVE_DTYPE = torch.float16
KOHYA_TE_PREFIX = {"sd15": {"text_encoder": "lora_te_"},
                   "sdxl": {"text_encoder": "lora_te1_", "text_encoder_2": "lora_te2_"}}
BASE_MODEL_VERSION = {"sd15": "sd_v1", "sdxl": "sdxl_base_v1-0"}
MODELSPEC_ARCHITECTURE = {"sd15": "stable-diffusion-v1/lora", "sdxl": "stable-diffusion-xl-v1-base/lora"}


def lora_layers(model) -> dict[str, torch.Tensor]:
    """The peft LoRA weights of one model (`<module>.lora_A.weight`, `<module>.lora_B.weight`)."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().to("cpu", SAVE_DTYPE).contiguous() for k, v in get_peft_model_state_dict(model).items()}


def adapter_metadata(model) -> dict:
    return model.peft_config["default"].to_dict()


def save_diffusers(folder: Path, pipeline_class, models: dict) -> Path:
    """Write `folder/pytorch_lora_weights.safetensors` with `pipeline_class.save_lora_weights`.

    `models` maps component name (unet, text_encoder, text_encoder_2) → model with a peft adapter.
    """
    kwargs = {}
    for name, model in models.items():
        kwargs[f"{name}_lora_layers"] = lora_layers(model)
        kwargs[f"{name}_lora_adapter_metadata"] = adapter_metadata(model)
    path = Path(folder) / DIFFUSERS_WEIGHT_NAME

    def write(tmp: Path) -> None:
        pipeline_class.save_lora_weights(str(tmp.parent), weight_name=tmp.name, safe_serialization=True, **kwargs)

    return write_with(path, write)


# --------------------------------------------------------------------------- kohya naming
def sgm_unet_name(module: str, layers_per_block: int) -> str:
    """A diffusers SDXL UNet attention module name → the original (SGM) UNet's name.

    down_blocks.b.attentions.j → input_blocks.(1 + b·(L+1) + j).1, mid_block.attentions.0 →
    middle_block.1, up_blocks.b.attentions.j → output_blocks.(b·(L+1) + j).1, where L is
    layers_per_block (each down block adds its downsampler, each up block has L+1 layers).
    """
    per_down = layers_per_block + 1
    if m := re.match(r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", module):
        return f"input_blocks.{1 + int(m[1]) * per_down + int(m[2])}.1.{m[3]}"
    if m := re.match(r"mid_block\.attentions\.0\.(.+)", module):
        return f"middle_block.1.{m[1]}"
    if m := re.match(r"up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", module):
        return f"output_blocks.{int(m[1]) * per_down + int(m[2])}.1.{m[3]}"
    raise ValueError(f"no SGM name for UNet module {module}")


def kohya_name(component: str, module: str, arch: str, layers_per_block: int = 2) -> str:
    """`lora_unet_…` / `lora_te_…` name of one LoRA'd module (dots become underscores)."""
    if component == "unet":
        if arch == "sdxl":
            module = sgm_unet_name(module, layers_per_block)
        return "lora_unet_" + module.replace(".", "_")
    # transformers >= 5 dropped CLIPTextModel's `text_model.` level; kohya names keep it.
    if not module.startswith("text_model."):
        module = "text_model." + module
    return KOHYA_TE_PREFIX[arch][component] + module.replace(".", "_")


def to_kohya(layers: dict[str, dict[str, torch.Tensor]], alphas: dict[str, float], arch: str,
             layers_per_block: int = 2) -> dict[str, torch.Tensor]:
    """peft layers per component ({"unet": {...}, "text_encoder": {...}}) → one kohya state dict."""
    out: dict[str, torch.Tensor] = {}
    for component, state in layers.items():
        for key, value in state.items():
            module, _, kind = key.rpartition(".lora_")
            if kind not in ("A.weight", "B.weight"):
                raise ValueError(f"unexpected LoRA key {key}")
            name = kohya_name(component, module, arch, layers_per_block)
            out[f"{name}.lora_{'down' if kind == 'A.weight' else 'up'}.weight"] = value.contiguous()
            out[f"{name}.alpha"] = torch.tensor(float(alphas[component]), dtype=value.dtype)
    return out


def kohya_metadata(*, arch: str, rank: int, alpha: float, output_name: str, base_model: str,
                   training: dict | None = None) -> dict[str, str]:
    """The `ss_*` header kohya-ss writes (all strings): what A1111 and ComfyUI display and check."""
    training = training or {}
    resolution = training.get("resolution", 1024 if arch == "sdxl" else 512)
    meta = {
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(float(alpha)),
        "ss_base_model_version": BASE_MODEL_VERSION[arch],
        "ss_output_name": output_name,
        "ss_sd_model_name": base_model,
        "ss_v2": "False",
        "ss_resolution": f"({resolution}, {resolution})",
        "modelspec.sai_model_spec": "1.0.0",
        "modelspec.architecture": MODELSPEC_ARCHITECTURE[arch],
        "modelspec.implementation": "https://github.com/huggingface/diffusers",
        "modelspec.title": output_name,
        "modelspec.resolution": f"{resolution}x{resolution}",
    }
    keys = {"steps": "ss_max_train_steps", "lr_scheduler": "ss_lr_scheduler", "num_images": "ss_num_train_images", "seed": "ss_seed",
            "noise_offset": "ss_noise_offset", "snr_gamma": "ss_min_snr_gamma", "mixed_precision": "ss_mixed_precision",
            "batch_size": "ss_batch_size_per_device", "grad_accum": "ss_gradient_accumulation_steps"}
    for field, key in keys.items():
        if training.get(field) is not None:
            meta[key] = str(training[field])
    if training.get("learning_rate") is not None:
        meta["ss_learning_rate"] = meta["ss_unet_lr"] = str(training["learning_rate"])
    if training.get("train_text_encoder"):
        meta["ss_text_encoder_lr"] = str(training.get("text_encoder_lr") or training.get("learning_rate"))
    else:
        meta["ss_network_train_unet_only"] = "True"
    if training.get("trigger"):
        meta["modelspec.trigger_phrase"] = training["trigger"]
        meta["ss_tag_frequency"] = json.dumps({"references": {training["trigger"]: training.get("num_images", 1)}})
    return meta


def save_kohya(path: Path, models: dict, *, arch: str, output_name: str, base_model: str,
               training: dict | None = None) -> Path:
    """Write the kohya-format file for `models` (component name → model with a peft adapter)."""
    from safetensors.torch import save_file

    layers = {name: lora_layers(model) for name, model in models.items()}
    configs = {name: model.peft_config["default"] for name, model in models.items()}
    alphas = {name: float(c.lora_alpha) for name, c in configs.items()}
    unet = models.get("unet")
    per_block = unet.config.layers_per_block if unet is not None else 2
    per_block = per_block if isinstance(per_block, int) else per_block[0]
    state = to_kohya(layers, alphas, arch, per_block)
    main = configs.get("unet") or next(iter(configs.values()))
    meta = kohya_metadata(arch=arch, rank=main.r, alpha=main.lora_alpha, output_name=output_name,
                          base_model=base_model, training=training)
    return write_with(path, lambda tmp: save_file(state, str(tmp), metadata=meta))
