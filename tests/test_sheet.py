"""`autokose character sheet`: a turnaround and expressions of one character, offline (previz) and
on tiny random-weight SD 1.5 models with an OpenPose ControlNet, an IP-Adapter and the character's LoRA."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import tiny
from PIL import Image
from typer.testing import CliRunner

from autokose.app.cli import app
from autokose.bible import builtin_bible
from autokose.cast import IdentityAssets
from autokose.openpose import draw_pose
from autokose.poses import K
from autokose.render.sheet import (VIEW_NAMES, VIEWS, DrawnView, SheetFolder, face_scores, grid_size, turn_points,
                                   view_layout)

W, H = 64, 96


def sheet(*args: str):
    return CliRunner().invoke(app, ["character", "sheet", *args])


def hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def assert_all_views_differ(folder: Path, names) -> None:
    images = {n: pixels(folder / "views" / f"{n}.png") for n in names}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert np.abs(images[a] - images[b]).max() > 0, f"{a} and {b} are the same picture"


def assert_one_error_line(result) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output


# --------------------------------------------------------------------------- the turnaround's poses
def test_turns_follow_the_body_sides_an_openpose_model_reads():
    front, _ = turn_points("front")
    assert front[K["RShoulder"]][0] < front[K["Neck"]][0] < front[K["LShoulder"]][0]  # its right on our left
    assert front[K["Nose"]][0] == pytest.approx(front[K["Neck"]][0])
    assert all(front[K[n]][2] == 1.0 for n in ("REye", "LEye", "REar", "LEar"))
    right, facing_r = turn_points("three_quarter_right")
    left, facing_l = turn_points("three_quarter_left")
    assert (facing_r, facing_l) == (1, -1)
    assert left[K["Nose"]][0] == pytest.approx(-right[K["Nose"]][0])
    profile, _ = turn_points("profile")
    assert profile[K["LEye"]][2] == 0.0 and profile[K["LEar"]][2] == 0.0 and profile[K["REye"]][2] == 1.0
    back, _ = turn_points("back")
    assert all(back[K[n]][2] == 0.0 for n in ("Nose", "REye", "LEye"))


def test_every_view_has_its_own_pose_control():
    aldar = builtin_bible()["aldar"]
    controls = {v.name: np.asarray(draw_pose(view_layout(v, aldar, W, H), W, H), dtype=np.int16) for v in VIEWS}
    turns = ["front", "three_quarter_left", "three_quarter_right", "profile", "back", "neutral"]
    for i, a in enumerate(turns):
        for b in turns[i + 1:]:
            assert np.abs(controls[a] - controls[b]).max() > 0, (a, b)
    layout = view_layout(VIEWS[0], aldar, W, H)
    x0, y0, x1, y1 = layout.figures[0].box
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1  # the IP-Adapter region covers the figure


# --------------------------------------------------------------------------- previz mode
def test_previz_sheet_writes_every_view_the_grid_and_the_json(tmp_path):
    out = tmp_path / "aldar"
    result = sheet("aldar", "--out", str(out), "--width", str(W), "--height", str(H))
    assert result.exit_code == 0, result.output
    data = json.loads((out / "sheet.json").read_text())
    assert data["character"] == "aldar" and data["renderer"] == "previz" and data["model"] is None
    assert [v["name"] for v in data["views"]] == list(VIEW_NAMES)
    for view in data["views"]:
        assert Image.open(out / view["file"]).size == (W, H)
        assert view["seed"] == 0 and view["pose"]["keypoints"]
        assert view["scores"]["reason"]  # no dlib face in a puppet (or no dlib): said, not left blank
    assert Image.open(out / "sheet.png").size == grid_size(len(VIEWS), W, H)[0]
    assert_all_views_differ(out, VIEW_NAMES)
    assert "views/back.png" not in data["references"] and "views/front.png" in data["references"]
    assert "references:" in result.stdout and str((out / "views" / "front.png").resolve()) in result.stdout

    before = hashes(out)
    again = sheet("aldar", "--out", str(out), "--width", str(W), "--height", str(H), "--views", "front,smiling")
    assert again.exit_code == 0, again.output  # a sheet folder is drawn again without --force
    after = hashes(out)
    assert set(after) == {"sheet.json", "sheet.png", "views/front.png", "views/smiling.png"}  # stale views removed
    assert after["views/front.png"] == before["views/front.png"]  # a view does not depend on the others drawn


def test_printed_references_load_as_the_characters_references(tmp_path):
    out = tmp_path / "sheet"
    result = sheet("bai", "--out", str(out), "--width", str(W), "--height", str(H), "--views", "front,back")
    assert result.exit_code == 0, result.output
    yaml_file = tmp_path / "refs.yaml"
    yaml_file.write_text(result.stdout)
    from autokose.bible import load_bible

    bai = load_bible(yaml_file)["bai"]
    assert bai.references == [str((out / "views" / "front.png").resolve())]
    assert bai.appearance == builtin_bible()["bai"].appearance  # the rest of the entry is kept


# --------------------------------------------------------------------------- bad input
def test_bad_input_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    assert_one_error_line(sheet("nobody", "--out", str(out)))
    assert not out.exists()
    assert_one_error_line(sheet("aldar", "--out", str(out), "--steps", "3"))  # a diffusion option without --model
    assert_one_error_line(sheet("aldar", "--out", str(out), "--views", "front,top"))
    assert_one_error_line(sheet("donkey", "--out", str(out)))
    assert not out.exists()


@pytest.mark.slow  # the model check imports diffusers
def test_a_bad_model_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    assert_one_error_line(sheet("aldar", "--out", str(out), "--model", str(tmp_path / "no-model")))
    assert not out.exists()
    out.mkdir()
    assert_one_error_line(sheet("aldar", "--out", str(out), "--model", str(tmp_path / "no-model"), "--force"))
    assert not any(out.iterdir())


def test_a_folder_that_is_not_a_sheet_needs_force_and_keeps_the_users_files(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert_one_error_line(sheet("aldar", "--out", str(out), "--width", str(W), "--height", str(H)))
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    result = sheet("aldar", "--out", str(out), "--width", str(W), "--height", str(H), "--views", "front", "--force")
    assert result.exit_code == 0, result.output
    assert (out / "notes.txt").read_text() == "mine" and (out / "views" / "front.png").is_file()
    assert not SheetFolder(out).is_sheet()  # the user's file is still there: --force again next time


# --------------------------------------------------------------------------- face identity
def test_face_scores_between_views_and_to_the_references(shared_data):
    from autokose import faces

    if not faces.available():
        pytest.skip("dlib is not installed")
    from autokose.images import open_rgb

    photos = shared_data / "faces"
    obama = [open_rgb(photos / "obama" / n) for n in ("1.jpg", "2.jpg")]
    biden = open_rgb(photos / "biden" / "1.jpg")
    views = {v.name: v for v in VIEWS}
    drawn = [DrawnView(views["front"], obama[0], None), DrawnView(views["smiling"], obama[1], None),
             DrawnView(views["angry"], biden, None), DrawnView(views["back"], biden, None)]
    assets = IdentityAssets("obama", references=[photos / "obama" / "1.jpg"])
    per_view, identity = face_scores(drawn, assets)
    pairs = {(p["a"], p["b"]): p["distance"] for p in identity["pairs"]}
    assert set(pairs) == {("front", "smiling"), ("front", "angry"), ("smiling", "angry")}  # never the back view
    assert pairs[("front", "smiling")] < identity["threshold"] < pairs[("front", "angry")]
    assert identity["mean_distance"] == pytest.approx(sum(pairs.values()) / 3, abs=1e-3)
    assert per_view["front"]["reference_distance"] < 0.1  # the reference is this very photo
    assert per_view["angry"]["reference_distance"] > identity["threshold"]
    assert per_view["back"] == {"face": None, "reason": "back view: no face to measure"}


# --------------------------------------------------------------------------- tiny diffusion model
@pytest.mark.slow
def test_tiny_model_sheet_with_controlnet_ip_adapter_and_lora(store, tmp_path, monkeypatch):
    monkeypatch.setenv("AUTOKOSE_CACHE", str(tmp_path / "cache"))  # reference embeddings stay out of ~/.cache
    model, controlnet = tiny.tiny_sd15(store), tiny.tiny_controlnet(store)
    adapter, lora = tiny.tiny_ip_adapter(store, "base"), tiny.tiny_lora_diffusers(store)
    refs = tmp_path / "refs"
    refs.mkdir()
    faces = tiny.reference_faces(refs)
    bible = tmp_path / "cast.yaml"
    bible.write_text(json.dumps({"characters": [{"id": "aldar", "lora": str(lora),
                                                 "references": [str(p) for p in faces]}]}))
    out = tmp_path / "sheet"
    common = ["aldar", "--out", str(out), "--model", str(model), "--controlnet", str(controlnet), "--ip-adapter",
              str(adapter), "--ip-adapter-scale", "1.0", "--characters", str(bible), "--width", "64", "--height", "128",
              "--steps", "2", "--seed", "7"]
    result = sheet(*common)
    assert result.exit_code == 0, result.output
    data = json.loads((out / "sheet.json").read_text())
    assert [v["name"] for v in data["views"]] == list(VIEW_NAMES)
    assert all(v["seed"] == 7 for v in data["views"]) and data["seed"] == 7
    assert all(Image.open(out / v["file"]).size == (64, 128) for v in data["views"])
    assert Image.open(out / "sheet.png").size == grid_size(len(VIEWS), 64, 128)[0]
    controls = data["controls"]
    assert controls["loras"] == [{"path": str(lora), "weight": 1.0, "character": "aldar"}]
    assert controls["controlnet"]["control"] == "openpose" and controls["ip_adapter"]["scale"] == 1.0
    assert "aldarkose" in data["views"][0]["prompt"] and "front view" in data["views"][0]["prompt"]
    assert_all_views_differ(out, VIEW_NAMES)

    first = hashes(out)
    # again with the same seed (three views, to keep the test short: each view is its own pipeline call)
    again = sheet(*common, "--views", "front,profile,back")
    assert again.exit_code == 0, again.output
    redrawn = hashes(out)
    assert {k: redrawn[k] for k in ("views/front.png", "views/profile.png", "views/back.png")} == \
        {k: first[k] for k in ("views/front.png", "views/profile.png", "views/back.png")}

    loose = sheet(*common, "--views", "front", "--controlnet-scale", "0")
    assert loose.exit_code == 0, loose.output
    assert hashes(out)["views/front.png"] != first["views/front.png"]  # the pose control drives the view


def test_a_views_request_has_its_pose_the_references_region_and_the_trigger(tmp_path):
    from autokose.render.diffusion.settings import DiffusionSettings
    from autokose.render.sheet import SheetPlan, view_request

    refs = tiny.reference_faces(tmp_path)
    aldar = builtin_bible()["aldar"]
    assets = IdentityAssets("aldar", trigger="zxaldar", references=refs)
    settings = DiffusionSettings(model="m", controlnet="c", ip_adapter="i", negative="sepia")
    plan = SheetPlan(aldar, assets, list(VIEWS), 64, 128, seed=3, diffusion=settings)
    front, back = (view_request(plan, v, view_layout(v, aldar, 64, 128)) for v in (VIEWS[0], VIEWS[4]))
    assert front.seed == back.seed == 3 and (front.width, front.height) == (64, 128)
    assert "zxaldar" in front.prompt and "back view" in back.prompt and "sepia" in front.negative
    assert front.controls["openpose"].size == (64, 128)
    assert np.abs(np.asarray(front.controls["openpose"], dtype=int) - np.asarray(back.controls["openpose"])).max() > 0
    (region,) = front.regions
    assert region.name == "aldar" and region.references == refs
    assert 0 < region.mask.sum() < 64 * 128 and region.mask.shape == (128, 64)  # the figure, not the whole frame


def test_without_an_ip_adapter_the_figure_is_still_the_characters_region():
    """A regional engine confines a character's LoRA to its regions: a sheet view needs one even
    without references, or the LoRA would act nowhere."""
    from autokose.render.diffusion.settings import DiffusionSettings
    from autokose.render.sheet import SheetPlan, view_request

    aldar = builtin_bible()["aldar"]
    plan = SheetPlan(aldar, IdentityAssets("aldar", trigger="zxaldar"), list(VIEWS), 64, 128, seed=3,
                     diffusion=DiffusionSettings(model="m"))
    (region,) = view_request(plan, VIEWS[0], view_layout(VIEWS[0], aldar, 64, 128)).regions
    assert region.name == "aldar" and region.references == [] and 0 < region.mask.sum() < 64 * 128
