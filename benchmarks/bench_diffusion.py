"""Diffusion renderer speed: an 8-frame board with ControlNet + IP-Adapter + consistent attention.

Full-size SD 1.5 (512x512) and SDXL (1024x1024) built from the shipped config skeletons
(`autokose.models.config_dir`) with random weights, so nothing is downloaded:

- UNet, VAE and text encoders from the skeleton configs;
- an OpenPose-style ControlNet: `ControlNetModel.from_unet` (the real ControlNet layout);
- IP-Adapter in the h94 "base" layout (`image_proj.proj` + `to_k_ip`/`to_v_ip` per
  cross-attention) with a CLIP ViT-H/14 image encoder (the h94 `models/image_encoder`).

Side by side in one run, same weights, same scheduler (DPM++ 2M Karras), 25 steps, CFG 7:

- plain: a diffusers ControlNet pipeline called once per frame, fp16 + SDPA, the reference
  image passed as `ip_adapter_image` (what a careful user would write);
- autokose: `DiffusionRenderer.render()` on the whole board (one batch of 8 frames, prompts
  encoded in 75-token windows, IP-Adapter embedding computed once per character), then the
  same with each further optimisation switched on, so each one's gain shows.

Timings are wall clock from the call to PIL images, after a warm-up board of 2 steps.
Random weights change no kernel, so speeds carry over to real checkpoints.

    python benchmarks/bench_diffusion.py --out results.json           # CUDA GPU
    python benchmarks/bench_diffusion.py --tiny --out /tmp/tiny.json  # CPU smoke test, tiny configs
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import platform
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path

import torch

T0 = time.perf_counter()
SIZES = {"sd15": 512, "sdxl": 1024}
# CLIP ViT-H/14 vision tower, as in h94/IP-Adapter models/image_encoder/config.json.
VIT_H = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=16, image_size=224,
             patch_size=14, projection_dim=1024, hidden_act="gelu", layer_norm_eps=1e-5)
TINY_TEXT = dict(hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
TINY_UNET = {
    "sd15": dict(block_out_channels=[32, 64], down_block_types=["CrossAttnDownBlock2D", "DownBlock2D"],
                 up_block_types=["UpBlock2D", "CrossAttnUpBlock2D"], layers_per_block=1, cross_attention_dim=32,
                 attention_head_dim=8),
    "sdxl": dict(block_out_channels=[32, 64], down_block_types=["DownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "UpBlock2D"], layers_per_block=1, cross_attention_dim=64,
                 attention_head_dim=[4, 8], transformer_layers_per_block=[1, 2], addition_time_embed_dim=8,
                 projection_class_embeddings_input_dim=6 * 8 + 32),
}
TINY_VAE = dict(block_out_channels=[32] * 4, layers_per_block=1)
TINY_VIT = dict(TINY_TEXT, image_size=224, patch_size=14, hidden_act="gelu")
ACTIONS = ["rides a donkey across the steppe", "bows to the greedy bai at his yurt", "points at the sky",
           "whispers a secret", "holds out an empty bag", "laughs by the fire", "runs with a fur coat",
           "waves goodbye from the hill"]


def log(*args) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s]", *args, flush=True)


# --------------------------------------------------------------------------- models with random weights
def build_pipeline(arch: str, device: str, dtype, tiny: bool):
    """A ControlNet pipeline of `arch` with IP-Adapter loaded; random weights, real shapes."""
    import diffusers
    from diffusers import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from transformers import (
        CLIPTextConfig,
        CLIPTextModel,
        CLIPTextModelWithProjection,
        CLIPTokenizer,
        CLIPVisionConfig,
        CLIPVisionModelWithProjection,
    )

    from autokose.models import config_dir
    from autokose.render.diffusion.engine import make_scheduler

    root = config_dir(arch)
    unet_cfg = dict(UNet2DConditionModel.load_config(root / "unet"), **(TINY_UNET[arch] if tiny else {}))
    vae_cfg = dict(AutoencoderKL.load_config(root / "vae"), **(TINY_VAE if tiny else {}))

    def text(sub: str, cls):
        cfg = CLIPTextConfig.from_pretrained(root / sub)
        if tiny:
            cfg.update(TINY_TEXT)
        return cls(cfg).eval()

    torch.manual_seed(0)
    with torch.device(device):
        parts = dict(
            unet=UNet2DConditionModel.from_config(unet_cfg),
            vae=AutoencoderKL.from_config(vae_cfg),
            text_encoder=text("text_encoder", CLIPTextModel),
            image_encoder=CLIPVisionModelWithProjection(CLIPVisionConfig(**(TINY_VIT if tiny else VIT_H))).eval(),
        )
        parts["controlnet"] = ControlNetModel.from_unet(parts["unet"])
        if arch == "sdxl":
            parts["text_encoder_2"] = text("text_encoder_2", CLIPTextModelWithProjection)
    parts = {k: m.to(dtype) for k, m in parts.items()}
    parts["tokenizer"] = CLIPTokenizer.from_pretrained(root / "tokenizer")
    scheduler_cls = getattr(diffusers, json.loads((root / "scheduler" / "scheduler_config.json").read_text())["_class_name"])
    parts["scheduler"] = make_scheduler("dpmpp_2m_karras", scheduler_cls.load_config(root / "scheduler"))
    if arch == "sdxl":
        parts["tokenizer_2"] = CLIPTokenizer.from_pretrained(root / "tokenizer_2")
        pipe = diffusers.StableDiffusionXLControlNetPipeline(feature_extractor=None, **parts)
    else:
        pipe = diffusers.StableDiffusionControlNetPipeline(safety_checker=None, feature_extractor=None,
                                                           requires_safety_checker=False, **parts)
    pipe.set_progress_bar_config(disable=True)
    pipe.load_ip_adapter(ip_adapter_state_dict(pipe.unet, pipe.image_encoder.config.projection_dim),
                         subfolder="", weight_name="", image_encoder_folder=None)
    pipe.set_ip_adapter_scale(0.6)
    return pipe


def ip_adapter_state_dict(unet, image_embed_dim: int) -> dict:
    """IP-Adapter (base) weights in the h94 layout: 4 image tokens, to_k_ip/to_v_ip per cross-attention."""
    cross = unet.config.cross_attention_dim
    g = torch.Generator().manual_seed(1)
    image_proj = {"proj.weight": torch.randn(cross * 4, image_embed_dim, generator=g) * 0.02,
                  "proj.bias": torch.zeros(cross * 4), "norm.weight": torch.ones(cross), "norm.bias": torch.zeros(cross)}
    layers, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            hidden = unet.get_submodule(name.removesuffix(".processor")).to_k.out_features
            for kv in ("to_k_ip", "to_v_ip"):
                layers[f"{key_id}.{kv}.weight"] = torch.randn(hidden, cross, generator=g) * 0.02
            key_id += 2
    return {"image_proj": image_proj, "ip_adapter": layers}


# --------------------------------------------------------------------------- the board
def board(frames: int, tmp: Path):
    """A story of `frames` scenes with Aldar Köse (reference image) and the bai, its layouts and assets."""
    from PIL import Image

    from autokose.bible import load_bible
    from autokose.cast import IdentityAssets
    from autokose.staging import Layout, stage_story
    from autokose.story import Scene, Shot, Story

    bible = load_bible(None)
    shots = [Shot.wide, Shot.medium, Shot.close_up, Shot.medium]
    scenes = [Scene(index=i + 1, characters=["aldar", "bai"] if i % 2 else ["aldar"], action=ACTIONS[i % len(ACTIONS)],
                    shot=shots[i % len(shots)], seed=1000 + i) for i in range(frames)]
    story = Story(title="Benchmark", logline="Aldar Köse tricks the greedy bai.",
                  characters=[bible.characters["aldar"], bible.characters["bai"]], scenes=scenes)
    try:
        layouts = stage_story(story)
    except Exception as e:  # staging still being built: empty layouts draw blank pose images
        log(f"staging unavailable ({type(e).__name__}); blank layouts")
        layouts = [Layout(index=s.index, shot=s.shot, setting=s.setting) for s in scenes]
    ref = tmp / "aldar.png"
    g = torch.Generator().manual_seed(2)
    Image.fromarray((torch.rand(512, 512, 3, generator=g) * 255).byte().numpy()).save(ref)
    assets = {"aldar": IdentityAssets("aldar", trigger="aldarkose", references=[ref])}
    return story, layouts, assets, ref


def ensure_pose_drawing() -> str:
    """Use autokose.openpose when present; otherwise blank control images (same tensor shapes and cost)."""
    from PIL import Image

    from autokose.render.diffusion import controls

    try:
        import autokose.openpose  # noqa: F401

        return "autokose.openpose"
    except ImportError:
        controls.pose_images = lambda layouts, w, h: [Image.new("RGB", (w, h)) for _ in layouts]
        return "blank (autokose.openpose not available)"


def renderer(pipe, arch: str, device: str, dtype, *, steps: int, consistency: float, size: int, frames: int,
             cache: Path, assets: dict):
    """AutoKöse's DiffusionRenderer around an already built pipeline (no loading from disk)."""
    from autokose.render import RenderSettings
    from autokose.render.diffusion import controls
    from autokose.render.diffusion.engine import Session
    from autokose.render.diffusion.renderer import DiffusionRenderer

    settings = RenderSettings(renderer="diffusion", width=size, height=size, diffusion=dict(
        model="random-weights", controlnet="random-weights", ip_adapter="random-weights", consistency=consistency,
        steps=steps, cfg=7.0, batch_size=frames, cache_dir=str(cache)))
    r = DiffusionRenderer(settings, assets=assets)
    r.engine._session = Session(pipe=pipe, arch=arch, device=device, dtype=dtype,
                         ip=controls.IpAdapterFiles(Path("random"), Path("random"), "ip-adapter_random"),
                         refs=controls.ReferenceEmbeddings(pipe, f"random-{arch}-{cache.name}", cache))
    return r


def render_board(r, story, layouts) -> list:
    return list(r.render(story, layouts, [s.index for s in story.scenes]))


def plain_board(pipe, story, layouts, ref, texts: dict, *, steps: int, size: int, scenes=None) -> list:
    """What a diffusers user writes: one pipeline call per frame, same prompts, poses, reference, seeds.

    `texts` maps scene index → (prompt, negative prompt) as the renderer built them.
    """
    from PIL import Image

    from autokose.render.diffusion import controls

    reference = Image.open(ref).convert("RGB")
    images = []
    for scene in scenes or story.scenes:
        prompt, negative = texts[scene.index]
        pose = controls.pose_images([layouts[scene.index - 1]], size, size)[0]
        out = pipe(prompt=prompt, negative_prompt=negative, image=pose, ip_adapter_image=reference,
                   num_inference_steps=steps, guidance_scale=7.0, controlnet_conditioning_scale=0.8, height=size,
                   width=size, output_type="pil", generator=torch.Generator("cpu").manual_seed(scene.seed))
        images += out.images
    return images


# --------------------------------------------------------------------------- optimisations
def channels_last(pipe, on: bool = True) -> None:
    fmt = torch.channels_last if on else torch.contiguous_format
    for part in (pipe.unet, pipe.controlnet, pipe.vae):
        part.to(memory_format=fmt)


def cudnn_attention():
    """Prefer cuDNN's fused attention (Hopper) over FlashAttention-2 for every SDPA call."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    order = [SDPBackend.CUDNN_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    return sdpa_kernel(order, set_priority=True)


def fuse_qkv(pipe) -> int:
    from autokose.render.diffusion.consistency import fuse_self_attention_qkv

    return fuse_self_attention_qkv(pipe.unet) + fuse_self_attention_qkv(pipe.controlnet)


def compile_models(pipe, device: str) -> None:
    if device == "cpu":  # smoke test: trace with dynamo, skip code generation
        pipe.unet.compile(backend="aot_eager")
        pipe.controlnet.compile(backend="aot_eager")
        return
    import torch._inductor.config as inductor

    inductor.conv_1x1_as_mm = True
    pipe.unet.compile(fullgraph=False, dynamic=False)
    pipe.controlnet.compile(fullgraph=False, dynamic=False)


# --------------------------------------------------------------------------- measuring
def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def measure(device: str, fn, frames: int) -> dict:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    sync(device)
    t = time.perf_counter()
    images = fn()
    sync(device)
    seconds = time.perf_counter() - t
    assert len(images) == frames, f"expected {frames} images, got {len(images)}"
    out = {"seconds": round(seconds, 3), "images_per_s": round(frames / seconds, 4)}
    if device.startswith("cuda"):
        out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out


def bench_arch(arch: str, args, device: str, dtype, results: dict, save) -> None:
    size = 64 if args.tiny else SIZES[arch]
    frames, steps = args.frames, args.steps
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-{arch}-"))
    story, layouts, assets, ref = board(frames, tmp)
    log(f"{arch}: building full-size random-weight pipeline" if not args.tiny else f"{arch}: tiny pipeline")
    t = time.perf_counter()
    pipe = build_pipeline(arch, device, dtype, args.tiny)
    rows: dict = {}
    results["archs"][arch] = {"size": size, "frames": frames, "steps": steps, "build_s": round(time.perf_counter() - t, 1),
                              "params_unet": sum(p.numel() for p in pipe.unet.parameters()), "runs": rows}
    log(f"{arch}: built in {time.perf_counter() - t:.1f}s")

    def left() -> float:
        return args.deadline - (time.perf_counter() - T0)

    def run(name: str, what: str, fn, warm=None, estimate: float = 0.0) -> None:
        if left() < estimate:
            rows[name] = {"skipped": f"not enough time left ({left():.0f}s < {estimate:.0f}s)", "what": what}
            log(f"{arch}/{name}: skipped")
            save()
            return
        try:
            if warm is not None:
                tw = time.perf_counter()
                warm()
                sync(device)
                warm_s = time.perf_counter() - tw
            row = {"what": what, **measure(device, fn, frames)}
            if warm is not None:
                row["warmup_s"] = round(warm_s, 1)
            base = rows.get("plain", {}).get("images_per_s")
            if base and name != "plain":
                row["speedup_vs_plain"] = round(row["images_per_s"] / base, 2)
            rows[name] = row
            log(f"{arch}/{name}: {row}")
        except Exception as e:  # keep the other measurements
            rows[name] = {"what": what, "error": f"{type(e).__name__}: {str(e)[:400]}"}
            log(f"{arch}/{name}: FAILED {rows[name]['error']}")
        save()

    def ours(consistency: float, n_steps: int):
        cache = tmp / f"cache-{len(rows)}-{n_steps}"
        return renderer(pipe, arch, device, dtype, steps=n_steps, consistency=consistency, size=size, frames=frames,
                        cache=cache, assets=assets)

    rate = args.consistency
    # The renderer's own prompts (frame metadata), so both paths denoise the same text.
    tw = time.perf_counter()
    texts = {f.index: (f.meta["prompt"], f.meta.get("negative_prompt", ""))
             for f in render_board(ours(rate, 2), story, layouts)}
    log(f"{arch}: first (2-step) board {time.perf_counter() - tw:.1f}s")
    run("plain", "diffusers pipeline once per frame (fp16, SDPA)",
        lambda: plain_board(pipe, story, layouts, ref, texts, steps=steps, size=size),
        warm=lambda: plain_board(pipe, story, layouts, ref, texts, steps=2, size=size, scenes=story.scenes[:1]))
    board_s = rows.get("plain", {}).get("seconds", 60.0)

    def ours_run(name: str, what: str, consistency: float, estimate: float, context=None) -> None:
        if name in args.skip:
            return
        context = context or contextlib.nullcontext

        def timed():
            with context():
                return render_board(ours(consistency, steps), story, layouts)

        def warm():
            with context():
                return render_board(ours(consistency, 2), story, layouts)

        run(name, what, timed, warm=warm, estimate=estimate)

    ours_run("autokose", f"DiffusionRenderer, one batch of {frames}, consistency {rate}", rate, board_s)
    board_s = rows.get("autokose", {}).get("seconds", board_s)  # what one of our boards takes from here on
    ours_run("autokose_no_consistency", "the same with consistency 0 (cost of consistent attention)", 0.0, board_s)
    results["archs"][arch]["fused_qkv_layers"] = fuse_qkv(pipe)
    ours_run("autokose_fused", "+ fused self-attention QKV (UNet, ControlNet)", rate, board_s)
    if device.startswith("cuda"):
        ours_run("autokose_fused_cudnn", "+ cuDNN attention preferred for SDPA", rate, board_s, context=cudnn_attention)
    if "autokose_fused_channels_last" not in args.skip:
        channels_last(pipe)
        ours_run("autokose_fused_channels_last", "+ channels_last (UNet, ControlNet, VAE)", rate, board_s)
        channels_last(pipe, on=False)
    if arch == "sdxl" and "autokose_fused_fp16vae" not in args.skip:
        force_upcast = pipe.vae.config.force_upcast
        pipe.vae.register_to_config(force_upcast=False)
        ours_run("autokose_fused_fp16vae", "+ fp16 VAE decode (an fp16-safe VAE such as sdxl-vae-fp16-fix)",
                 rate, board_s)
        pipe.vae.register_to_config(force_upcast=force_upcast)
    if args.compile and "autokose_fused_compiled" not in args.skip:
        compile_models(pipe, device)
        ours_run("autokose_fused_compiled", "+ torch.compile(UNet, ControlNet), inductor default mode",
                 rate, 2 * board_s + args.compile_estimate[arch])


def versions() -> dict:
    out = {"python": platform.python_version(), "torch": torch.__version__}
    for dist in ("diffusers", "transformers", "accelerate", "peft"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
        out["cuda"] = torch.version.cuda
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", nargs="+", default=["sd15", "sdxl"], choices=["sd15", "sdxl"])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--consistency", type=float, default=0.5)
    p.add_argument("--tiny", action="store_true", help="tiny configs on CPU, 2 steps: checks the script runs")
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--compile-estimate", type=json.loads, default={"sd15": 120, "sdxl": 240},
                   help="seconds torch.compile is expected to take per arch (JSON), for --deadline")
    p.add_argument("--skip", nargs="*", default=[], help="measurements to leave out, e.g. autokose_no_consistency")
    p.add_argument("--deadline", type=float, default=1e9, help="seconds: skip measurements that would run past it")
    p.add_argument("--out", type=Path, default=Path("bench_diffusion.json"))
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    device = "cpu" if args.tiny or not torch.cuda.is_available() else "cuda"
    dtype = torch.float32 if device == "cpu" else torch.float16
    if args.tiny:
        args.steps = min(args.steps, 2)
    if device == "cuda":
        torch.backends.cudnn.benchmark = True
    results = {"versions": versions(), "device": device, "dtype": str(dtype).removeprefix("torch."),
               "pose_drawing": ensure_pose_drawing(), "archs": {}}
    log(results["versions"])

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2) + "\n")

    for arch in args.arch:
        bench_arch(arch, args, device, dtype, results, save)
        gc.collect()  # the pipeline goes with bench_arch's frame
        if device == "cuda":
            torch.cuda.empty_cache()
    results["total_s"] = round(time.perf_counter() - T0, 1)
    save()
    log(f"done: {args.out}")


if __name__ == "__main__":
    main()
