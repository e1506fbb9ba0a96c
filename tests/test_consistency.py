"""Consistent self-attention: frames couple only when asked, only within their CFG half."""

import pytest
import torch
from tiny import _unet

from autokose.errors import InputError
from autokose.render.diffusion.consistency import ConsistentAttnProcessor, enable_consistent_attention
from autokose.render.diffusion.speed import fuse_self_attention_qkv

FRAMES = 3


def unet():
    return _unet().eval()


def inputs(frames=FRAMES, groups=2, seed=0):
    """Latents and text states for `groups` halves of `frames` frames: [uncond..., cond...]."""
    g = torch.Generator().manual_seed(seed)
    batch = frames * groups
    latents = torch.randn(batch, 4, 8, 8, generator=g)
    text = torch.randn(batch, 5, 32, generator=g)
    return latents, text


@torch.no_grad()
def run(model, latents, text, t=500):
    return model(latents, t, encoder_hidden_states=text).sample


def changed(text, index, seed=99):
    text = text.clone()
    text[index] = torch.randn(text[index].shape, generator=torch.Generator().manual_seed(seed))
    return text


def test_rate_zero_is_bit_identical_to_stock():
    model = unet()
    latents, text = inputs()
    stock = run(model, latents, text)
    ctl = enable_consistent_attention(model, 0.0)
    assert torch.equal(run(model, latents, text), stock)
    ctl.disable()
    assert torch.equal(run(model, latents, text), stock)


def test_only_self_attention_of_chosen_blocks_is_replaced():
    model = unet()
    before = dict(model.attn_processors)
    ctl = enable_consistent_attention(model, 0.5, blocks=("up",))
    after = model.attn_processors
    replaced = {n for n in after if isinstance(after[n], ConsistentAttnProcessor)}
    assert replaced == set(ctl.layers) and replaced
    assert all(n.startswith("up_blocks.") and n.endswith("attn1.processor") for n in replaced)
    for name in before:  # cross-attention (where IP-Adapter lives) and other blocks keep their processor object
        if name not in replaced:
            assert after[name] is before[name]
    ctl.disable()
    assert all(model.attn_processors[n] is before[n] for n in before)


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_another_frame_changes_this_frame_only_when_sharing(rate):
    model = unet()
    enable_consistent_attention(model, rate)
    latents, text = inputs()
    first_cond, last_cond = FRAMES, 2 * FRAMES - 1
    base = run(model, latents, text)
    other = run(model, latents, changed(text, last_cond))  # frame 3's prompt, cond half
    assert not torch.equal(other[last_cond], base[last_cond])
    if rate == 0:
        assert torch.equal(other[first_cond], base[first_cond])
    else:
        assert (other[first_cond] - base[first_cond]).abs().max() > 1e-4
    assert torch.equal(other[:FRAMES], base[:FRAMES])  # the uncond half never sees the cond half


RATES = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0)


def test_rate_sets_how_many_tokens_each_frame_borrows(monkeypatch):
    """The keys a frame attends to: its own tokens plus round(rate x tokens) from each other frame."""
    import autokose.render.diffusion.consistency as consistency

    model = unet()
    ctl = enable_consistent_attention(model, 0.5)
    name = ctl.layers[0]
    attn = model.get_submodule(name.rsplit(".", 1)[0])
    proc = model.attn_processors[name]
    tokens = 64
    h = torch.randn(2 * FRAMES, tokens, attn.to_q.in_features, generator=torch.Generator().manual_seed(3))
    seen = []
    sdpa = consistency.F.scaled_dot_product_attention

    def spy(query, key, value, **kwargs):
        seen.append(key.shape[-2])
        return sdpa(query, key, value, **kwargs)

    monkeypatch.setattr(consistency.F, "scaled_dot_product_attention", spy)
    with torch.no_grad():
        for rate in RATES:
            ctl.rate = rate
            proc(attn, h)
    assert seen == [tokens + (FRAMES - 1) * max(1, round(rate * tokens)) for rate in RATES]


def test_rate_magnitude_scales_the_effect_monotonically():
    """More borrowed tokens pull a frame further from its stock output, in the processor and the UNet."""
    model = unet()
    ctl = enable_consistent_attention(model, 0.5)
    name = ctl.layers[0]
    attn = model.get_submodule(name.rsplit(".", 1)[0])
    proc = model.attn_processors[name]
    h = torch.randn(2 * FRAMES, 256, attn.to_q.in_features, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        stock = proc.original(attn, h)
        moved = []
        for rate in RATES:
            ctl.rate = rate
            moved.append(float((proc(attn, h) - stock).abs().mean()))
    assert all(a < b for a, b in zip(moved, moved[1:])), moved
    assert moved[-1] > 2 * moved[0]

    g = torch.Generator().manual_seed(0)  # 16x16 latents: enough tokens for the UNet's effect to be smooth
    latents, text = torch.randn(2 * FRAMES, 4, 16, 16, generator=g), torch.randn(2 * FRAMES, 5, 32, generator=g)
    stock = run(unet(), latents, text)
    outs = {}
    for rate in (0.2, 0.8):
        shared = unet()
        enable_consistent_attention(shared, rate)
        outs[rate] = run(shared, latents, text)
    assert (outs[0.2] - outs[0.8]).abs().max() > 1e-3
    assert (outs[0.8] - stock).abs().mean() > 1.2 * (outs[0.2] - stock).abs().mean()


def test_guidance_halves_never_mix():
    model = unet()
    enable_consistent_attention(model, 1.0, blocks=("down", "mid", "up"))
    latents, text = inputs()
    base = run(model, latents, text)
    # Change an uncond frame (prompt and latents): the other uncond frames move, the cond half does not.
    latents2 = latents.clone()
    latents2[0] += 1.0
    out = run(model, latents2, changed(text, 0))
    assert (out[1] - base[1]).abs().max() > 1e-4
    assert torch.equal(out[FRAMES:], base[FRAMES:])
    # And the other way round.
    out = run(model, latents, changed(text, FRAMES))
    assert (out[FRAMES + 1] - base[FRAMES + 1]).abs().max() > 1e-4
    assert torch.equal(out[:FRAMES], base[:FRAMES])


def test_without_guidance_one_group_shares_across_the_whole_batch():
    model = unet()
    enable_consistent_attention(model, 0.5, groups=1)
    latents, text = inputs(frames=4, groups=1)
    base = run(model, latents, text)
    out = run(model, latents, changed(text, 3))
    assert (out[0] - base[0]).abs().max() > 1e-4
    odd = unet()
    enable_consistent_attention(odd, 0.5, groups=2)
    with pytest.raises(RuntimeError, match="groups"):
        run(odd, *inputs(frames=3, groups=1))


def render_in_two_batches(model, ctl, text, latents, steps=2):
    """Frames 1–2 write the bank, frame 3 reads it; two 'steps' with different samples."""
    outs = []
    for batch, mode in ((slice(0, 2), ctl.write_bank), (slice(2, 3), ctl.read_bank)):
        mode()
        idx = [i for i in range(FRAMES)][batch]
        rows = idx + [FRAMES + i for i in idx]  # uncond rows then cond rows of these frames
        x = latents[rows]
        for step in range(steps):
            ctl.set_step(step, steps)
            x = x + 0.1 * run(model, x, text[rows], t=900 - 400 * step)
        outs.append(x)
    return outs


def test_bank_couples_frames_rendered_in_separate_batches():
    latents, text = inputs()
    results = {}
    for rate in (0.0, 0.5):
        model = unet()
        ctl = enable_consistent_attention(model, rate)
        base = render_in_two_batches(model, ctl, text, latents)
        ctl.reset()
        other = render_in_two_batches(model, ctl, changed(text, FRAMES), latents)  # frame 1's cond prompt
        results[rate] = (base, other)
    base, other = results[0.0]
    assert torch.equal(base[1], other[1])
    base, other = results[0.5]
    assert not torch.equal(base[0], other[0])
    assert (base[1][1] - other[1][1]).abs().max() > 1e-4  # frame 3, cond half, in the second batch
    assert torch.equal(base[1][0], other[1][0])  # its uncond half only saw the (unchanged) uncond bank


def test_read_before_write_and_wrong_steps_fail_clearly():
    model = unet()
    ctl = enable_consistent_attention(model, 0.5)
    with pytest.raises(RuntimeError, match="write_bank"):
        ctl.read_bank()
    ctl.write_bank()
    ctl.set_step(0, 2)
    run(model, *inputs(frames=2))
    ctl.read_bank()
    ctl.set_step(1, 2)
    with pytest.raises(RuntimeError, match="no bank"):
        run(model, *inputs(frames=1))


def test_reruns_are_identical_and_the_seed_matters():
    latents, text = inputs()
    outs = []
    for seed in (7, 7, 8):
        model = unet()
        enable_consistent_attention(model, 0.3, seed=seed)
        outs.append(run(model, latents, text))
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_step_range_limits_sharing_to_those_steps():
    model = unet()
    latents, text = inputs()
    stock = run(model, latents, text)
    ctl = enable_consistent_attention(model, 0.5, step_range=(0.0, 0.5))
    ctl.set_step(0, 4)
    assert not torch.equal(run(model, latents, text), stock)
    ctl.set_step(2, 4)
    assert torch.equal(run(model, latents, text), stock)


def test_step_callback_advances_the_step():
    model = unet()
    ctl = enable_consistent_attention(model, 0.5)

    class Pipe:
        num_timesteps = 10

    kwargs = {"latents": 1}
    assert ctl.on_step_end(Pipe(), 3, 0, kwargs) is kwargs
    assert (ctl.step, ctl.steps) == (4, 10)


@pytest.mark.parametrize("rate", [0.0, 0.5])
def test_fused_qkv_gives_the_same_result(rate):
    latents, text = inputs()
    model = unet()
    plain = run(model, latents, text)
    cross = {n: p for n, p in model.attn_processors.items() if "attn2" in n}
    assert fuse_self_attention_qkv(model) == len(cross)
    assert all(model.attn_processors[n] is p for n, p in cross.items())  # IP-Adapter's place is kept
    enable_consistent_attention(model, rate)
    expected = plain
    if rate:
        unfused = unet()
        enable_consistent_attention(unfused, rate)
        expected = run(unfused, latents, text)
    torch.testing.assert_close(run(model, latents, text), expected, rtol=1e-4, atol=1e-5)


def test_attention_mask_extends_to_borrowed_tokens():
    model = unet()
    ctl = enable_consistent_attention(model, 0.5)
    name = ctl.layers[0]
    attn = model.get_submodule(name.rsplit(".", 1)[0])
    proc = model.attn_processors[name]
    h = torch.randn(2 * FRAMES, 16, attn.to_q.in_features, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        free = proc(attn, h)
        zeros = proc(attn, h, attention_mask=torch.zeros(2 * FRAMES, 1, 16))
        ones = proc(attn, h, attention_mask=torch.ones(2 * FRAMES, 1, 16, dtype=torch.bool))
    torch.testing.assert_close(zeros, free)
    torch.testing.assert_close(ones, free)


@pytest.mark.parametrize("kwargs, match", [
    ({"rate": 1.5}, "between 0"),
    ({"rate": -0.1}, "between 0"),
    ({"rate": 0.5, "blocks": ("sideways",)}, "no self-attention"),
    ({"rate": 0.5, "step_range": (0.6, 0.2)}, "step range"),
])
def test_bad_settings_are_input_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        enable_consistent_attention(unet(), **kwargs)


# --------------------------------------------------------------------------- through the renderer
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import tiny

    return tiny.tiny_sd15(tmp_path_factory.mktemp("consistency-models"))


def board(changed: int, prompt: str):
    from autokose.bible import builtin_bible
    from autokose.story import Scene, Story

    bible = builtin_bible()
    prompts = {1: "aldarkose walks across the steppe", 2: "aldarkose shows a hat", 3: "greedybai shivers in the yurt"}
    prompts[changed] = prompt
    cast = {1: ["aldar"], 2: ["aldar", "bai"], 3: ["bai"]}
    return Story(title="Coat", logline="Aldar Köse sells the Bai a coat", characters=[bible["aldar"], bible["bai"]],
                 scenes=[Scene(index=i, characters=cast[i], prompt=prompts[i], seed=i) for i in (1, 2, 3)])


def render_pixels(model, story, **options) -> dict:
    import numpy as np

    from autokose.render import RenderSettings
    from autokose.render.diffusion import DiffusionRenderer
    from autokose.staging import stage_story

    settings = RenderSettings(renderer="diffusion", width=64, height=64,
                              diffusion=dict(model=str(model), steps=2, **options))
    frames = DiffusionRenderer(settings).render(story, stage_story(story), [s.index for s in story.scenes])
    return {f.index: np.asarray(f.image, dtype=np.int16) for f in frames}


@pytest.mark.slow
@pytest.mark.parametrize("batch_size, changed, watched, masked", [
    (3, 3, 1, False),  # one batch: frame 3's prompt reaches frame 1
    (2, 1, 3, False),  # batches [1, 2] then [3]: frame 1 reaches frame 3 through the bank
    # masked: frame 2 (Aldar and the Bai) reaches frame 3 (the Bai) through the bank, by the Bai's box
    (2, 2, 3, True),
])
def test_renderer_another_frames_prompt_reaches_this_frame_only_with_consistency(tiny_model, batch_size, changed,
                                                                                 watched, masked):
    a, b = board(changed, "a storyboard sketch of the steppe and a hat"), board(changed, "the man and the yurt")
    for rate in (0.0, 0.5):
        pa = render_pixels(tiny_model, a, consistency=rate, batch_size=batch_size, consistency_masked=masked)
        pb = render_pixels(tiny_model, b, consistency=rate, batch_size=batch_size, consistency_masked=masked)
        assert (pa[changed] != pb[changed]).any()
        assert (pa[watched] != pb[watched]).any() == (rate > 0), f"consistency {rate}, batch size {batch_size}"


def test_the_token_key_lives_on_the_device_and_follows_the_step():
    """The key is copied to a device once and refilled there each step (no blocking copy per layer)."""
    ctl = enable_consistent_attention(unet(), 0.5)
    ctl.set_step(1, 10)
    key = ctl.key_on("cpu")
    first = ctl.sample(64, FRAMES, "cpu")
    ctl.set_step(2, 10)
    assert ctl.key_on("cpu") is key and int(key) == int(ctl.key)
    assert not torch.equal(ctl.sample(64, FRAMES, "cpu"), first)  # another step lends other tokens
    ctl.set_step(1, 10)
    assert torch.equal(ctl.sample(64, FRAMES, "cpu"), first)
