"""AutoKöse's stages as ComfyUI nodes (the classic node API: INPUT_TYPES, RETURN_TYPES, FUNCTION).

Thin on purpose: every node turns its widgets into the option dict the command line builds and
calls the same function (`config.resolve` + `pipeline.run`, `pipeline.stage`, `pipeline.score`,
`pipeline.export`, `render.sheet`, `video.options`), so a graph and `autokose story` draw the same
board. What is ComfyUI's alone lives here: its folders (checkpoints and LoRAs from its models
folders; a relative output folder under its output directory), its progress bar and stop button,
and IMAGE batches (float [N, H, W, 3] in 0..1) so its Preview and Save Image nodes show frames.

Why ComfyUI's MODEL/CLIP/VAE are not inputs: the renderer needs diffusers modules carrying
AutoKöse's attention processors (consistent self-attention, regional prompts and IP-Adapter
regions), which ComfyUI's own model objects are not; the bridge is the same files, taken from
ComfyUI's `checkpoints` and `loras` folders.

Rules every node keeps, for ComfyUI's sake: an input is never changed (ComfyUI caches and shares
node outputs), a node whose first input is a custom type returns that type first (a bypassed
node passes it through), and inputs a muted Stage/Edit/Character would feed are optional.
ComfyUI is imported lazily and guarded: this module imports without it (`autokose comfy path`,
the tests of the node classes).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from pathlib import Path

from autokose.comfy.types import BOARD, CHARACTER, LAYOUTS, STORY, BoardRef, CharacterEntry, Layouts
from autokose.errors import Cancelled, InputError, first_line
from autokose.story import MAX_SCENES, Angle, Shot, Story

log = logging.getLogger("autokose")

CATEGORY = "AutoKöse"
NONE = "(none)"  # the first choice of a checkpoint or LoRA list: none taken from ComfyUI's folders
UNCHANGED = "(unchanged)"
SAVED = "(saved)"  # an export setting left as the board saved it
RENDERERS = ["previz", "diffusion"]
SEED_MAX = 2**32 - 1
OPTIONAL_CHARACTERS = {"character": (CHARACTER,), "character_2": (CHARACTER,), "character_3": (CHARACTER,)}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


# --------------------------------------------------------------------------- ComfyUI, guarded
def model_files(kind: str) -> list[str]:
    """ComfyUI's files of one models folder ("checkpoints", "loras"), or none outside ComfyUI."""
    try:
        import folder_paths
    except ImportError:
        return []
    return list(folder_paths.get_filename_list(kind))


def model_path(kind: str, name: str) -> str | None:
    """The full path of a file picked from ComfyUI's `kind` folder; None for NONE."""
    if not name or name == NONE:
        return None
    try:
        import folder_paths
    except ImportError:
        raise InputError(f"{kind} {name!r}: ComfyUI's model folders are not available here") from None
    path = folder_paths.get_full_path(kind, name)
    if path is None:
        raise InputError(f"{kind} {name!r}: not in ComfyUI's {kind} folder")
    return path


def comfy_folder(which: str) -> Path:
    """ComfyUI's output or input directory (the working directory's `output`/`input` outside ComfyUI)."""
    try:
        import folder_paths
    except ImportError:
        return Path.cwd() / which
    return Path(folder_paths.get_output_directory() if which == "output" else folder_paths.get_input_directory())


def place(text: str, what: str, under: str = "output") -> Path:
    """A path a node was given: absolute as given; relative under ComfyUI's output (or input)
    directory, which it may not climb out of, so a shared ComfyUI server keeps boards in one place."""
    text = (text or "").strip()
    if not text:
        raise InputError(f"{what}: give a path (relative paths lie under ComfyUI's {under} folder)")
    path = Path(text).expanduser()
    if path.is_absolute():
        return path
    if ".." in path.parts:
        raise InputError(f"{what} {text!r}: '..' would leave ComfyUI's {under} folder (give an absolute path instead)")
    return comfy_folder(under) / path


def progress_bars():
    """`pipeline.Progress` drawn as one ComfyUI progress bar per stage; a no-op outside ComfyUI."""
    try:
        from comfy.utils import ProgressBar
    except ImportError:
        return lambda stage, done, total: None
    bars: dict[str, object] = {}

    def update(stage: str, done: int, total: int) -> None:
        bar = bars.setdefault(stage, ProgressBar(max(total, 1)))
        bar.update_absolute(done, max(total, 1))

    return update


_warm = None  # the engine's keep_warm, entered once for ComfyUI's process


def keep_pipelines_loaded() -> None:
    """Keep the last diffusion pipeline loaded between node runs, as ComfyUI keeps its own models:
    a second Render (or Sheet, or Video Stylize) on the same model and LoRAs starts drawing at
    once instead of loading seconds (minutes, from a slow disk) of weights again. One pipeline at
    a time (`engine.keep_warm`): picking another model frees the last one first."""
    global _warm
    if _warm is None:
        from autokose.render.diffusion.engine import keep_warm

        _warm = keep_warm()
        _warm.__enter__()


def stop_asked() -> bool:
    """ComfyUI's stop button, as the pipeline's `cancel` ("stop now?")."""
    try:
        from comfy.model_management import processing_interrupted
    except ImportError:
        return False
    return processing_interrupted()


def one_line_errors(fn):
    """Bad input → an exception whose message is the one line the CLI prints (ComfyUI shows it on
    the node); a stop asked with ComfyUI's button → ComfyUI's own interruption."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except InputError as e:
            raise InputError(first_line(e)) from None
        except Cancelled:
            try:
                from comfy.model_management import throw_exception_if_processing_interrupted
            except ImportError:
                raise
            throw_exception_if_processing_interrupted()
            raise

    return wrapper


# --------------------------------------------------------------------------- data in and out
def images_tensor(pictures):
    """PIL pictures as ComfyUI's IMAGE: float [N, H, W, 3] in 0..1 (all at the first one's size)."""
    import numpy as np
    import torch

    if not pictures:
        return torch.zeros((1, 64, 64, 3), dtype=torch.float32)
    size = pictures[0].size
    arrays = [np.asarray(p.convert("RGB").resize(size) if p.size != size else p.convert("RGB"), dtype=np.float32)
              for p in pictures]
    return torch.from_numpy(np.stack(arrays) / 255.0).float()


def tensor_pictures(images) -> list:
    """ComfyUI's IMAGE batch as uint8 H×W×3 arrays."""
    import numpy as np

    batch = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    return [np.clip(np.rint(frame[..., :3] * 255.0), 0, 255).astype(np.uint8) for frame in batch]


def board_frames(root: Path, story: Story):
    """The board's frames in scene order, as an IMAGE batch."""
    from autokose.board import Board
    from autokose.export import frame_files, open_frame

    files = frame_files(Board(root), story)
    return images_tensor([open_frame(files[s.index]) for s in story.scenes if s.index in files])


def ui_images(files: list[Path]) -> list[dict]:
    """ComfyUI's preview entries for files under its output folder (others are not served)."""
    base = comfy_folder("output").resolve()
    out = []
    for path in files:
        path = path.resolve()
        if path.is_relative_to(base):
            out.append({"filename": path.name, "subfolder": path.parent.relative_to(base).as_posix(), "type": "output"})
    return out


def characters_of(kwargs: dict) -> list[CharacterEntry]:
    return [kwargs[k] for k in OPTIONAL_CHARACTERS if kwargs.get(k) is not None]


def diffusion_model(renderer: str, checkpoint: str, model: str, what: str = "renderer") -> str | None:
    """The model of a diffusion node: the `model` text (HF id, diffusers folder, .safetensors) wins over
    the checkpoint picked from ComfyUI's folder. None for previz."""
    if renderer == "previz":
        return None
    found = (model or "").strip() or model_path("checkpoints", checkpoint)
    if not found:
        raise InputError(f"{what} diffusion: pick a checkpoint or give a model (HF repo id, diffusers folder "
                         "or .safetensors file)")
    return found


def lora_spec(lora: str, weight: float) -> list[str]:
    path = model_path("loras", lora)
    return [f"{path}:{weight:g}"] if path else []


def parse_scene_list(only: str) -> list[int] | None:
    """"3,5" → [3, 5], as the CLI reads --only (`scenes.scene_numbers`); empty: None (every scene)."""
    from autokose.scenes import scene_numbers

    if not (only or "").replace(",", "").strip():
        return None
    try:
        return scene_numbers(only)
    except InputError as e:
        raise InputError(f"only: {e}") from None


def edited(story: Story, index: int, fields: dict) -> Story:
    """A copy of `story` with scene `index`'s `fields` replaced, checked like story.json (one line)."""
    from pydantic import ValidationError

    from autokose.errors import format_validation_error

    if not 1 <= index <= len(story.scenes):
        raise InputError(f"scene: no scene {index} (the story has scenes 1–{len(story.scenes)})")
    data = story.model_dump(mode="json")
    data["scenes"][index - 1].update(fields)
    try:
        return Story.model_validate(data)
    except ValidationError as e:
        raise InputError(f"scene {index}: {format_validation_error(e)}") from None


def frames_to_redraw(board, story: Story, cfg) -> list[int] | None:
    """The scenes a re-run draws when no `only` is given: none is kept whose scene, or whose render
    settings, differ from what drew it (the missing frames `resume` adds itself). None: resume alone."""
    from autokose.config import saved

    before = saved(board)
    if before is not None and before.render.model_dump() != cfg.render.model_dump():
        return [s.index for s in story.scenes]
    old = {s.index: s for s in board.load_story().scenes}
    changed = [s.index for s in story.scenes if old.get(s.index) != s]
    return changed or None


# --------------------------------------------------------------------------- nodes
class Logline:
    """The one line a story is written from, checked as the command line checks it."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("logline",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True,
                                                 "default": "Aldar Köse sells the greedy Bai a magic coat"})}}

    @one_line_errors
    def run(self, text):
        from autokose.story import check_logline

        check_logline(text)
        return (text.strip(),)


class WriteStory:
    """Logline → STORY with the offline writer or an LLM, in memory (Render writes story.json)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (STORY,)
    RETURN_NAMES = ("story",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        from autokose.writers import WRITERS

        return {"required": {
                    "logline": ("STRING", {"forceInput": True}),
                    "scenes": ("INT", {"default": 8, "min": 1, "max": MAX_SCENES}),
                    "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": True}),
                    "writer": (list(WRITERS),),
                    "llm_base_url": ("STRING", {"default": ""}),
                    "llm_model": ("STRING", {"default": ""}),
                    "llm_config": ("STRING", {"default": ""}),
                },
                "optional": dict(OPTIONAL_CHARACTERS)}

    @one_line_errors
    def run(self, logline, scenes, seed, writer, llm_base_url="", llm_model="", llm_config="", **characters):
        from autokose.comfy.types import bible_of
        from autokose.config import resolve
        from autokose.pipeline import logline_fidelity
        from autokose.writers import get_writer

        options = {k: v.strip() for k, v in dict(base_url=llm_base_url, model=llm_model, config=llm_config).items()
                   if v and v.strip()}
        cfg = resolve(None, dict(logline=logline, scenes=scenes, seed=seed, writer=writer, writer_options=options))
        bible = bible_of(characters_of(characters))
        story = get_writer(cfg.writer, **cfg.writer_options).write(cfg.logline, scenes=cfg.scenes, seed=cfg.seed,
                                                                   bible=bible)
        logline_fidelity(story, story.logline, bible)  # a warning per logline element the story leaves out
        return (story,)


class EditScene:
    """A copy of the STORY with one scene's words, shot or seed changed (empty: unchanged)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (STORY,)
    RETURN_NAMES = ("story",)
    FUNCTION = "run"
    TEXTS = ("caption", "action", "dialogue", "prompt", "negative_prompt", "notes")

    @classmethod
    def INPUT_TYPES(cls):
        texts = {name: ("STRING", {"multiline": True, "default": ""}) for name in cls.TEXTS}
        return {"required": {
            "story": (STORY,),
            "scene": ("INT", {"default": 1, "min": 1, "max": MAX_SCENES}),
            **texts,
            "shot": ([UNCHANGED, *(s.value for s in Shot)],),
            "angle": ([UNCHANGED, *(a.value for a in Angle)],),
            "seed": ("INT", {"default": -1, "min": -1, "max": SEED_MAX,
                             "tooltip": "The scene's seed; -1 keeps it. A new seed draws the scene anew."}),
        }}

    @one_line_errors
    def run(self, story, scene, shot=UNCHANGED, angle=UNCHANGED, seed=-1, **texts):
        fields = {k: v for k, v in texts.items() if k in self.TEXTS and v and v.strip()}
        fields.update({k: v for k, v in dict(shot=shot, angle=angle).items() if v != UNCHANGED})
        if seed >= 0:
            fields["seed"] = seed
        return (edited(story, scene, fields),)


class Stage:
    """Who stands where, per scene, for frames of width × height; the poses as pictures. The STORY
    passes through first, as every node with a custom first input does (bypassed, it passes on)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (STORY, LAYOUTS, "IMAGE")
    RETURN_NAMES = ("story", "layouts", "poses")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"story": (STORY,), **size_inputs()}}

    @one_line_errors
    def run(self, story, width, height):
        from autokose.config import resolve
        from autokose.openpose import draw_pose
        from autokose.pipeline import stage

        size = resolve(None, dict(width=width, height=height)).render  # the CLI's bounds
        layouts = stage(story, size.width / size.height)
        poses = [draw_pose(layout, size.width, size.height) for layout in layouts]
        return (story, Layouts(tuple(layouts), size.width, size.height), images_tensor(poses))


def size_inputs(width: int = 960, height: int = 540) -> dict:
    from autokose.render import MAX_SIDE, MIN_SIDE

    return {"width": ("INT", {"default": width, "min": MIN_SIDE, "max": MAX_SIDE, "step": 4}),
            "height": ("INT", {"default": height, "min": MIN_SIDE, "max": MAX_SIDE, "step": 4})}


def diffusion_inputs() -> dict:
    """The model widgets Render, Character Sheet and Video Stylize share."""
    return {
        "checkpoint": ([NONE, *model_files("checkpoints")],),
        "model": ("STRING", {"default": "", "tooltip": "HF repo id, diffusers folder or .safetensors file; "
                                                       "wins over the checkpoint"}),
        "lora": ([NONE, *model_files("loras")],),
        "lora_weight": ("FLOAT", {"default": 1.0, "min": -4.0, "max": 4.0, "step": 0.05}),
        "steps": ("INT", {"default": 25, "min": 1, "max": 200}),
        "cfg": ("FLOAT", {"default": 7.0, "min": 0.0, "max": 30.0, "step": 0.1}),
    }


class Render:
    """STORY → a board folder: story.json, layouts, controls, frames, scores and board.html/pdf/sheet.

    A re-run on the same folder continues it (`pipeline.run(resume=True)`): finished frames are kept
    unless their scene or the render settings changed; `only` redraws those scenes alone. The STORY
    comes out first (as the board saved it), so a bypassed Render passes its story on.
    """

    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    RETURN_TYPES = (STORY, BOARD, "IMAGE")
    RETURN_NAMES = ("story", "board", "frames")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
                    "story": (STORY,),
                    "output": ("STRING", {"default": "autokose/board",
                                          "tooltip": "Board folder; relative: under ComfyUI's output folder"}),
                    "renderer": (RENDERERS,),
                    **diffusion_inputs(),
                    "consistency": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05}),
                    "only": ("STRING", {"default": "", "tooltip": "Scenes to redraw, e.g. 3,5 (empty: what is "
                                                                  "missing or changed)"}),
                    **size_inputs(),
                },
                "optional": {"layouts": (LAYOUTS,), **OPTIONAL_CHARACTERS}}

    @one_line_errors
    def run(self, story, output, renderer, checkpoint=NONE, model="", lora=NONE, lora_weight=1.0, steps=25, cfg=7.0,
            consistency=0.0, only="", width=960, height=540, layouts=None, **characters):
        root = place(output, "output")
        cfg_, resume = self.settings(story, root, renderer, checkpoint, model, lora, lora_weight, steps, cfg,
                                     consistency, only, width, height, layouts, characters_of(characters))
        from autokose.pipeline import run

        keep_pipelines_loaded()
        board = run(cfg_, root, story=story, resume=resume, progress=progress_bars(), cancel=stop_asked)
        written = board.load_story()
        files = [board.frame_path(s.index) for s in written.scenes if board.frame_path(s.index).is_file()]
        return {"ui": {"images": ui_images(files), "text": [str(root)]},
                "result": (written, BoardRef(root.resolve()), board_frames(root, written))}

    @staticmethod
    def settings(story, root: Path, renderer, checkpoint, model, lora, lora_weight, steps, cfg, consistency, only,
                 width, height, layouts, characters):
        """The run's RunConfig, as `autokose render` builds it (the board's saved settings under the
        widgets), and whether it resumes; the characters file written last, once all is checked."""
        from autokose.board import Board
        from autokose.comfy.types import CHARACTERS_FILE, REFERENCES_DIR, bible_of, write_characters
        from autokose.config import RENDER_STAGES, resolve, saved

        board = Board(root)
        exists = board.story_path.exists()
        ours = (CHARACTERS_FILE, REFERENCES_DIR)  # left by a first run that failed after writing them
        if not exists and root.is_dir() and any(p.name not in ours for p in root.iterdir()):
            raise InputError(f"{root}: folder is not empty and holds no board (story.json); choose another output")
        base = saved(board) if exists else None
        if base is not None and renderer == "previz":  # the widget decides the renderer
            base = base.model_copy(update={"render": base.render.model_copy(update={"renderer": "previz",
                                                                                    "diffusion": None})})
        if layouts is not None:
            width, height = layouts.width, layouts.height
        found = diffusion_model(renderer, checkpoint, model, "Render")
        overrides = dict(logline=story.logline, scenes=len(story.scenes), width=width, height=height,
                         stages=RENDER_STAGES, only=parse_scene_list(only))
        if found:
            overrides.update(model=found, lora=lora_spec(lora, lora_weight), steps=steps, cfg=cfg,
                             consistency=consistency)
        if characters:
            bible_of(characters)  # refused now, before anything is written
            overrides["characters_file"] = str(root / CHARACTERS_FILE)
        cfg_ = resolve(base, overrides)
        if exists and not cfg_.only:
            cfg_ = cfg_.model_copy(update={"only": frames_to_redraw(board, story, cfg_)})
        if characters:
            root.mkdir(parents=True, exist_ok=True)
            write_characters(characters, root)
        return cfg_, exists and not cfg_.only


class LoadBoard:
    """A board folder made earlier (by a graph or `autokose story`): BOARD and its STORY."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (BOARD, STORY)
    RETURN_NAMES = ("board", "story")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"folder": ("STRING", {"default": "autokose/board"})}}

    @classmethod
    def IS_CHANGED(cls, folder):
        """story.json and manifest.json as they are now, so an edit outside ComfyUI is seen."""
        try:
            root = place(folder, "folder")
        except InputError:
            return ""
        digest = hashlib.sha256()
        for name in ("story.json", "manifest.json"):
            path = root / name
            digest.update(path.read_bytes() if path.is_file() else b"-")
        return digest.hexdigest()

    @one_line_errors
    def run(self, folder):
        from autokose.board import Board

        root = place(folder, "folder")
        board = Board(root)
        if not board.story_path.is_file():
            raise InputError(f"{root}: no story.json here (is it a board folder?)")
        return (BoardRef(root.resolve()), board.load_story())


class Score:
    """Face identity and CLIP scores of a board's frames (scores.json, badges in board.html)."""

    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    RETURN_TYPES = (BOARD, "STRING")
    RETURN_NAMES = ("board", "summary")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"board": (BOARD,)},
                "optional": {"clip_model": ("STRING", {"default": "", "tooltip": "CLIP model (HF id or folder) "
                                                                                 "for CLIP-I/CLIP-T"})}}

    @one_line_errors
    def run(self, board, clip_model=""):
        from autokose.pipeline import score

        scores = score(board.root, clip_model=clip_model.strip() or None, progress=progress_bars(), cancel=stop_asked)
        summary = json.dumps(scores.get("summary", {}), ensure_ascii=False, indent=2)
        return {"ui": {"text": [summary]}, "result": (board, summary)}


class ExportBoard:
    """A board's exports: board.html/pdf, sheet.png, the animatic, the editorial timeline, shot list."""

    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    RETURN_TYPES = (BOARD, "STRING")
    RETURN_NAMES = ("board", "files")
    FUNCTION = "run"
    CHOICES = {"fps": ["23.976", "24", "25", "29.97", "30", "50", "59.94", "60"], "captions": ["burn", "track",
               "both", "off"], "page": ["A4", "A3", "letter", "tabloid"], "orientation": ["landscape", "portrait"],
               "pdf_panels": ["1", "2", "3", "4", "6", "9"], "still": ["camera moves", "still"]}

    @classmethod
    def INPUT_TYPES(cls):
        from autokose.board import EXPORT_FILES

        return {"required": {
            "board": (BOARD,),
            "formats": ("STRING", {"default": "html,pdf,sheet", "tooltip": ", ".join(EXPORT_FILES)}),
            **{name: ([SAVED, *choices],) for name, choices in cls.CHOICES.items()},
        }}

    @one_line_errors
    def run(self, board, formats, **settings):
        from autokose.export import parse_formats
        from autokose.pipeline import export

        chosen = {k: v for k, v in settings.items() if k in self.CHOICES and v != SAVED}
        if "pdf_panels" in chosen:
            chosen["pdf_panels"] = int(chosen["pdf_panels"])
        if "still" in chosen:
            chosen["still"] = chosen["still"] == "still"
        written = export(board.root, dict(chosen, exports=parse_formats(formats) if formats.strip() else None),
                         progress=progress_bars(), cancel=stop_asked)
        files = "\n".join(str(path) for path in written.values())
        return {"ui": {"text": [files]}, "result": (board, files)}


class CharacterNode:
    """A character bible entry: a new character, or one of the cast changed (empty: the bible's)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = (CHARACTER,)
    RETURN_NAMES = ("character",)
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
                    "id": ("STRING", {"default": "aldar", "tooltip": "A bible id (aldar, bai, ...) or a new one"}),
                    "name": ("STRING", {"default": ""}),
                    "appearance": ("STRING", {"multiline": True, "default": ""}),
                    "trigger": ("STRING", {"default": ""}),
                    "references_folder": ("STRING", {"default": "", "tooltip": "Folder of reference pictures; "
                                                                               "relative: under ComfyUI's input"}),
                    "lora": ([NONE, *model_files("loras")],),
                    "lora_weight": ("FLOAT", {"default": 1.0, "min": -4.0, "max": 4.0, "step": 0.05}),
                },
                "optional": {"references": ("IMAGE",)}}

    @one_line_errors
    def run(self, id, name="", appearance="", trigger="", references_folder="", lora=NONE, lora_weight=1.0,
            references=None):
        from autokose.bible import builtin_bible
        from autokose.comfy.types import bible_of

        cid = id.strip()
        entry = {"id": cid}
        if cid not in builtin_bible():
            entry["name"] = name.strip() or cid
        entry.update({k: v.strip() for k, v in dict(name=name, appearance=appearance, trigger=trigger).items()
                      if v.strip()})
        if references_folder.strip():
            entry["references"] = [str(p) for p in reference_files(place(references_folder, "references_folder",
                                                                         "input"))]
        if lora != NONE:
            entry["lora"] = lora_spec(lora, lora_weight)[0]
        character = CharacterEntry(entry, tuple(tensor_pictures(references)) if references is not None else ())
        bible_of([character])  # checked as `--characters FILE` is
        return (character,)


def reference_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError(f"references_folder {folder}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"references_folder {folder}: no pictures ({', '.join(IMAGE_SUFFIXES)})")
    return files


class CharacterSheet:
    """A character's turnaround and expressions (`autokose character sheet`); its CHARACTER comes out
    with the face-showing views as its reference pictures, ready for Render."""

    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    RETURN_TYPES = (CHARACTER, "IMAGE")
    RETURN_NAMES = ("character", "views")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        inputs = diffusion_inputs()
        inputs.pop("lora_weight")
        inputs.pop("lora")  # the character's own LoRA (Character node) is used
        return {"required": {
            "character": (CHARACTER,),
            "output": ("STRING", {"default": "autokose/sheets/aldar"}),
            "renderer": (RENDERERS,),
            **inputs,
            "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": True}),
            "width": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 8, "tooltip": "0: the default"}),
            "height": ("INT", {"default": 0, "min": 0, "max": 4096, "step": 8, "tooltip": "0: the default"}),
        }}

    @one_line_errors
    def run(self, character, output, renderer, checkpoint=NONE, model="", steps=25, cfg=7.0, seed=0, width=0,
            height=0):
        from autokose.comfy.types import bible_of
        from autokose.render.diffusion.settings import DiffusionSettings
        from autokose.render.sheet import SheetFolder, character_assets, plan_sheet, write_sheet

        root = place(output, "output")
        found = diffusion_model(renderer, checkpoint, model, "Character Sheet")
        settings = DiffusionSettings.from_render(dict(model=found, steps=steps, cfg=cfg)) if found else None
        char, assets = character_assets(bible_of([character]), character.id)
        plan = plan_sheet(char, assets, diffusion=settings, seed=seed, width=width or None, height=height or None)
        bars = progress_bars()
        keep_pipelines_loaded()
        data = write_sheet(plan, root, progress=lambda done, total: bars("views", done, total))
        folder = SheetFolder(root)
        views = [folder.root / v["file"] for v in data["views"]]
        from autokose.export import open_frame

        refs = [str((folder.root / name).resolve()) for name in data["references"]]
        out = CharacterEntry({**character.entry, "references": refs}, ())
        return {"ui": {"images": ui_images(views)},
                "result": (out, images_tensor([open_frame(p) for p in views]))}


class VideoStylize:
    """Footage → the character in a style, frame after frame (`autokose video stylize`)."""

    CATEGORY = CATEGORY
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "IMAGE")
    RETURN_NAMES = ("video", "preview")
    FUNCTION = "run"
    PREVIEW_FRAMES = 4

    @classmethod
    def INPUT_TYPES(cls):
        inputs = diffusion_inputs()
        return {"required": {
                    "video": ("STRING", {"default": "footage.mp4", "tooltip": "Relative: under ComfyUI's input"}),
                    "output": ("STRING", {"default": "autokose/video/stylized.mp4"}),
                    "character_id": ("STRING", {"default": "aldar"}),
                    **{k: v for k, v in inputs.items() if k != "cfg"},
                    "style": ("STRING", {"default": ""}),
                    "strength": ("FLOAT", {"default": 0.5, "min": 0.0, "max": 1.0, "step": 0.05}),
                    "seed": ("INT", {"default": 0, "min": 0, "max": SEED_MAX, "control_after_generate": True}),
                    "size": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 8}),
                    "every": ("INT", {"default": 1, "min": 1, "max": 100}),
                    "start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 86400.0, "step": 0.1,
                                        "tooltip": "Seconds: the first frame at or after"}),
                    "end": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 86400.0, "step": 0.1,
                                      "tooltip": "Seconds: frames before (0: to the end)"}),
                    "existing": (["resume", "overwrite"],),
                },
                "optional": {"character": (CHARACTER,)}}

    @one_line_errors
    def run(self, video, output, character_id, checkpoint=NONE, model="", lora=NONE, lora_weight=1.0, steps=25,
            style="", strength=0.5, seed=0, size=512, every=1, start=0.0, end=0.0, existing="resume", character=None):
        from autokose.comfy.types import bible_of
        from autokose.video.options import OPTIONS, check_output, resolve_video
        from autokose.video.stylize import frames_dir

        source, out = place(video, "video", "input"), place(output, "output")
        if character is not None:
            character_id = character.id
        options = dict(character=character_id.strip(), model=diffusion_model("diffusion", checkpoint, model,
                                                                             "Video Stylize"),
                       lora=lora_spec(lora, lora_weight), steps=steps, style=style.strip() or None, strength=strength,
                       seed=seed, size=size, every=every, start=start or None, end=end or None)
        resume = existing == "resume" and (out.exists() or frames_dir(out).exists())  # an interrupted run too
        out = check_output(out, resume=resume, force=existing == "overwrite")
        job = resolve_video({k: v for k, v in options.items() if k in OPTIONS},
                            bible=bible_of([character] if character is not None else []))
        for warning in job.warnings:
            log.warning(warning)
        job.check(source, out)
        keep_pipelines_loaded()
        job.run(source, out, progress=progress_bars(), resume=resume)
        from autokose.export import open_frame

        frames = sorted(frames_dir(out).glob("*.png"))
        step = max(1, len(frames) // self.PREVIEW_FRAMES)
        preview = [open_frame(p) for p in frames[::step][: self.PREVIEW_FRAMES]]
        return {"ui": {"text": [str(out)]}, "result": (str(out), images_tensor(preview))}


NODES = {
    "AutoKoseLogline": (Logline, "Logline"),
    "AutoKoseWriteStory": (WriteStory, "Write Story"),
    "AutoKoseEditScene": (EditScene, "Edit Scene"),
    "AutoKoseStage": (Stage, "Stage"),
    "AutoKoseRender": (Render, "Render Board"),
    "AutoKoseLoadBoard": (LoadBoard, "Load Board"),
    "AutoKoseScore": (Score, "Score Board"),
    "AutoKoseExportBoard": (ExportBoard, "Export Board"),
    "AutoKoseCharacter": (CharacterNode, "Character"),
    "AutoKoseCharacterSheet": (CharacterSheet, "Character Sheet"),
    "AutoKoseVideoStylize": (VideoStylize, "Video Stylize"),
}
NODE_CLASS_MAPPINGS = {key: cls for key, (cls, _) in NODES.items()}
NODE_DISPLAY_NAME_MAPPINGS = {key: f"{name} (AutoKöse)" for key, (_, name) in NODES.items()}
