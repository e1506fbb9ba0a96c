"""Each training option, checked by its own effect (not by "the loss changed").

A trainer is set up on the tiny SD 1.5 model exactly as `LoraTrainer.run` sets it up, then
one piece of the step is looked at: the cached latents (flip), the noise (noise offset), the
per-sample weighting (min-SNR), the prior term (class images), the micro-batches (gradient
accumulation) and the learning rate of each step (scheduler and warm-up).
"""

from __future__ import annotations

import numpy as np
import pytest
import tiny
import torch
from test_train import make_refs

from autokose.bible import builtin_bible
from autokose.cast.dataset import prepare_images
from autokose.cast.train import LoraTrainer, config_for

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-options")
    tiny.tiny_sd15(root)
    make_refs(root / "refs")
    return root


def trainer(workdir, out, **options) -> LoraTrainer:
    """A trainer ready for its first step (what `LoraTrainer.run` does before `train`)."""
    settings = dict(images=str(workdir / "refs"), model=str(workdir / "tiny-sd15"), out=str(out), resolution=64,
                    steps=3, rank=4, learning_rate=1e-2, batch_size=1, checkpoint_every=0, render_validation=False,
                    validation_steps=2)
    cfg = config_for(builtin_bible()["aldar"], **{**settings, **options})
    t = LoraTrainer(cfg)
    t.out.mkdir(parents=True, exist_ok=True)
    t.arch, t.resolution = "sd15", 64
    t.dataset = prepare_images(cfg.images, resolution=64, caption=cfg.caption, trigger=cfg.trigger, min_side=None)
    t.setup_models()
    t.class_set = t.prepare_class_images() if cfg.class_images else None
    t.add_adapters()
    t.cache_inputs()
    t.setup_optimizer()
    return t


def loss_at(t: LoraTrainer, position: int = 0, seed: int = 0, **changes) -> float:
    """The loss of one micro-batch with these config changes, same draws every time."""
    saved = t.config
    t.config = saved.model_copy(update=changes)
    try:
        with torch.no_grad():
            return float(t.micro_batch_loss(position, torch.Generator().manual_seed(seed)))
    finally:
        t.config = saved


def test_flip_caches_the_mirrored_image_as_a_second_variant(workdir, tmp_path):
    plain = trainer(workdir, tmp_path / "plain")
    flipped = trainer(workdir, tmp_path / "flip", flip=True)
    assert [len(v) for v in plain.latents] == [1] * 4
    assert [len(v) for v in flipped.latents] == [2] * 4
    image = flipped.dataset.images[0].image.transpose(0)  # left-right mirror
    pixels = torch.from_numpy(np.asarray(image, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)[None]
    with torch.no_grad():
        mirrored = flipped.comps.vae.encode(pixels).latent_dist.mean[0]
    torch.testing.assert_close(flipped.latents[0][1][0], mirrored)
    torch.testing.assert_close(flipped.latents[0][0][0], plain.latents[0][0][0])
    assert not torch.allclose(flipped.latents[0][0][0], flipped.latents[0][1][0])


def test_min_snr_weights_each_sample_by_min_snr_gamma_over_snr(workdir, tmp_path, monkeypatch):
    import diffusers.training_utils as training_utils

    t = trainer(workdir, tmp_path / "snr")
    snrs = []
    compute = training_utils.compute_snr

    def record(scheduler, timesteps):
        snrs.append(compute(scheduler, timesteps))
        return snrs[-1]

    monkeypatch.setattr(training_utils, "compute_snr", record)
    plain = loss_at(t, snr_gamma=None)
    assert not snrs  # off: no weighting at all
    assert loss_at(t, snr_gamma=1e9) == pytest.approx(plain, rel=1e-5)  # gamma above every SNR: weight 1
    snr = float(snrs[-1][0])  # batch size 1: one timestep
    assert loss_at(t, snr_gamma=snr / 4) == pytest.approx(plain / 4, rel=1e-4)


def test_noise_offset_adds_a_per_channel_constant_to_the_noise(workdir, tmp_path, monkeypatch):
    t = trainer(workdir, tmp_path / "offset")
    noises = []
    add_noise = t.comps.noise_scheduler.add_noise

    def record(latents, noise, timesteps):
        noises.append(noise.clone())
        return add_noise(latents, noise, timesteps)

    monkeypatch.setattr(t.comps.noise_scheduler, "add_noise", record)
    loss_at(t, noise_offset=0.0)
    loss_at(t, noise_offset=0.5)
    shift = noises[1] - noises[0]  # [batch, channels, h, w]
    per_channel = shift.mean(dim=(2, 3), keepdim=True)
    assert float(per_channel.abs().min()) > 1e-3
    torch.testing.assert_close(shift, per_channel.expand_as(shift))


def test_prior_preservation_generates_class_images_and_adds_their_loss(workdir, tmp_path):
    classes = tmp_path / "class-images"
    t = trainer(workdir, tmp_path / "prior", class_images=str(classes), num_class_images=2,
                class_prompt="a photo of a man")
    assert sorted(p.name for p in classes.iterdir()) == ["class-00000.png", "class-00001.png"]
    assert len(t.class_latents) == 2 and t.class_captions == ["a photo of a man"] * 2
    losses = [loss_at(t, prior_loss_weight=w) for w in (0.0, 1.0, 2.0)]
    prior_term = losses[1] - losses[0]
    assert prior_term > 1e-4  # the class images' loss is there ...
    assert losses[2] - losses[1] == pytest.approx(prior_term, rel=1e-3)  # ... weighted by --prior-loss-weight


def test_grad_accum_runs_that_many_micro_batches_per_step(workdir, tmp_path, monkeypatch):
    t = trainer(workdir, tmp_path / "accum", grad_accum=2)
    seen = []
    micro = t.micro_batch_loss

    def record(position, g):
        loss = micro(position, g)
        seen.append((position, float(loss)))
        return loss

    monkeypatch.setattr(t, "micro_batch_loss", record)
    first = t.train_step(1)
    second = t.train_step(2)
    assert [p for p, _ in seen] == [0, 1, 2, 3]  # two new images per step, none repeated
    assert first == pytest.approx((seen[0][1] + seen[1][1]) / 2, rel=1e-5)  # the mean of the micro-batches
    assert second == pytest.approx((seen[2][1] + seen[3][1]) / 2, rel=1e-5)


def test_lr_scheduler_and_warmup_set_each_steps_rate(workdir, tmp_path):
    def rates(**options):
        t = trainer(workdir, tmp_path / "lr" / str(len(list((tmp_path).glob("lr/*")))), **options)
        t.train(0)
        return [float(line.split()[-1]) for line in (t.out / "train.log").read_text().splitlines()
                if line.startswith("step ")]

    assert rates() == pytest.approx([1e-2] * 3)  # constant, the default
    assert rates(lr_scheduler="cosine", lr_warmup_steps=1) == pytest.approx([0.0, 1e-2, 5e-3])
    assert rates(lr_scheduler="linear") == pytest.approx([1e-2, 1e-2 * 2 / 3, 1e-2 / 3], rel=1e-2)


# --------------------------------------------------------------------------- captions: the renderer's encoding
def truncating_encode(pipe, caption: str):
    """How training encoded a caption before it shared `autokose.prompt_embeds`: cut at 77 tokens."""
    pairs = [(pipe.tokenizer, pipe.text_encoder)]
    if getattr(pipe, "text_encoder_2", None) is not None:
        pairs.append((pipe.tokenizer_2, pipe.text_encoder_2))
    hidden, pooled = [], None
    for tok, te in pairs:
        ids = tok(caption, padding="max_length", max_length=tok.model_max_length, truncation=True,
                  return_tensors="pt").input_ids
        if len(pairs) == 1:
            return te(ids)[0], None
        output = te(ids, output_hidden_states=True)
        hidden.append(output.hidden_states[-2])
        pooled = output[0]
    return torch.cat(hidden, dim=-1), pooled


@pytest.mark.parametrize("arch", ["sd15", "sdxl"])
def test_short_captions_encode_exactly_as_before_and_as_the_renderer_does(workdir, arch):
    from autokose.models import load_pipeline
    from autokose.prompt_embeds import encode_prompts, encode_windows, token_windows

    pipe = load_pipeline(str(tiny.tiny_sd15(workdir) if arch == "sd15" else tiny.tiny_sdxl(workdir)))
    tokenizers = [t for t in (pipe.tokenizer, getattr(pipe, "tokenizer_2", None)) if t is not None]
    encoders = [e for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if e is not None]
    caption = "a photo of aldarkose, cheerful beardless young man in a fur hat"
    body = len(pipe.tokenizer(caption, add_special_tokens=False).input_ids)
    assert body <= 75
    with torch.no_grad():
        hidden, pooled = encode_windows(encoders, [[w] for w in token_windows(tokenizers, caption)])
        old_hidden, old_pooled = truncating_encode(pipe, caption)
        rendered = encode_prompts(pipe, [caption], [""])
    assert hidden.shape[1] == 77
    assert torch.equal(hidden, old_hidden)
    torch.testing.assert_close(hidden, rendered.prompt)  # batched with the negative: equal up to float order
    if arch == "sd15":
        assert pooled is None and old_pooled is None
    else:
        assert pooled.shape == (1, 32) and torch.equal(pooled, old_pooled)
        torch.testing.assert_close(pooled, rendered.pooled)


def test_a_long_caption_conditions_on_all_of_its_words(workdir, tmp_path):
    """Tokens past 77 used to be cut off; now they reach the cached embeddings (two windows)."""
    from autokose.prompt_embeds import count_windows

    long = "a photo of aldarkose, " + "cheerful beardless young man in a fur hat, " * 3
    embeds = {}
    for tail in ("yurt", "donkey"):
        t = trainer(workdir, tmp_path / tail, caption=long + tail)
        caption = t.captions[0]
        assert caption.endswith(tail) and count_windows(t.tokenizers[0], caption) == 2
        embeds[tail], pooled = t.embeddings[caption]
        assert pooled is None and embeds[tail].shape[1] == 2 * 77
        with torch.no_grad():
            assert torch.equal(truncating_encode(t.comps, caption)[0], truncating_encode(t.comps, long)[0])
    assert torch.equal(embeds["yurt"][:, :77], embeds["donkey"][:, :77])  # the first window is the same words
    assert not torch.allclose(embeds["yurt"][:, 77:], embeds["donkey"][:, 77:])
    assert np.isfinite(loss_at(t))


def test_captions_of_different_lengths_share_a_batch_each_on_its_own_windows(workdir, tmp_path):
    """Two window counts in one batch: the UNet sees each sample with its own caption, as alone."""
    t = trainer(workdir, tmp_path / "mixed")
    unet = t.models["unet"]
    g = torch.Generator().manual_seed(0)
    noisy, timesteps = torch.randn(3, 4, 8, 8, generator=g), torch.tensor([10, 500, 900])
    prompts = [torch.randn(1, 77 * n, 32, generator=g) for n in (1, 2, 1)]
    with torch.no_grad():
        together = t.predict(noisy, timesteps, prompts, None)
        alone = torch.cat([unet(noisy[i:i + 1], timesteps[i:i + 1], prompts[i]).sample for i in range(3)])
    assert together.shape == noisy.shape
    torch.testing.assert_close(together, alone, rtol=1e-4, atol=1e-5)


def test_text_encoder_training_encodes_every_window_with_gradients(workdir, tmp_path):
    long = "a photo of aldarkose, " + "cheerful beardless young man in a fur hat, " * 3 + "yurt"
    t = trainer(workdir, tmp_path / "te", caption=long, train_text_encoder=True)
    assert t.embeddings == {}  # nothing cached: the encoders change every step
    hidden, _ = t.encode_prompt(t.token_ids[t.captions[0]])
    assert hidden.shape[1] == 2 * 77 and hidden.requires_grad
    t.micro_batch_loss(0, torch.Generator().manual_seed(0)).backward()
    grads = [p.grad for name, p in t.trainable_parameters().items() if name.startswith("text_encoder.")]
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)
