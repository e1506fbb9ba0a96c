"""AutoKöse as ComfyUI custom nodes: loaded by ComfyUI's own loader, run by its own executor.

The ComfyUI tests run a real ComfyUI tree (../shared/vendor/ComfyUI, read-only) headless on CPU in
a subprocess (tests/comfy_harness.py), so its process-wide state stays out of this suite. They skip,
naming what is missing, when the tree or ComfyUI's requirements are absent. The UI workflow files
are checked against the API files by converting them the way ComfyUI's frontend does (widgets by
the order of INPUT_TYPES, links through a bypassed node to its input of the same type, muted nodes
dropped), and the same conversion emulates bypassing and muting nodes.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from autokose.app.cli import app
from autokose.comfy import LOADER, NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from autokose.comfy.types import BOARD, CHARACTER, LAYOUTS, STORY
from autokose.errors import InputError


@pytest.fixture(autouse=True)
def no_pipeline_kept_between_tests():
    """A node keeps its pipeline loaded for the process's life (`nodes.keep_pipelines_loaded`), as
    ComfyUI would: here each test lets it go, so no test sees another's model."""
    from autokose.comfy import nodes

    yield
    if nodes._warm is not None:
        nodes._warm.__exit__(None, None, None)
        nodes._warm = None

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples" / "comfy"
HARNESS = REPO / "tests" / "comfy_harness.py"
COMFYUI = REPO.parent / "shared" / "vendor" / "ComfyUI"
# What ComfyUI needs to import its nodes headless (torchvision: see comfy_harness.py).
# aiohttp is left out: without it only ComfyUI's server and four built-in node files (upscale models,
# canny, images, morphology) fail to import, which ComfyUI logs and these tests do not use.
COMFY_REQUIREMENTS = ("torch", "numpy", "PIL", "safetensors", "yaml", "psutil", "tqdm", "einops", "scipy",
                      "torchsde", "av", "transformers", "requests")
CUSTOM = (STORY, LAYOUTS, BOARD, CHARACTER)
SCALARS = ("INT", "FLOAT", "STRING", "BOOLEAN")
BUILTIN_INPUTS = {"PreviewImage": {"required": {"images": ("IMAGE",)}}}  # ComfyUI's own nodes the examples use
MUTED, BYPASSED = 2, 4


def load(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- UI → API, as the frontend does
def input_types(class_type: str) -> dict:
    cls = NODE_CLASS_MAPPINGS.get(class_type)
    return cls.INPUT_TYPES() if cls else BUILTIN_INPUTS[class_type]


def widget_names(class_type: str) -> list[tuple[str, bool]]:
    """(name, has a control_after_generate value after it) of each widget, in the order widgets_values holds them."""
    out = []
    types = input_types(class_type)
    for section in ("required", "optional"):
        for name, spec in types.get(section, {}).items():
            kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
            if (isinstance(kind, list) or kind in SCALARS) and not opts.get("forceInput"):
                out.append((name, bool(opts.get("control_after_generate"))))
    return out


def ui_to_api(ui: dict) -> dict:
    """An API-format graph from a UI workflow: muted nodes dropped, bypassed ones wired around."""
    nodes = {n["id"]: n for n in ui["nodes"]}
    links = {link[0]: link for link in ui["links"]}

    def source(link_id):
        _, src, slot, _, _, kind = links[link_id]
        node = nodes[src]
        if node["mode"] == MUTED:
            return None
        if node["mode"] == BYPASSED:  # the bypassed node's first input of the same type, followed on
            match = next((i for i in node.get("inputs", []) if i["type"] == kind and i.get("link") is not None), None)
            return source(match["link"]) if match else None
        return [str(src), slot]

    api = {}
    for node in ui["nodes"]:
        if node["mode"] in (MUTED, BYPASSED):
            continue
        values = iter(node.get("widgets_values", []))
        inputs = {}
        for name, control in widget_names(node["type"]):
            inputs[name] = next(values)
            if control:
                next(values)  # "fixed" / "randomize": the frontend's, not the node's
        assert next(values, None) is None, f"node {node['id']}: more widget values than widgets"
        for slot in node.get("inputs", []):
            if slot.get("link") is not None and (found := source(slot["link"])) is not None:
                inputs[slot["name"]] = found
        api[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return api


def bare(api: dict) -> dict:
    return {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in api.items()}


def with_modes(ui: dict, modes: dict[int, int]) -> dict:
    ui = copy.deepcopy(ui)
    for node in ui["nodes"]:
        node["mode"] = modes.get(node["id"], node["mode"])
    return ui


def node_id(api: dict, class_type: str) -> str:
    return next(k for k, v in api.items() if v["class_type"] == class_type)


# --------------------------------------------------------------------------- running ComfyUI
def comfy_missing() -> str | None:
    if not (COMFYUI / "nodes.py").is_file():
        return f"no ComfyUI tree at {COMFYUI}"
    missing = [m for m in COMFY_REQUIREMENTS if importlib.util.find_spec(m) is None]
    return f"ComfyUI's requirements are not installed: {', '.join(missing)}" if missing else None


needs_comfy = pytest.mark.skipif(comfy_missing() is not None, reason=comfy_missing() or "")


def run_comfy(tmp: Path, graphs: list[tuple[str, dict]], loras: dict[str, Path] | None = None) -> dict:
    """Run `graphs` one after another through ComfyUI (tests/comfy_harness.py); its result JSON."""
    base, custom = tmp / "comfy-base", tmp / "comfy-custom-nodes"
    custom.mkdir(parents=True, exist_ok=True)
    link = custom / "autokose"
    if not link.exists():
        link.symlink_to(LOADER, target_is_directory=True)
    for name, path in (loras or {}).items():
        (base / "models" / "loras").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, base / "models" / "loras" / name)
    spec = {"comfyui": str(COMFYUI), "base": str(base), "custom_nodes": str(custom), "result": str(tmp / "result.json"),
            "graphs": [{"name": name, "prompt": prompt} for name, prompt in graphs]}
    (tmp / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([sys.executable, str(HARNESS), str(tmp / "spec.json")], capture_output=True, text=True,
                          env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads((tmp / "result.json").read_text(encoding="utf-8"))
    result["output"] = base / "output"
    return result


def frame_stamps(run: dict, board: str) -> dict[str, list]:
    """frame file name → [sha256, mtime_ns] after `run`."""
    prefix = f"{board}/frames/"
    return {k.removeprefix(prefix): v for k, v in run["files"].items() if k.startswith(prefix) and k.endswith(".png")}


def succeeded(run: dict) -> None:
    assert run["valid"], (run["error"], run["node_errors"])
    assert run["success"], run["errors"]


# --------------------------------------------------------------------------- without ComfyUI
def test_comfy_path_prints_the_loader_folder():
    result = CliRunner().invoke(app, ["comfy", "path"])
    assert result.exit_code == 0, result.output
    folder = Path(result.stdout.strip())
    assert result.stdout == f"{folder}\n" and folder.is_dir()
    spec = importlib.util.spec_from_file_location("autokose_comfy_loader", folder / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.NODE_CLASS_MAPPINGS == NODE_CLASS_MAPPINGS
    assert module.NODE_DISPLAY_NAME_MAPPINGS == NODE_DISPLAY_NAME_MAPPINGS


def test_loader_says_when_autokose_is_missing():
    """ComfyUI's Python without autokose (here: no site-packages): one line saying what to install."""
    code = f"import runpy; runpy.run_path({str(LOADER / '__init__.py')!r})"
    done = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "ImportError: AutoKöse nodes: autokose is not installed in ComfyUI's Python" in done.stderr
    assert "-m pip install autokose" in done.stderr


def test_nodes_follow_comfyui_rules():
    """Classic API; a custom first input comes out first (bypass passes it through); writers are output nodes."""
    writers = {"AutoKoseRender", "AutoKoseScore", "AutoKoseExportBoard", "AutoKoseCharacterSheet",
               "AutoKoseVideoStylize"}
    for name, cls in NODE_CLASS_MAPPINGS.items():
        types = cls.INPUT_TYPES()
        assert cls.CATEGORY == "AutoKöse" and callable(getattr(cls, cls.FUNCTION)), name
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES), name
        first = next(iter(types["required"].values()))[0]
        if first in CUSTOM:
            assert cls.RETURN_TYPES[0] == first, name
        assert bool(getattr(cls, "OUTPUT_NODE", False)) == (name in writers), name
    render = NODE_CLASS_MAPPINGS["AutoKoseRender"].INPUT_TYPES()
    assert {"layouts", "character"} <= set(render["optional"]), "a muted Stage/Character must leave Render runnable"
    assert "character" in NODE_CLASS_MAPPINGS["AutoKoseWriteStory"].INPUT_TYPES()["optional"]


@pytest.mark.parametrize("name", ["storyboard", "rerender_scene_lora"])
def test_ui_workflow_is_the_api_graph(name):
    ui, api = load(f"{name}.json"), load(f"{name}.api.json")
    assert bare(ui_to_api(ui)) == bare(api)
    for node in ui["nodes"]:
        assert {"id", "type", "pos", "size", "mode", "widgets_values"} <= set(node)
    assert ui["last_link_id"] == max(link[0] for link in ui["links"])


def test_edit_scene_copies_and_checks():
    from autokose.comfy.nodes import EditScene, WriteStory

    (story,) = WriteStory().run("Aldar Köse sells the greedy Bai a magic coat", 3, 0, "offline")
    before = story.model_dump()
    (changed,) = EditScene().run(story, 2, caption="A new caption", shot="close_up", seed=7, action="  ")
    assert story.model_dump() == before, "an input was changed: ComfyUI shares node outputs"
    assert changed.scenes[1].caption == "A new caption" and changed.scenes[1].shot.value == "close_up"
    assert changed.scenes[1].seed == 7 and changed.scenes[1].action == story.scenes[1].action
    assert changed.scenes[0] == story.scenes[0]
    with pytest.raises(InputError, match=r"^scene: no scene 9 \(the story has scenes 1–3\)$"):
        EditScene().run(story, 9)


def test_bad_input_is_one_line():
    from autokose.comfy.nodes import Logline, Render, WriteStory

    with pytest.raises(InputError, match="^logline is empty$"):
        Logline().run("   ")
    (story,) = WriteStory().run("Aldar Köse sells the greedy Bai a magic coat", 2, 0, "offline")
    with pytest.raises(InputError, match="'..' would leave ComfyUI's output folder"):
        Render().run(story, "../elsewhere", "previz")
    with pytest.raises(InputError, match="Render diffusion: pick a checkpoint or give a model"):
        Render().run(story, "board", "diffusion")
    with pytest.raises(InputError, match=r"^only: "):
        Render().run(story, "board", "previz", only="three")


def test_render_writes_the_characters_it_is_given(tmp_path):
    """CHARACTER inputs reach the run as a characters file (IMAGE references written beside it), checked first."""
    import torch

    from autokose.comfy.nodes import CharacterNode, Render, WriteStory

    (aldar,) = CharacterNode().run("aldar", appearance="a red chapan", references=torch.full((2, 8, 8, 3), 0.5))
    (story,) = WriteStory().run("Aldar Köse sells the greedy Bai a magic coat", 1, 0, "offline", character=aldar)
    cfg, resume = Render.settings(story, tmp_path / "board", "previz", "(none)", "", "(none)", 1.0, 25, 7.0, 0.0, "",
                                  160, 96, None, [aldar])
    assert not resume and cfg.characters_file == str(tmp_path / "board" / "characters.yaml")
    written = (tmp_path / "board" / "characters.yaml").read_text(encoding="utf-8")
    assert "a red chapan" in written and (tmp_path / "board" / "references" / "aldar" / "02.png").is_file()
    assert "a red chapan" in story.character("aldar").appearance
    # no board there yet, only the characters: a second try (after a failed run) may write there
    again, _ = Render.settings(story, tmp_path / "board", "previz", "(none)", "", "(none)", 1.0, 25, 7.0, 0.0, "",
                               160, 96, None, [aldar])
    assert again == cfg
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("my own file", encoding="utf-8")
    with pytest.raises(InputError, match="folder is not empty and holds no board"):
        Render.settings(story, tmp_path / "mine", "previz", "(none)", "", "(none)", 1.0, 25, 7.0, 0.0, "", 160, 96,
                        None, [])
    with pytest.raises(InputError, match="given twice"):
        Render.settings(story, tmp_path / "other", "previz", "(none)", "", "(none)", 1.0, 25, 7.0, 0.0, "", 160, 96,
                        None, [aldar, aldar])
    assert not (tmp_path / "other").exists()


# --------------------------------------------------------------------------- through ComfyUI
@needs_comfy
@pytest.mark.slow
def test_storyboard_runs_in_comfyui_with_bypass_and_mute(tmp_path):
    """The loader registers every node; the storyboard example runs as shipped; with Edit Scene bypassed and
    Stage and Export muted (as the frontend sends such a graph) it still validates and runs."""
    ui, api = load("storyboard.json"), load("storyboard.api.json")
    edit, stage, export = (int(node_id(api, k)) for k in ("AutoKoseEditScene", "AutoKoseStage", "AutoKoseExportBoard"))
    edited = copy.deepcopy(api)
    edited[str(edit)]["inputs"]["caption"] = "EDITED IN COMFYUI"
    bypassed = ui_to_api(with_modes(ui, {edit: BYPASSED, stage: MUTED, export: MUTED}))
    assert str(edit) not in bypassed and str(export) not in bypassed
    bypassed[node_id(bypassed, "AutoKoseRender")]["inputs"]["output"] = "autokose/bypassed"
    assert "layouts" not in bypassed[node_id(bypassed, "AutoKoseRender")]["inputs"]
    again = copy.deepcopy(edited)
    again[str(edit)]["inputs"].update(scene=2, caption="SCENE TWO, EDITED LATER")
    result = run_comfy(tmp_path, [("example", edited), ("bypassed", bypassed), ("edited again", again)])

    assert set(result["loaded"]) == set(NODE_CLASS_MAPPINGS), "the loader's import failed (ComfyUI only logs it)"
    example, second, third = result["runs"]
    succeeded(example)
    board = result["output"] / "autokose" / "egg"
    story = example["stories"]["autokose/egg"]
    assert len(story["scenes"]) == 6 and story["scenes"][0]["caption"] == "EDITED IN COMFYUI"
    for index in range(1, 7):
        assert (board / "frames" / f"{index:02d}.png").is_file()
    for name in ("board.html", "board.pdf", "sheet.png", "shots.csv", "captions.srt"):
        assert (board / name).is_file(), name
    assert {"6", "8"} <= set(example["executed"])  # Render and Export reported their files

    succeeded(second)
    other = result["output"] / "autokose" / "bypassed"
    assert second["stories"]["autokose/bypassed"]["scenes"][0]["caption"] != "EDITED IN COMFYUI"
    assert (other / "board.html").is_file() and (other / "frames" / "06.png").is_file()
    assert not (other / "shots.csv").exists(), "the muted Export ran"

    succeeded(third)  # the same board again, Edit Scene on scene 2 (so scene 1 is as written): those two redrawn
    before, after = frame_stamps(example, "autokose/egg"), frame_stamps(third, "autokose/egg")
    assert [k for k in before if before[k][1] != after[k][1]] == ["01.png", "02.png"]
    story = third["stories"]["autokose/egg"]
    assert story["scenes"][1]["caption"] == "SCENE TWO, EDITED LATER"
    assert story["scenes"][0]["caption"] == second["stories"]["autokose/bypassed"]["scenes"][0]["caption"]


@needs_comfy
@pytest.mark.slow
def test_rerender_one_scene_with_a_lora_in_comfyui(tmp_path, store):
    """A tiny-model board, then the re-render example: scene 3 is drawn again with the LoRA, the rest kept."""
    import tiny

    model = str(tiny.tiny_sd15(store))
    board_graph = load("storyboard.api.json")
    for node in board_graph.values():
        if node["class_type"] == "AutoKoseWriteStory":
            node["inputs"]["scenes"] = 4
        if node["class_type"] in ("AutoKoseRender", "AutoKoseStage"):
            node["inputs"].update(width=96, height=64)
        if node["class_type"] == "AutoKoseRender":
            node["inputs"].update(renderer="diffusion", model=model, steps=2)
    rerender = load("rerender_scene_lora.api.json")
    render = rerender[node_id(rerender, "AutoKoseRender")]["inputs"]
    assert render["lora"] == "aldarkose.safetensors" and render["only"] == "3"
    render.update(model=model, steps=2, width=96, height=64)
    result = run_comfy(tmp_path, [("board", board_graph), ("rerender", rerender)],
                       loras={"aldarkose.safetensors": tiny.tiny_lora_diffusers(store)})
    first, second = result["runs"]
    succeeded(first)
    succeeded(second)
    frames, again = frame_stamps(first, "autokose/egg"), frame_stamps(second, "autokose/egg")
    assert frames.keys() == again.keys() and len(frames) == 4
    assert [k for k in frames if frames[k][0] != again[k][0]] == ["03.png"]
    assert [k for k in frames if frames[k][1] != again[k][1]] == ["03.png"], "a kept frame was written again"
    board = result["output"] / "autokose" / "egg"
    manifest = json.loads((board / "manifest.json").read_text(encoding="utf-8"))
    loras = manifest["frames"]["03"]["controls"]["loras"]
    assert loras and loras[0]["weight"] == 0.8 and not manifest["frames"]["02"]["controls"].get("loras")
    story = json.loads((board / "story.json").read_text(encoding="utf-8"))
    assert story["scenes"][2]["notes"] == "redrawn with Aldar Köse's LoRA"


def test_load_board_sees_edits_made_outside_comfyui(tmp_path):
    from autokose.comfy.nodes import LoadBoard, WriteStory

    (story,) = WriteStory().run("Aldar Köse sells the greedy Bai a magic coat", 2, 0, "offline")
    board = tmp_path / "board"
    board.mkdir()
    (board / "story.json").write_text(story.to_json(), encoding="utf-8")
    before = LoadBoard.IS_CHANGED(str(board))
    ref, loaded = LoadBoard().run(str(board))
    assert ref.root == board.resolve() and loaded == story
    (board / "story.json").write_text(story.to_json().replace(story.scenes[0].caption, "Changed by hand"),
                                      encoding="utf-8")
    assert LoadBoard.IS_CHANGED(str(board)) != before
    with pytest.raises(InputError, match="no story.json here"):
        LoadBoard().run(str(tmp_path))


@pytest.mark.slow
def test_character_sheet_gives_a_character_with_its_views(tmp_path):
    from autokose.comfy.nodes import CharacterNode, CharacterSheet

    (bai,) = CharacterNode().run("bai", appearance="a green robe")
    character, views = CharacterSheet().run(bai, str(tmp_path / "sheet"), "previz")["result"]
    assert views.ndim == 4 and views.shape[-1] == 3 and len(views) == 9 and 0.0 <= float(views.min())
    assert character.id == "bai" and character.entry["appearance"] == "a green robe"
    assert character.entry["references"] and all(Path(p).is_file() for p in character.entry["references"])
    assert bai.entry.get("references") is None, "the input character was changed"


def test_video_stylize_refuses_in_one_line(tmp_path):
    from autokose.comfy.nodes import VideoStylize

    with pytest.raises(InputError, match="^Video Stylize diffusion: pick a checkpoint or give a model"):
        VideoStylize().run(str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), "aldar")
    with pytest.raises(InputError, match="unknown character 'nobody'"):
        VideoStylize().run(str(tmp_path / "in.mp4"), str(tmp_path / "out.mp4"), "nobody", model="some/model")
    assert not list(tmp_path.iterdir())


def test_score_and_export_work_on_the_rendered_board(tmp_path):
    """Render → Score → Export Board called as ComfyUI calls them; export settings are saved with the board."""
    from autokose.comfy.nodes import ExportBoard, Render, Score, WriteStory

    (story,) = WriteStory().run("Aldar Köse sells the greedy Bai a magic coat", 2, 0, "offline")
    written, board, frames = Render().run(story, str(tmp_path / "b"), "previz", width=160, height=96)["result"]
    assert written == story and tuple(frames.shape) == (2, 96, 160, 3)
    mtimes = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "b" / "frames").glob("*.png")}
    same, summary = Score().run(board)["result"]
    assert same is board and "frames_none" in json.loads(summary)
    same, files = ExportBoard().run(board, "csv", fps="25", captions="(saved)", page="(saved)",
                                    orientation="(saved)", pdf_panels="4", still="still")["result"]
    assert str(tmp_path / "b" / "shots.csv") in files.splitlines()
    saved = json.loads((tmp_path / "b" / "manifest.json").read_text(encoding="utf-8"))["command"]["export"]
    assert (saved["fps"], saved["pdf_panels"], saved["still"]) == ("25", 4, True)
    Render().run(story, str(tmp_path / "b"), "previz", width=160, height=96)  # again: nothing to draw
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "b" / "frames").glob("*.png")} == mtimes


def test_progress_and_stop_go_through_comfyui(tmp_path, monkeypatch):
    """ComfyUI's ProgressBar hears the stages; its stop button stops the run with ComfyUI's own interruption."""
    import types

    from autokose.comfy.nodes import Render, WriteStory

    class Interrupted(Exception):
        pass

    updates, stop = [], {"now": False}

    class ProgressBar:
        def __init__(self, total):
            self.total = total

        def update_absolute(self, value, total=None):
            updates.append((value, total))

    def throw():
        if stop["now"]:
            raise Interrupted()

    comfy = types.ModuleType("comfy")
    utils = types.ModuleType("comfy.utils")
    utils.ProgressBar = ProgressBar
    management = types.ModuleType("comfy.model_management")
    management.processing_interrupted = lambda: stop["now"]
    management.throw_exception_if_processing_interrupted = throw
    comfy.utils, comfy.model_management = utils, management
    for name, module in (("comfy", comfy), ("comfy.utils", utils), ("comfy.model_management", management)):
        monkeypatch.setitem(sys.modules, name, module)

    (story,) = WriteStory().run("Aldar Köse sells the greedy Bai a magic coat", 2, 0, "offline")
    Render().run(story, str(tmp_path / "b"), "previz", width=160, height=96)
    assert (2, 2) in updates  # the two frames
    stop["now"] = True
    with pytest.raises(Interrupted):
        Render().run(story, str(tmp_path / "c"), "previz", width=160, height=96)
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_video_stylize_writes_the_video_and_a_preview(tmp_path, store):
    pytest.importorskip("av")
    import tiny
    from test_video_cli import synth

    from autokose.comfy.nodes import VideoStylize

    clip = synth(tmp_path / "in.mp4", frames=4)
    args = dict(video=str(clip), output=str(tmp_path / "out" / "v.mp4"), character_id="aldar",
                model=str(tiny.tiny_sd15(store)), steps=2, style="a yurt", size=64, end=0.1)
    video, preview = VideoStylize().run(**args)["result"]
    assert video == args["output"] and Path(video).is_file()
    assert preview.ndim == 4 and len(preview) == 3 and preview.shape[-1] == 3  # 0, 0.04 and 0.08 s at 25 fps
    drawn = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "v.frames").glob("*.png")}
    assert len(drawn) == 3
    VideoStylize().run(**args)  # again ("resume"): no frame is drawn again
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out" / "v.frames").glob("*.png")} == drawn


@pytest.mark.slow
def test_a_second_render_on_the_same_model_does_not_load_it_again(tmp_path, store, monkeypatch):
    import tiny

    from autokose.comfy import nodes
    from autokose.render.diffusion.engine import DiffusionEngine

    loads = []
    real = DiffusionEngine._load
    monkeypatch.setattr(DiffusionEngine, "_load", lambda self: loads.append(1) or real(self))
    (story,) = nodes.WriteStory().run("Aldar Köse sells the greedy Bai a magic coat", 2, 0, "offline")
    for name in ("a", "b"):
        nodes.Render().run(story, str(tmp_path / name), "diffusion", model=str(tiny.tiny_sd15(store)), steps=2,
                           width=64, height=64)
    assert len(loads) == 1
    assert (tmp_path / "a" / "frames" / "02.png").read_bytes() == (tmp_path / "b" / "frames" / "02.png").read_bytes()
