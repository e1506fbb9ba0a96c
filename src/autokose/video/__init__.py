"""Footage → stylised character video: `autokose video stylize` and the parts below it.

The modules below `stylize` take data and return data (frames are HxWx3 uint8 RGB numpy
arrays) and know no story, board or command line:

- `io`: video files in and out with PyAV (`pip install 'autokose[video]'`): `probe` a file (one
  clear InputError for anything that is not usable footage), `read_frames` (rotation applied,
  span, every N-th frame, short side rounded to a multiple of 8), `write_video` (H.264 MP4 at the
  source's fps with its audio copied, written atomically).
- `controls`: what conditions each frame: OpenPose skeletons, lineart, person / key / mouth masks.
- `temporal`: optical flow of the input, warping, occlusion, flow-guided init, warped noise,
  deflicker: what ties stylised frame t to frame t-1.
- `stabilize`: face stabilisation before stylising and the camera motion put back afterwards.
- `metrics`: warp error (flicker), face identity and CLIP similarity, the metrics file beside an output.
- `stylize`: the pipeline itself on the diffusion engine (`StylizeSettings`, `check`, `stylize`;
  `prepare`, `draw_part`, `finish`: a long clip in parts a batch spreads over workers).
- `parts`: how a clip is cut into parts and joined (`plan`, the warm-up cross-fade, the seams).
- `options`: a user's options (CLI flags, a web form, a node's inputs) → the job `stylize` runs.

The package sits on the render floor: it may use the diffusion engine, and never imports config,
pipeline or app.
"""
