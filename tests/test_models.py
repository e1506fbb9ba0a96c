"""Model loading from users' places (HF cache, diffusers folders, single files), offline, on tiny models."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import tiny
import torch

from autokose import models
from autokose.errors import InputError


def generate(pipe, seed: int = 0, **kwargs) -> np.ndarray:
    out = pipe("aldarkose in the steppe", num_inference_steps=2, height=64, width=96, output_type="np",
               generator=torch.Generator().manual_seed(seed), **kwargs)
    return np.asarray(out.images)


def test_config_dir_points_into_the_package():
    assert models.config_dir("sd15").parts[-3:] == ("data", "models", "sd15")
    assert models.config_dir("sdxl").name == "sdxl"
    with pytest.raises(ValueError):
        models.config_dir("sd3")


def test_detects_architecture_of_folders_and_files(store):
    file, _ = tiny.tiny_sd15_single_file(store)
    assert models.detect_arch(str(tiny.tiny_sd15(store))) == "sd15"
    assert models.detect_arch(str(file)) == "sd15"
    assert models.detect_arch(str(tiny.tiny_sdxl(store))) == "sdxl"
    assert models.arch_of_keys(["conditioner.embedders.1.model.ln_final.weight", "model.diffusion_model.x"]) == "sdxl"
    assert models.arch_of_keys(["cond_stage_model.transformer.text_model.x"]) == "sd15"


@pytest.mark.slow
def test_single_file_and_folder_give_the_same_pixels(store):
    folder = tiny.tiny_sd15(store)
    file, config = tiny.tiny_sd15_single_file(store)
    a = models.load_pipeline(str(folder))
    b = models.load_pipeline(str(file), config=str(config))
    assert type(a).__name__ == type(b).__name__ == "StableDiffusionPipeline"
    x, y = generate(a), generate(b)
    assert x.shape == (1, 64, 96, 3)
    assert x.std() > 0.01  # a real image, not a constant
    np.testing.assert_array_equal(x, y)


def test_single_file_needs_a_config_folder(store, tmp_path):
    file, _ = tiny.tiny_sd15_single_file(store)
    with pytest.raises(InputError, match="model_index.json"):
        models.load_pipeline(str(file), config=str(tmp_path))


def test_missing_hub_model_offline_names_the_id_and_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    with pytest.raises(InputError) as err:
        models.load_pipeline("someone/not-a-cached-model")
    message = str(err.value)
    assert "someone/not-a-cached-model" in message
    assert "huggingface-cli download someone/not-a-cached-model" in message


@pytest.mark.parametrize("suffix", [".ckpt", ".bin", ".pt", ".pth"])
def test_pickled_weights_are_refused_without_unpickling(tmp_path, monkeypatch, suffix):
    class Boom:
        def __reduce__(self):
            return (print, ("unpickled!",))

    bad = tmp_path / f"model{suffix}"
    bad.write_bytes(pickle.dumps(Boom()))
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load was called"))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("pickle.load was called"))
    for call in (lambda: models.load_pipeline(str(bad)), lambda: models.load_vae(str(bad)),
                 lambda: models.load_controlnet(str(bad))):
        with pytest.raises(InputError, match="pickled weights"):
            call()


def test_missing_paths_and_non_pipeline_folders_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        models.load_pipeline(str(tmp_path / "nothing.safetensors"))
    with pytest.raises(InputError, match="no such file"):
        models.load_pipeline("./models/missing")
    with pytest.raises(InputError, match="model_index.json"):
        models.load_pipeline(str(tmp_path))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not safetensors at all")
    with pytest.raises(InputError, match="safetensors"):
        models.load_pipeline(str(junk))


def test_dtype_and_device_resolution():
    assert models.resolve_dtype(None, "cpu") == torch.float32
    assert models.resolve_dtype(None, "cuda") == torch.float16
    assert models.resolve_dtype("bf16", "cuda") == torch.bfloat16
    with pytest.raises(InputError, match="dtype"):
        models.resolve_dtype("float8", "cpu")
    if not torch.cuda.is_available():
        assert models.resolve_device(None) in ("cpu", "mps")
        with pytest.raises(InputError, match="CUDA"):
            models.resolve_device("cuda")


@pytest.mark.slow
def test_separate_vae_from_folder_and_single_file(store, tmp_path):
    """A VAE with other weights changes the pixels; the same VAE as a single file gives the same ones."""
    from diffusers import AutoencoderKL
    from safetensors.torch import save_file

    folder = tiny.tiny_sd15(store)
    base = models.load_pipeline(str(folder))
    vae = AutoencoderKL.from_pretrained(folder / "vae")
    tiny._noise_weights(vae, seed=7, std=0.05)
    vae.save_pretrained(tmp_path / "vae", safe_serialization=True)
    ldm = {}
    for k, v in vae.state_dict().items():
        name, value = tiny._vae_key_to_ldm(k, v, vae.config)
        ldm[name] = value.contiguous()
    save_file(ldm, str(tmp_path / "vae.safetensors"))  # the bare-key layout of standalone VAE files

    with_folder = models.load_pipeline(str(folder), vae=str(tmp_path / "vae"))
    with_file = models.load_pipeline(str(folder), vae=str(tmp_path / "vae.safetensors"))
    x, y, z = generate(base), generate(with_folder), generate(with_file)
    assert np.abs(x - y).max() > 0.01
    np.testing.assert_allclose(y, z, atol=1e-6)


def test_load_components_for_training(store):
    from diffusers import DDPMScheduler

    parts = models.load_components(str(tiny.tiny_sd15(store)))
    assert parts.arch == "sd15"
    assert isinstance(parts.noise_scheduler, DDPMScheduler)
    assert parts.noise_scheduler.config.beta_schedule == "scaled_linear"
    assert parts.text_encoder_2 is None and parts.tokenizer is not None
    xl = models.load_components(str(tiny.tiny_sdxl(store)))
    assert xl.arch == "sdxl" and xl.text_encoder_2 is not None and xl.tokenizer_2 is not None


def test_sdxl_pipeline_generates(store):
    pipe = models.load_pipeline(str(tiny.tiny_sdxl(store)))
    assert type(pipe).__name__ == "StableDiffusionXLPipeline"
    assert generate(pipe).shape == (1, 64, 96, 3)


def test_controlnet_variant_is_chosen(store):
    pipe = models.load_pipeline(str(tiny.tiny_sd15(store)), controlnet=str(tiny.tiny_controlnet(store)))
    assert type(pipe).__name__ == "StableDiffusionControlNetPipeline"
    with pytest.raises(InputError, match="controlnet"):
        models.load_pipeline(str(tiny.tiny_sd15(store)), controlnet="nobody/no-controlnet-here")
