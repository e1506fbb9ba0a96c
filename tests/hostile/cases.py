"""The hostile inputs, as compact tables turned into `Case`s (see harness.py for what counts as clean).

Categories (the rows of docs/RELIABILITY.md): loglines, markup, numbers, stages & options,
images, symlinks & paths, output folders, replaced by files, corrupted board files, corrupted
cards, pickles, training. Case ids are stable: `category-what`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from autokose.story import MAX_SCENES
from hostile.harness import BASE_SIZE, LOGLINE, TRAIN_FAST, BAD_IMAGES, Case, Ctx, png_bytes, train_args

CASES: list[Case] = []


def add(id: str, category: str, build, **kw) -> None:
    assert not any(c.id == id for c in CASES), id
    CASES.append(Case(id=id, category=category, build=build, **kw))


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "x"


def story_args(ctx: Ctx, logline: str = LOGLINE, *extra, out: str = "out") -> list:
    return ["story", logline, "--scenes", "2", *BASE_SIZE, "--out", ctx.path(out), *extra]


def on_board(ctx: Ctx, *args, files: dict | None = None, dirs: tuple = ()) -> list:
    """Copy the base board to out/, add `files` (relative path → content) and `dirs`; return args."""
    ctx.board()
    for rel, data in (files or {}).items():
        ctx.file(rel, data)
    for rel in dirs:
        ctx.path(rel).mkdir(parents=True)
    return list(args)


# --------------------------------------------------------------------------- 1. loglines
SCRIPT = "<script>alert('köse')</script>"


def no_raw_script(ctx: Ctx, result) -> str | None:
    """User text must be escaped in board.html, never executed."""
    html = ctx.path("out/board.html")
    if html.is_file() and "<script>alert(" in html.read_text(encoding="utf-8", errors="replace"):
        return "a script payload reached board.html unescaped"
    return None


LOGLINES = {
    "empty": ("", "never"),
    "spaces": ("   ", "never"),
    "tabs_newlines": ("\t\n\r\n", "never"),
    "nul": ("\x00", "any"),
    "nul_inside": ("Aldar\x00tricks the Bai", "any"),
    "nul_many": ("\x00" * 64, "any"),
    "invalid_utf8": ("Aldar \udcff\udcfe tricks the Bai", "any"),  # what Python makes of bytes ff fe in argv
    "lone_surrogate": ("Aldar \ud800 tricks", "any"),
    "c0_controls": ("".join(chr(i) for i in range(1, 32)) + " Aldar", "any"),
    "ansi_escape": ("\x1b[31mAldar\x1b[0m tricks the Bai\x1b]0;title\x07", "any"),
    "c1_and_del": ("Aldar \x7f\x85\x9b tricks", "any"),
    "bidi_override": ("\u202eAldar tricks the Bai\u202c", "any"),
    "zero_width_only": ("\u200b\u200c\u200d\ufeff", "any"),
    "bom_prefix": ("\ufeffAldar tricks the Bai", "any"),
    "emoji": ("🐴🥚 Aldar Köse sells the Bai a golden egg 👑", "any"),
    "emoji_only": ("🐴" * 40, "any"),
    "markup_bold": ("[bold]Aldar[/bold] tricks the [red]Bai", "any"),
    "markup_close": ("[/x]", "any"),
    "markup_link": ("[link=file:///etc/passwd]Aldar[/link]", "any"),
    "rich_emoji_code": (":smile: :horse: Aldar", "any"),
    "html_script": (f"{SCRIPT} Aldar tricks the Bai", "any"),
    "format_strings": ("%s %d {0} {logline} $HOME `id`", "any"),
    "path_like": ("../../etc/passwd", "any"),
    "json_like": ('{"scenes": 99, "title": null}', "any"),
    "kazakh": ("Алдар Көсе сараңбайды алдайды", "any"),
    "arabic_rtl": ("الدار كوسه يخدع الباي", "any"),
    "cjk": ("阿尔达尔·科塞欺骗了巴伊", "any"),
    "combining": ("A" + "\u0301" * 500, "any"),
    "limit_exact": ("Aldar " + "a" * 994, "any"),
    "limit_plus_one": ("a" * 1001, "never"),
    "huge_1mb": ("Aldar tricks the Bai " * 50000, "never"),
    "one_long_word": ("A" * 999, "any"),
    "newlines": ("\n" * 500 + "Aldar", "any"),
    "emoji_1000": ("🥚" * 1000, "any"),
    "emoji_1001": ("🥚" * 1001, "never"),
    "dash_prefix": ("--force", "any"),
}
for name, (logline, ok) in LOGLINES.items():
    add(f"logline-{name}", "loglines", lambda ctx, s=logline: story_args(ctx, s),
        ok="never" if ok == "never" else "board", check=no_raw_script)


# --------------------------------------------------------------------------- 2. markup, brackets and emoji in every argument
TOKENS = {"close": "[/x]", "bold": "[bold]b[/bold]", "emoji": "🐴"}


def _story_with(option: str):
    return lambda ctx, v: story_args(ctx, LOGLINE, option, v)


def _board_cmd(*head):
    def build(ctx, v):
        ctx.board()
        return [a(ctx, v) if callable(a) else a for a in head]
    return build


def _value(ctx, v):
    return v


def _train(ctx: Ctx, *extra, character: str = "aldar", images=None, model="m") -> list:
    """`character train` with a model name that is not found: options are checked before it."""
    return ["character", "train", character, "--images", images or ctx.env.refs(), "--model", model,
            "--out", ctx.path("out"), *extra]


def _characters(ctx: Ctx, entry: dict) -> list:
    return ["characters", "--characters", ctx.yaml("c.yaml", [entry])]


# (name, build(ctx, value) -> args, what exit 0 leaves, echo the value in the error line?)
MARKUP_ARGS = [
    ("story_logline", lambda ctx, v: story_args(ctx, f"Aldar {v} tricks the Bai"), "board", False),
    ("story_out", lambda ctx, v: story_args(ctx, out=f"m{v}"), "board", True),
    ("story_writer", _story_with("--writer"), "board", True),
    ("story_characters_missing", lambda ctx, v: story_args(ctx, LOGLINE, "--characters", ctx.path(f"c{v}.yaml")),
     "board", True),
    ("story_characters_bad",
     lambda ctx, v: story_args(ctx, LOGLINE, "--characters", ctx.file(f"c{v}.yaml", f"characters: [{v}")), "board", False),
    ("story_stages", _story_with("--stages"), "board", True),
    ("story_llm_config",
     lambda ctx, v: story_args(ctx, LOGLINE, "--writer", "llm", "--llm-config", ctx.path(f"l{v}.toml")), "board", True),
    ("story_model", _story_with("--model"), "board", True),
    ("story_vae", _story_with("--vae"), "board", False),
    ("story_lora", _story_with("--lora"), "board", False),
    ("story_lora_weight", lambda ctx, v: story_args(ctx, LOGLINE, "--lora", f"f.safetensors:{v}"), "board", False),
    ("story_ip_adapter", _story_with("--ip-adapter"), "board", False),
    ("story_controlnet", _story_with("--controlnet"), "board", False),
    ("story_lineart", _story_with("--lineart"), "board", False),
    ("story_scheduler", _story_with("--scheduler"), "board", False),
    ("story_device", _story_with("--device"), "board", False),
    ("story_dtype", _story_with("--dtype"), "board", False),
    ("story_model_config", _story_with("--model-config"), "board", False),
    ("story_clip_model", _story_with("--clip-model"), "board", False),
    ("render_story_json", lambda ctx, v: ["render", ctx.path(f"b{v}/story.json")], "board", True),
    ("render_only", _board_cmd("render", lambda ctx, v: ctx.path("out/story.json"), "--only", _value), "board", True),
    ("render_pick", _board_cmd("render", lambda ctx, v: ctx.path("out/story.json"), "--pick", _value), "board", True),
    ("render_stages", _board_cmd("render", lambda ctx, v: ctx.path("out/story.json"), "--stages", _value), "board", True),
    ("score_board", lambda ctx, v: ["score", ctx.path(f"b{v}")], "scores", True),
    ("score_clip_model", _board_cmd("score", lambda ctx, v: ctx.path("out"), "--clip-model", _value), "scores", False),
    ("characters_file", lambda ctx, v: ["characters", "--characters", ctx.path(f"c{v}.yaml")], "print", True),
    ("characters_entry", lambda ctx, v: _characters(ctx, {"id": "kempir", "name": v, "appearance": v}), "print", False),
    ("characters_bad_id", lambda ctx, v: _characters(ctx, {"id": v, "name": "x"}), "print", False),
    ("show_card", lambda ctx, v: ["character", "show", ctx.path(f"c{v}/card.json")], "print", True),
    ("show_card_fields", lambda ctx, v: ["character", "show", ctx.json("card.json", {"name": v, "character": v,
                                                                                       "trigger": v})], "print", False),
    ("train_id", lambda ctx, v: _train(ctx, character=f"x{v}"), "card", False),
    ("train_images", lambda ctx, v: _train(ctx, images=ctx.path(f"r{v}")), "card", False),
    ("train_model", lambda ctx, v: _train(ctx, model=ctx.path(f"m{v}")), "card", True),
    ("train_lr_scheduler", lambda ctx, v: _train(ctx, "--lr-scheduler", v), "card", True),
    ("train_mixed_precision", lambda ctx, v: _train(ctx, "--mixed-precision", v), "card", False),
]
for name, build, ok, echo in MARKUP_ARGS:
    for token_name, token in TOKENS.items():
        add(f"markup-{name}-{token_name}", "markup", lambda ctx, b=build, t=token: b(ctx, t),
            target="out" if name != "story_out" else f"m{token}", ok=ok, echo=token if echo else None)


# --------------------------------------------------------------------------- 3. numbers
NUMBERS = {  # option: values; every one must be refused (exit 2)
    "--scenes": ["0", "-1", str(MAX_SCENES + 1), "abc", "1.5", "", "1e2", "99999999999999999999999"],
    "--seed": ["-1", "4294967296", "abc", "1e3"],
    "--width": ["0", "-5", "63", "4097", "abc", "1e3", ""],
    "--height": ["0", "99999"],
    "--best-of": ["0", "17", "-1", "abc"],
    "--min-identity": ["abc"],
}
for option, values in NUMBERS.items():
    for value in values:
        add(f"numbers-story{option}={value or 'empty'}", "numbers",
            lambda ctx, o=option, v=value: story_args(ctx, LOGLINE, o, v), ok="never")

# Diffusion numbers without --model: refused (they would change nothing).
for option, value in [("--steps", "-1"), ("--steps", "3"), ("--cfg", "nan"), ("--consistency", "2"), ("--batch-size", "0"),
                      ("--ip-adapter-scale", "nan"), ("--controlnet-scale", "-1"), ("--lineart-scale", "inf")]:
    add(f"numbers-nomodel{option}={value}", "numbers", lambda ctx, o=option, v=value: story_args(ctx, LOGLINE, o, v),
        ok="never")

RENDER_NUMBERS = [  # (option, value, what exit 0 means): "1,,2", an Arabic-Indic one and a pick on previz may pass
    ("--only", "0", "never"), ("--only", "99", "never"), ("--only", "abc", "never"), ("--only", "", "never"),
    ("--only", "1,,2", "board"), ("--only", "-1", "never"), ("--only", "1-3", "never"), ("--only", "١", "board"),
    ("--pick", "2=x", "never"), ("--pick", "x=1", "never"), ("--pick", "99=1", "never"), ("--pick", "=", "never"),
    ("--pick", "1=99", "board"), ("--best-of", "0", "never"), ("--width", "0", "never"), ("--min-identity", "abc", "never")]
for option, value, ok in RENDER_NUMBERS:
    add(f"numbers-render{option}={slug(value) if value else 'empty'}{'_' + str(ord(value)) if value == '١' else ''}", "numbers",
        lambda ctx, o=option, v=value: on_board(ctx, "render", ctx.path("out/story.json"), o, v), ok=ok)

# With a real (tiny) model: the numbers reach the diffusion settings.
MODEL_NUMBERS = [("--steps", "-1"), ("--steps", "0"), ("--cfg", "nan"), ("--cfg", "inf"), ("--cfg", "-inf"),
                 ("--consistency", "2"), ("--consistency", "-1"), ("--consistency", "nan"), ("--batch-size", "0"),
                 ("--batch-size", "-1"), ("--ip-adapter-scale", "nan"), ("--controlnet-scale", "-1"),
                 ("--lineart-scale", "nan"), ("--width", "0"), ("--width", "65"), ("--height", "70")]


def _size_honest(ctx: Ctx, result) -> str | None:
    """The manifest must not claim a frame size the frames do not have."""
    from PIL import Image

    manifest_path = ctx.path("out/manifest.json")
    if result.exit_code != 0 or not manifest_path.is_file():
        return None
    render = json.loads(manifest_path.read_text())["command"]["render"]
    with Image.open(ctx.path("out/frames/01.png")) as img:
        if img.size != (render["width"], render["height"]):
            return f"frames are {img.size[0]}x{img.size[1]} but the manifest says {render['width']}x{render['height']}"
    return None


for option, value in MODEL_NUMBERS:
    sized = option in ("--width", "--height")
    add(f"numbers-model{option}={value}", "numbers",
        lambda ctx, o=option, v=value, s=sized: story_args(ctx, LOGLINE, "--model", ctx.env.model(), "--steps", "1",
                                                            *([] if s else ["--width", "64", "--height", "64"]), o, v),
        needs="model", ok="board" if sized and value != "0" else "never", check=_size_honest)

TRAIN_NUMBERS = [("--steps", "-1"), ("--steps", "0"), ("--rank", "0"), ("--rank", "-4"), ("--lr", "nan"), ("--lr", "-1"),
                 ("--batch-size", "0"), ("--grad-accum", "0"), ("--resolution", "0"), ("--resolution", "7"),
                 ("--resolution", "100"), ("--checkpoint-every", "-1"), ("--keep-checkpoints", "-1"),
                 ("--noise-offset", "nan"), ("--snr-gamma", "-1"), ("--prior-loss-weight", "nan"),
                 ("--validation-steps", "0"), ("--lr-warmup-steps", "-1"), ("--alpha", "nan"), ("--seed", "-1"),
                 ("--min-side", "-1"), ("--steps", "abc")]
for option, value in TRAIN_NUMBERS:
    add(f"numbers-train{option}={value}", "numbers",
        lambda ctx, o=option, v=value: [*train_args(ctx.env, ctx.path("out")), "--validate", o, v],
        needs="model", ok="never")


# --------------------------------------------------------------------------- 4. stages, writers, unknown options
def _stages_honest(ctx: Ctx, result) -> str | None:
    if re.search(r"open \S*board\.html", result.stdout + result.stderr) and not ctx.path("out/board.html").exists():
        return "said to open board.html, which was not written"
    return None


STAGE_CASES = [  # (name, --stages value, what exit 0 leaves)
    ("empty", "", "never"), ("comma", ",", "never"), ("double_comma", "write,,render", "frames"),
    ("bogus", "bogus", "never"), ("upper", "WRITE,RENDER", "board"), ("spaces", " write , stage ", "story"),
    ("render_only", "render", "never"), ("export_only", "export", "never"), ("write_only", "write", "story"),
    ("write_stage", "write,stage", "story"), ("write_render", "write,render", "frames"),
    ("duplicate", "write,write,render,render", "frames"), ("all_plus_bogus", "write,cast,stage,render,bogus", "never"),
    ("score_previz", "write,render,score,export", "board"), ("unicode", "wrіte", "never"),  # Cyrillic і
]
for name, value, ok in STAGE_CASES:
    add(f"stages-story-{name}", "stages & options", lambda ctx, v=value: story_args(ctx, LOGLINE, "--stages", v),
        ok=ok, check=_stages_honest)
for name, value, ok in [("empty", "", "never"), ("write", "write", "board"), ("bogus", "bogus", "never"),
                        ("export", "export", "board"), ("render_only", "render", "frames")]:
    add(f"stages-render-{name}", "stages & options",
        lambda ctx, v=value: on_board(ctx, "render", ctx.path("out/story.json"), "--stages", v), ok=ok,
        check=_stages_honest)

OPTION_CASES = [  # (name, extra story arguments, what exit 0 leaves)
    ("writer_bogus", ["--writer", "bogus"], "never"), ("writer_empty", ["--writer", ""], "never"),
    ("writer_upper", ["--writer", "OFFLINE"], "board"),
    ("llm_no_url", ["--writer", "llm"], "never"),
    ("llm_refused_port", ["--writer", "llm", "--llm-base-url", "http://127.0.0.1:9/v1", "--llm-model", "m"], "never"),
    ("llm_bad_url", ["--writer", "llm", "--llm-base-url", "not a url", "--llm-model", "m"], "never"),
    ("llm_config_missing", ["--writer", "llm", "--llm-config", "nope.toml"], "never"),
    ("unknown_option", ["--bogus"], "never"), ("missing_value", ["--scenes"], "never"),
    ("extra_argument", ["extra"], "never"), ("resume_and_force", ["--resume", "--force"], "never"),
    ("scheduler_without_model", ["--scheduler", "plms"], "never"),
    ("device_without_model", ["--device", "tpu"], "never"), ("low_vram_without_model", ["--low-vram"], "never"),
]
for name, extra, ok in OPTION_CASES:
    add(f"options-{name}", "stages & options", lambda ctx, e=extra: story_args(ctx, LOGLINE, *e), ok=ok)


def _llm_config(ctx: Ctx, text: str) -> list:
    return story_args(ctx, LOGLINE, "--writer", "llm", "--llm-config", ctx.file("llm.toml", text))


for name, text in [("garbage", b"\xff\xfe\x00garbage"), ("bad_toml", "base_url = [unclosed"),
                   ("wrong_types", "base_url = 5\nmodel = []\ntimeout = 'soon'\n"), ("empty", "")]:
    add(f"options-llm_config_{name}", "stages & options", lambda ctx, t=text: _llm_config(ctx, t), ok="never")

for name, args in [("unknown_command", ["bogus-command"]), ("schema_extra_arg", ["schema", "x"]),
                   ("characters_unknown_option", ["characters", "--bogus"]), ("score_no_board", ["score"]),
                   ("train_no_images", ["character", "train", "aldar", "--model", "m"]),
                   ("show_no_card", ["character", "show"]), ("render_no_story", ["render"])]:
    add(f"options-{name}", "stages & options", lambda ctx, a=args: a, ok="never")
add("options-schema", "stages & options", lambda ctx: ["schema"], ok="print")
add("options-characters_builtin", "stages & options", lambda ctx: ["characters"], ok="print")
add("options-model_with_model_config_missing", "stages & options",
    lambda ctx: story_args(ctx, LOGLINE, "--model", ctx.file("m.safetensors", b"x"), "--model-config", ctx.path("nope")),
    ok="never")


# --------------------------------------------------------------------------- 5. images
def _frame_replaced(kind: str, command: str):
    def build(ctx: Ctx):
        board = ctx.board()
        ctx.image("out/frames/01.png", kind)
        if command == "score":
            return ["score", board]
        if command == "render_only":
            return ["render", board / "story.json", "--only", "2"]
        return ["story", LOGLINE, "--scenes", "2", *BASE_SIZE, "--out", board, "--resume"]
    return build


BROKEN = [k for k in BAD_IMAGES if k not in ("gif_animation", "one_pixel")]  # pictures that do not decode
for kind in BROKEN:
    for command, ok in (("score", "scores"), ("render_only", "board"), ("resume", "board")):
        add(f"images-frame-{command}-{kind}", "images", _frame_replaced(kind, command), ok=ok)


def _reference_in_bible(kind: str):
    def build(ctx: Ctx):
        ref = ctx.image(f"ref.{'jpg' if 'jpeg' in kind else 'png'}", kind)
        yaml = ctx.yaml("cast.yaml", [{"id": "aldar", "references": [str(ref)]}])
        return story_args(ctx, LOGLINE, "--characters", yaml)
    return build


for kind in BAD_IMAGES:
    add(f"images-reference-{kind}", "images", _reference_in_bible(kind))


def _training_images(kind: str):
    def build(ctx: Ctx):
        ctx.image(f"refs/bad.{'jpg' if 'jpeg' in kind else 'png'}", kind)
        return ["character", "train", "aldar", "--images", ctx.path("refs"), "--model", ctx.env.model(),
                "--out", ctx.path("out"), *TRAIN_FAST]
    return build


for kind in BAD_IMAGES:
    add(f"images-training-only-{kind}", "images", _training_images(kind), ok="card", needs="model")


def _ip_adapter_reference(kind: str):
    def build(ctx: Ctx):
        ref = ctx.image("ref.png", kind)
        yaml = ctx.yaml("cast.yaml", [{"id": "aldar", "references": [str(ref)]}])
        return story_args(ctx, LOGLINE, "--characters", yaml, "--model", ctx.env.model(), "--ip-adapter",
                          ctx.env.ip_adapter(), "--steps", "1", "--width", "64", "--height", "64")
    return build


for kind in ("bomb_png_50000", "truncated_png", "text_as_png"):
    add(f"images-ip_adapter_reference-{kind}", "images", _ip_adapter_reference(kind), needs="model")


# --------------------------------------------------------------------------- 6. symlinks and ..
def _outside(ctx: Ctx) -> Path:
    outside = ctx.path("outside")
    outside.mkdir(exist_ok=True)
    (outside / "keep.txt").write_text("not the board's")
    return outside


def _link(ctx: Ctx, rel: str, target: Path) -> None:
    path = ctx.path(rel)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target, target_is_directory=target.is_dir())


def _secret_png(ctx: Ctx) -> Path:
    return ctx.file("outside/secret.png", png_bytes((160, 96), (1, 2, 3)))


def _secret_not_embedded(ctx: Ctx, result) -> str | None:
    import base64

    html = ctx.path("out/board.html")
    text = html.read_text(encoding="utf-8", errors="replace") if html.is_file() else ""
    for secret in (ctx.path("outside/secret.png"), Path("/etc/hostname")):
        if secret.is_file() and base64.b64encode(secret.read_bytes()).decode()[:200] in text:
            return f"{secret.name}, outside the board, was embedded in board.html through a symlink"
    return None


def _symlinked(rel: str, target, command: str):
    def build(ctx: Ctx):
        board = ctx.board()
        _link(ctx, f"out/{rel}", target(ctx))
        if command == "render":
            return ["render", board / "story.json"]
        if command == "render_only":
            return ["render", board / "story.json", "--only", "2"]
        if command == "force":
            return story_args(ctx, LOGLINE, "--force")
        if command == "score":
            return ["score", board]
        return story_args(ctx, LOGLINE, "--resume")
    return build


SYMLINKS = [  # (name, path in the board, what it points at, command)
    ("frames_dir_render", "frames", _outside, "render"), ("frames_dir_resume", "frames", _outside, "resume"),
    ("frames_dir_force", "frames", _outside, "force"), ("control_dir_render", "control", _outside, "render"),
    ("control_dir_force", "control", _outside, "force"), ("frame_render_only", "frames/01.png", _secret_png, "render_only"),
    ("frame_score", "frames/01.png", _secret_png, "score"), ("frame_resume", "frames/01.png", _secret_png, "resume"),
    ("story_render", "story.json", lambda ctx: ctx.file("outside/story.json", ctx.path("out/story.json").read_bytes()), "render"),
    ("manifest_render", "manifest.json",
     lambda ctx: ctx.file("outside/m.json", ctx.path("out/manifest.json").read_bytes()), "render"),
    ("html_render", "board.html", lambda ctx: ctx.file("outside/b.html", "<p>mine</p>"), "render"),
    ("sheet_force", "sheet.png", _secret_png, "force"),
    ("frames_loop", "frames", lambda ctx: ctx.path("out/frames"), "render"),
    ("frames_dangling", "frames", lambda ctx: ctx.path("nowhere"), "render"),
    ("frame_to_etc", "frames/01.png", lambda ctx: Path("/etc/hostname"), "render_only"),
]
for name, rel, target, command in SYMLINKS:
    add(f"symlinks-{name}", "symlinks & paths", _symlinked(rel, target, command),
        ok="scores" if command == "score" else "board", check=_secret_not_embedded)


def _board_is_link(ctx: Ctx) -> list:
    real = ctx.path("real")
    real.mkdir()
    ctx.path("out").symlink_to(real, target_is_directory=True)
    return story_args(ctx)


add("symlinks-out_is_link", "symlinks & paths", _board_is_link)
add("symlinks-out_dotdot", "symlinks & paths", lambda ctx: ctx.path("a").mkdir() or story_args(ctx, out="a/../out"))
add("symlinks-out_dotdot_missing", "symlinks & paths", lambda ctx: story_args(ctx, out="nope/../out"))
add("symlinks-render_dotdot", "symlinks & paths",
    lambda ctx: on_board(ctx, "render", ctx.path("a/../out/story.json"), dirs=("a",)))
add("symlinks-score_dotdot", "symlinks & paths",
    lambda ctx: on_board(ctx, "score", ctx.path("a/../out"), dirs=("a",)), ok="scores")

REFERENCE_PATHS = {  # references in a --characters YAML
    "dotdot_missing": "../../../nowhere/ref.png", "etc_passwd": "/etc/passwd", "dev_null": "/dev/null",
    "folder": ".", "link_to_passwd": "@link:/etc/passwd", "empty": "", "proc": "/proc/self/status",
}


def _reference_path(value: str):
    def build(ctx: Ctx):
        if value.startswith("@link:"):
            ctx.path("ref.png").symlink_to(value[6:])
            value_ = "ref.png"
        else:
            value_ = value
        yaml = ctx.yaml("cast.yaml", [{"id": "aldar", "references": [value_]}])
        return story_args(ctx, LOGLINE, "--characters", yaml)
    return build


for name, value in REFERENCE_PATHS.items():
    add(f"symlinks-reference_{name}", "symlinks & paths", _reference_path(value))

for name, path in [("missing", "nope/story.json"), ("folder", "."), ("dev_null", "/dev/null"),
                   ("etc_passwd", "/etc/passwd"), ("dotdot", "../../../../story.json")]:
    add(f"symlinks-render_path_{name}", "symlinks & paths", lambda ctx, p=path: ["render", p], ok="never")
for name, path in [("missing", "nope"), ("file", "/etc/hostname"), ("empty_dir", "."), ("root", "/")]:
    add(f"symlinks-score_path_{name}", "symlinks & paths", lambda ctx, p=path: ["score", p], ok="never")
for name, path in [("folder", "."), ("dev_null", "/dev/null"), ("missing", "nope.yaml"), ("proc", "/proc/self/status")]:
    add(f"symlinks-characters_{name}", "symlinks & paths", lambda ctx, p=path: ["characters", "--characters", p], ok="print")


# --------------------------------------------------------------------------- 7. output folders
def _out_under_file(ctx: Ctx) -> list:
    ctx.file("afile", "x")
    return story_args(ctx, out="afile/board")


def _out_read_only(ctx: Ctx) -> list:
    ctx.path("ro").mkdir()
    os.chmod(ctx.path("ro"), 0o555)  # refused for users; root (CI containers) may still write
    return story_args(ctx, out="ro/board")


OUTPUTS = [  # (name, build, target, ok)
    ("under_file", _out_under_file, "afile", "never"),
    ("is_file", lambda ctx: ctx.file("out", "x") and story_args(ctx), "out", "never"),
    ("non_empty", lambda ctx: ctx.file("out/mine.txt", "x") and story_args(ctx), "out", "never"),
    ("deep_missing_parents", lambda ctx: story_args(ctx, out="a/b/c/d/out"), "a/b/c/d/out", "board"),
    ("read_only_parent", _out_read_only, "ro/board", "board"),
    ("proc", lambda ctx: story_args(ctx, out="/proc/self/autokose-board"), "out", "never"),
    ("sys", lambda ctx: story_args(ctx, out="/sys/autokose-board"), "out", "never"),
    ("name_too_long", lambda ctx: story_args(ctx, out="n" * 300), "out", "never"),
    ("nul_in_name", lambda ctx: story_args(ctx, out="a\x00b"), "out", "never"),
    ("newline_in_name", lambda ctx: story_args(ctx, out="a\nb"), "a\nb", "board"),
    ("dash", lambda ctx: story_args(ctx, out="-"), "-", "board"),
    ("tilde_user", lambda ctx: story_args(ctx, out="~nobody-here/x"), "~nobody-here/x", "board"),
    ("empty_string", lambda ctx: story_args(ctx, out=""), ".", "board"),
    ("root_no_force", lambda ctx: ["story", LOGLINE, "--out", "/"], "out", "never"),
    ("cwd_non_empty", lambda ctx: ctx.file("mine.txt", "x") and ["story", LOGLINE, "--out", "."], ".", "never"),
    ("force_on_file", lambda ctx: ctx.file("out", "x") and story_args(ctx, LOGLINE, "--force"), "out", "never"),
    ("resume_missing", lambda ctx: story_args(ctx, LOGLINE, "--resume"), "out", "board"),
    ("resume_empty", lambda ctx: ctx.path("out").mkdir() or story_args(ctx, LOGLINE, "--resume"), "out", "board"),
    ("force_other_files", lambda ctx: on_board(ctx, *story_args(ctx, LOGLINE, "--force"),
                                               files={"out/frames/99.png": png_bytes(), "out/notes.txt": "mine"}), "out", "board"),
    ("train_out_under_file", lambda ctx: ctx.file("afile", "x") and _train(ctx, "--out", ctx.path("afile/out")),
     "afile", "never"),
    ("train_out_is_file", lambda ctx: ctx.file("out", "x") and _train(ctx), "out", "never"),
    ("train_out_proc", lambda ctx: _train(ctx, "--out", "/proc/self/x"), "out", "never"),
    ("train_missing_model_new_out", lambda ctx: _train(ctx, "--out", ctx.path("a/out"), model=ctx.path("nope")),
     "a", "never"),
]
for name, build, target, ok in OUTPUTS:
    add(f"outputs-{name}", "output folders", build, target=target, ok=ok)


# --------------------------------------------------------------------------- 8. folders and files replaced by files/folders
def _replaced(rel: str, by: str, command: str):
    def build(ctx: Ctx):
        board = ctx.board()
        path = ctx.path(f"out/{rel}")
        if path.is_dir():
                shutil.rmtree(path)
        else:
            path.unlink()
        if by == "file":
            path.write_text("I am a file now")
        else:
            path.mkdir()
            (path / "inside.txt").write_text("x")
        return {"render": ["render", board / "story.json"], "resume": story_args(ctx, LOGLINE, "--resume"),
                "force": story_args(ctx, LOGLINE, "--force"), "score": ["score", board]}[command]
    return build


REPLACED = [("frames", "file"), ("control", "file"), ("frames/01.png", "dir"), ("story.json", "dir"),
            ("manifest.json", "dir"), ("board.html", "dir"), ("sheet.png", "dir")]
for rel, by in REPLACED:
    for command in ("render", "resume", "force", "score"):
        add(f"replaced-{slug(rel)}_{by}-{command}", "replaced by files", _replaced(rel, by, command),
            ok="scores" if command == "score" else "board")


# --------------------------------------------------------------------------- 9. corrupted board files
def _deep(n: int = 100_000) -> str:
    return "[" * n + "]" * n


MANIFESTS = {
    "garbage": b"\x00\xff garbage", "truncated": None, "array": "[]", "null": "null", "command_int": '{"command": 5}',
    "command_unknown_key": '{"command": {"bogus": 1}}', "frames_list": '{"frames": [1, 2]}',
    "width_zero": '{"command": {"render": {"width": 0}}}', "deep": '{"a": ' + _deep() + "}",
    "huge_number": '{"command": {"seed": 1e999}}', "nan": '{"command": {"seed": NaN}}',
    "invalid_utf8": b'{"command": {"logline": "\xff\xfe"}}', "renderer_bogus": '{"command": {"render": {"renderer": "magic"}}}',
    "diffusion_no_model": '{"command": {"render": {"renderer": "diffusion", "diffusion": {}}}}',
    "diffusion_pickle_model": None,  # filled in by the builder: the manifest names a pickled model
}


def _manifest(name: str, data, command: str):
    def build(ctx: Ctx):
        board = ctx.board()
        path = board / "manifest.json"
        if name == "truncated":
            path.write_bytes(path.read_bytes()[:40])
        elif name == "diffusion_pickle_model":
            ctx.pickle("evil.ckpt")
            manifest = json.loads(path.read_text())
            manifest["command"]["render"].update(renderer="diffusion", diffusion={"model": str(ctx.path("evil.ckpt"))})
            path.write_text(json.dumps(manifest))
        else:
            path.write_bytes(data.encode() if isinstance(data, str) else data)
        return {"render": ["render", board / "story.json"], "resume": story_args(ctx, LOGLINE, "--resume"),
                "score": ["score", board]}[command]
    return build


for name, data in MANIFESTS.items():
    for command in ("render", "resume", "score"):
        add(f"corrupt-manifest_{name}-{command}", "corrupted board files", _manifest(name, data, command),
            ok="scores" if command == "score" else "board")


def _story_edit(edit):
    def build(ctx: Ctx):
        board = ctx.board()
        path = board / "story.json"
        story = json.loads(path.read_text(encoding="utf-8"))
        new = edit(story, ctx)
        if not isinstance(new, bytes):
            new = json.dumps(story if new is None else new, ensure_ascii=False).encode("utf-8", "surrogatepass")
        path.write_bytes(new)
        return ["render", path]
    return build


def _set(path: str, value):
    def edit(story, ctx):
        obj = story
        *head, last = path.split(".")
        for part in head:
            obj = obj[int(part)] if part.isdigit() else obj[part]
        if isinstance(obj, list):
            obj[int(last)] = value
        else:
            obj[last] = value
    return edit


def _bogus_blocking(story: dict) -> None:
    """Unknown pose, emoji emotion and a path as the held prop, for every character in every scene."""
    for scene in story["scenes"]:
        scene["blocking"] = {cid: {"pose": "[/x]", "emotion": "🐴", "holds": "../../etc/passwd"}
                             for cid in scene["characters"]}


STORIES = {  # (edit, what exit 0 means)
    "garbage": (lambda s, c: b"\x89PNG not json", "never"),
    "truncated": (lambda s, c: json.dumps(s).encode()[:100], "never"),
    "empty_file": (lambda s, c: b"", "never"),
    "array": (lambda s, c: [], "never"),
    "deep": (lambda s, c: _deep().encode(), "never"),
    "lone_surrogate_escape": (lambda s, c: json.dumps(s).replace('"title": "', '"title": "\\ud800', 1).encode(), "board"),
    "lone_surrogate_raw": (lambda s, c: json.dumps(s, ensure_ascii=False).replace('"title": "', '"title": "\ud800', 1)
                           .encode("utf-8", "surrogatepass"), "never"),
    "invalid_utf8": (lambda s, c: json.dumps(s).encode().replace(b'"title": "', b'"title": "\xff\xfe', 1), "never"),
    "bom": (lambda s, c: b"\xef\xbb\xbf" + json.dumps(s).encode(), "board"),
    "schema_version_99": (_set("schema_version", 99), "never"),
    "schema_version_str": (_set("schema_version", "one"), "never"),
    "no_scenes": (_set("scenes", []), "never"),
    "scenes_over_max": (lambda s, c: {**s, "scenes": [{**s["scenes"][0], "index": i + 1}
                                                      for i in range(MAX_SCENES + 1)]}, "never"),
    "index_gap": (_set("scenes.1.index", 5), "never"),
    "unknown_character": (_set("scenes.0.characters", ["nobody"]), "never"),
    "duplicate_ids": (lambda s, c: {**s, "characters": s["characters"] + s["characters"][:1]}, "never"),
    "palette_bad_colour": (lambda s, c: s["characters"][0].update(palette={"coat": "#zzz", "hat": "red"}), "never"),
    "palette_not_str": (lambda s, c: s["characters"][0].update(palette={"coat": [1, 2]}), "never"),
    "seed_negative": (_set("scenes.0.seed", -1), "never"),
    "seed_huge": (_set("scenes.0.seed", 2 ** 64), "never"),
    "seed_float": (_set("scenes.0.seed", 1.5), "never"),
    "extra_field": (_set("bogus", 1), "never"),
    "shot_bogus": (_set("scenes.0.shot", "drone"), "never"),
    "duration_nan": (lambda s, c: json.dumps(s).replace('"duration": 3.0', '"duration": NaN', 1).encode(), "never"),
    "huge_number": (lambda s, c: json.dumps(s).replace('"seed": ', '"seed": 1e999, "x": ', 1).encode(), "never"),
    "caption_script": (_set("scenes.0.caption", SCRIPT), "board"),
    "title_script": (_set("title", SCRIPT + "[/x][bold]"), "board"),
    "dialogue_markup": (_set("scenes.0.dialogue", "[/x] [bold]Hey[/bold] 🐴"), "board"),
    "caption_huge": (_set("scenes.0.caption", "Aldar " * 20_000), "board"),
    "prompt_huge": (_set("scenes.0.prompt", "aldarkose " * 100_000), "board"),
    "lora_missing": (lambda s, c: s["characters"][0].update(lora="missing.safetensors"), "board"),
    "lora_pickle": (lambda s, c: s["characters"][0].update(lora=str(c.pickle("evil.ckpt"))), "board"),
    "card_missing": (lambda s, c: s["characters"][0].update(card="nope/card.json"), "board"),
    "references_missing": (lambda s, c: s["characters"][0].update(references=["nope.png", "/etc/passwd"]), "board"),
    "props_huge_list": (_set("scenes.0.props", ["egg"] * 10_000), "board"),
    "blocking_unknown": (lambda s, c: s["scenes"][0].update(blocking={"nobody": {"pose": "sit"}}), "never"),
    "pose_bogus": (lambda s, c: _bogus_blocking(s), "never"),  # issue 10: refused, naming the poses
    "setting_bogus": (_set("scenes.0.setting", "[/x] the moon 🐴"), "board"),
}
for name, (edit, ok) in STORIES.items():
    add(f"corrupt-story_{name}", "corrupted board files", _story_edit(edit), ok=ok, check=no_raw_script)


def _story_resume(edit):
    build = _story_edit(edit)
    return lambda ctx: build(ctx) and story_args(ctx, LOGLINE, "--resume")


for name in ("garbage", "deep", "lone_surrogate_raw", "schema_version_99", "palette_bad_colour", "invalid_utf8"):
    add(f"corrupt-story_{name}-resume", "corrupted board files", _story_resume(STORIES[name][0]), ok="never")
for name in ("garbage", "deep", "lone_surrogate_raw", "palette_bad_colour"):
    add(f"corrupt-story_{name}-score", "corrupted board files",
        lambda ctx, e=STORIES[name][0]: _story_edit(e)(ctx) and ["score", ctx.path("out")], ok="never")

SCORES = {"garbage": b"\xff\x00", "array": "[]", "frames_int": '{"frames": 5}',
          "frame_wrong_types": '{"frames": {"01": {"identity": "high", "badge": [1]}}, "summary": 3}',
          "deep": '{"frames": ' + _deep() + "}", "nan": '{"summary": {"mean_identity": NaN}}',
          "script": json.dumps({"frames": {"01": {"identity": 0.9, "status": SCRIPT}}, "summary": {"note": SCRIPT}})}
for name, data in SCORES.items():
    for command in ("render", "score"):
        add(f"corrupt-scores_{name}-{command}", "corrupted board files",
            lambda ctx, d=data, c=command: on_board(ctx, *(["render", ctx.path("out/story.json")] if c == "render"
                                                           else ["score", ctx.path("out")]), files={"out/scores.json": d}),
            ok="board" if command == "render" else "scores", check=no_raw_script)


# --------------------------------------------------------------------------- 10. character cards and bibles
CARDS = {
    "garbage": b"\xff\xfe garbage", "array": "[]", "empty": "", "deep": _deep(),
    "wrong_types": json.dumps({"training": 5, "references": 3, "skipped": "x", "base_model": [], "name": 7,
                               "validation": 1, "faces_found": "many"}),
    "skipped_wrong": json.dumps({"skipped": [{"file": 3}], "references": [1, None]}),
    "markup": json.dumps({"name": "[/x]", "trigger": "[bold]t", "character": "🐴", "lora": "[red]x"}),
    "huge_number": '{"training": {"steps": 1e999}}', "invalid_utf8": b'{"name": "\xff"}',
    "lora_pickle": None, "references_bomb": None, "lora_missing": json.dumps({"trigger": "t", "lora": "nope.safetensors"}),
}


def _card(ctx: Ctx, name: str) -> Path:
    data = CARDS[name]
    if name == "lora_pickle":
        ctx.pickle("card/evil.safetensors")
        data = json.dumps({"trigger": "zx", "lora": "evil.safetensors", "references": []})
    elif name == "references_bomb":
        ctx.file("card/bomb.png", BAD_IMAGES["bomb_png_50000"]())
        data = json.dumps({"trigger": "zx", "references": ["bomb.png"], "face_centroid": [0.1] * 128})
    return ctx.file("card/card.json", data)


def _card_bible(ctx: Ctx, name: str) -> Path:
    return ctx.yaml("cast.yaml", [{"id": "aldar", "card": str(_card(ctx, name))}])


for name in CARDS:
    add(f"cards-show-{name}", "corrupted cards", lambda ctx, n=name: ["character", "show", _card(ctx, n)], ok="print")
    add(f"cards-show_json-{name}", "corrupted cards", lambda ctx, n=name: ["character", "show", _card(ctx, n), "--json"],
        ok="print")
    add(f"cards-story-{name}", "corrupted cards",
        lambda ctx, n=name: story_args(ctx, LOGLINE, "--characters", _card_bible(ctx, n)))
    add(f"cards-characters-{name}", "corrupted cards",
        lambda ctx, n=name: ["characters", "--characters", _card_bible(ctx, n)], ok="print")

BIBLES = {
    "garbage": b"\xff\xfe\x00", "not_a_map": "- a\n- b\n", "characters_int": "characters: 5\n",
    "entry_no_id": "characters:\n  - name: x\n", "bad_id": "characters:\n  - id: '^*$'\n    name: x\n",
    "id_markup": "characters:\n  - id: '[/x]'\n", "palette_bad": "characters:\n  - id: aldar\n    palette: {coat: '#zzz'}\n",
    "yaml_bomb": "a: &a [x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
                 "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
                 "characters: [*f]\n",
    "python_tag": "characters: !!python/object/apply:os.system ['touch PWNED']\n",
    "deep": "characters: " + _deep(5000) + "\n", "tabs": "characters:\n\t- id: x\n",
    "huge_name": "characters:\n  - id: kempir\n    name: '" + "K" * 1_000_000 + "'\n",
    "lora_weight_bad": "characters:\n  - id: aldar\n    lora: 'f.safetensors:abc🐴'\n",
    "duplicate_entries": "characters:\n  - id: kempir\n    name: a\n  - id: kempir\n    name: b\n",
}
for name, text in BIBLES.items():
    add(f"cards-bible_story-{name}", "corrupted cards",
        lambda ctx, t=text: story_args(ctx, LOGLINE, "--characters", ctx.file("cast.yaml", t)), check=no_raw_script)
    add(f"cards-bible_characters-{name}", "corrupted cards",
        lambda ctx, t=text: ["characters", "--characters", ctx.file("cast.yaml", t)], ok="print")


# --------------------------------------------------------------------------- 11. pickles under every weight option
def _diffusers_folder_with_bins(ctx: Ctx, rel: str) -> Path:
    """An SD 1.5 diffusers folder whose weights are pickles (.bin), as old hub repos ship them."""
    import autokose

    folder = ctx.path(rel)
    shutil.copytree(Path(autokose.__file__).parent / "data" / "models" / "sd15", folder)
    for sub, name in (("unet", "diffusion_pytorch_model.bin"), ("vae", "diffusion_pytorch_model.bin"),
                      ("text_encoder", "pytorch_model.bin")):
        ctx.pickle(f"{rel}/{sub}/{name}", torch_format=True)
    return folder


def _controlnet_folder_with_bin(ctx: Ctx, rel: str) -> Path:
    ctx.json(f"{rel}/config.json", {"_class_name": "ControlNetModel", "_diffusers_version": "0.30.0"})
    ctx.pickle(f"{rel}/diffusion_pytorch_model.bin", torch_format=True)
    return ctx.path(rel)


def _ip_adapter_folder_with_bin(ctx: Ctx, rel: str) -> Path:
    ctx.pickle(f"{rel}/models/ip-adapter-plus-face_sd15.bin", torch_format=True)
    ctx.json(f"{rel}/models/image_encoder/config.json", {"model_type": "clip_vision_model"})
    ctx.pickle(f"{rel}/models/image_encoder/pytorch_model.bin", torch_format=True)
    return ctx.path(rel)


def _clip_folder_with_bin(ctx: Ctx, rel: str) -> Path:
    ctx.json(f"{rel}/config.json", {"model_type": "clip", "architectures": ["CLIPModel"]})
    ctx.pickle(f"{rel}/pytorch_model.bin", torch_format=True)
    return ctx.path(rel)


PICKLE_FILES = {  # name → make(ctx) -> path of a pickled weights file/folder
    "ckpt": lambda ctx: ctx.pickle("w/model.ckpt"),
    "bin": lambda ctx: ctx.pickle("w/model.bin", torch_format=True),
    "pt": lambda ctx: ctx.pickle("w/model.pt", torch_format=True),
    "pkl": lambda ctx: ctx.pickle("w/model.pkl"),
    "safetensors_named": lambda ctx: ctx.pickle("w/model.safetensors"),
    "torch_zip_as_safetensors": lambda ctx: ctx.pickle("w/model2.safetensors", torch_format=True),
}
FOLDERS = {"--model": _diffusers_folder_with_bins, "--vae": lambda ctx, rel: _diffusers_folder_with_bins(ctx, rel) / "vae",
           "--controlnet": _controlnet_folder_with_bin, "--lineart": _controlnet_folder_with_bin,
           "--ip-adapter": _ip_adapter_folder_with_bin, "--clip-model": _clip_folder_with_bin, "--lora": None}


def _tiny(ctx: Ctx) -> list:
    """Diffusion on the tiny model: one step, 64 px."""
    return ["--model", ctx.env.model(), "--steps", "1", "--width", "64", "--height", "64"]


def _pickle_story(option: str, make):
    def build(ctx: Ctx):
        path = make(ctx)
        base = [] if option == "--model" else ["--model", ctx.env.model()]
        return story_args(ctx, LOGLINE, *base, option, path, "--steps", "1", "--width", "64", "--height", "64")
    return build


for option, folder in FOLDERS.items():
    variants = dict(PICKLE_FILES)
    if folder is not None:
        variants["folder"] = lambda ctx, f=folder: f(ctx, "w/folder")
    for name, make in variants.items():
        add(f"pickles-story{option}-{name}", "pickles", _pickle_story(option, make),
            needs="" if option == "--model" else "model", ok="never")

for name in ("ckpt", "bin", "safetensors_named"):
    add(f"pickles-score--clip-model-{name}", "pickles",
        lambda ctx, m=PICKLE_FILES[name]: on_board(ctx, "score", ctx.path("out"), "--clip-model", m(ctx)), ok="never")
add("pickles-score--clip-model-folder", "pickles",
    lambda ctx: on_board(ctx, "score", ctx.path("out"), "--clip-model", _clip_folder_with_bin(ctx, "clip")), ok="never")
for name in ("ckpt", "bin", "safetensors_named"):
    add(f"pickles-render--model-{name}", "pickles",
        lambda ctx, m=PICKLE_FILES[name]: on_board(ctx, "render", ctx.path("out/story.json"), "--model", m(ctx)), ok="never")
    add(f"pickles-bible_lora-{name}", "pickles",
        lambda ctx, m=PICKLE_FILES[name]: story_args(
            ctx, LOGLINE, "--characters", ctx.yaml("cast.yaml", [{"id": "aldar", "lora": str(m(ctx))}]), *_tiny(ctx)),
        needs="model", ok="never")
    add(f"pickles-train--model-{name}", "pickles",
        lambda ctx, m=PICKLE_FILES[name]: ["character", "train", "aldar", "--images", ctx.env.refs(), "--model", m(ctx),
                                           "--out", ctx.path("out"), *TRAIN_FAST], ok="never")
    add(f"pickles-train--vae-{name}", "pickles",
        lambda ctx, m=PICKLE_FILES[name]: [*train_args(ctx.env, ctx.path("out")), "--vae", m(ctx)], needs="model", ok="never")
add("pickles-train--model-folder", "pickles",
    lambda ctx: ["character", "train", "aldar", "--images", ctx.env.refs(), "--model", _diffusers_folder_with_bins(ctx, "m"),
                 "--out", ctx.path("out"), *TRAIN_FAST], ok="never")
add("pickles-card_lora-story", "pickles",
    lambda ctx: story_args(ctx, LOGLINE, "--characters", _card_bible(ctx, "lora_pickle"), *_tiny(ctx)),
    needs="model", ok="never")


# --------------------------------------------------------------------------- 12. training: checkpoints, state.json, train_config.json
def _trained_copy(ctx: Ctx) -> Path:
    out = ctx.path("out")
    shutil.copytree(ctx.env.trained(), out, symlinks=True)
    return out


def _resume(mutate, extra=()):
    def build(ctx: Ctx):
        out = _trained_copy(ctx)
        mutate(ctx, out, out / "checkpoints" / "step-000001")
        return [*train_args(ctx.env, out), "--resume", *extra]
    return build


def _state(update):
    def mutate(ctx, out, ck):
        state = json.loads((ck / "state.json").read_text())
        update(state)
        (ck / "state.json").write_text(json.dumps(state))
    return mutate


CHECKPOINTS = {  # (mutate(ctx, out, checkpoint), what exit 0 means)
    "weights_garbage": (lambda c, o, k: (k / "weights.safetensors").write_bytes(b"\x00garbage"), "never"),
    "weights_truncated": (lambda c, o, k: (k / "weights.safetensors").write_bytes(
        (k / "weights.safetensors").read_bytes()[:100]), "never"),
    "weights_pickle": (lambda c, o, k: (k / "weights.safetensors").write_bytes(c.env.pickle_bytes()), "never"),
    "weights_torch_pickle": (lambda c, o, k: c.env.torch_pickle(k / "weights.safetensors"), "never"),
    "state_tensors_garbage": (lambda c, o, k: (k / "state.safetensors").write_bytes(b"{}"), "never"),
    "weights_missing": (lambda c, o, k: (k / "weights.safetensors").unlink(), "never"),
    "state_json_garbage": (lambda c, o, k: (k / "state.json").write_bytes(b"\xff{"), "never"),
    "state_json_array": (lambda c, o, k: (k / "state.json").write_text("[]"), "never"),
    "state_no_step": (_state(lambda s: s.pop("step")), "never"),
    "state_step_text": (_state(lambda s: s.update(step="thirty")), "never"),
    "state_step_huge": (_state(lambda s: s.update(step=1_000_000_000)), "never"),
    "state_step_negative": (_state(lambda s: s.update(step=-5)), "never"),
    "state_states_wrong": (_state(lambda s: s.update(states=5)), "never"),
    "state_tensor_ref_missing": (_state(lambda s: s.update(states={"__dict__": [["optimizer", {"__tensor__": "x"}]]})),
                                 "never"),
    "state_deep": (lambda c, o, k: (k / "state.json").write_text('{"step": 1, "states": ' + _deep() + "}"), "never"),
    "optimizer_pickle_beside": (lambda c, o, k: c.env.torch_pickle(k / "optimizer.bin"), "card"),
    "config_garbage": (lambda c, o, k: (o / "train_config.json").write_bytes(b"\xff\xfe"), "never"),
    "config_wrong_types": (lambda c, o, k: (o / "train_config.json").write_text('{"steps": "many", "rank": []}'), "never"),
    "config_array": (lambda c, o, k: (o / "train_config.json").write_text("[]"), "never"),
    "checkpoints_is_file": (lambda c, o, k: shutil.rmtree(o / "checkpoints") or (o / "checkpoints").write_text("x"), "never"),
    "checkpoint_dir_is_file": (lambda c, o, k: shutil.rmtree(k) or k.write_text("x"), "card"),
    "checkpoint_symlink_out": (lambda c, o, k: shutil.move(k, c.path("elsewhere")) or k.symlink_to(c.path("elsewhere")),
                               "card"),
}
for name, (mutate, ok) in CHECKPOINTS.items():
    add(f"training-resume-{name}", "training", _resume(mutate), needs="trained", ok=ok)
