"""The shipped SD 1.5 / SDXL config skeletons: the real architectures, the real CLIP tokenizer, no network."""

import json

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders.single_file_utils import create_unet_diffusers_config_from_ldm
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from autokose.models import config_dir

# Parameter counts of the released models (UNet, VAE, text encoders).
PARAMS = {
    "sd15": {"unet": 859_520_964, "vae": 83_653_863, "text_encoder": 123_060_480},
    "sdxl": {"unet": 2_567_463_684, "vae": 83_653_863, "text_encoder": 123_060_480, "text_encoder_2": 694_659_840},
}
# The UNet sections of the original LDM configs (v1-inference.yaml, sd_xl_base.yaml).
LDM_UNET = {
    "sd15": dict(in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2, 1], num_res_blocks=2,
                 channel_mult=[1, 2, 4, 4], num_heads=8, transformer_depth=1, context_dim=768),
    "sdxl": dict(in_channels=4, out_channels=4, model_channels=320, attention_resolutions=[4, 2], num_res_blocks=2,
                 channel_mult=[1, 2, 4], num_head_channels=64, use_linear_in_transformer=True,
                 transformer_depth=[1, 2, 10], context_dim=2048, num_classes="sequential", adm_in_channels=2816),
}
IMAGE_SIZE = {"sd15": 512, "sdxl": 1024}
PROMPT = "a photo of aldarkose, beardless man"


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def empty(cls, folder):
    with init_empty_weights():
        return cls.from_config(cls.load_config(folder))


def text_encoder(folder, cls):
    with init_empty_weights():
        return cls(CLIPTextConfig.from_pretrained(folder))


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_skeleton_is_a_weightless_diffusers_layout(arch):
    root = config_dir(arch)
    index = json.loads((root / "model_index.json").read_text())
    parts = [k for k, v in index.items() if isinstance(v, list) and v[0] is not None]
    for part in parts:
        files = {p.name for p in (root / part).iterdir()}
        assert files, part
        assert not any(f.endswith((".safetensors", ".bin", ".ckpt")) for f in files)
    assert {"unet", "vae", "text_encoder", "tokenizer", "scheduler"} <= set(parts)
    assert index.get("safety_checker", [None])[0] is None and index.get("feature_extractor", [None])[0] is None
    if arch == "sdxl":
        assert {"text_encoder_2", "tokenizer_2"} <= set(parts)
    else:
        assert index["requires_safety_checker"] is False


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_configs_build_the_released_architectures(arch):
    root = config_dir(arch)
    assert count(empty(UNet2DConditionModel, root / "unet")) == PARAMS[arch]["unet"]
    assert count(empty(AutoencoderKL, root / "vae")) == PARAMS[arch]["vae"]
    assert count(text_encoder(root / "text_encoder", CLIPTextModel)) == PARAMS[arch]["text_encoder"]
    if arch == "sdxl":
        te2 = text_encoder(root / "text_encoder_2", CLIPTextModelWithProjection)
        assert count(te2) == PARAMS[arch]["text_encoder_2"]
        assert te2.config.projection_dim == 1280


@pytest.mark.filterwarnings("ignore::FutureWarning")  # diffusers deprecates image_size= but still needs it here
@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_unet_config_matches_diffusers_conversion_of_the_original_yaml(arch):
    original = {"model": {"params": {"unet_config": {"params": LDM_UNET[arch]},
                                     "first_stage_config": {"params": {"ddconfig": {"ch_mult": [1, 2, 4, 4]}}}}}}
    converted = create_unet_diffusers_config_from_ldm(original, {}, image_size=IMAGE_SIZE[arch])
    with init_empty_weights():
        theirs = UNet2DConditionModel.from_config(converted).config
    ours = UNet2DConditionModel.load_config(config_dir(arch) / "unet")
    with init_empty_weights():
        ours = UNet2DConditionModel.from_config(ours).config
    # SDXL's release writes upcast_attention as null where the conversion writes false: the same.
    same = lambda a, b: json.dumps(a) == json.dumps(b) or (not a and not b and a in (None, False) and b in (None, False))
    assert {k for k in theirs if not k.startswith("_") and not same(theirs[k], ours[k])} == set()


def test_vae_scaling_and_upcast():
    sd15 = AutoencoderKL.load_config(config_dir("sd15") / "vae")
    sdxl = AutoencoderKL.load_config(config_dir("sdxl") / "vae")
    assert sd15["scaling_factor"] == 0.18215 and not sd15.get("force_upcast", False)
    assert sdxl["scaling_factor"] == 0.13025 and sdxl["force_upcast"] is True


@pytest.mark.parametrize("arch, sub", [("sd15", "tokenizer"), ("sdxl", "tokenizer"), ("sdxl", "tokenizer_2")])
def test_tokenizer_gives_the_clip_ids(arch, sub):
    tok = CLIPTokenizer.from_pretrained(config_dir(arch) / sub)
    assert len(tok) == 49408
    ids = tok(PROMPT).input_ids
    assert ids[:4] == [49406, 320, 1125, 539]  # <|startoftext|> a photo of
    assert ids == [49406, 320, 1125, 539, 526, 1377, 1313, 611, 267, 26157, 1285, 786, 49407]
    assert tok.decode(ids, skip_special_tokens=True).replace(" ,", ",") == PROMPT
    assert tok("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]
    padded = tok("a cat", padding="max_length", max_length=6).input_ids
    pad = 0 if sub == "tokenizer_2" else 49407  # SDXL's second tokenizer pads with "!"
    assert padded == [49406, 320, 2368, 49407, pad, pad]


def test_single_file_loads_offline_with_a_shipped_skeleton(tmp_path):
    """from_single_file takes the pipeline layout, scheduler and tokenizer from the skeleton, no hub."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline
    from tiny import config_skeleton, tiny_sd15_single_file

    file, tiny_config = tiny_sd15_single_file(tmp_path)
    skeleton = config_skeleton(config_dir("sd15"), tmp_path / "skeleton")
    for part in ("unet", "vae", "text_encoder"):  # the tiny weights need the tiny shapes
        (skeleton / part / "config.json").write_text((tiny_config / part / "config.json").read_text())
    pipe = StableDiffusionPipeline.from_single_file(str(file), config=str(skeleton), local_files_only=True,
                                                    safety_checker=None)
    assert isinstance(pipe.scheduler, PNDMScheduler) and pipe.safety_checker is None
    assert pipe.tokenizer("a photo").input_ids == [49406, 320, 1125, 49407]
    assert count(pipe.unet) == count(UNet2DConditionModel.from_pretrained(tmp_path / "tiny-sd15", subfolder="unet"))
    assert torch.isfinite(next(pipe.unet.parameters())).all()
