"""`autokose eval`: a 2-concept imported set drawn on the tiny SD 1.5 once per method, scored with a tiny CLIP.

What must hold: one row per concept and method with the metric names and models; each method's
difference to plain; a second run draws nothing and writes the same results.json; a metric
without its model is null with the reason; a method that lacks its option is one line, exit 2.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tiny
from test_score import tiny_clip
from typer.testing import CliRunner

from autokose.app.cli import app
from autokose.evaluate import METRICS, parse_methods
from autokose.errors import InputError

runner = CliRunner()
PROMPTS = """\
board,prompt
fox,a red fox in the snow
fox,a red fox asleep under a pine
yurt,a yurt on the steppe
yurt,a yurt at night
"""
RENDER = ["--steps", "2", "--width", "64", "--height", "64", "--device", "cpu", "--dtype", "float32"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("eval-set")
    (root / "shots.csv").write_text(PROMPTS, encoding="utf-8")
    result = invoke("import", root / "shots.csv", "--out", root / "set", "--seed", 5)
    assert result.exit_code == 0, result.output
    return root / "set"


@pytest.fixture(scope="module")
def model(store) -> Path:
    return tiny.tiny_sd15(store)


def frames(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.glob("*/*/frames/*.png"))}


def test_eval_scores_every_concept_per_method_and_reruns_the_same(imported, model, tmp_path):
    clip = tiny_clip(tmp_path / "clip")
    out = tmp_path / "eval"
    result = invoke("eval", imported, "--model", model, "--out", out, "--methods", "plain,consistency",
                    "--clip-model", clip, *RENDER)
    assert result.exit_code == 0, result.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    rows = {(r["concept"], r["method"]): r for r in results["rows"]}
    assert set(rows) == {(c, m) for c in ("fox", "yurt") for m in ("plain", "consistency")}
    assert all(r["frames"] == 2 and r["clip_t"] is not None and r["clip_i"] is not None for r in rows.values())
    assert results["models"]["clip"] == str(clip) and results["models"]["generator"] == str(model)
    assert set(results["metrics"]) == set(METRICS) and results["rows"][0]["reasons"]["dino"].startswith("dino: skipped")
    # the methods really differ (consistency was applied) while drawing the same seeds
    drawn = frames(out)
    assert drawn["plain/fox/frames/01.png"] != drawn["consistency/fox/frames/01.png"]
    seeds = {m: [s["seed"] for s in json.loads((out / m / "fox" / "story.json").read_text())["scenes"]]
             for m in ("plain", "consistency")}
    assert seeds["plain"] == seeds["consistency"] and len(set(seeds["plain"])) == 2
    for k in ("clip_t", "clip_i"):
        assert results["vs_plain"]["consistency"][k] == pytest.approx(
            results["means"]["consistency"][k] - results["means"]["plain"][k], abs=1e-4)
    assert "| consistency |" in (out / "results.md").read_text(encoding="utf-8")

    before = (out / "results.json").read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*/frames/*.png")}
    (out / "results.json").unlink()
    again = invoke("eval", imported, "--model", model, "--out", out, "--methods", "plain,consistency",
                   "--clip-model", clip, *RENDER)
    assert again.exit_code == 0, again.output
    assert (out / "results.json").read_bytes() == before
    assert frames(out) == drawn
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*/frames/*.png")} == stamps  # nothing drawn again


def test_a_prompt_file_is_imported_and_clip_metrics_without_a_model_say_why(model, tmp_path):
    (tmp_path / "shots.csv").write_text(PROMPTS, encoding="utf-8")
    out = tmp_path / "eval"
    result = invoke("eval", tmp_path / "shots.csv", "--model", model, "--out", out, "--methods", "plain", *RENDER)
    assert result.exit_code == 0, result.output
    assert (out / "set" / "fox" / "story.json").is_file()
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert len(results["rows"]) == 2 and results["vs_plain"] == {}
    for row in results["rows"]:
        assert row["clip_t"] is None and row["clip_i"] is None
        assert row["reasons"]["clip_t"] == "clip: skipped — no model given"
    assert results["skipped"]["clip_t"] == "clip: skipped — no model given"


def test_ip_adapter_without_its_option_is_one_line_and_nothing_written(imported, tmp_path):
    out = tmp_path / "eval"
    result = invoke("eval", imported, "--model", tmp_path / "m", "--out", out, "--methods", "plain,ip-adapter")
    assert result.exit_code == 2
    assert result.output.strip() == "error: --methods ip-adapter needs --ip-adapter (an IP-Adapter name or file)"
    assert not out.exists()


def test_methods_are_checked():
    assert parse_methods("consistency, plain,consistency") == ["consistency", "plain"]
    with pytest.raises(InputError, match="unknown method 'ipadapter'"):
        parse_methods("plain,ipadapter")


def tiny_dino(root: Path) -> Path:
    """A random-weight Dinov2Model + image processor saved as a local folder (what --dino-model names)."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    folder = root / "tiny-dino"
    torch.manual_seed(0)
    Dinov2Model(Dinov2Config(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=37,
                             image_size=32, patch_size=8)).save_pretrained(folder, safe_serialization=True)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_dino_is_the_mean_pairwise_cls_cosine(tmp_path):
    from PIL import Image

    from autokose.evaluate import dino_metric

    red, blue = Image.new("RGB", (40, 40), "red"), Image.new("RGB", (40, 40), "blue")
    dino = str(tiny_dino(tmp_path))
    assert dino_metric(dino, [red, red]) == {"dino": pytest.approx(1.0, abs=1e-4), "reasons_dino": None}
    assert dino_metric(dino, [red, blue])["dino"] < 0.9999
    assert dino_metric(None, [red, blue])["dino"] is None


@pytest.mark.parametrize("spec, why", [("missing-folder/", "not a model folder"), ("{empty}", "no config.json"),
                                       ("nobody/no-dino", "not in the local Hugging Face cache")])
def test_a_bad_dino_model_is_refused_before_writing(imported, tmp_path, spec, why):
    (tmp_path / "empty").mkdir()
    out = tmp_path / "eval"
    result = invoke("eval", imported, "--model", tmp_path / "m", "--out", out,
                    "--dino-model", spec.format(empty=tmp_path / "empty"))
    assert result.exit_code == 2 and why in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_a_kept_board_drawn_otherwise_is_refused(imported, model, tmp_path):
    out = tmp_path / "eval"
    assert invoke("eval", imported, "--model", model, "--out", out, "--methods", "plain", *RENDER).exit_code == 0
    before = (out / "results.json").read_bytes()
    changed = [a if a != "2" else "3" for a in RENDER]  # --steps 3
    result = invoke("eval", imported, "--model", model, "--out", out, "--methods", "plain", *changed)
    assert result.exit_code == 2 and "drawn with other render settings" in result.output
    assert (out / "results.json").read_bytes() == before
    # the set's story changed (a seed): the kept frames would belong to another story
    import shutil

    edited = shutil.copytree(imported, tmp_path / "edited")
    story = json.loads((edited / "fox" / "story.json").read_text(encoding="utf-8"))
    story["scenes"][0]["seed"] += 1
    (edited / "fox" / "story.json").write_text(json.dumps(story), encoding="utf-8")
    result = invoke("eval", edited, "--model", model, "--out", out, "--methods", "plain", *RENDER)
    assert result.exit_code == 2 and "not the set's story of fox" in result.output
    assert (out / "results.json").read_bytes() == before


def test_only_the_ip_adapter_method_draws_with_the_ip_adapter():
    from autokose.evaluate import method_overrides

    given = {"model": "m", "ip_adapter": "ip-adapter_sd15", "ip_adapter_scale": 0.6, "steps": 4}
    assert method_overrides("ip-adapter", given)["ip_adapter"] == "ip-adapter_sd15"
    for method in ("plain", "consistency"):
        plan = method_overrides(method, given)
        assert "ip_adapter" not in plan and "ip_adapter_scale" not in plan and plan["steps"] == 4
    assert method_overrides("consistency", given)["consistency"] == 0.5
    assert method_overrides("plain", given)["consistency"] == 0.0


def test_every_board_and_method_draws_on_one_loaded_model(imported, model, tmp_path, monkeypatch):
    """100 concepts × 3 methods must not load the generator 300 times: 2 concepts × 2 methods load it once."""
    from autokose.render.diffusion.engine import DiffusionEngine

    loads = []
    real = DiffusionEngine._load
    monkeypatch.setattr(DiffusionEngine, "_load", lambda self: loads.append(1) or real(self))
    result = invoke("eval", imported, "--model", model, "--out", tmp_path / "eval", "--methods", "plain,consistency",
                    *RENDER)
    assert result.exit_code == 0, result.output
    assert len(loads) == 1
