"""A batch worker: runs units (a board, a step of a video) and keeps its pipeline loaded between them.

The same class runs in-process (`autokose batch` without `--ray`) and as a Ray actor (one per GPU),
so a board is drawn by the same code with the same settings either way. Inside `run` the worker
keeps the last diffusion pipeline loaded (`engine.keep_warm`): the second board on a model
starts drawing at once instead of loading the weights again.

On a CPU, torch's sums depend on how many threads share them: a board drawn with 2 threads
differs in the last bits from one drawn with 1. So every worker draws with `threads` CPU
threads (`--cpus-per-worker`, 1 by default, as Ray gives an actor one CPU), in-process or on
Ray, and a board's bytes do not depend on where it ran.

A board unit is `pipeline.run` on the job's RunConfig (resolved once, when the batch was
planned). It resumes a board an earlier attempt left half-drawn (a worker that died, a batch
stopped with Ctrl-C): finished frames are kept and the rest drawn from the same seeds (a
diffusion frame redrawn in a batch of another size can differ in the last bits: docs/SCALING.md).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from autokose.batch.jobs import Job, Unit


class Worker:
    """Runs units for the output folder `out` (on shared storage when workers are on several machines)."""

    def __init__(self, out: str | Path, jobs: list[Job] | None = None, threads: int = 1):
        from autokose.render.diffusion.engine import keep_warm

        self.out = Path(out)
        self.threads = max(1, int(threads))
        self.jobs = {job.name: job for job in jobs or []}
        self._videos: dict[str, object] = {}  # job name → its VideoJob and engine, while its units run here
        self._warm = keep_warm()  # for the worker's life: a Ray actor is never told it ends
        self._warm.__enter__()
        self._import_ahead()

    def _import_ahead(self) -> None:
        """Import what the jobs will need now, while the worker starts: torch, diffusers and
        transformers take seconds to import, which would otherwise land on the first board."""
        import autokose.pipeline  # noqa: F401

        if any(_diffusion(job) for job in self.jobs.values()):
            from autokose.models import import_ahead

            import autokose.render.diffusion.renderer  # noqa: F401

            try:
                import_ahead()
            except ImportError:  # the job fails with the pipeline's own one-line message
                pass

    def close(self) -> None:
        """Let the kept pipeline go (an in-process worker, when the batch is over)."""
        self._videos.clear()
        self._warm.__exit__(None, None, None)

    def pid(self) -> int:
        """The worker's process (a Ray actor's answer also says it is up)."""
        return os.getpid()

    def run(self, unit: Unit, job: Job | None = None, *, force: bool = False) -> dict:
        """Do `unit` of `job` (or of the job of that name given at start); a small record of it."""
        job = job or self.jobs[unit.job]
        t0 = time.perf_counter()
        with _threads(self.threads if _diffusion(job) else None):
            result = getattr(self, f"_{unit.step}")(job, unit, force) or {}
        return {"seconds": round(time.perf_counter() - t0, 3), "pid": os.getpid(), **result}

    # ------------------------------------------------------------------ boards
    def _board(self, job: Job, unit: Unit, force: bool) -> dict:
        from autokose.board import Board
        from autokose.config import RunConfig
        from autokose.pipeline import run

        out = job.output(self.out)
        cfg = RunConfig.model_validate(job.config)
        story = None
        if job.story is not None:
            from autokose.story import Story

            story = Story.load(Path(job.story))
        resume = not force and Board(out).story_path.exists()
        run(cfg, out, story=story, resume=resume, force=force and out.exists())
        return {}

    # ------------------------------------------------------------------ videos
    def _video(self, job: Job):
        """The job's resolved options and engine, made once per job on this worker (the engine's
        pipeline is the warm one when the model is the same)."""
        if job.name not in self._videos:
            from autokose.video.options import resolve_video

            video = resolve_video(job.options)
            self._videos = {job.name: (video, video.engine())}  # one video's engine at a time
        return self._videos[job.name]

    def _prepare(self, job: Job, unit: Unit, force: bool) -> dict:
        """Check the footage and draw the shared keyframe; how many parts follow. The scheduler runs
        it before any part of the job (its resume clears temp files a part would be writing)."""
        video, engine = self._video(job)
        video.check(job.video, job.output(self.out))
        _, plan = video.prepare(job.video, job.output(self.out), resume=not force, engine=engine)
        return {"parts": len(plan)}

    def _part(self, job: Job, unit: Unit, force: bool) -> dict:
        from autokose.video.stylize import plan_for

        video, engine = self._video(job)
        video.draw_part(job.video, job.output(self.out), plan_for(job.video, video.settings)[unit.part], engine=engine)
        return {}

    def _finish(self, job: Job, unit: Unit, force: bool) -> dict:
        from autokose.video.stylize import plan_for

        video, _ = self._video(job)
        return {"metrics": video.finish(job.video, job.output(self.out), plan_for(job.video, video.settings))}


def _diffusion(job: Job) -> bool:
    return job.kind == "video" or job.config["render"]["renderer"] == "diffusion"


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    """torch draws with `n` CPU threads inside, and with as many as before after (an in-process worker
    shares its process with the caller)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
