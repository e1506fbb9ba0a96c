#!/usr/bin/env bash
# Issue 17 GPU speed benchmarks: the ONE script a GPU session runs, from the repository root on the
# device (NVIDIA H200, its python3 = 3.12 with torch 2.11+cu130, transformers 5.17, accelerate, peft),
# in about 540 s: bench_diffusion.py for SD 1.5, then SDXL, then bench_video.py --full (512x512
# stylize: defaults, --fast, compile blocks), each with a --deadline that skips the rows that would
# not fit, under a hard `timeout`. Results (JSON + markdown tables, 8 flat files) go to $OUT.
#
# Wheels the device lacks, downloaded once here into .whl (43.8 MiB with the data below):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl \
#     diffusers==0.42.1 pydantic==2.14.4 pydantic-core==2.50.5 annotated-types==0.8.0 \
#     typing-inspection==0.4.5 typing-extensions==4.16.0 av==18.1.0
#   (typing-extensions: pydantic 2.14 needs >= 4.16, the device's version is not known; av: the video
#   bench reads and writes MP4. Not carried: mediapipe (its wheel is ~35 MiB; bench_video then draws
#   blank OpenPose images, see ensure_pose_detection) and dlib (the face-identity metric is skipped).)
#   The clip and reference face for bench_video (../shared does not travel):
#   mkdir -p .whl/data && cp ../shared/data/video/short_hamilton_clip.mp4 .whl/data/ \
#     && cp ../shared/data/faces/obama/1.jpg .whl/data/face.jpg
#
# The device call (one command, ~9 minutes of the 15):
#   run(command="bash benchmarks/gpu_issue17.sh", carry=[".whl"], timeout_s=600)
#
# Local check on CPU (tiny models, no install, OUT=/tmp/gpu17-out): GPU17_TINY=1 bash benchmarks/gpu_issue17.sh
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu17-out}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
SD15_END=${SD15_END:-215}   # seconds from this script's start at which each phase must have ended
SDXL_END=${SDXL_END:-425}
VIDEO_END=${VIDEO_END:-540}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export TORCHINDUCTOR_CACHE_DIR=/tmp/inductor-issue17  # shared by the three runs: kernels compiled once

if [ -n "${GPU17_TINY:-}" ]; then  # CPU smoke test of this script: tiny models, the local venv
    PY=.venv/bin/python
    export PYTHONPATH=$PWD/src OMP_NUM_THREADS=1
    TINY=(--tiny)
    VIDEO=(--device cpu --full-size 64 --full-steps 2 --frames 3)
else
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || exit 1
    PY=python3
    export PYTHONPATH=/tmp/site:$PWD/src
    TINY=()
    VIDEO=(--device cuda --full-size 512 --full-steps 25 --frames 10)
fi

left() { echo $(( $1 - SECONDS )); }  # seconds until a phase's end
# run END NAME CMD...: CMD under a hard timeout at END (a phase with under 30 s left is not started)
run() {
    local end=$1 name=$2; shift 2
    if [ "$(left "$end")" -lt 30 ]; then echo "== $name: skipped, ${SECONDS}s gone" | tee -a "$LOG"; return; fi
    echo "== $name at ${SECONDS}s, deadline $(( $(left "$end") - 10 ))s" | tee -a "$LOG"
    timeout -k 10 "$(left "$end")" "$@" 2>&1 | grep --line-buffered -v "truncated because CLIP" | tee -a "$LOG"
}

{
    date -u
    nvidia-smi 2>&1 | head -20
    $PY -c "import sys, torch, diffusers, transformers, pydantic, av; print('python', sys.version.split()[0]); \
print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name()); \
print('diffusers', diffusers.__version__, 'transformers', transformers.__version__, 'pydantic', pydantic.VERSION, \
'av', av.__version__)"
    lscpu 2>/dev/null | grep -m1 "Model name"
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# SD 1.5: plain and default 3 boards each, the variants 2; compile_full only if its ~110 s still fit.
run $SD15_END sd15 $PY benchmarks/bench_diffusion.py "${TINY[@]}" --arch sd15 --repeats 3 --repeats-variants 2 \
    --deadline $(( $(left $SD15_END) - 10 )) --compile-estimate '{"sd15_blocks": 60, "sd15_full": 110}' \
    --only plain default consistency_0 consistency_0.25 consistency_1 attn_flash attn_cudnn channels_last \
    tiny_vae deep_cache_2 fast lcm_4 lcm_8 bf16 fused_qkv compile_blocks best_blocks compile_full best_full \
    --out "$OUT/sd15.json" --table "$OUT/sd15.md"

# SDXL: the 2x goal is plain vs default in every run (3 each); then fp16 VAE, fast, regional compile.
run $SDXL_END sdxl $PY benchmarks/bench_diffusion.py "${TINY[@]}" --arch sdxl --repeats 3 --repeats-variants 2 \
    --deadline $(( $(left $SDXL_END) - 10 )) --compile-estimate '{"sdxl_blocks": 90}' \
    --only plain default fp16_vae fast compile_blocks best_blocks \
    --out "$OUT/sdxl.json" --table "$OUT/sdxl.md"

# Video stylize at 512x512 with ControlNet + IP-Adapter + keyframe consistency: the >= 2 fps goal.
run $VIDEO_END video $PY benchmarks/bench_video.py --full "${VIDEO[@]}" --deadline $(( $(left $VIDEO_END) - 10 )) \
    --clip .whl/data/short_hamilton_clip.mp4 --reference .whl/data/face.jpg --compile-estimate 60 \
    --full-configs defaults,fast,compile_blocks,fast+compile_blocks,plain_controlnet \
    --json "$OUT/video.json" --table "$OUT/video.md"

echo "== done in ${SECONDS}s" | tee -a "$LOG"
for f in "$OUT"/*.md; do echo "--- $f"; cat "$f"; done
