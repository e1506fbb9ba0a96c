"""Hostile inputs to models, diffusion, scoring and training: one clear InputError, never a traceback.

Everything a render will load is checked by `DiffusionRenderer.check()` before any file is
written; these tests feed it (and the scorer and the trainer) broken files, one at a time.
"""

from __future__ import annotations

import json
import logging
import shutil
import struct
import sys
import zlib
from pathlib import Path

import pytest
import tiny
import torch
from packaging.version import Version
from safetensors.torch import save_file

from autokose import models
from autokose.bible import Bible, builtin_bible
from autokose.cast import IdentityAssets, LoraRef, identity_assets, load_card
from autokose.errors import InputError
from autokose.render import RenderSettings
from autokose.render.diffusion import DiffusionRenderer, controls
from autokose.story import Scene, Story


def renderer(model, assets=None, **options) -> DiffusionRenderer:
    options.setdefault("steps", 2)
    settings = RenderSettings(renderer="diffusion", width=64, height=64, diffusion=dict(model=str(model), **options))
    return DiffusionRenderer(settings, assets=assets)


def truncated(path: Path, dest: Path, keep: float = 0.5) -> Path:
    data = Path(path).read_bytes()
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest


def png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims `width` x `height` (a decompression bomb's signature, no pixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
                     + chunk(b"IEND", b""))
    return path


def one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# --------------------------------------------------------------------------- the core install
def test_model_on_the_core_install_is_one_line_naming_the_extra(store, monkeypatch):
    model = tiny.tiny_sd15(store)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(InputError) as e:
        renderer(model).check()
    assert one_line(e) == ("--model needs the diffusion extra: pip install 'autokose[diffusion]' "
                           "(install a torch build first)")
    with pytest.raises(InputError, match="diffusion extra"):
        models.load_pipeline(str(model))


# --------------------------------------------------------------------------- models
def test_non_sd_safetensors_as_model_is_refused(tmp_path):
    path = tmp_path / "not-a-model.safetensors"
    save_file({"encoder.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(InputError) as e:
        renderer(path).check()
    assert "not a Stable Diffusion checkpoint" in one_line(e) and str(path) in str(e.value)
    lora = tiny.tiny_lora_diffusers(tmp_path)  # a LoRA given as --model
    with pytest.raises(InputError, match="a LoRA goes to --lora"):
        models.load_pipeline(str(lora))


def test_truncated_model_file_is_refused(store, tmp_path):
    file, _ = tiny.tiny_sd15_single_file(store)
    with pytest.raises(InputError) as e:
        renderer(truncated(file, tmp_path / "half.safetensors")).check()
    assert "not a readable safetensors file" in one_line(e)


def test_folder_without_unet_names_the_missing_part(store, tmp_path):
    folder = shutil.copytree(tiny.tiny_sd15(store), tmp_path / "no-unet")
    shutil.rmtree(folder / "unet")
    with pytest.raises(InputError) as e:
        renderer(folder).check()
    assert one_line(e) == f"--model: no unet/ in {folder} (is it a diffusers pipeline folder?)"
    with pytest.raises(InputError, match="no unet/"):
        models.load_pipeline(str(folder))


def test_folder_with_only_pickled_weights_is_refused(store, tmp_path):
    folder = shutil.copytree(tiny.tiny_sd15(store), tmp_path / "pickled")
    weights = folder / "vae" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(InputError, match="no .safetensors weights in .*vae"):
        renderer(folder).check()


def test_single_file_that_does_not_fit_the_shipped_configs_names_model_config(store):
    file, config = tiny.tiny_sd15_single_file(store)  # tiny shapes, read with the released SD 1.5 configs
    with pytest.raises(InputError) as e:
        models.load_pipeline(str(file))
    assert one_line(e).endswith("give its diffusers config folder with --model-config")
    assert models.load_pipeline(str(file), config=str(config)) is not None


def test_model_config_folder_is_checked(store, tmp_path):
    file, _ = tiny.tiny_sd15_single_file(store)
    with pytest.raises(InputError, match="--model-config .*no model_index.json"):
        renderer(file, model_config=str(tmp_path)).check()


# --------------------------------------------------------------------------- LoRAs
def test_truncated_and_garbage_loras_fail_the_check(store, tmp_path):
    lora = tiny.tiny_lora_diffusers(store)
    half = truncated(lora, tmp_path / "half.safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00\xff" * 64)
    for bad in (half, garbage):
        with pytest.raises(InputError) as e:
            renderer(tiny.tiny_sd15(store), loras=[f"{bad}:0.8"]).check()
        assert f"{bad}: not a readable safetensors file" in one_line(e)
    renderer(tiny.tiny_sd15(store), loras=[f"{lora}:0.8"]).check()  # the intact file passes


def test_a_characters_lora_and_references_are_checked(store, tmp_path):
    model = tiny.tiny_sd15(store)
    missing = IdentityAssets("aldar", trigger="aldarkose", lora=LoraRef(str(tmp_path / "gone.safetensors")))
    with pytest.raises(InputError, match="character aldar's LoRA: .*gone.safetensors: no such file"):
        renderer(model, assets={"aldar": missing}).check()
    ip = tiny.tiny_ip_adapter(store)
    refs = {"bomb": png_header(tmp_path / "bomb.png", 50000, 50000), "text": tmp_path / "notes.png",
            "gone": tmp_path / "gone.png"}
    refs["text"].write_text("a text file named .png")
    expected = {"bomb": "too large", "text": "not an image", "gone": "not found"}
    for name, path in refs.items():
        assets = {"aldar": IdentityAssets("aldar", references=[path])}
        with pytest.raises(InputError) as e:
            renderer(model, assets=assets, ip_adapter=str(ip / "models")).check()
        assert one_line(e).startswith(f"aldar: reference image {path}: {expected[name]}")


def test_ip_adapter_image_encoder_must_be_loadable(store, tmp_path):
    root = shutil.copytree(tiny.tiny_ip_adapter(store), tmp_path / "ip")
    (root / "models" / "image_encoder" / "model.safetensors").unlink()
    with pytest.raises(InputError, match="no .safetensors weights in .*image_encoder"):
        renderer(tiny.tiny_sd15(store), ip_adapter=str(root / "models")).check()


def test_story_json_lora_is_applied_not_ignored(tmp_path):
    """A LoRA (or card, or references) named on story.json's character wins over the bible's."""
    bible = builtin_bible()
    lora = str(tmp_path / "mine.safetensors")
    story = Story(title="t", logline="l", characters=[bible["aldar"].model_copy(update={"lora": f"{lora}:0.7"})],
                  scenes=[Scene(index=1, characters=["aldar"])])
    assets = identity_assets(story, bible)
    assert assets["aldar"].lora == LoraRef(lora, 0.7)
    assert identity_assets(story.model_copy(update={"characters": [bible["aldar"]]}), bible)["aldar"].lora is None


def test_written_prompt_without_the_lora_trigger_is_warned_about(caplog):
    bible = builtin_bible()
    scene = Scene(index=1, characters=["aldar"], prompt="a man on a donkey")
    story = Story(title="t", logline="l", characters=[bible["aldar"]], scenes=[scene])
    r = renderer("unused/model", assets={"aldar": IdentityAssets("aldar", trigger="zxaldar", lora=LoraRef("x"))})
    with caplog.at_level(logging.WARNING, logger="autokose"):
        r._warn_missing_triggers(story, [1], {1: ("a man on a donkey", "")})
        r._warn_missing_triggers(story, [1], {1: ("a man on a donkey", "")})  # a second round: said once
    assert [rec.getMessage() for rec in caplog.records] == [
        "scene 1: its written prompt lacks aldar's trigger 'zxaldar', so aldar's LoRA will hardly show; "
        "add the trigger or clear the prompt to rebuild it"]


def test_ip_adapter_without_references_warns_it_changes_nothing(store, caplog):
    r = renderer(tiny.tiny_sd15(store), assets={"aldar": IdentityAssets("aldar")},
                 ip_adapter=str(tiny.tiny_ip_adapter(store) / "models"))
    with caplog.at_level(logging.WARNING, logger="autokose"):
        r.session()
    assert any("no character in this story has reference images, so it will change nothing" in rec.getMessage()
               for rec in caplog.records)


# --------------------------------------------------------------------------- transformers / peft
@pytest.fixture
def new_transformers_old_peft(monkeypatch):
    found = {"transformers": Version("5.24.0"), "peft": Version("0.21.2")}
    monkeypatch.setattr(models, "installed_version", lambda name: found.get(name))


def test_text_encoder_lora_with_an_incompatible_peft_is_refused_up_front(tmp_path, new_transformers_old_peft):
    lora = tmp_path / "te.safetensors"
    save_file({"text_encoder.layers.0.q_proj.lora_A.weight": torch.zeros(4, 32)}, str(lora))
    with pytest.raises(InputError) as e:
        controls.check_lora(LoraRef(str(lora)))
    message = one_line(e)
    assert "transformers 5.24.0" in message and "peft 0.21.2" in message
    assert "pip install -c requirements/lock.txt 'transformers<5.24'" in message and "peft>=0.22" in message
    controls.check_lora(LoraRef(str(tiny.tiny_lora_kohya(tmp_path))))  # UNet-only LoRAs are fine


def test_compatible_versions_pass(tmp_path, monkeypatch):
    found = {"transformers": Version("5.23.0"), "peft": Version("0.21.2")}
    monkeypatch.setattr(models, "installed_version", lambda name: found.get(name))
    models.check_text_encoder_lora_support("--train-text-encoder")


def test_the_librarys_own_peft_error_is_converted(tmp_path):
    class Pipe:
        def load_lora_weights(self, *args, **kwargs):
            raise ValueError("PEFT version must be >= 0.22.0 to use this feature")

    with pytest.raises(InputError) as e:
        controls.apply_loras(Pipe(), [(LoraRef(str(tiny.tiny_lora_kohya(tmp_path))), None)])
    assert "needs peft >= 0.22" in one_line(e) and "transformers<5.24" in str(e.value)


def test_text_encoder_training_is_refused_before_anything_is_written(tmp_path, new_transformers_old_peft):
    from autokose.cast.train import config_for, train_character

    cfg = config_for(builtin_bible()["aldar"], images=str(tmp_path / "refs"), model="x/y", out=str(tmp_path / "out"),
                     train_text_encoder=True)
    with pytest.raises(InputError, match=r"--train-text-encoder: .*peft 0\.21\.2"):
        train_character(cfg)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- cards and training state
def test_card_with_wrongly_typed_fields_is_one_line(tmp_path):
    card = tmp_path / "card.json"
    for fields, bad in (({"references": "00.png"}, "references"), ({"training": [1]}, "training"),
                        ({"skipped": [{"file": 3}]}, "skipped[0].file"), ({"trigger": 7}, "trigger")):
        card.write_text(json.dumps({"character": "aldar", **fields}))
        with pytest.raises(InputError) as e:
            load_card(card)
        assert one_line(e).startswith(f"{card}: character card field {bad}:")
    card.write_text(json.dumps({"character": "aldar", "references": ["00.png"], "face_centroid": [0, 0.5]}))
    assert load_card(card)["references"] == ["00.png"]


def test_story_character_card_is_validated(tmp_path):
    card = tmp_path / "card.json"
    card.write_text(json.dumps({"lora": 5}))
    story = Story(title="t", logline="l", characters=[builtin_bible()["aldar"].model_copy(update={"card": str(card)})],
                  scenes=[Scene(index=1, characters=["aldar"])])
    with pytest.raises(InputError, match="character card field lora"):
        identity_assets(story, Bible(story.characters))


def checkpoint(tmp_path: Path, step: int = 30) -> Path:
    from autokose.cast.checkpoint import save_checkpoint

    weights = {"unet.lora_A": torch.ones(4, 4)}
    states = {"optimizer": {"state": {0: {"exp_avg": torch.zeros(4)}}, "param_groups": [{"lr": 1e-4}]},
              "lr_scheduler": {"last_epoch": step}}
    return save_checkpoint(tmp_path, step, weights, states, {"losses": [0.5] * step})


@pytest.mark.parametrize("damage", ["truncated weights", "garbage state", "no step", "step thirty",
                                    "step beyond the run", "step not the folder's", "not an object",
                                    "nested too deeply"])
def test_damaged_checkpoints_are_unreadable_not_tracebacks(tmp_path, damage):
    from autokose.cast.checkpoint import load_checkpoint

    path = checkpoint(tmp_path)
    meta = json.loads((path / "state.json").read_text())
    if damage == "truncated weights":
        truncated(path / "weights.safetensors", path / "weights.safetensors", keep=0.6)
    elif damage == "garbage state":
        (path / "state.safetensors").write_bytes(b"garbage" * 20)
    elif damage == "no step":
        del meta["step"]
    elif damage == "step thirty":
        meta["step"] = "thirty"
    elif damage == "step beyond the run":
        meta["step"] = 1_000_000_000
        path = path.rename(path.parent / "step-1000000000")
    elif damage == "step not the folder's":
        meta["step"] = 10
    elif damage == "nested too deeply":
        (path / "state.json").write_text('{"step": 30, "states": ' + "[" * 100_000 + "]" * 100_000 + "}")
    else:
        meta = [meta]
    if damage not in ("truncated weights", "garbage state", "nested too deeply"):
        (path / "state.json").write_text(json.dumps(meta))
    with pytest.raises(InputError) as e:
        load_checkpoint(path, max_step=40)
    assert one_line(e).startswith(f"{path}: unreadable checkpoint (")
    assert one_line(e).endswith("; delete it to resume from an earlier one")


def test_intact_checkpoint_loads(tmp_path):
    from autokose.cast.checkpoint import load_checkpoint

    saved = load_checkpoint(checkpoint(tmp_path), max_step=40)
    assert saved.step == 30 and saved.extra["losses"] == [0.5] * 30
    assert torch.equal(saved.states["optimizer"]["state"][0]["exp_avg"], torch.zeros(4))


@pytest.mark.parametrize("text", ["{not json", '{"character": 3}', "[]"])
def test_corrupt_train_config_is_one_line(tmp_path, text):
    from autokose.cast.train import CONFIG_NAME, config_for, reconcile

    cfg = config_for(builtin_bible()["aldar"], images="refs", model="x/y", out=str(tmp_path))
    (tmp_path / CONFIG_NAME).write_text(text)
    with pytest.raises(InputError) as e:
        reconcile(tmp_path, cfg)
    assert one_line(e).startswith(f"{tmp_path / CONFIG_NAME}: unreadable training config (")


def test_a_checkpoint_replaces_a_stray_file_of_its_name_and_leaves_no_old_copy(tmp_path):
    from autokose.cast.checkpoint import latest_checkpoint

    stray = tmp_path / "checkpoints" / "step-000030"
    stray.parent.mkdir()
    stray.write_text("x")
    assert checkpoint(tmp_path) == stray and (stray / "state.json").is_file()
    checkpoint(tmp_path)  # the same step again: a folder replaces a folder
    assert [p.name for p in stray.parent.iterdir()] == ["step-000030"]
    assert latest_checkpoint(tmp_path) == stray


# --------------------------------------------------------------------------- training: checked before it writes
def training(store, tmp_path, out, **options):
    """A training config on the tiny SD 1.5 model and four good references."""
    from test_train import make_refs

    from autokose.cast.train import config_for

    refs = tmp_path / "refs"
    if not refs.is_dir():
        make_refs(refs)
    settings = dict(images=str(refs), model=str(tiny.tiny_sd15(store)), out=str(out), resolution=64, steps=40,
                    rank=4, render_validation=False)
    return config_for(builtin_bible()["aldar"], **{**settings, **options})


@pytest.fixture
def no_model_loading(monkeypatch):
    """Loading a model is where checking must have ended: reaching it raises instead."""
    class ModelsLoaded(Exception):
        pass

    def load_components(*args, **kwargs):
        raise ModelsLoaded()

    monkeypatch.setattr(models, "load_components", load_components)
    return ModelsLoaded


@pytest.mark.parametrize("bad", ["missing model", "pickled vae", "renamed pickle as vae", "no usable images",
                                 "half precision on the cpu", "class images without a prompt"])
def test_a_refused_training_writes_and_logs_nothing(store, tmp_path, no_model_loading, bad):
    from autokose.cast.train import train_character

    out = tmp_path / "new" / "out"
    (tmp_path / "w").mkdir()
    options = {
        "missing model": {"model": str(tmp_path / "nope")},
        "pickled vae": {"vae": str(tmp_path / "w" / "vae.ckpt")},
        "renamed pickle as vae": {"vae": str(tmp_path / "w" / "vae.safetensors")},
        "no usable images": {"images": str(tmp_path / "w")},
        "half precision on the cpu": {"mixed_precision": "fp16", "device": "cpu"},
        "class images without a prompt": {"class_images": str(tmp_path / "classes")},
    }[bad]
    for name in ("vae.ckpt", "vae.safetensors"):
        (tmp_path / "w" / name).write_bytes(b"\x80\x02}q\x00.")  # a pickle's opening bytes
    logged = []
    with pytest.raises(InputError) as e:
        train_character(training(store, tmp_path, out, **options), log=logged.append)
    one_line(e)
    assert logged == [] and not (tmp_path / "new").exists() and not (tmp_path / "classes").exists()


@pytest.mark.parametrize("damage", ["state nested too deeply", "state not an object", "weights missing",
                                    "tensor reference missing", "losses not numbers", "no scheduler state",
                                    "checkpoints is a file"])
def test_resume_refuses_a_damaged_checkpoint_before_loading_any_model(store, tmp_path, no_model_loading, damage):
    from autokose.cast.train import train_character

    out = tmp_path / "out"
    path = checkpoint(out)
    meta = json.loads((path / "state.json").read_text())
    if damage == "state nested too deeply":
        (path / "state.json").write_text('{"step": 30, "states": ' + "[" * 100_000 + "]" * 100_000 + "}")
    elif damage == "state not an object":
        (path / "state.json").write_text("[]")
    elif damage == "weights missing":
        (path / "weights.safetensors").unlink()
    elif damage == "checkpoints is a file":
        shutil.rmtree(out / "checkpoints")
        (out / "checkpoints").write_text("x")
    else:
        if damage == "tensor reference missing":
            meta["states"] = {"__dict__": [["optimizer", {"__tensor__": "x"}]]}
        elif damage == "losses not numbers":
            meta["extra"]["losses"] = ["low"]
        else:
            meta["states"]["__dict__"] = meta["states"]["__dict__"][:1]
        (path / "state.json").write_text(json.dumps(meta))
    before = sorted((p.relative_to(out), p.read_bytes() if p.is_file() else None) for p in out.rglob("*"))
    logged = []
    with pytest.raises(InputError) as e:
        train_character(training(store, tmp_path, out), resume=True, log=logged.append)
    assert str(out / "checkpoints") in one_line(e)
    assert logged == []
    assert sorted((p.relative_to(out), p.read_bytes() if p.is_file() else None) for p in out.rglob("*")) == before


def test_an_intact_checkpoint_passes_the_checks(store, tmp_path, no_model_loading):
    from autokose.cast.train import train_character

    out = tmp_path / "out"
    checkpoint(out)
    with pytest.raises(no_model_loading):
        train_character(training(store, tmp_path, out), resume=True)
    assert (out / "checkpoints" / "step-000030" / "state.json").is_file()  # a failed resume keeps its progress


def test_a_run_that_fails_after_creating_its_folder_takes_it_away(store, tmp_path, no_model_loading):
    from autokose.cast.train import LOG_NAME, train_character

    logged = []
    with pytest.raises(no_model_loading):
        train_character(training(store, tmp_path, tmp_path / "new" / "out"), log=logged.append)
    assert logged and not (tmp_path / "new").exists()  # it got as far as its log, then left no trace
    (tmp_path / "mine").mkdir()
    with pytest.raises(no_model_loading):
        train_character(training(store, tmp_path, tmp_path / "mine"))
    assert (tmp_path / "mine" / LOG_NAME).is_file()  # the user's folder stays
