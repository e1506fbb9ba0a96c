"""IP-Adapter region masks: a character's reference acts inside its own figure's box, not elsewhere.

The tiny IP-Adapter's attention processors are spied on: each call is run again with the
adapter's scale at 0, and the difference is what the reference images added to each token.
Tokens are placed on the frame from the token grid alone (not from the mask the pipeline
passes), so a mask that is dropped anywhere on the way shows up as an effect outside the box.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import tiny
import torch
from diffusers.models.attention_processor import IPAdapterAttnProcessor2_0

from autokose.bible import builtin_bible
from autokose.cast import IdentityAssets
from autokose.render import RenderSettings
from autokose.render.diffusion import DiffusionRenderer
from autokose.staging import stage_story
from autokose.story import Scene, Story

W, H = 128, 64


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("ip-regions")


@pytest.fixture(scope="module")
def references(store):
    return tiny.reference_faces(store)


def token_box_mask(box, tokens: int) -> np.ndarray:
    """Which tokens of a W x H frame's attention grid have their centre inside the normalised box."""
    step = math.sqrt(W * H / tokens)
    rows, cols = round(H / step), round(W / step)
    assert rows * cols == tokens
    y = (np.arange(rows) + 0.5) / rows
    x = (np.arange(cols) + 0.5) / cols
    inside_y = (y >= box[1]) & (y <= box[3])
    inside_x = (x >= box[0]) & (x <= box[2])
    return (inside_y[:, None] & inside_x[None, :]).reshape(-1)


def ip_effects(monkeypatch) -> list[torch.Tensor]:
    """Record, per IP-Adapter attention call, |output - output without the adapter| per token: [batch, tokens]."""
    effects = []
    call = IPAdapterAttnProcessor2_0.__call__

    @functools.wraps(call)  # diffusers passes only the kwargs in the processor's signature
    def spy(self, attn, hidden_states, *args, **kwargs):
        out = call(self, attn, hidden_states, *args, **kwargs)
        scale = self.scale
        self.scale = [0.0] * len(scale)
        try:
            plain = call(self, attn, hidden_states, *args, **kwargs)
        finally:
            self.scale = scale
        delta = (out - plain).abs()
        effects.append(delta.flatten(2).mean(1) if delta.ndim == 4 else delta.mean(-1))
        return out

    monkeypatch.setattr(IPAdapterAttnProcessor2_0, "__call__", spy)
    return effects


@pytest.mark.slow
def test_reference_acts_inside_its_figures_box_far_more_than_outside(store, references, monkeypatch, tmp_path):
    bible = builtin_bible()
    story = Story(title="t", logline="Aldar Köse walks", characters=[bible["aldar"]],
                  scenes=[Scene(index=1, characters=["aldar"], action="Aldar walks across the steppe", shot="wide",
                                seed=5)])
    (layout,) = stage_story(story, W / H)
    box = next(f.box for f in layout.figures if f.id == "aldar")
    assert 0.02 < (box[2] - box[0]) * (box[3] - box[1]) < 0.5  # a real region, not the whole frame

    effects = ip_effects(monkeypatch)
    settings = RenderSettings(renderer="diffusion", width=W, height=H, diffusion=dict(
        model=str(tiny.tiny_sd15(store)), steps=2, ip_adapter=str(tiny.tiny_ip_adapter(store, "base")),
        ip_adapter_scale=1.0, cache_dir=str(tmp_path / "cache")))
    assets = {"aldar": IdentityAssets("aldar", references=references)}
    (frame,) = DiffusionRenderer(settings, assets=assets).render(story, [layout], [1])
    assert frame.meta["controls"]["ip_adapter"]["characters"] == ["aldar"]
    assert effects

    inside = outside = 0.0
    for effect in effects:
        region = torch.from_numpy(token_box_mask(box, effect.shape[1]))
        if not region.any():  # a grid too coarse for the box to hold a token centre
            continue
        cond = effect[effect.shape[0] // 2:]  # the guided half: [uncond, cond]
        inside += float(cond[:, region].mean())
        outside += float(cond[:, ~region].mean())
    assert inside > 0
    assert inside > 5 * outside, (inside, outside)


def test_region_masks_follow_each_figures_box_and_cover_the_frame_without_one():
    from autokose.regions import box_mask, crop_box, figure_boxes, region_masks

    bible = builtin_bible()
    story = Story(title="t", logline="l", characters=[bible["aldar"], bible["bai"]],
                  scenes=[Scene(index=1, characters=["aldar", "bai"], action="Aldar talks to the Bai", seed=1)])
    (layout,) = stage_story(story, W / H)
    boxes = figure_boxes(layout)
    assert set(boxes) == {"aldar", "bai"} and boxes["aldar"] != boxes["bai"]
    masks = region_masks(layout, ["aldar", "bai", "nobody"], W, H)
    for cid in ("aldar", "bai"):
        assert masks[cid].shape == (H, W) and np.array_equal(masks[cid], box_mask(boxes[cid], W, H))
        assert 0 < masks[cid].mean() < 1
    assert masks["nobody"].min() == 1  # not placed: the whole frame
    assert region_masks(None, ["aldar"], W, H)["aldar"].min() == 1
    assert not np.array_equal(masks["aldar"], masks["bai"])
    # the scorer's crop of a figure: its box, 5 % larger on each side
    from PIL import Image

    crop = crop_box(Image.new("RGB", (200, 100)), (0.25, 0.5, 0.75, 1.0))
    assert crop.size == (110, 53)
    assert crop_box(Image.new("RGB", (200, 100)), (0.5, 0.5, 0.5, 0.5)) is None
