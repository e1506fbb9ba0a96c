"""Subject-masked consistent attention: tokens cross frames only between the same character's regions."""

import numpy as np
import pytest
import torch
from tiny import _unet

from autokose.render.diffusion.consistency import (
    enable_consistent_attention,
    subject_labels,
    subject_plan,
)
from autokose.regions import token_grid

FRAMES, SIDE = 3, 8
TOKENS = SIDE * SIDE
BG, ALDAR, BAI = 0, 1, 2


def layout() -> torch.Tensor:
    """Frames 1–2: Aldar left, the Bai right, a background strip at the top; frame 3: Aldar alone, bottom rows."""
    labels = torch.zeros(FRAMES, SIDE, SIDE, dtype=torch.int64)
    labels[:2, 2:, :4], labels[:2, 2:, 4:] = ALDAR, BAI
    labels[2, 4:, :] = ALDAR
    return labels


def region(labels, frame, label) -> torch.Tensor:
    return (labels[frame].flatten() == label).nonzero().flatten()


def layer(rate=0.5, groups=2, **kwargs):
    model = _unet().eval()
    ctl = enable_consistent_attention(model, rate, groups=groups, **kwargs)
    name = ctl.layers[0]
    return ctl, model.get_submodule(name.rsplit(".", 1)[0]), model.attn_processors[name]


def states(attn, frames=FRAMES, groups=2, seed=3):
    return torch.randn(groups * frames, TOKENS, attn.to_q.in_features, generator=torch.Generator().manual_seed(seed))


def perturbed(h, row, positions, seed=7):
    h = h.clone()
    h[row, positions] += torch.randn(h[row, positions].shape, generator=torch.Generator().manual_seed(seed))
    return h


@torch.no_grad()
def test_tokens_cross_only_between_the_same_characters_regions():
    ctl, attn, proc = layer(1.0)
    labels = layout()
    ctl.set_subjects(labels)
    h = states(attn)
    base = proc(attn, h)
    cond = lambda f: FRAMES + f  # noqa: E731 - the cond row of frame f
    # The Bai's region of frame 2 changes: frame 1's Bai tokens move, its Aldar and background tokens do not.
    out = proc(attn, perturbed(h, cond(1), region(labels, 1, BAI)))
    assert (out[cond(0), region(labels, 0, BAI)] - base[cond(0), region(labels, 0, BAI)]).abs().max() > 1e-4
    assert torch.equal(out[cond(0), region(labels, 0, ALDAR)], base[cond(0), region(labels, 0, ALDAR)])
    assert torch.equal(out[cond(0), region(labels, 0, BG)], base[cond(0), region(labels, 0, BG)])
    assert torch.equal(out[cond(2)], base[cond(2)])  # frame 3 has no Bai
    assert torch.equal(out[:FRAMES], base[:FRAMES])  # the uncond half never sees the cond half
    # Aldar's region of frame 3 changes: Aldar's tokens of frames 1 and 2 move, nothing else.
    out = proc(attn, perturbed(h, cond(2), region(labels, 2, ALDAR)))
    for f in (0, 1):
        assert (out[cond(f), region(labels, f, ALDAR)] - base[cond(f), region(labels, f, ALDAR)]).abs().max() > 1e-4
        for other in (BAI, BG):
            assert torch.equal(out[cond(f), region(labels, f, other)], base[cond(f), region(labels, f, other)])
    # Background never lends: a frame's background changes only that frame.
    out = proc(attn, perturbed(h, cond(2), region(labels, 2, BG)))
    assert torch.equal(out[cond(0)], base[cond(0)]) and torch.equal(out[cond(1)], base[cond(1)])
    assert not torch.equal(out[cond(2)], base[cond(2)])


@torch.no_grad()
def test_unmasked_sharing_does_cross_regions():
    """The control for the test above: without subjects, the Bai's region reaches Aldar's tokens."""
    ctl, attn, proc = layer(1.0)
    labels, h = layout(), states(attn)
    base = proc(attn, h)
    out = proc(attn, perturbed(h, FRAMES + 1, region(labels, 1, BAI)))
    assert (out[FRAMES, region(labels, 0, ALDAR)] - base[FRAMES, region(labels, 0, ALDAR)]).abs().max() > 1e-4
    assert (out[FRAMES, region(labels, 0, BG)] - base[FRAMES, region(labels, 0, BG)]).abs().max() > 1e-4


@torch.no_grad()
def test_bank_carries_the_labels_of_its_tokens():
    """Frames 1–2 write the bank, frame 3 (Aldar and the Bai) reads it: the same rule holds across batches."""
    labels = layout()
    labels[2] = labels[0]
    ctl, attn, proc = layer(0.5)
    h = states(attn)
    write_rows, read_rows = [0, 1, 3, 4], [2, 5]

    def two_batches(h):
        ctl.reset()
        ctl.write_bank()
        ctl.set_subjects(labels[:2])
        ctl.set_step(0, 1)
        proc(attn, h[write_rows])
        ctl.read_bank()
        ctl.set_subjects(labels[2:])
        return proc(attn, h[read_rows])

    base = two_batches(h)
    bai, aldar, bg = (region(labels, 2, c) for c in (BAI, ALDAR, BG))
    out = two_batches(perturbed(h, FRAMES + 0, region(labels, 0, BAI)))  # frame 1's Bai, cond half
    assert (out[1, bai] - base[1, bai]).abs().max() > 1e-4
    assert torch.equal(out[1, aldar], base[1, aldar]) and torch.equal(out[1, bg], base[1, bg])
    assert torch.equal(out[0], base[0])  # uncond
    out = two_batches(perturbed(h, FRAMES + 1, region(labels, 1, BG)))  # background never enters the bank
    assert torch.equal(out, base)
    assert set(ctl.bank[0][ctl.layers[0]]) == {ALDAR, BAI}


@torch.no_grad()
def test_bank_written_without_subjects_cannot_be_read_with_them():
    ctl, attn, proc = layer(0.5)
    h = states(attn)
    ctl.write_bank()
    ctl.set_step(0, 1)
    proc(attn, h[[0, 1, 3, 4]])
    ctl.read_bank()
    ctl.set_subjects(layout()[2:])
    with pytest.raises(RuntimeError, match="without subject masks"):
        proc(attn, h[[2, 5]])


@torch.no_grad()
def test_one_label_everywhere_at_rate_one_is_plain_sharing():
    """Every token is Aldar's and every token is lent: the masked path computes what the unmasked one does."""
    ctl, attn, proc = layer(1.0)
    h = states(attn)
    plain = proc(attn, h)
    ctl.set_subjects(torch.ones(FRAMES, SIDE, SIDE, dtype=torch.int64))
    torch.testing.assert_close(proc(attn, h), plain, rtol=1e-5, atol=1e-5)
    ctl.set_subjects(torch.zeros(FRAMES, SIDE, SIDE, dtype=torch.int64))  # all background: no sharing at all
    torch.testing.assert_close(proc(attn, h), proc.original(attn, h), rtol=1e-5, atol=1e-6)
    ctl.set_subjects(None)
    assert torch.equal(proc(attn, h), plain)


@torch.no_grad()
def test_rate_is_the_fraction_of_each_region_lent(monkeypatch):
    import autokose.render.diffusion.consistency as consistency

    ctl, attn, proc = layer()
    labels = layout()
    ctl.set_subjects(labels)
    seen = []
    sdpa = consistency.F.scaled_dot_product_attention

    def spy(query, key, value, **kwargs):
        seen.append((query.shape[-2], key.shape[-2]))
        return sdpa(query, key, value, **kwargs)

    monkeypatch.setattr(consistency.F, "scaled_dot_product_attention", spy)
    h = states(attn)
    for rate in (0.25, 1.0):
        ctl.rate = rate
        seen.clear()
        proc(attn, h)
        aldar = [round(rate * int((labels[f] == ALDAR).sum())) for f in range(FRAMES)]  # 24, 24, 32 at rate 1
        bai = [round(rate * int((labels[f] == BAI).sum())) for f in range(FRAMES)]  # 24, 24, 0
        # One call per label, queries padded to the largest region (background: 32 in frame 3);
        # keys: own tokens + the most any frame lends, from each other frame (padded).
        assert seen == [(32, TOKENS), (32, TOKENS + (FRAMES - 1) * max(aldar)), (24, TOKENS + (FRAMES - 1) * max(bai))]


@torch.no_grad()
def test_lent_tokens_come_from_their_own_region_and_vary_with_the_step():
    ctl, attn, proc = layer(0.5, seed=4)
    labels = layout()
    ctl.set_subjects(labels)
    plan = ctl.plan(TOKENS, FRAMES, "cpu")
    picks = []
    for step in (0, 1):
        ctl.set_step(step, 4)
        lent = ctl.lent(plan, "cpu")
        for c, positions in lent.items():
            for f in range(FRAMES):
                real = positions[f][plan.lenders[c].valid[f]]
                assert (labels[f].flatten()[real] == c).all()
                assert len(set(real.tolist())) == len(real) == round(0.5 * int((labels[f] == c).sum()))
        picks.append(lent[ALDAR])
    assert not torch.equal(*picks)


def test_plan_groups_every_token_once():
    labels = layout().flatten(1)
    plan = subject_plan(labels, 0.5)
    assert list(plan.queries) == [BG, ALDAR, BAI]
    flat = torch.cat(list(plan.queries.values()), dim=1)
    for f in range(FRAMES):  # each token's output is read from the slot that holds its own query
        assert torch.equal(flat[f][plan.source[f]], torch.arange(TOKENS))


@pytest.mark.parametrize("latent, tokens, grid", [
    ((54, 96), 54 * 96, (54, 96)), ((54, 96), 27 * 48, (27, 48)), ((54, 96), 14 * 24, (14, 24)),
    ((54, 96), 7 * 12, (7, 12)), ((96, 168), 24 * 42, (24, 42)), ((6, 8), 2 * 2, (2, 2)),
])
def test_token_grid_follows_the_unets_ceil_downsampling(latent, tokens, grid):
    assert token_grid(latent, tokens) == grid


def test_subjects_for_another_latent_size_fail_clearly():
    assert token_grid((54, 96), 100) is None
    ctl, attn, proc = layer()
    ctl.set_subjects(layout(), latent_size=(54, 96))
    with pytest.raises(RuntimeError, match="no downsampling"):
        proc(attn, states(attn))


def test_subject_labels_from_regions():
    box = lambda x0, x1: np.pad(np.ones((4, x1 - x0), np.float32), ((0, 0), (x0, 8 - x1)))  # noqa: E731 - [4, 8]
    ids = {"bai": 5}
    labels = subject_labels([[("aldar", box(0, 5)), ("bai", box(3, 8))], [], [("wife", box(2, 4))]], ids, (4, 8))
    assert ids == {"bai": 5, "aldar": 6, "wife": 7}  # new names get the next free label, old ones keep theirs
    assert labels.dtype == torch.int64 and labels.shape == (3, 4, 8)
    assert labels[0, 0].tolist() == [6, 6, 6, 0, 0, 5, 5, 5]  # the overlap belongs to neither
    assert not labels[1].any()
    assert labels[2, 0].tolist() == [0, 0, 7, 7, 0, 0, 0, 0]
    again = subject_labels([[("wife", box(0, 8))]], ids, (2, 4))  # a later batch, masks resized to the size asked
    assert again.tolist() == [[[7] * 4] * 2] and ids["wife"] == 7
    with pytest.raises(ValueError, match="positive"):
        subject_labels([[("x", box(0, 2))]], {"x": 0}, (4, 8))


def test_bad_labels_are_refused():
    ctl, *_ = layer()
    with pytest.raises(ValueError, match="integer"):
        ctl.set_subjects(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="≥ 0"):
        ctl.set_subjects(-torch.ones(3, 8, 8, dtype=torch.int64))


# --------------------------------------------------------------------------- through the UNet
def unet_inputs(frames=FRAMES, side=16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(2 * frames, 4, side, side, generator=g), torch.randn(2 * frames, 5, 32, generator=g)


@torch.no_grad()
def test_unet_rate_zero_with_subjects_is_bit_identical_to_stock():
    latents, text = unet_inputs()
    model = _unet().eval()
    stock = model(latents, 500, encoder_hidden_states=text).sample
    ctl = enable_consistent_attention(model, 0.0, blocks=("down", "up"))
    ctl.set_subjects(layout(), latent_size=(16, 16))
    assert torch.equal(model(latents, 500, encoder_hidden_states=text).sample, stock)


@pytest.mark.slow
@torch.no_grad()
def test_unet_background_only_subjects_are_stock_and_subjects_change_the_output():
    latents, text = unet_inputs()
    model = _unet().eval()
    stock = model(latents, 500, encoder_hidden_states=text).sample
    ctl = enable_consistent_attention(model, 0.5, blocks=("down", "up"))
    ctl.set_subjects(torch.zeros(FRAMES, 16, 16, dtype=torch.int64))
    torch.testing.assert_close(model(latents, 500, encoder_hidden_states=text).sample, stock, rtol=1e-5, atol=1e-5)
    ctl.set_subjects(layout(), latent_size=(16, 16))  # 8x8 labels for 16x16 latents: resized per layer
    masked = model(latents, 500, encoder_hidden_states=text).sample
    ctl.set_subjects(None)
    plain = model(latents, 500, encoder_hidden_states=text).sample
    assert (masked - stock).abs().max() > 1e-4 and (masked - plain).abs().max() > 1e-4


@torch.no_grad()
def test_unet_subjects_for_another_batch_size_fail_clearly():
    model = _unet().eval()
    ctl = enable_consistent_attention(model, 0.5)
    ctl.set_subjects(layout()[:2], latent_size=(16, 16))
    latents, text = unet_inputs()
    with pytest.raises(RuntimeError, match="for 2 frames"):
        model(latents, 500, encoder_hidden_states=text)


# --------------------------------------------------------------------------- settings
def test_consistency_settings_defaults_forms_and_errors():
    from autokose.errors import InputError
    from autokose.render.diffusion.settings import DiffusionSettings

    s = DiffusionSettings.from_render({"model": "m"})
    assert (s.consistency_masked, s.consistency_steps, s.consistency_blocks) == (True, (0.0, 1.0), ["up"])
    s = DiffusionSettings.from_render({"model": "m", "consistency_steps": "0, 0.6",
                                       "consistency_blocks": "down,up_blocks.1"})
    assert (s.consistency_steps, s.consistency_blocks) == ((0.0, 0.6), ["down", "up_blocks.1"])
    assert DiffusionSettings.model_validate(s.model_dump(mode="json")) == s  # manifest round trip
    for bad, match in (({"consistency_steps": [0.6, 0.2]}, "start < end"), ({"consistency_steps": [0, 1.5]}, "≤ 1"),
                       ({"consistency_blocks": ["sideways"]}, "no UNet block"),
                       ({"consistency_blocks": []}, "at least"), ({"consistency_steps": "0.5"}, "consistency_steps")):
        with pytest.raises(InputError, match=match):
            DiffusionSettings.from_render({"model": "m", **bad})


@pytest.mark.slow
@torch.no_grad()
def test_fused_qkv_gives_the_same_masked_result():
    from autokose.render.diffusion.speed import fuse_self_attention_qkv

    latents, text = unet_inputs()
    outs = []
    for fuse in (False, True):
        model = _unet().eval()
        if fuse:
            fuse_self_attention_qkv(model)
        enable_consistent_attention(model, 0.5, blocks=("down", "up")).set_subjects(layout(), latent_size=(16, 16))
        outs.append(model(latents, 500, encoder_hidden_states=text).sample)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------- through the renderer
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    import tiny

    return tiny.tiny_sd15(tmp_path_factory.mktemp("subject-models"))


def two_scene_board(second: str):
    """Scene 1 has Aldar alone, scene 2 the Bai alone: masked, they have nothing to share."""
    from autokose.bible import builtin_bible
    from autokose.story import Scene, Story

    bible = builtin_bible()
    return Story(title="Coat", logline="Aldar Köse sells the Bai a coat", characters=[bible["aldar"], bible["bai"]],
                 scenes=[Scene(index=1, characters=["aldar"], prompt="aldarkose walks across the steppe", seed=1),
                         Scene(index=2, characters=["bai"], prompt=second, seed=2)])


def render_board(model, story, **options) -> dict:
    from autokose.render import RenderSettings
    from autokose.render.diffusion import DiffusionRenderer
    from autokose.staging import stage_story

    settings = RenderSettings(renderer="diffusion", width=64, height=64,
                              diffusion=dict(model=str(model), steps=2, consistency=0.5, **options))
    frames = DiffusionRenderer(settings).render(story, stage_story(story), [s.index for s in story.scenes])
    return {f.index: np.asarray(f.image, dtype=np.int16) for f in frames}


@pytest.mark.slow
def test_the_renderer_shares_tokens_only_between_the_same_characters_boxes(tiny_model, monkeypatch):
    from autokose.render.diffusion.consistency import ConsistencyController

    seen = []
    original = ConsistencyController.set_subjects
    monkeypatch.setattr(ConsistencyController, "set_subjects",
                        lambda self, labels, latent_size=None: (seen.append(labels), original(self, labels, latent_size)))
    a = two_scene_board("greedybai shivers in the yurt")
    b = two_scene_board("a storyboard sketch of the steppe and a hat")
    masked_a, masked_b = render_board(tiny_model, a), render_board(tiny_model, b)
    # each frame is labelled with its own character inside its box, background elsewhere
    labels = seen[0]
    assert labels.shape == (2, 8, 8)
    assert set(labels[0].unique().tolist()) == {0, 1} and set(labels[1].unique().tolist()) == {0, 2}
    assert (masked_a[2] != masked_b[2]).any()
    assert (masked_a[1] == masked_b[1]).all(), "Aldar's frame borrowed from the Bai's frame"
    plain_a = render_board(tiny_model, a, consistency_masked=False)
    plain_b = render_board(tiny_model, b, consistency_masked=False)
    assert seen[-1] is None
    assert (plain_a[1] != plain_b[1]).any(), "unmasked sharing should reach the other frame"
