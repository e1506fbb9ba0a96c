"""`autokose video ...`: footage → a stylised character video (`autokose.video`).

A thin shell like cli.py: `video.options.resolve_video` turns the flags into the job (the same
dict a web form or a ComfyUI node gives), `VideoJob.check` refuses bad footage and options before
anything is written, `VideoJob.run` stylises; this file parses flags, draws a bar per stage and
prints the metrics. `--part-frames N --part-overlap K` draws the clip in the parts `autokose batch`
spreads over workers (`stylize.prepare`/`draw_part`/`finish`), here one after another.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from autokose.app.flags import (
    CONSISTENCY, DIFFUSION, IDENTITY, OUTPUT, QUALITY, Cfg, ClipModel, Compile, ControlNet, ControlScale, DeepCache,
    Device, Dtype, Fast, IpAdapter, IpScale, Lineart, LineartScale, Lora, LowVram, Model, ModelConfig, Scheduler, Steps,
    Vae, retold, stage_progress)
from autokose.app.terminal import console, literal, user_errors

log = logging.getLogger("autokose")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Footage → stylised character video: the actor becomes the character, without flicker.")

FOOTAGE, STYLE, STUDIO = "Footage", "Style", "Studio"

Character = Annotated[Optional[str], typer.Option(help="Bible id of the character the actor becomes (aldar, bai, ...): "
                                                       "its trigger, appearance, references and LoRA.", rich_help_panel=IDENTITY)]
Bible = Annotated[Optional[Path], typer.Option("--bible", "--characters", help="Character bible YAML over the built-in cast.",
                                               rich_help_panel=IDENTITY)]
VideoModel = retold(Model, "SD 1.5/SDXL: HF repo id, diffusers folder or .safetensors file (required).")
PoseNet = retold(ControlNet, "OpenPose ControlNet: the actor's pose, measured in every frame (HF id, folder or file).")
VideoClip = retold(ClipModel, "CLIP model: frame-to-frame similarity in the metrics (HF id or folder).")


@app.command()
def stylize(
    source: Annotated[Path, typer.Argument(metavar="IN", help="The footage: a video file (MP4, MOV, MKV, WebM, ...).")],
    out: Annotated[Path, typer.Option(help="The MP4 to write; frames go to OUT.frames/, metrics to OUT.metrics.json.",
                                      rich_help_panel=OUTPUT)],
    character: Character = None,
    bible: Bible = None,
    style: Annotated[Optional[str], typer.Option(help="The look in words, e.g. 'watercolour illustration'.", rich_help_panel=STYLE)] = None,
    style_lora: Annotated[Optional[list[str]], typer.Option(help="Style LoRA file[:weight] acting on the whole frame; repeatable.",
                                                            rich_help_panel=STYLE)] = None,
    negative: Annotated[Optional[str], typer.Option(help="What no frame should show.", rich_help_panel=STYLE)] = None,
    model: VideoModel = None, vae: Vae = None, lora: Lora = None, ip_adapter: IpAdapter = None,
    ip_adapter_scale: IpScale = None, controlnet: PoseNet = None, controlnet_scale: ControlScale = None,
    lineart: Lineart = None, lineart_scale: LineartScale = None,
    steps: Steps = None,
    strength: Annotated[Optional[float], typer.Option(help="img2img strength: 1 redraws, near 0 keeps the footage (default 0.5).",
                                                      rich_help_panel=DIFFUSION)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the noise (default 0).", rich_help_panel=DIFFUSION)] = None,
    scheduler: Scheduler = None, cfg: Cfg = None, device: Device = None, dtype: Dtype = None, low_vram: LowVram = None,
    model_config: ModelConfig = None, fast: Fast = None, deep_cache: DeepCache = None, compile: Compile = None,
    start: Annotated[Optional[float], typer.Option(help="Seconds: the first frame at or after.", rich_help_panel=FOOTAGE)] = None,
    end: Annotated[Optional[float], typer.Option(help="Seconds: frames before.", rich_help_panel=FOOTAGE)] = None,
    every: Annotated[Optional[int], typer.Option(help="Stylise every N-th frame; the video plays at fps / N.",
                                                 rich_help_panel=FOOTAGE)] = None,
    size: Annotated[Optional[int], typer.Option(help="Short side in pixels, rounded to 8 (default 512).", rich_help_panel=FOOTAGE)] = None,
    chunk: Annotated[Optional[int], typer.Option(help="Frames read and stylised at a time (default 16).", rich_help_panel=FOOTAGE)] = None,
    part_frames: Annotated[Optional[int], typer.Option(help="Draw the clip in parts of N frames, as `autokose batch` "
                                                       "spreads a long clip over workers (here one after another); "
                                                       "default: one pass.", rich_help_panel=FOOTAGE)] = None,
    part_overlap: Annotated[Optional[int], typer.Option(help="With --part-frames: frames each part draws before its "
                                                        "own, cross-faded from the part before so the seam does not "
                                                        "show (default 8; at most --part-frames).",
                                                        rich_help_panel=FOOTAGE)] = None,
    flow_init: Annotated[Optional[bool], typer.Option("--flow-init/--no-flow-init", help="Start each frame from the previous "
                                                      "stylised one carried along the footage's flow (default on).",
                                                      rich_help_panel=CONSISTENCY)] = None,
    blend: Annotated[Optional[float], typer.Option(help="How much of the carried frame the init keeps, 0-1 (default 1).",
                                                   rich_help_panel=CONSISTENCY)] = None,
    fuse: Annotated[Optional[float], typer.Option(help="How much of the carried frame the result keeps where visible, "
                                                  "0-1 (default 0.5).", rich_help_panel=CONSISTENCY)] = None,
    warped_noise: Annotated[Optional[bool], typer.Option("--warped-noise/--no-warped-noise", help="Noise that moves with the "
                                                         "picture instead of fresh noise (default on).",
                                                         rich_help_panel=CONSISTENCY)] = None,
    keyframe_attention: Annotated[Optional[float], typer.Option(help="Share of the first and previous frames' attention "
                                                                "each frame sees, 0-1 (default 0.5; 0 = off).",
                                                                rich_help_panel=CONSISTENCY)] = None,
    deflicker: Annotated[Optional[float], typer.Option(help="Post-pass colour/brightness evening, 0-1 (default 0 = off).",
                                                       rich_help_panel=CONSISTENCY)] = None,
    flow_preset: Annotated[Optional[str], typer.Option(help="Optical flow of the footage: ultrafast, fast or medium "
                                                       "(default medium).", rich_help_panel=CONSISTENCY)] = None,
    stabilize_face: Annotated[Optional[bool], typer.Option("--stabilize-face", help="Stabilise on the actor's face before "
                                                           "stylising; the camera motion is put back after.",
                                                           rich_help_panel=STUDIO)] = None,
    separate: Annotated[Optional[bool], typer.Option("--separate", help="Stylise the person and the background apart, "
                                                     "then composite.", rich_help_panel=STUDIO)] = None,
    key_color: Annotated[Optional[str], typer.Option(help="With --separate: key this screen colour (green, blue, #rrggbb) "
                                                     "instead of finding the person.", rich_help_panel=STUDIO)] = None,
    background: Annotated[Optional[str], typer.Option(help="With --separate: the background in words.", rich_help_panel=STUDIO)] = None,
    mouth_mask: Annotated[Optional[bool], typer.Option("--mouth-mask", help="Keep the mouth closer to the footage, for "
                                                       "a later lip-sync pass.", rich_help_panel=STUDIO)] = None,
    mouth_keep: Annotated[Optional[float], typer.Option(help="With --mouth-mask: how much of the footage's mouth is kept, "
                                                        "0-1 (default 0.6).", rich_help_panel=STUDIO)] = None,
    compare_baseline: Annotated[Optional[bool], typer.Option("--compare-baseline", help="Also draw plain per-frame img2img "
                                                             "and report its warp error (slower).",
                                                             rich_help_panel=QUALITY)] = None,
    clip_model: VideoClip = None,
    resume: Annotated[bool, typer.Option(help="Finish an interrupted run: keep the frames in OUT.frames/, draw the rest.",
                                         rich_help_panel=OUTPUT)] = False,
    force: Annotated[bool, typer.Option(help="Overwrite an earlier OUT (its frames are drawn again).",
                                        rich_help_panel=OUTPUT)] = False,
) -> None:
    """Stylise footage IN into OUT.mp4: the actor becomes --character, in --style, frame after frame."""
    from autokose.video.options import OPTIONS, check_output, resolve_video

    options = {k: v for k, v in locals().items() if k in OPTIONS}
    with user_errors():
        out = check_output(out, resume=resume, force=force)
        job = resolve_video(options)
        for warning in job.warnings:
            log.warning(warning)
        job.check(source, out)
        with stage_progress() as progress:
            metrics = job.run(source, out, progress=progress, resume=resume)
    _report(out, metrics)


def metric_rows(metrics: dict) -> list[tuple[str, str]]:
    """The metrics file as (label, value) rows: warp errors, frames, fps, face identity, CLIP."""
    warp = metrics.get("warp_error") or {}
    rows = [(f"warp error, {name}", _number(warp.get(name))) for name in ("input", "output", "baseline")
            if warp.get(name) is not None]
    if warp.get("ratio") is not None:
        rows.append(("output / baseline", f"{warp['ratio']:.3f}  (< 1: less flicker than per-frame img2img)"))
    rows += [("frames", str(metrics.get("frames"))), ("fps", _number(metrics.get("fps")))]
    parts = metrics.get("parts")
    if parts:
        seam = (parts.get("seam_warp_error") or {}).get("output")
        rows.append(("parts", f"{parts['count']} of {parts['part_frames']} frames, overlap {parts['overlap']}"
                     + (f"; seam warp error {_number(seam)}" if seam is not None else "")))
    for value in metrics.values():  # the face and CLIP measurements, under whatever key they are filed
        if isinstance(value, dict) and "within" in value:
            within = value.get("within")
            rows.append(("face identity", f"{within:.0%} of frames within {value['threshold']:g} of the references"
                         if within is not None else value.get("skipped") or "no face measured"))
        elif isinstance(value, dict) and "per_pair" in value:
            mean = value.get("mean")
            rows.append(("CLIP frame to frame", f"mean {mean:.4f}, min {value['min']:.4f}"
                         if mean is not None else value.get("skipped") or "not measured"))
    return rows


def _number(value) -> str:
    if value is None:
        return "-"
    return f"{value:.3g}" if isinstance(value, float) and abs(value) < 0.01 else f"{value:.4g}"


def _report(out: Path, metrics: dict) -> None:
    """The metrics as a small table on stdout, then the success line naming the files written."""
    from autokose.video.stylize import frames_dir, metrics_path

    table = Table(show_header=False)
    for label, value in metric_rows(metrics):
        table.add_row(literal(label), literal(value))
    Console(highlight=False).print(table)
    line = Text.assemble(("video written:", "green"), " ", literal(out),
                         literal(f"  (frames in {frames_dir(out).name}/, metrics in {metrics_path(out).name})"))
    console.print(line, highlight=False, soft_wrap=True)
