"""Temporal consistency pieces (flow, warp, occlusion, init, warped noise, deflicker) and the warp-error metric.

Synthetic frames check each piece against a known answer; the real clip checks that they behave on
footage. The clip is read with PyAV directly so these tests do not depend on the project's reader.
"""

import json

import cv2
import numpy as np
import pytest
import torch

from autokose.video import metrics, temporal

H, W = 120, 200


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture: something optical flow can lock onto everywhere."""
    rng = np.random.default_rng(seed)
    img = cv2.GaussianBlur(rng.random((h, w, 3)).astype(np.float32), (0, 0), 2.0)
    return cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)


BIG = texture(H + 40, W + 40)


def crop(dx: int = 0, dy: int = 0) -> np.ndarray:
    """A view of BIG whose content sits (dx, dy) pixels right/down of `crop()`'s."""
    return BIG[20 - dy:20 - dy + H, 20 - dx:20 - dx + W].copy()


def clip_frames(shared_data, count: int, size=(320, 180)) -> list[np.ndarray]:
    av = pytest.importorskip("av")
    path = shared_data / "video" / "short_hamilton_clip.mp4"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(cv2.resize(frame.to_ndarray(format="rgb24"), size, interpolation=cv2.INTER_AREA))
            if len(frames) == count:
                break
    return frames


# -- flow, warp, occlusion --------------------------------------------------------------------
def test_flow_recovers_a_shift():
    a, b = crop(), crop(dx=5, dy=-3)  # content moves 5 right, 3 up
    f = temporal.flow(a, b)
    assert f.dtype == np.float32 and f.shape == (H, W, 2)
    inner = f[15:-15, 15:-15].reshape(-1, 2)
    assert np.allclose(np.median(inner, axis=0), [5, -3], atol=0.1)
    assert np.mean(np.abs(inner - [5, -3]) < 0.5) > 0.95


def test_warp_pulls_b_back_onto_a():
    a, b = crop(), crop(dx=5, dy=-3)
    pulled = temporal.warp(b, temporal.flow(a, b))
    assert pulled.dtype == np.uint8 and pulled.shape == a.shape
    inner = (slice(15, -15), slice(15, -15))
    assert np.abs(pulled[inner].astype(int) - a[inner]).mean() < 1.0
    assert np.abs(b[inner].astype(int) - a[inner]).mean() > 10  # the frames did differ


def test_warp_convention_on_an_exact_flow():
    """out[y, x] = image[y + dy, x + dx]: a constant integer flow is an exact shift."""
    image = np.arange(H * W * 3, dtype=np.float32).reshape(H, W, 3)
    f = np.zeros((H, W, 2), np.float32)
    f[..., 0], f[..., 1] = 4, 2
    out = temporal.warp(image, f)
    assert np.array_equal(out[:-2, :-4], image[2:, 4:])


def test_occlusion_marks_the_disoccluded_strip():
    a, b = crop(), crop(dx=8)  # content moves right: b's left 8 columns are new
    occluded = temporal.occlusion(temporal.flow(b, a), temporal.flow(a, b))  # on b's grid
    assert occluded.dtype == bool and occluded.shape == (H, W)
    assert occluded[:, :8].mean() > 0.9
    assert occluded[:, 12:].mean() < 0.02


def test_occlusion_behind_a_moving_object():
    """A square slides right over a static background: the background it uncovers is occluded."""
    background = texture(H, W, seed=1)
    square = texture(40, 40, seed=2)
    a, b = background.copy(), background.copy()
    a[40:80, 60:100] = square
    b[40:80, 72:112] = square
    occluded = temporal.occlusion(temporal.flow(b, a), temporal.flow(a, b))  # on b's grid
    uncovered = occluded[44:76, 62:70]  # background in b that the square hid in a
    assert uncovered.mean() > 0.6
    assert occluded[:, :40].mean() < 0.02 and occluded[:, 140:].mean() < 0.02


def test_resize_flow_scales_vectors():
    f = np.zeros((64, 96, 2), np.float32)
    f[..., 0], f[..., 1] = 16, -8
    small = temporal.resize_flow(f, (8, 12))
    assert small.shape == (8, 12, 2)
    assert np.allclose(small[..., 0], 2) and np.allclose(small[..., 1], -1)
    mask = np.zeros((64, 96), bool)
    mask[3, 5] = True
    assert temporal.resize_mask(mask, (8, 12)).sum() == 1 and temporal.resize_mask(mask, (8, 12))[0, 0]


# -- the img2img init -------------------------------------------------------------------------
def test_flow_guided_init():
    current = crop(dx=6)
    prev_input = crop()
    prev_stylised = 255 - prev_input  # any "style": an inverted frame
    back = temporal.flow(current, prev_input)
    occluded = temporal.occlusion(back, temporal.flow(prev_input, current))
    init = temporal.flow_guided_init(prev_stylised, back, current, occluded, blend=1.0)
    inner = (slice(10, -10), slice(16, -10))
    assert np.abs(init[inner].astype(int) - (255 - current[inner])).mean() < 1.5  # the style moved along
    assert np.array_equal(init[:, :6][occluded[:, :6]], current[:, :6][occluded[:, :6]])  # new strip from input
    assert np.array_equal(temporal.flow_guided_init(prev_stylised, back, current, occluded, blend=0.0), current)
    half = temporal.flow_guided_init(prev_stylised, back, current, np.zeros((H, W), bool), blend=0.5)
    full = temporal.warp(prev_stylised, back).astype(int)
    assert np.abs(half.astype(int) - (full + current) / 2).max() <= 1


# -- noise from the frames --------------------------------------------------------------------
def test_warped_noise_is_gaussian_and_deterministic():
    prev = torch.randn((4, 64, 96), generator=torch.Generator().manual_seed(1))
    f = np.zeros((64, 96, 2), np.float32)
    f[..., 0] = 2.3
    f[..., 1] = np.linspace(-3, 3, 64)[:, None]  # shear: some sources shared, some cells uncovered
    occluded = np.zeros((64, 96), bool)
    occluded[20:30, 40:50] = True
    n1 = temporal.warped_noise(prev, f, occluded, 7)
    n2 = temporal.warped_noise(prev, f, occluded, 7)
    n3 = temporal.warped_noise(prev, f, occluded, 8)
    assert n1.shape == prev.shape and n1.dtype == torch.float32
    assert torch.equal(n1, n2) and not torch.equal(n1, n3)
    for c in range(4):
        assert abs(float(n1[c].mean())) < 0.05 and abs(float(n1[c].std()) - 1) < 0.05
    # most cells carry the previous sample exactly (no re-standardisation): the noise moved along
    same = torch.eq(n1[:, 5:-5, 5:-5], n3[:, 5:-5, 5:-5]).float().mean()
    assert same > 0.8
    src_x = np.rint(np.arange(96)[None, :] + f[..., 0]).astype(int)
    src_y = np.rint(np.arange(64)[:, None] + f[..., 1]).astype(int)
    y, x = 40, 60  # inside the frame, not occluded: its sample comes from where the flow points
    if torch.eq(n1[:, y, x], n3[:, y, x]).all():
        assert torch.equal(n1[:, y, x], prev[:, src_y[y, x], src_x[y, x]])
    # and it is still white: no neighbour correlation from duplicated samples
    x = n1[:, :, :-1].reshape(-1).numpy()
    y = n1[:, :, 1:].reshape(-1).numpy()
    assert abs(np.corrcoef(x, y)[0, 1]) < 0.05
    kurtosis = float((n1 ** 4).mean())
    assert 2.7 < kurtosis < 3.3


def test_warped_noise_on_zoom_stays_white():
    """A zoom stretches the previous noise; without `unique` neighbours would copy one sample."""
    prev = torch.randn((4, 64, 64), generator=torch.Generator().manual_seed(0))
    yy, xx = np.mgrid[0:64, 0:64].astype(np.float32)
    f = np.stack([(xx - 32) * -0.3, (yy - 32) * -0.3], axis=-1)  # cell x reads x - 0.3(x - c): zoom in
    for unique, bound in ((True, 0.05), (False, 1.0)):
        n = temporal.warped_noise(prev, f, None, 3, unique=unique)
        corr = np.corrcoef(n[:, :, :-1].reshape(-1).numpy(), n[:, :, 1:].reshape(-1).numpy())[0, 1]
        assert abs(corr) < bound if unique else corr > 0.2


def test_warped_noise_static_flow_keeps_the_noise():
    prev = temporal.noise_for_clip([crop()], (4, 15, 25), seed=3)[0]
    same = temporal.warped_noise(prev, np.zeros((15, 25, 2), np.float32), None, 9)
    assert torch.allclose(same, prev, atol=1e-5)


def test_noise_for_clip_chunks_join_without_a_seam():
    frames = [crop(dx=2 * i, dy=i % 2) for i in range(6)]
    whole = temporal.noise_for_clip(frames, (4, 15, 25), seed=11)
    head = temporal.noise_for_clip(frames[:4], (4, 15, 25), seed=11)
    tail = temporal.noise_for_clip(frames[3:], (4, 15, 25), seed=11, start=3, first=head[-1])
    assert len(whole) == 6 and all(n.shape == (4, 15, 25) for n in whole)
    for a, b in zip(whole, head + tail[1:], strict=True):
        assert torch.equal(a, b)
    other = temporal.noise_for_clip(frames, (4, 15, 25), seed=12)
    assert not torch.equal(whole[0], other[0])


def test_init_and_noise_each_lower_the_warp_error_of_a_toy_stylizer():
    """A stand-in for img2img: half the init, half a 'style' of the current frame plus the frame's
    noise. Carrying the previous output (flow-guided init) and moving the noise with the footage
    (warped noise) each make the output flicker less than the per-frame baseline."""
    frames = [crop(dx=2 * i, dy=-(i % 3)) for i in range(8)]
    motions = metrics.temporal_flows(frames)
    backward = [temporal.motion_pair(frames[i - 1], frames[i])[1] for i in range(1, len(frames))]
    gen = torch.Generator().manual_seed(0)
    fresh = [torch.randn((3, H, W), generator=gen) for _ in frames]
    moving = temporal.noise_for_clip(frames, (3, H, W), seed=0, flows=backward)

    def stylise(noise, carry):
        out = []
        for t, frame in enumerate(frames):
            if carry and out:
                back = backward[t - 1]
                init = temporal.flow_guided_init(out[-1], back.flow, frame, back.occluded)
            else:
                init = frame
            drawn = 255.0 - frame + 25 * noise[t].permute(1, 2, 0).numpy()
            out.append(np.clip(0.5 * init + 0.5 * drawn, 0, 255).astype(np.uint8))
        return out

    errors = metrics.warp_errors({"baseline": stylise(fresh, False), "init": stylise(fresh, True),
                                  "noise": stylise(moving, False), "both": stylise(moving, True)}, motions)
    assert errors["init"] < 0.9 * errors["baseline"]
    assert errors["noise"] < 0.1 * errors["baseline"]
    assert errors["both"] < 0.2 * errors["baseline"]


# -- deflicker and the metric -----------------------------------------------------------------
def test_warp_error_is_zero_for_a_still_video():
    frames = [crop()] * 4
    motions = metrics.temporal_flows(frames)
    assert len(motions) == 3
    assert metrics.warp_error(frames, motions) < 1e-6


def test_metrics_json_shape():
    data = metrics.metrics_json(input=0.001, output=0.004, baseline=0.02, frames=275, fps=30000 / 1001)
    assert data["warp_error"] == {"input": 0.001, "output": 0.004, "baseline": 0.02, "ratio": pytest.approx(0.2)}
    assert data["frames"] == 275 and data["fps"] == pytest.approx(29.97, abs=1e-3)
    json.dumps(data)
    assert metrics.metrics_json(input=0.0, output=0.1, frames=2, fps=24)["warp_error"]["baseline"] is None
    with pytest.raises(ValueError):
        metrics.metrics_json(input=float("nan"), output=0.1, frames=2, fps=24)


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        temporal.flow(crop().astype(np.float32), crop())
    with pytest.raises(ValueError, match="differ in size"):
        temporal.warp(crop(), np.zeros((10, 10, 2), np.float32))
    with pytest.raises(ValueError, match="resize_flow"):
        temporal.warped_noise(torch.zeros(4, 8, 8), np.zeros((16, 16, 2), np.float32), None, 0)


@pytest.mark.slow
def test_real_clip_warp_error_noise_and_deflicker(shared_data):
    frames = clip_frames(shared_data, 16)
    motions = metrics.temporal_flows(frames)
    occluded_share = float(np.mean([m.occluded.mean() for m in motions]))
    assert occluded_share < 0.2

    # per-frame independent noise flickers far more than noise that moves with the footage
    backward = [temporal.motion_pair(frames[i - 1], frames[i])[1] for i in range(1, len(frames))]
    moving = temporal.noise_for_clip(frames, (3, 180, 320), seed=0, flows=backward)
    gen = torch.Generator().manual_seed(0)
    fresh = [torch.randn((3, 180, 320), generator=gen) for _ in frames]

    def noisy(noise):
        return [np.clip(f + 20 * n.permute(1, 2, 0).numpy(), 0, 255).astype(np.uint8) for f, n in zip(frames, noise)]

    errors = metrics.warp_errors({"input": frames, "moving": noisy(moving), "fresh": noisy(fresh)}, motions)
    assert errors["moving"] < 0.5 * errors["fresh"]
    assert errors["input"] < errors["moving"]

    # brightness / colour flicker, then deflicker
    rng = np.random.default_rng(0)
    jittered = [np.clip(f * rng.uniform(0.85, 1.15, 3) + rng.uniform(-12, 12), 0, 255).astype(np.uint8)
                for f in frames]
    smoothed = temporal.deflicker(jittered, 1.0)
    kept = temporal.deflicker(frames, 1.0)
    errors |= metrics.warp_errors({"jittered": jittered, "deflickered": smoothed, "input_deflickered": kept}, motions)
    assert errors["deflickered"] < 0.5 * errors["jittered"]
    assert errors["input_deflickered"] < 1.2 * errors["input"]
    assert np.mean([np.abs(k.astype(int) - f).mean() for k, f in zip(kept, frames)]) < 3
    print({k: round(v, 6) for k, v in errors.items()}, "occluded", round(occluded_share, 4))
