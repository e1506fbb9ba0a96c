"""Tiny random-weight Stable Diffusion parts, saved in the formats users have on disk.

Tests load these through the same code users run (`autokose.models.load_pipeline`, the
renderer, the CLI), so every builder writes real files: a diffusers folder, an original-layout
(LDM) single `.safetensors` with its config folder, ControlNet and IP-Adapter folders, and LoRA
files in diffusers/peft and kohya naming. Weights are seeded, so builds are reproducible.

    tiny_sd15(tmp_path) -> Path                      diffusers folder (StableDiffusionPipeline)
    tiny_sd15_single_file(tmp_path) -> (file, cfg)   LDM-layout file + config folder (no weights)
    tiny_sdxl(tmp_path) -> Path                      diffusers folder (StableDiffusionXLPipeline)
    tiny_controlnet(tmp_path, sdxl=False) -> Path    ControlNetModel folder matching the UNet
    tiny_ip_adapter(tmp_path, kind="plus") -> Path   h94 layout: <root>/models/<name>.safetensors
                                                     + models/image_encoder/ (kind: "base"|"plus")
    tiny_lora_diffusers(tmp_path) -> Path            pytorch_lora_weights.safetensors (peft keys)
    tiny_lora_kohya(tmp_path) -> Path                same weights in kohya naming (lora_unet_...)
    tiny_tokenizer(folder) -> Path                   CLIP BPE tokenizer from a generated vocab
    ldm_state_dict(pipe) -> dict                     diffusers SD 1.5 weights → LDM key names

Image sizes: the VAE downsamples by 8 like the real one, so 64x48 frames give 8x6 latents.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import save_file

SEED = 1234
WORDS = ("aldarkose", "greedybai", "storyboard", "sketch", "steppe", "yurt", "man", "hat", "the", "and", "a")
IP_ADAPTER_NAME = {"plus": "ip-adapter-plus-face_sd15", "base": "ip-adapter_sd15"}
LORA_RANK = 4


# --------------------------------------------------------------------------- tokenizer
def _bytes_to_unicode() -> list[str]:
    """The printable stand-ins byte-level BPE uses for the 256 byte values (GPT-2/CLIP convention)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _vocab(words=WORDS) -> tuple[list[str], list[str]]:
    """Every byte alone and word-final, then merges that make each of `words` one token."""
    base = _bytes_to_unicode()
    vocab = base + [c + "</w>" for c in base]
    merges: list[str] = []
    for word in words:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        while len(pieces) > 1:
            merge, token = f"{pieces[0]} {pieces[1]}", pieces[0] + pieces[1]
            if merge not in merges:
                merges.append(merge)
            if token not in vocab:
                vocab.append(token)
            pieces = [token] + pieces[2:]
    return vocab + ["<|startoftext|>", "<|endoftext|>"], merges


def tiny_tokenizer(folder: Path) -> Path:
    """CLIP tokenizer files (vocab.json, merges.txt, configs) in `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _vocab()
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>", "pad_token": "<|endoftext|>",
        "do_lower_case": True}), encoding="utf-8")
    (folder / "special_tokens_map.json").write_text(json.dumps({
        "bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>"}), encoding="utf-8")
    return folder


def _vocab_size() -> int:
    return len(_vocab()[0])


# --------------------------------------------------------------------------- components
def _unet(sdxl: bool = False):
    from diffusers import UNet2DConditionModel

    kwargs = dict(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        norm_num_groups=8, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), attention_head_dim=4,
    )
    if sdxl:
        kwargs.update(cross_attention_dim=64, addition_embed_type="text_time", addition_time_embed_dim=8,
                      projection_class_embeddings_input_dim=6 * 8 + 32, use_linear_projection=True)
    else:
        kwargs.update(cross_attention_dim=32)
    torch.manual_seed(SEED)
    return UNet2DConditionModel(**kwargs)


def _vae():
    from diffusers import AutoencoderKL

    torch.manual_seed(SEED + 1)
    blocks = 4  # 3 downsamples: the factor of 8 real SD VAEs have
    return AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8,) * blocks, norm_num_groups=4,
        layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks, sample_size=32,
    )


def _text_config(projection: bool = False):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(vocab_size=_vocab_size(), hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                          num_attention_heads=4, max_position_embeddings=77, projection_dim=32,
                          bos_token_id=_vocab_size() - 2, eos_token_id=_vocab_size() - 1,
                          pad_token_id=_vocab_size() - 1)


def _text_encoder(seed: int, with_projection: bool = False):
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return cls(_text_config()).eval()


def _scheduler():
    from diffusers import PNDMScheduler

    # The SD 1.5 release's scheduler settings.
    return PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                         set_alpha_to_one=False, steps_offset=1, num_train_timesteps=1000)


def _tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(tiny_tokenizer(folder)))


def _noise_weights(module, seed: int, std: float = 0.2) -> None:
    """Random init leaves some layers at zero (e.g. ControlNet's zero convs); perturb all of them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn(p.shape, generator=g) * std)


def sd15_pipeline(tmp_path: Path):
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=_vae(), text_encoder=_text_encoder(SEED + 2), tokenizer=_tokenizer(Path(tmp_path) / "_tok"),
        unet=_unet(), scheduler=_scheduler(), safety_checker=None, feature_extractor=None,
        requires_safety_checker=False,
    )


def tiny_sd15(tmp_path: Path) -> Path:
    """A diffusers SD 1.5-layout folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/)."""
    folder = Path(tmp_path) / "tiny-sd15"
    if not (folder / "model_index.json").is_file():
        sd15_pipeline(tmp_path).save_pretrained(folder, safe_serialization=True)
    return folder


def tiny_sdxl(tmp_path: Path) -> Path:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    folder = Path(tmp_path) / "tiny-sdxl"
    if (folder / "model_index.json").is_file():
        return folder
    tok = _tokenizer(Path(tmp_path) / "_tok")
    pipe = StableDiffusionXLPipeline(
        vae=_vae(), text_encoder=_text_encoder(SEED + 2), text_encoder_2=_text_encoder(SEED + 3, with_projection=True),
        tokenizer=tok, tokenizer_2=tok, unet=_unet(sdxl=True),
        scheduler=EulerDiscreteScheduler.from_config(_scheduler().config),
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def config_skeleton(folder: Path, dest: Path) -> Path:
    """Copy a diffusers folder without its weights: what `from_single_file(config=...)` needs."""
    for f in Path(folder).rglob("*"):
        if f.is_file() and f.suffix not in (".safetensors", ".bin"):
            target = Path(dest) / f.relative_to(folder)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)
    return Path(dest)


def tiny_sd15_single_file(tmp_path: Path) -> tuple[Path, Path]:
    """The weights of `tiny_sd15` as one original-layout (LDM) file, plus a config folder."""
    from diffusers import StableDiffusionPipeline

    folder = tiny_sd15(tmp_path)
    file = Path(tmp_path) / "tiny-sd15.safetensors"
    config = config_skeleton(folder, Path(tmp_path) / "tiny-sd15-config")
    if not file.is_file():
        pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False)
        save_file({k: v.contiguous() for k, v in ldm_state_dict(pipe).items()}, str(file))
    return file, config


# --------------------------------------------------------------------------- diffusers → LDM key names
_RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
           ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection"))


def _unet_key_to_ldm(key: str, config) -> str:
    """One diffusers UNet key → its name in `model.diffusion_model` (inverse of diffusers' converter)."""
    from diffusers.loaders.single_file_utils import DIFFUSERS_TO_LDM_MAPPING

    fixed = {**DIFFUSERS_TO_LDM_MAPPING["unet"]["layers"], **DIFFUSERS_TO_LDM_MAPPING["unet"]["addition_embed_type"]}
    if key in fixed:
        return fixed[key]
    per_block = config.layers_per_block + 1
    parts = key.split(".")

    def resnet(rest: str) -> str:
        for new, old in _RESNET:
            rest = rest.replace(new, old, 1) if rest.startswith(new) else rest
        return rest

    if parts[0] == "down_blocks":
        b, kind = int(parts[1]), parts[2]
        if kind == "downsamplers":  # down_blocks.b.downsamplers.0.conv.w
            return f"input_blocks.{1 + b * per_block + config.layers_per_block}.0.op.{parts[-1]}"
        n, rest = int(parts[3]), ".".join(parts[4:])
        i = 1 + b * per_block + n
        return f"input_blocks.{i}.0.{resnet(rest)}" if kind == "resnets" else f"input_blocks.{i}.1.{rest}"
    if parts[0] == "mid_block":
        n, rest = int(parts[2]), ".".join(parts[3:])
        return f"middle_block.{2 * n}.{resnet(rest)}" if parts[1] == "resnets" else f"middle_block.1.{rest}"
    if parts[0] == "up_blocks":
        b, kind = int(parts[1]), parts[2]
        if kind == "upsamplers":  # after the block's last layer: slot 1, or 2 when it has attentions
            has_attn = "CrossAttn" in config.up_block_types[b]
            return f"output_blocks.{b * per_block + config.layers_per_block}.{2 if has_attn else 1}.conv.{parts[-1]}"
        n, rest = int(parts[3]), ".".join(parts[4:])
        i = b * per_block + n
        return f"output_blocks.{i}.0.{resnet(rest)}" if kind == "resnets" else f"output_blocks.{i}.1.{rest}"
    raise KeyError(f"no LDM name for UNet key {key}")


def _vae_key_to_ldm(key: str, value: torch.Tensor, config) -> tuple[str, torch.Tensor]:
    n = len(config.up_block_types)
    parts = key.split(".")
    top = {"conv_norm_out": "norm_out"}
    if parts[1] in ("conv_in", "conv_out", "conv_norm_out") or parts[0] in ("quant_conv", "post_quant_conv"):
        return ".".join([parts[0], top.get(parts[1], parts[1])] + parts[2:]), value
    side = parts[0]
    if parts[1] == "mid_block":
        if parts[2] == "resnets":
            return f"{side}.mid.block_{int(parts[3]) + 1}." + ".".join(parts[4:]).replace("conv_shortcut", "nin_shortcut"), value
        rest = ".".join(parts[4:])
        rest = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}.get(
            rest.rsplit(".", 1)[0], rest.rsplit(".", 1)[0]) + "." + rest.rsplit(".", 1)[1]
        if value.ndim == 2:  # the original stores these as 1x1 convolutions
            value = value[:, :, None, None]
        return f"{side}.mid.attn_1.{rest}", value
    b = int(parts[2])
    ldm_b = b if side == "encoder" else n - 1 - b
    stage = "down" if side == "encoder" else "up"
    if parts[3] in ("downsamplers", "upsamplers"):
        return f"{side}.{stage}.{ldm_b}.{'downsample' if side == 'encoder' else 'upsample'}.conv.{parts[-1]}", value
    rest = ".".join(parts[5:]).replace("conv_shortcut", "nin_shortcut")
    return f"{side}.{stage}.{ldm_b}.block.{parts[4]}.{rest}", value


def ldm_state_dict(pipe) -> dict[str, torch.Tensor]:
    """SD 1.5 pipeline weights under the original checkpoint's names (what Civitai files contain)."""
    out = {}
    for k, v in pipe.unet.state_dict().items():
        out["model.diffusion_model." + _unet_key_to_ldm(k, pipe.unet.config)] = v
    for k, v in pipe.vae.state_dict().items():
        name, value = _vae_key_to_ldm(k, v, pipe.vae.config)
        out["first_stage_model." + name] = value
    for k, v in pipe.text_encoder.state_dict().items():
        # Original files name the CLIP text model `transformer.text_model.*`; transformers >= 5.6
        # flattened CLIPTextModel so its own keys lack `text_model.`.
        out["cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k)] = v
    return out


# --------------------------------------------------------------------------- ControlNet
def tiny_controlnet(tmp_path: Path, sdxl: bool = False) -> Path:
    """A ControlNet shaped like the tiny UNet, with non-zero output convs so its scale matters."""
    from diffusers import ControlNetModel

    folder = Path(tmp_path) / ("tiny-controlnet-sdxl" if sdxl else "tiny-controlnet")
    if not (folder / "config.json").is_file():
        net = ControlNetModel.from_unet(_unet(sdxl=sdxl), conditioning_embedding_out_channels=(4, 8, 8, 16))
        _noise_weights(net, SEED + 5)
        net.save_pretrained(folder, safe_serialization=True)
    return folder


# --------------------------------------------------------------------------- IP-Adapter (h94 layout)
def _image_encoder():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    torch.manual_seed(SEED + 6)
    return CLIPVisionModelWithProjection(CLIPVisionConfig(
        hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, image_size=32,
        patch_size=8, projection_dim=32)).eval()


def _plus_projection_to_h94(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """diffusers IPAdapterPlusImageProjection keys → the h94 Resampler's (to_k/to_v fused into to_kv)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] != "layers":
            out[key] = value
            continue
        head, rest = f"layers.{parts[1]}", ".".join(parts[2:])
        renames = {"ln0": "0.norm1", "ln1": "0.norm2", "attn.to_q": "0.to_q", "attn.to_out.0": "0.to_out",
                   "ff.0": "1.0", "ff.1.net.0.proj": "1.1", "ff.1.net.2": "1.3"}
        module, leaf = rest.rsplit(".", 1)
        if module in ("attn.to_k", "attn.to_v"):
            if module == "attn.to_k":
                out[f"{head}.0.to_kv.{leaf}"] = torch.cat([value, state[f"{head}.attn.to_v.{leaf}"]], 0)
            continue
        out[f"{head}.{renames[module]}.{leaf}"] = value
    return out


def tiny_ip_adapter(tmp_path: Path, kind: str = "plus") -> Path:
    """A folder laid out like the `h94/IP-Adapter` repo: models/<name>.safetensors and models/image_encoder/.

    kind "plus" (Resampler projection; plus and plus-face share it) or "base" (linear projection).
    """
    from diffusers.models.embeddings import ImageProjection, IPAdapterPlusImageProjection

    root = Path(tmp_path) / f"tiny-ip-adapter-{kind}"
    weights = root / "models" / f"{IP_ADAPTER_NAME[kind]}.safetensors"
    if weights.is_file():
        return root
    encoder = _image_encoder()
    encoder.save_pretrained(root / "models" / "image_encoder", safe_serialization=True)
    unet = _unet()
    cross = unet.config.cross_attention_dim
    torch.manual_seed(SEED + 7)
    if kind == "plus":
        proj = IPAdapterPlusImageProjection(embed_dims=encoder.config.hidden_size, output_dims=cross, hidden_dims=64,
                                            depth=4, dim_head=64, heads=1, num_queries=4, ffn_ratio=4)
        image_proj = _plus_projection_to_h94(proj.state_dict())
    else:
        proj = ImageProjection(cross_attention_dim=cross, image_embed_dim=encoder.config.projection_dim,
                               num_image_text_embeds=4)
        image_proj = {k.replace("image_embeds", "proj"): v for k, v in proj.state_dict().items()}
    # One to_k_ip/to_v_ip pair per cross-attention, numbered 1, 3, 5, … in processor order (h94's numbering).
    g = torch.Generator().manual_seed(SEED + 8)
    layers, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            attn = unet.get_submodule(name.rsplit(".", 1)[0])
            hidden = attn.to_k.out_features
            for kv in ("to_k_ip", "to_v_ip"):
                layers[f"{key_id}.{kv}.weight"] = torch.randn(hidden, cross, generator=g) * 0.5
            key_id += 2
    flat = {f"image_proj.{k}": v.contiguous() for k, v in image_proj.items()}
    flat.update({f"ip_adapter.{k}": v for k, v in layers.items()})
    save_file(flat, str(weights))
    return root


# --------------------------------------------------------------------------- LoRA
def _lora_targets(unet) -> list[str]:
    return [n for n, m in unet.named_modules()
            if isinstance(m, torch.nn.Linear) and n.split(".")[-1] in ("to_q", "to_k", "to_v") and ".attn" in n]


def _lora_weights(unet, seed: int = SEED + 9) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """module name → (down [r, in], up [out, r]); large enough to move the tiny model's output."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name in _lora_targets(unet):
        m = unet.get_submodule(name)
        out[name] = (torch.randn(LORA_RANK, m.in_features, generator=g) * 0.3,
                     torch.randn(m.out_features, LORA_RANK, generator=g) * 0.3)
    return out


def tiny_lora_diffusers(tmp_path: Path, sdxl: bool = False) -> Path:
    """UNet LoRA in the diffusers/peft layout (`unet.<module>.lora_A.weight`), alpha = rank."""
    path = Path(tmp_path) / ("tiny-lora-sdxl" if sdxl else "tiny-lora") / "pytorch_lora_weights.safetensors"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {}
        for name, (down, up) in _lora_weights(_unet(sdxl=sdxl)).items():
            state[f"unet.{name}.lora_A.weight"] = down
            state[f"unet.{name}.lora_B.weight"] = up
        save_file(state, str(path))
    return path


def tiny_lora_kohya(tmp_path: Path) -> Path:
    """The same weights as `tiny_lora_diffusers`, named as kohya-ss sd-scripts writes them."""
    path = Path(tmp_path) / "tiny-lora-kohya" / "character.safetensors"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {}
        for name, (down, up) in _lora_weights(_unet()).items():
            key = "lora_unet_" + name.replace(".", "_")
            state[f"{key}.lora_down.weight"] = down
            state[f"{key}.lora_up.weight"] = up
            state[f"{key}.alpha"] = torch.tensor(float(LORA_RANK))
        save_file(state, str(path), metadata={"ss_network_module": "networks.lora"})
    return path


def reference_faces(folder: Path) -> list[Path]:
    """Two small cartoon "photos" of one character (a face disc on red, then on blue): IP-Adapter references."""
    from PIL import Image, ImageDraw

    paths = []
    for n, colour in enumerate([(200, 40, 40), (40, 40, 200)]):
        img = Image.new("RGB", (48, 48), colour)
        ImageDraw.Draw(img).ellipse((10, 8, 38, 40), fill=(230, 190, 140))
        img.save(folder / f"aldar_{n}.png")
        paths.append(folder / f"aldar_{n}.png")
    return paths
