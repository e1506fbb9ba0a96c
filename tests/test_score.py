"""Identity scoring: the face metric on real photos, CLIP on a tiny model, aggregates, bad input."""

from __future__ import annotations

import itertools
import json
import logging
import re
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from autokose.board import HEATMAP_FILE, SCORES_FILE, Board
from autokose.errors import InputError
from autokose.faces import FaceBox, face_distance
from autokose.score import IdentityScorer, read_image, score_board
from autokose.score.clip import SKIPPED_NO_MODEL, load_clip
from autokose.score.face import THRESHOLD, Face, assign_faces, find_faces, identity_from_distance
from autokose.score.metrics import aggregate, heatmap, roc, similarity_matrix
from autokose.staging import Figure, Layout
from autokose.story import Character, Scene, Shot, Story

pytest.importorskip("dlib")


# --------------------------------------------------------------------------- helpers
def figure(cid: str, box=(0.0, 0.0, 0.0, 0.0), keypoints=()) -> Figure:
    return Figure(id=cid, x=(box[0] + box[2]) / 2, ground=box[3], height=box[3] - box[1], box=box,
                  keypoints=list(keypoints))


def layout(index: int, *figures: Figure) -> Layout:
    return Layout(index=index, shot=Shot.medium, setting="steppe", figures=list(figures))


def story_of(scenes: list[list[str]], references: dict[str, list[str]] | None = None, **character_fields) -> Story:
    references = references or {}
    ids = sorted({c for s in scenes for c in s} | set(references))
    return Story(title="t", logline="Aldar tricks the Bai",
                 characters=[Character(id=c, name=c, references=references.get(c, []), **character_fields.get(c, {}))
                             for c in ids],
                 scenes=[Scene(index=n, characters=cast, prompt=f"aldarkose on the steppe {n}")
                         for n, cast in enumerate(scenes, 1)])


def write_frames(root: Path, images: list[Image.Image | None]) -> Board:
    (root / "frames").mkdir(parents=True, exist_ok=True)
    for n, image in enumerate(images, 1):
        if image is not None:
            image.save(root / "frames" / f"{n:02d}.png")
    return Board(root)


def photo(faces: Path, name: str, height: int = 260) -> Image.Image:
    im = ImageOps.exif_transpose(Image.open(faces / name)).convert("RGB")
    return im.resize((round(im.width * height / im.height), height))


def side_by_side(left: Image.Image, right: Image.Image) -> tuple[Image.Image, tuple, tuple]:
    """Two photos in one frame, and the normalised boxes of each half."""
    frame = Image.new("RGB", (left.width + right.width, left.height), "white")
    frame.paste(left, (0, 0))
    frame.paste(right, (left.width, 0))
    split = left.width / frame.width
    return frame, (0.0, 0.0, split, 1.0), (split, 0.0, 1.0, 1.0)


def puppet(background, body=(63, 111, 176), size=(160, 120)) -> Image.Image:
    """A previz-like cartoon figure (no human face) in the box (0.3, 0.2, 0.6, 0.95)."""
    im = Image.new("RGB", size, background)
    d = ImageDraw.Draw(im)
    w, h = size
    d.rectangle((0.33 * w, 0.45 * h, 0.57 * w, 0.92 * h), fill=body)
    d.ellipse((0.38 * w, 0.22 * h, 0.52 * w, 0.45 * h), fill=(232, 185, 138))
    return im


PUPPET_BOX = (0.3, 0.2, 0.6, 0.95)


@cache
def photo_embeddings(faces: str) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(Path(faces).glob("*/*")):
        image, _ = read_image(path)
        found = find_faces(image)
        assert found, f"no face in {path}"
        out[f"{path.parent.name}/{path.name}"] = found[0].embedding
    return out


def tiny_clip(root: Path) -> Path:
    """A random-weight CLIPModel + processor saved as a local folder (the layout users have)."""
    import torch
    from tiny import tiny_tokenizer
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = Path(root) / "tiny-clip"
    if (folder / "config.json").is_file():
        return folder
    tokenizer = CLIPTokenizer.from_pretrained(str(tiny_tokenizer(Path(root) / "clip-tokenizer")))
    vocab = len(tokenizer)
    torch.manual_seed(0)
    model = CLIPModel(CLIPConfig(
        text_config={"vocab_size": vocab, "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 77, "bos_token_id": vocab - 2,
                     "eos_token_id": vocab - 1, "pad_token_id": vocab - 1},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16))
    model.save_pretrained(folder, safe_serialization=True)
    processor = CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                                 crop_size={"height": 32, "width": 32}),
                              tokenizer=tokenizer)
    processor.save_pretrained(folder)
    return folder


# --------------------------------------------------------------------------- face metric on real photos
@pytest.mark.slow
def test_face_distance_separates_people(shared_data):
    """Same-person pairs are closer than the threshold, different-person pairs farther; AUC 1.0."""
    embeddings = photo_embeddings(str(shared_data / "faces"))
    assert len(embeddings) == 8
    rows = [(a.split("/")[0] == b.split("/")[0], face_distance(ea, eb))
            for (a, ea), (b, eb) in itertools.combinations(embeddings.items(), 2)]
    same = [d for s, d in rows if s]
    different = [d for s, d in rows if not s]
    assert len(same) == 4 and len(different) == 24
    result = roc([d for _, d in rows], [s for s, _ in rows])
    assert result["auc"] >= 0.99
    assert max(same) < THRESHOLD < min(different)
    assert max(same) < result["youden_threshold"] < min(different)


def test_identity_from_distance_is_documented_mapping():
    assert identity_from_distance(0.0) == 1.0
    assert identity_from_distance(THRESHOLD) == pytest.approx(0.5)
    assert identity_from_distance(2 * THRESHOLD) == 0.0 and identity_from_distance(5.0) == 0.0
    values = [identity_from_distance(d) for d in np.linspace(0, 1.5, 20)]
    assert values == sorted(values, reverse=True)


def test_roc_finds_a_threshold_between_the_classes():
    result = roc([0.3, 0.4, 0.5, 0.8, 0.9], [True, True, True, False, False])
    assert result["auc"] == 1.0 and 0.5 < result["youden_threshold"] < 0.8
    assert roc([0.9, 0.3], [True, False])["auc"] == 0.0
    with pytest.raises(ValueError):
        roc([0.1, 0.2], [True, True])


# --------------------------------------------------------------------------- which face is whose
def face_at(left, top, size=40) -> Face:
    return Face(FaceBox(left, top, left + size, top + size), np.zeros(128))


def test_one_character_gets_the_largest_face():
    small, big = face_at(10, 10, 20), face_at(100, 10, 60)
    assert assign_faces([small, big], ["aldar"], [], (200, 100))["aldar"] is big


def test_faces_are_matched_to_staged_figures():
    left, right = face_at(20, 10), face_at(140, 10)
    figures = [figure("aldar", (0.0, 0.0, 0.5, 1.0)), figure("bai", (0.5, 0.0, 1.0, 1.0))]
    got = assign_faces([right, left], ["aldar", "bai"], figures, (200, 100))
    assert got == {"aldar": left, "bai": right}
    swapped = [figure("aldar", (0.5, 0.0, 1.0, 1.0)), figure("bai", (0.0, 0.0, 0.5, 1.0))]
    assert assign_faces([right, left], ["aldar", "bai"], swapped, (200, 100)) == {"aldar": right, "bai": left}


def test_nose_keypoint_decides_between_faces_in_one_box():
    """Two faces inside one figure's box: the one at its nose keypoint is theirs."""
    upper, lower = face_at(20, 5), face_at(20, 55)
    nose = [(0.2, 0.75, 1.0)] + [(0.0, 0.0, 0.0)] * 17
    figures = [figure("aldar", (0.0, 0.0, 0.5, 1.0), nose), figure("bai", (0.5, 0.0, 1.0, 1.0))]
    assert assign_faces([upper, lower], ["aldar", "bai"], figures, (200, 100)) == {"aldar": lower}


def test_faces_without_staging_go_left_to_right_only_when_counts_match():
    a, b = face_at(120, 10), face_at(10, 10)
    assert assign_faces([a, b], ["aldar", "bai"], [], (200, 100)) == {"aldar": b, "bai": a}
    assert assign_faces([a, b, face_at(60, 60)], ["aldar", "bai"], [], (200, 100)) == {}
    assert assign_faces([], ["aldar"], [], (200, 100)) == {}


# --------------------------------------------------------------------------- boards of real faces
@pytest.mark.slow
def test_score_board_with_real_faces_tells_characters_apart(shared_data, tmp_path):
    """Right references score ok; swapping the references makes both characters low."""
    faces = shared_data / "faces"
    frame1, left1, right1 = side_by_side(photo(faces, "obama/1.jpg"), photo(faces, "biden/1.jpg"))
    frame2, left2, right2 = side_by_side(photo(faces, "biden/2.jpg"), photo(faces, "obama/2.jpg"))
    layouts = [layout(1, figure("aldar", left1), figure("bai", right1)),
               layout(2, figure("bai", left2), figure("aldar", right2))]
    board = write_frames(tmp_path / "board", [frame1, frame2])
    refs = {"aldar": [str(faces / "obama/2.jpg")], "bai": [str(faces / "biden/2.jpg")]}
    right = score_board(board, story_of([["aldar", "bai"], ["bai", "aldar"]], refs), layouts)
    for key in ("01", "02"):
        entry = right["frames"][key]
        assert entry["status"] == "ok" and entry["method"] == "face" and entry["faces"] == 2
        assert entry["model"] == "dlib_face_recognition_resnet_model_v1"
        for c in entry["characters"].values():
            assert c["distance"] < THRESHOLD and c["identity"] > 0.5
    assert right["summary"]["frames_ok"] == 2 and right["summary"]["protagonist"] == "aldar"
    assert right["matrix"]["metric"] == "face" and right["matrix"]["values"][0][1] > 0.5
    assert (board.root / HEATMAP_FILE).is_file()
    assert json.loads((board.root / SCORES_FILE).read_text()) == right

    swapped = {"aldar": refs["bai"], "bai": refs["aldar"]}
    wrong = score_board(board, story_of([["aldar", "bai"], ["bai", "aldar"]], swapped), layouts)
    for key in ("01", "02"):
        assert wrong["frames"][key]["status"] == "low"
        assert all(c["distance"] > THRESHOLD for c in wrong["frames"][key]["characters"].values())
    assert wrong["summary"]["frames_low"] == 2 and wrong["summary"]["mean_identity"] < right["summary"]["mean_identity"]


@pytest.mark.slow
def test_card_centroid_is_the_reference_and_other_frames_are_the_fallback(shared_data, tmp_path):
    faces = shared_data / "faces"
    centroid = photo_embeddings(str(faces))["obama/2.jpg"]
    card = tmp_path / "aldar.card.json"
    card.write_text(json.dumps({"face_centroid": centroid.tolist()}))
    board = write_frames(tmp_path / "b", [photo(faces, "obama/1.jpg"), photo(faces, "rose_leslie/1.jpg"),
                                          photo(faces, "biden/1.jpg")])
    story = story_of([["aldar"], ["aldar"], ["bai"]], aldar={"card": str(card)})
    scores = score_board(board, story, [layout(n) for n in (1, 2, 3)])
    f = scores["frames"]
    assert f["01"]["status"] == "ok" and f["01"]["method"] == "face"
    assert f["02"]["status"] == "low"  # someone else wearing Aldar's name
    assert scores["summary"]["worst_frame"] == "02"
    assert f["03"]["identity"] is None and f["03"]["status"] == "none"  # the Bai: no reference, no other frame
    assert "no reference and no other frame" in f["03"]["reason"]

    card.write_text(json.dumps({"face_centroid": [1, 2, 3]}))
    scores = score_board(board, story, [layout(n) for n in (1, 2, 3)])
    assert "face_centroid is not 128 numbers" in scores["summary"]["note"]
    # no reference left: the two Aldar frames are compared with each other
    assert scores["frames"]["01"]["method"] == "face-to-frames"
    assert scores["frames"]["01"]["status"] == "low"


@pytest.mark.slow
def test_loop_scorer_measures_against_references(shared_data):
    from autokose.render import Frame

    faces = shared_data / "faces"
    story = story_of([["aldar"]], {"aldar": [str(faces / "obama/2.jpg")]})
    scorer = IdentityScorer(story)
    scene, lay = story.scenes[0], layout(1)
    same = scorer(Frame(1, photo(faces, "obama/1.jpg"), 0), scene, lay)
    other = scorer(Frame(1, photo(faces, "rose_leslie/2.jpg"), 0), scene, lay)
    assert same > 0.5 > other
    assert scorer(Frame(1, puppet("white"), 0), scene, lay) is None


@pytest.mark.slow
def test_loop_scorer_without_references_prefers_the_board_look(shared_data):
    """No reference anywhere: a candidate is scored against the character in the other scenes."""
    from autokose.render import Frame

    faces = shared_data / "faces"
    story = story_of([["aldar"]] * 3)
    scenes, lay = story.scenes, layout(1)
    scorer = IdentityScorer(story)
    first = [photo(faces, "biden/1.jpg"), photo(faces, "obama/2.jpg"), photo(faces, "obama/1.jpg")]
    scorer.anchor([(Frame(n, im, n), scenes[n - 1], lay) for n, im in enumerate(first, 1)])
    like_board = scorer(Frame(1, photo(faces, "obama/1.jpg"), 7), scenes[0], lay)
    unlike = scorer(Frame(1, photo(faces, "rose_leslie/1.jpg"), 8), scenes[0], lay)
    shown = scorer(Frame(1, first[0], 1), scenes[0], lay)  # its own first candidate: no self-bonus
    assert like_board > 0.5 > unlike and shown < 0.5


# --------------------------------------------------------------------------- bad input
def test_bad_frames_score_none_with_reasons(tmp_path):
    board = write_frames(tmp_path, [puppet("white"), None, None, Image.new("L", (120, 90), 128),
                                    Image.new("RGB", (4, 3), "red"), puppet("white")])
    (tmp_path / "frames" / "03.png").write_bytes(b"not a png at all")
    story = story_of([["aldar"], ["aldar"], ["aldar"], ["aldar"], ["aldar"], []])
    layouts = [layout(n, figure("aldar", PUPPET_BOX)) for n in range(1, 6)] + [layout(6)]
    scores = score_board(board, story, layouts)
    f = scores["frames"]
    assert all(e["status"] == "none" and e["identity"] is None for e in f.values())
    assert "no face found" in f["01"]["reason"] and SKIPPED_NO_MODEL in f["01"]["reason"]
    assert "not rendered" in f["02"]["reason"]
    assert "frames/03.png: not an image" in f["03"]["reason"]
    assert "no face found" in f["04"]["reason"] and "no face found" in f["05"]["reason"]
    assert f["06"]["reason"] == "no characters in this scene"
    s = scores["summary"]
    assert s["frames_none"] == 6 and s["mean_identity"] is None and s["worst_frame"] is None
    assert SKIPPED_NO_MODEL in s["note"]
    assert not (tmp_path / HEATMAP_FILE).exists()
    json.loads((tmp_path / SCORES_FILE).read_text())


def test_board_without_frames_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="no frames to score"):
        score_board(Board(tmp_path), story_of([["aldar"]]), [layout(1)])


def test_missing_reference_and_card_are_notes_not_crashes(tmp_path):
    board = write_frames(tmp_path, [puppet("white")])
    story = story_of([["aldar"]], {"aldar": [str(tmp_path / "gone.png")]}, aldar={"card": str(tmp_path / "no.json")})
    scores = score_board(board, story, [layout(1)])
    assert "character card not found" in scores["summary"]["note"]
    story = story_of([["aldar"]], {"aldar": [str(tmp_path / "gone.png")]})
    assert "reference" in score_board(board, story, [layout(1)])["summary"]["note"]


def test_cli_score_without_story_is_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from autokose.app.cli import app

    result = CliRunner().invoke(app, ["score", str(tmp_path)])
    assert result.exit_code == 2 and "no story.json" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------------------- CLIP
@pytest.mark.slow
def test_clip_is_skipped_with_a_reason():
    assert load_clip(None) == (None, SKIPPED_NO_MODEL)
    assert load_clip("nobody/no-such-clip") == (None, "clip: skipped — not found offline: nobody/no-such-clip")


@pytest.mark.slow
def test_clip_fallback_scores_figures_inside_their_box(tmp_path):
    """Puppets have no face: CLIP on the staged box. Same figure, other background: CLIP-I 1.0."""
    clip = str(tiny_clip(tmp_path))
    ref = tmp_path / "aldar_ref.png"
    puppet("white").crop((40, 20, 100, 118)).save(ref)
    frames = [puppet((250, 250, 250)), puppet((250, 250, 250)), puppet((250, 250, 250), body=(200, 30, 30))]
    # frame 2: the same figure, a different background outside its box
    ImageDraw.Draw(frames[1]).rectangle((0, 0, 40, 120), fill=(10, 120, 10))
    board = write_frames(tmp_path / "b", frames)
    story = story_of([["aldar"]] * 3, {"aldar": [str(ref)]})
    layouts = [layout(n, figure("aldar", PUPPET_BOX)) for n in (1, 2, 3)]
    scores = score_board(board, story, layouts, clip_model=clip)
    f = scores["frames"]
    for entry in f.values():
        assert entry["method"] == "clip-figure" and entry["model"] == f"clip:{clip}"
        assert entry["reason"] == "no face found; fallback: CLIP on the figure's staged box"
        assert 0.0 <= entry["identity"] <= 1.0 and entry["clip_t"] is not None
        assert entry["characters"]["aldar"]["clip_i"] is not None
    assert f["01"]["identity"] == pytest.approx(f["02"]["identity"], abs=1e-4)  # only the box is compared
    assert f["01"]["clip_t"] != f["02"]["clip_t"]  # CLIP-T sees the whole frame
    assert f["03"]["identity"] != pytest.approx(f["01"]["identity"], abs=1e-4)  # the figure changed
    m = scores["matrix"]
    assert m["metric"] == "clip" and m["values"][0][1] == pytest.approx(1.0, abs=1e-4)
    assert scores["summary"]["clip_model"] == clip and scores["summary"]["clip_t_mean"] is not None
    assert (board.root / HEATMAP_FILE).is_file()
    rerun = score_board(board, story, layouts, clip_model=clip)
    assert rerun == scores


# --------------------------------------------------------------------------- aggregates and heatmap
def test_aggregate_and_matrix():
    expected = {"mean_identity": 0.6, "min_identity": 0.4, "worst_frame": "03"}
    assert aggregate({"01": 0.8, "02": None, "03": 0.4}) == expected
    assert aggregate({"01": None}) == {"mean_identity": None, "min_identity": None, "worst_frame": None}
    m = similarity_matrix([1.0, 2.0, None], lambda a, b: None if a is None or b is None else 1 / (1 + abs(a - b)))
    assert m[0] == [1.0, 0.5, None] and m[2] == [None, None, None] and m[1][0] == 0.5


def test_heatmap_grows_with_frames_and_colours_values():
    small = heatmap([[1.0, 0.2], [0.2, 1.0]], ["01", "02"], "aldar")
    big = heatmap([[1.0] * 6] * 6, [f"{i:02d}" for i in range(1, 7)], "aldar")
    assert big.size[0] > small.size[0] and big.size[1] > small.size[1]
    px = np.asarray(small)
    assert px.reshape(-1, 3).std(axis=0).sum() > 0  # green and red cells, not blank


@pytest.mark.slow
def test_cli_scores_a_previz_board(tmp_path):
    """Previz puppets have no faces: without CLIP every frame is "none" and says why; html shows badges."""
    from typer.testing import CliRunner

    from autokose.app.cli import app

    out = tmp_path / "egg"
    made = CliRunner().invoke(app, ["story", "Aldar Köse sells the Bai a golden egg", "--scenes", "3", "--out", str(out),
                                    "--stages", "write,cast,render"])
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(app, ["score", str(out)])
    assert result.exit_code == 0, result.output
    scores = json.loads((out / SCORES_FILE).read_text())
    assert json.loads(result.stdout) == scores["summary"]
    for entry in scores["frames"].values():
        assert entry["status"] == "none" and entry["identity"] is None and entry["reason"]
    # Nothing to measure against and no CLIP model: the reason says so rather than faking a score.
    assert any(SKIPPED_NO_MODEL in e["reason"] for e in scores["frames"].values())
    assert 'class="badge none"' in (out / "board.html").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- hostile frames and settings
def test_huge_frame_and_reference_are_refused_from_the_header(tmp_path):
    """A 50000×50000 PNG as a frame or a reference: one reason each, no decoding, no crash."""
    from test_bad_weights import png_header

    bomb = png_header(tmp_path / "bomb.png", 50000, 50000)
    story = story_of([["aldar"], ["aldar"]], references={"aldar": [str(bomb)]})
    board = write_frames(tmp_path / "board", [puppet((200, 200, 200)), None])
    png_header(board.frame_path(2), 50000, 50000)
    scores = score_board(board, story, [layout(1), layout(2)])
    assert scores["frames"]["02"]["reason"].startswith("frames/02.png: too large (")
    assert f"aldar: reference {bomb}: too large" in scores["summary"]["note"]
    (board.frame_path(2)).write_text("not a png")
    reason = score_board(board, story, [layout(1), layout(2)])["frames"]["02"]["reason"]
    assert reason == "frames/02.png: not an image"


def test_previz_board_says_why_nothing_was_scored(tmp_path, caplog):
    story = story_of([["aldar"], ["aldar"]])
    board = write_frames(tmp_path, [puppet((200, 200, 200)), puppet((90, 160, 90))])
    for n in (1, 2):
        board.frame_path(n, "svg").write_text("<svg/>")  # what the previz renderer writes beside its frames
    with caplog.at_level(logging.WARNING, logger="autokose"):
        scores = score_board(board, story, [layout(1), layout(2)])
    why = "previz puppets have no faces and no --clip-model was given: nothing to score"
    assert scores["summary"]["reason"] == why
    assert [r.getMessage() for r in caplog.records] == [why]
    assert json.loads((tmp_path / SCORES_FILE).read_text())["summary"]["reason"] == why


def test_a_frame_with_a_score_gives_no_reason(tmp_path):
    story = story_of([["aldar"], ["aldar"]])
    board = write_frames(tmp_path, [puppet((200, 200, 200)), puppet((90, 160, 90))])
    scores = score_board(board, story, [layout(1), layout(2)], clip_model=str(tiny_clip(tmp_path / "m")))
    assert scores["summary"]["reason"] is None and (tmp_path / HEATMAP_FILE).is_file()


@pytest.mark.parametrize("case", ["missing folder", "no config", "not clip", "not cached"])
def test_unloadable_clip_model_is_an_input_error_before_scoring(tmp_path, case):
    from autokose.score.clip import check_clip_model

    folder = tmp_path / "clip"
    spec = {"missing folder": str(tmp_path / "nope"), "not cached": "nobody/no-such-clip"}.get(case, str(folder))
    if case in ("no config", "not clip"):
        folder.mkdir()
    if case == "not clip":
        (folder / "config.json").write_text(json.dumps({"model_type": "bert"}))
    expected = {"missing folder": "not a CLIP model folder, and not a Hugging Face repo id",
                "no config": "no config.json", "not clip": "not a CLIP model (its config says model_type 'bert')",
                "not cached": "not in the local Hugging Face cache"}[case]
    with pytest.raises(InputError, match=re.escape(f"--clip-model {spec}: {expected}")):
        check_clip_model(spec)
    board = write_frames(tmp_path / "board", [puppet((200, 200, 200))])
    with pytest.raises(InputError, match="--clip-model"):
        score_board(board, story_of([["aldar"]]), [layout(1)], clip_model=spec)
    assert not (tmp_path / "board" / SCORES_FILE).exists()
