"""Character LoRA training end to end on tiny random-weight models (CPU, 64 px, seconds).

One SD 1.5 run through the CLI is shared by most tests: its loss falls, its LoRA loads into
the renderer's pipeline and changes the picture, both export formats agree, its card feeds
`identity_assets`. A second run is killed with SIGKILL after its first checkpoint and resumed;
it must end with the same weights. SDXL with text-encoder LoRA gets its own short run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tiny
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file
from typer.testing import CliRunner

from autokose.app.cli import app

pytestmark = pytest.mark.slow
runner = CliRunner()
STEPS = 30
# Tiny model, four 64 px images seen every step, a high learning rate: it must overfit.
TRAIN_ARGS = ["--resolution", "64", "--steps", str(STEPS), "--batch-size", "4", "--rank", "4", "--lr", "1e-2",
              "--checkpoint-every", "5", "--validation-steps", "2", "--seed", "0"]


def cli(*args):
    return runner.invoke(app, [str(a) for a in args])


def make_refs(folder: Path, count: int = 4, size: int = 64) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for n in range(count):
        a = np.zeros((size, size, 3), np.uint8)
        a[:] = rng.integers(0, 256, 3)
        y, x = rng.integers(4, size // 2, 2)
        a[y:y + size // 3, x:x + size // 3] = rng.integers(0, 256, 3)
        Image.fromarray((a + rng.integers(0, 30, a.shape)).clip(0, 255).astype(np.uint8)).save(folder / f"{n:02d}.png")
    return folder


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train")
    tiny.tiny_sd15(root)
    make_refs(root / "refs")
    return root


@pytest.fixture(scope="module")
def trained(workdir) -> Path:
    out = workdir / "aldar"
    result = cli("character", "train", "aldar", "--images", workdir / "refs", "--model", workdir / "tiny-sd15",
                 "--out", out, *TRAIN_ARGS)
    assert result.exit_code == 0, result.output
    return out


def logged_losses(out: Path) -> list[float]:
    return [float(line.split()[3]) for line in (out / "train.log").read_text().splitlines() if line.startswith("step ")]


def image(pipe, prompt="a photo of aldarkose"):
    return pipe(prompt, num_inference_steps=2, height=64, width=64, output_type="np",
                generator=torch.Generator().manual_seed(0)).images[0]


# --------------------------------------------------------------------------- the shared run
def test_outputs_and_card(trained):
    card = json.loads((trained / "card.json").read_text())
    assert card["trigger"] == "aldarkose" and card["character"] == "aldar"
    assert card["lora"] == "pytorch_lora_weights.safetensors" and card["lora_kohya"] == "aldar_kohya.safetensors"
    assert (trained / card["lora"]).is_file() and (trained / card["lora_kohya"]).is_file()
    assert len(card["references"]) == 4 and all((trained / r).is_file() for r in card["references"])
    assert card["face_centroid"] is None and card["faces_found"] == 0  # no faces in the test pictures
    assert card["base_model"]["arch"] == "sd15" and len(card["base_model"]["sha256"]) == 64
    assert card["training"]["rank"] == 4 and card["training"]["steps"] == STEPS and card["training"]["alpha"] == 4.0
    assert card["caption"].startswith("a photo of aldarkose, cheerful beardless")
    assert card["validation"] and all((trained / v).is_file() for v in card["validation"])
    assert Image.open(trained / card["validation"][0]).size == (64, 64)
    # Old checkpoints are pruned to the last two.
    assert sorted(p.name for p in (trained / "checkpoints").iterdir()) == ["step-000020", "step-000025"]


def test_loss_falls(trained):
    losses = logged_losses(trained)
    assert len(losses) == STEPS
    first, last = np.mean(losses[:8]), np.mean(losses[-8:])
    assert last < first - 0.05, (first, last)


def test_lora_lowers_the_denoising_error_on_the_references(trained, workdir):
    """The saved LoRA, loaded the way users load it, predicts the references' noise better."""
    from autokose.models import load_pipeline

    pipe = load_pipeline(str(workdir / "tiny-sd15"))
    card = json.loads((trained / "card.json").read_text())
    pixels = torch.stack([torch.from_numpy(np.asarray(Image.open(trained / r), dtype=np.float32) / 127.5 - 1)
                          .permute(2, 0, 1) for r in card["references"]])
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        latents = pipe.vae.encode(pixels).latent_dist.mean * pipe.vae.config.scaling_factor
        ids = pipe.tokenizer(card["caption"], padding="max_length", max_length=77, truncation=True,
                             return_tensors="pt").input_ids
        scheduler = tiny._scheduler()
        cases = [(torch.randn(latents.shape, generator=g), torch.full((4,), t)) for t in (50, 250, 450, 650, 850)]

        def error() -> float:
            text = pipe.text_encoder(ids)[0].expand(4, -1, -1)
            total = 0.0
            for noise, t in cases:
                pred = pipe.unet(scheduler.add_noise(latents, noise, t), t, text).sample
                total += torch.mean((pred - noise) ** 2).item()
            return total / len(cases)

        before = error()
        pipe.load_lora_weights(str(trained))
        after = error()
    assert after < before * 0.95, (before, after)


def test_lora_changes_the_picture_and_both_formats_agree(trained, workdir):
    from autokose.models import load_pipeline

    pipe = load_pipeline(str(workdir / "tiny-sd15"))
    base = image(pipe)
    pipe.load_lora_weights(str(trained))  # the folder: diffusers picks pytorch_lora_weights.safetensors
    with_diffusers = image(pipe)
    pipe.unload_lora_weights()
    assert np.abs(image(pipe) - base).max() == 0
    pipe.load_lora_weights(str(trained), weight_name="aldar_kohya.safetensors")
    with_kohya = image(pipe)
    assert np.abs(with_diffusers - base).mean() > 1e-3
    assert np.abs(with_diffusers - with_kohya).max() < 1e-5


def test_file_layouts(trained):
    with safe_open(str(trained / "pytorch_lora_weights.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight" in keys
    assert all(k.startswith("unet.") and (".lora_A." in k or ".lora_B." in k) for k in keys)
    with safe_open(str(trained / "aldar_kohya.safetensors"), "pt") as f:
        kohya, meta = list(f.keys()), f.metadata()
    name = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    assert {f"{name}.lora_down.weight", f"{name}.lora_up.weight", f"{name}.alpha"} <= set(kohya)
    assert "lora_unet_up_blocks_1_attentions_0_transformer_blocks_0_attn2_to_out_0.lora_up.weight" in kohya
    assert len(kohya) == len(keys) // 2 * 3
    assert meta["ss_network_dim"] == "4" and float(meta["ss_network_alpha"]) == 4.0
    assert meta["ss_base_model_version"] == "sd_v1" and meta["ss_output_name"] == "aldar"
    diffusers = load_file(str(trained / "pytorch_lora_weights.safetensors"))
    kohya_sd = load_file(str(trained / "aldar_kohya.safetensors"))
    assert torch.equal(diffusers["unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.lora_A.weight"],
                       kohya_sd[f"{name}.lora_down.weight"])


def test_card_reaches_the_renderer_through_the_bible(trained, tmp_path):
    from autokose.bible import load_bible
    from autokose.cast import identity_assets
    from autokose.story import Scene, Story

    (tmp_path / "cast.yaml").write_text(f"characters:\n  - id: aldar\n    card: {trained / 'card.json'}\n")
    bible = load_bible(tmp_path / "cast.yaml")
    story = Story(title="t", logline="Aldar tricks the bai", characters=[bible["aldar"]],
                  scenes=[Scene(index=1, characters=["aldar"])])
    assets = identity_assets(story, bible)["aldar"]
    assert assets.trigger == "aldarkose"
    assert Path(assets.lora.path).resolve() == (trained / "pytorch_lora_weights.safetensors").resolve()
    assert len(assets.references) == 4 and all(p.is_file() for p in assets.references)


def test_show(trained):
    result = cli("character", "show", trained)
    assert result.exit_code == 0 and "aldarkose" in result.output
    result = cli("character", "show", trained / "card.json", "--json")
    assert json.loads(result.output)["trigger"] == "aldarkose"


# --------------------------------------------------------------------------- kill -9 and --resume
def test_killed_run_resumes_from_its_checkpoint_and_ends_the_same(trained, workdir):
    out = workdir / "killed"
    args = ["character", "train", "aldar", "--images", workdir / "refs", "--model", workdir / "tiny-sd15",
            "--out", out, *TRAIN_ARGS]
    script = Path(sys.executable).with_name("autokose")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "autokose.app.cli"]
    child = subprocess.Popen([*command, *map(str, args)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoints" / "step-000005" / "state.json").exists():
            assert child.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline, "no checkpoint after 120 s"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert not (out / "card.json").exists()
    stopped_at = len(logged_losses(out))
    assert stopped_at < STEPS

    assert_user_error(cli(*args), "not empty", "--resume")  # no silent restart over a killed run
    result = cli(*args, "--resume")
    assert result.exit_code == 0, result.output
    log = (out / "train.log").read_text()
    resumed = [line for line in log.splitlines() if line.startswith("resumed from")]
    assert len(resumed) == 1
    step = int(resumed[0].split("at step ")[1].split("/")[0])
    assert step % 5 == 0 and 5 <= step <= stopped_at
    assert f"step {step + 1}/{STEPS} " in log.split(resumed[0])[1]
    assert f"step {STEPS}/{STEPS} " in log and (out / "card.json").is_file()
    # Per-step seeding: the resumed run took exactly the uninterrupted run's steps.
    a = load_file(str(out / "pytorch_lora_weights.safetensors"))
    b = load_file(str(trained / "pytorch_lora_weights.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=2e-3, rtol=1e-2), k
    assert np.allclose(logged_losses(out)[-5:], logged_losses(trained)[-5:], atol=1e-4)


def test_resume_refuses_a_different_training(trained, workdir):
    result = cli("character", "train", "aldar", "--images", workdir / "refs", "--model", workdir / "tiny-sd15",
                 "--out", trained, *TRAIN_ARGS, "--rank", "8", "--resume")
    assert_user_error(result, "rank")


@pytest.mark.parametrize("damage", ["truncated weights", "step thirty", "step beyond the run"])
def test_resume_from_a_damaged_checkpoint_is_one_line(trained, workdir, tmp_path, damage):
    out = shutil.copytree(trained, tmp_path / "copy")
    (out / "card.json").unlink()
    latest = sorted((out / "checkpoints").glob("step-*"))[-1]
    meta = json.loads((latest / "state.json").read_text())
    if damage == "truncated weights":
        data = (latest / "weights.safetensors").read_bytes()
        (latest / "weights.safetensors").write_bytes(data[: len(data) // 2])
    else:
        meta["step"] = "thirty" if damage == "step thirty" else 1_000_000_000
        (latest / "state.json").write_text(json.dumps(meta))
        if damage == "step beyond the run":  # tampered consistently: folder name and step agree
            latest = latest.rename(latest.with_name("step-1000000000"))
    result = cli("character", "train", "aldar", "--images", workdir / "refs", "--model", workdir / "tiny-sd15",
                 "--out", out, *TRAIN_ARGS, "--resume")
    assert_user_error(result, f"{latest}: unreadable checkpoint", "delete it to resume from an earlier one")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # refused before any log line or model load
    assert not (out / "card.json").exists()  # no card recording steps that never ran


# --------------------------------------------------------------------------- SDXL
def test_sdxl_with_text_encoder_lora(workdir):
    from autokose.bible import builtin_bible
    from autokose.cast.train import config_for, train_character
    from autokose.models import load_pipeline

    model = tiny.tiny_sdxl(workdir)
    out = workdir / "aldar-xl"
    cfg = config_for(builtin_bible()["aldar"], images=str(workdir / "refs"), model=str(model), out=str(out),
                     resolution=64, steps=3, rank=4, learning_rate=1e-2, train_text_encoder=True,
                     checkpoint_every=0, render_validation=False)
    result = train_character(cfg)
    assert result.final_loss is not None and json.loads(result.card.read_text())["base_model"]["arch"] == "sdxl"
    with safe_open(str(out / "aldar_kohya.safetensors"), "pt") as f:
        keys, meta = list(f.keys()), f.metadata()
    assert meta["ss_base_model_version"] == "sdxl_base_v1-0"
    assert any(k.startswith("lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.") for k in keys)
    assert any(k.startswith("lora_te1_text_model_encoder_layers_0_self_attn_q_proj.") for k in keys)
    assert any(k.startswith("lora_te2_text_model_encoder_layers_1_self_attn_out_proj.") for k in keys)

    pipe = load_pipeline(str(model))
    base = image(pipe)
    outputs = {}
    for name in ("pytorch_lora_weights.safetensors", "aldar_kohya.safetensors"):
        pipe.load_lora_weights(str(out), weight_name=name, adapter_name="a")
        assert set(pipe.get_list_adapters()) == {"unet", "text_encoder", "text_encoder_2"}
        outputs[name] = image(pipe)
        pipe.unload_lora_weights()
    assert np.abs(outputs["pytorch_lora_weights.safetensors"] - base).mean() > 1e-3
    assert np.abs(outputs["pytorch_lora_weights.safetensors"] - outputs["aldar_kohya.safetensors"]).max() < 1e-5


# --------------------------------------------------------------------------- bad input: exit code 2
def assert_user_error(result, *needles: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "error:" in result.output
    text = " ".join(result.output.split())
    for needle in needles:
        assert needle in text, result.output


def _folder(root: Path, name: str, good: int = 0) -> Path:
    folder = root / name
    folder.mkdir()
    if good:
        make_refs(folder, good)
    return folder


@pytest.mark.parametrize("case", ["empty", "one image", "non-images", "huge image"])
def test_bad_reference_folders(workdir, tmp_path, case):
    from test_dataset import png_header_only

    if case == "empty":
        folder, needle = _folder(tmp_path, "refs"), "no usable images"
    elif case == "one image":
        folder, needle = _folder(tmp_path, "refs", 1), "only 1 usable image"
    elif case == "non-images":
        folder = _folder(tmp_path, "refs")
        (folder / "a.jpg").write_bytes(b"not really a jpeg")
        (folder / "b.docx").write_bytes(b"PK\x03\x04")
        needle = "a.jpg: not an image"
    else:
        folder = _folder(tmp_path, "refs", 2)
        png_header_only(folder / "scan.png", 20000, 20000)
        needle = "scan.png: too large"
    result = cli("character", "train", "aldar", "--images", folder, "--model", workdir / "tiny-sd15",
                 "--out", tmp_path / "out", "--resolution", "64")
    assert_user_error(result, needle)
    assert not (tmp_path / "out" / "card.json").exists()


def test_bad_options(workdir, tmp_path):
    base = ["character", "train", "aldar", "--images", workdir / "refs", "--model", workdir / "tiny-sd15"]
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert_user_error(cli(*base, "--out", blocker / "out"), "not writable")
    assert_user_error(cli(*base, "--out", blocker), "not a folder")
    assert_user_error(cli(*base, "--out", tmp_path / "o", "--lr-scheduler", "sometimes"), "unknown LR scheduler")
    assert_user_error(cli(*base, "--out", tmp_path / "o", "--resolution", "100"), "multiple of 8")
    assert_user_error(cli(*base, "--out", tmp_path / "o", "--mixed-precision", "fp16", "--device", "cpu",
                          "--resolution", "64"), "needs a GPU")
    assert_user_error(cli("character", "train", "nobody", "--images", workdir / "refs", "--model",
                          workdir / "tiny-sd15", "--out", tmp_path / "o"), "unknown character 'nobody'", "--trigger")
    assert_user_error(cli("character", "train", "aldar", "--images", workdir / "refs", "--model",
                          tmp_path / "missing-model", "--out", tmp_path / "o"), "missing-model")
    assert_user_error(cli("character", "show", tmp_path / "nope"), "not found")


# --------------------------------------------------------------------------- options and checkpoints
def test_checkpoint_state_round_trip_and_partial_writes(tmp_path):
    from autokose.cast import checkpoint as ckpt

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    states = {"optimizer": optimizer.state_dict(), "misc": {"pair": (1, 2.5), "none": None}}
    ckpt.save_checkpoint(tmp_path, 3, dict(model.named_parameters()), states, {"losses": [0.5]})
    (tmp_path / "checkpoints" / ".tmp-step-000006-999").mkdir()  # a write cut short by kill -9
    (tmp_path / "checkpoints" / "step-000009").mkdir()  # no state.json: incomplete
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "step-000003"
    loaded = ckpt.load_checkpoint(ckpt.latest_checkpoint(tmp_path))
    assert loaded.step == 3 and loaded.extra == {"losses": [0.5]}
    assert loaded.states["misc"] == {"pair": (1, 2.5), "none": None}
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1)
    fresh.load_state_dict(loaded.states["optimizer"])
    for a, b in zip(optimizer.state.values(), fresh.state.values()):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(loaded.weights["weight"], model.weight.detach())
    ckpt.prune_checkpoints(tmp_path, keep=1)
    assert not (tmp_path / "checkpoints" / ".tmp-step-000006-999").exists()
