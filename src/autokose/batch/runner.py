"""Run a batch: units go to free workers, in-process or on Ray; finished jobs are recorded.

    run_batch(jobs, out, pool, progress=None) -> list[Outcome]

1. **Skip** every job whose record in `OUT/.autokose-batch/NAME.json` says it finished with the
   same key (same settings, story bytes, footage): a re-run of a batch draws only what is new or
   unfinished. A job whose key changed is drawn again from scratch (`force`); a job started
   with the same key resumes.
2. **Schedule**: a board is one unit; a video is `prepare` (its shared keyframe), then its parts
   (side by side on free workers), then `finish` (join, encode, measure). Units are handed to
   free workers in job order, so a one-worker pool runs exactly the plain local loop.
3. **Retry**: a unit whose worker died (a Ray actor killed, its machine gone) goes back to the
   queue and the next free worker resumes it, up to MAX_ATTEMPTS starts; Ray restarts the
   actor meanwhile. A unit that fails with an error fails its job; the others go on.
4. **Record**: a job's record is written `started` before its first unit and `done` after
   its last, each atomically, so a batch killed at any moment re-runs correctly.

Pools: `LocalPool` (one in-process Worker: `autokose batch` without `--ray`) and `RayPool` (one
Worker actor per `gpus_per_worker` GPUs, or per CPU on a CPU-only cluster). Both run the same
`Worker.run`, so a board's files are the same whichever pool drew it (only manifest.json's run
record differs: times and machine).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from autokose.batch.jobs import BATCH_DIR, Job, Unit, foreign_output, is_done, read_record, write_record
from autokose.batch.worker import Worker
from autokose.errors import InputError, first_line

log = logging.getLogger("autokose")
MAX_ATTEMPTS = 3  # starts of one unit whose worker died, before its job fails
RESTART_WAIT = 600  # seconds with no unit running and no worker restarted before the batch gives up


@dataclass
class Outcome:
    """How a job ended: done, skipped (finished before) or failed (with the one-line reason)."""

    job: str
    status: str
    seconds: float = 0.0
    error: str | None = None
    workers: set = field(default_factory=set)  # pids of the workers that ran its units
    retries: int = 0  # units started again after their worker died


class Died(Exception):
    """The worker running a unit died (its process killed, its machine lost)."""


# --------------------------------------------------------------------------- pools
class _Pool:
    """`with pool:` closes it (lets its workers and their pipelines go) however the block ends."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalPool(_Pool):
    """One worker in this process: units run one after another, as `submit` hands them in."""

    workers = 1

    def __init__(self, out: Path, jobs: list[Job], *, cpus_per_worker: float = 1.0):
        self.worker = Worker(out, jobs, threads=int(cpus_per_worker))
        self.pending: deque = deque()

    def free(self) -> int:
        return 0 if self.pending else 1

    def submit(self, unit: Unit, force: bool) -> None:
        self.pending.append((unit, force))

    def next(self) -> tuple[Unit, dict | BaseException] | None:
        unit, force = self.pending.popleft()
        try:
            return unit, self.worker.run(unit, force=force)
        except Exception as e:  # noqa: BLE001  (the job fails; the batch goes on)
            return unit, e

    def close(self) -> None:
        self.worker.close()


class RayPool(_Pool):
    """Worker actors on a Ray cluster: `address` "local" starts one on this machine.

    Each actor reserves `gpus_per_worker` GPUs (Ray gives it those devices as CUDA_VISIBLE_DEVICES,
    so the pipeline's default `cuda` is its own GPU) and `cpus_per_worker` CPUs. `workers`
    defaults to as many as the cluster's GPUs (or CPUs, without GPUs) allow. Actors restart
    when they die (`max_restarts=-1`); the unit they were running is handed back by `next` as
    `Died`, and the scheduler gives it to the next free worker.
    """

    def __init__(self, out: Path, jobs: list[Job], *, address: str = "local", workers: int | None = None,
                 gpus_per_worker: float | None = None, cpus_per_worker: float = 1.0, num_cpus: int | None = None):
        ray = _ray()
        self.ray = ray
        self.started = not ray.is_initialized()
        if self.started:
            kwargs = {"include_dashboard": False, "configure_logging": False, "log_to_driver": False}
            try:
                if address == "local":  # this machine alone: nothing listens beyond loopback
                    ray.init(address="local", num_cpus=num_cpus, _node_ip_address="127.0.0.1", **kwargs)
                else:
                    ray.init(address=address, **kwargs)
            except (ConnectionError, ValueError, RuntimeError, TimeoutError) as e:
                hint = " (start one with `ray start --head`, or use --ray local)" if address == "auto" else ""
                raise InputError(f"--ray {address}: {first_line(e)}{hint}") from None
        try:
            resources = ray.cluster_resources()
            gpus = resources.get("GPU", 0)
            if gpus_per_worker is None:
                gpus_per_worker = 1 if gpus else 0
            if gpus_per_worker > gpus:
                raise InputError(f"--gpus-per-worker {gpus_per_worker:g}: the cluster has {gpus:g} GPU(s)")
            if workers is None:
                per = gpus // gpus_per_worker if gpus_per_worker else resources.get("CPU", 1) // cpus_per_worker
                workers = int(per)
            self.workers = max(1, workers)
            cpus = resources.get("CPU", 0)
            if self.workers * cpus_per_worker > cpus or self.workers * gpus_per_worker > gpus:
                # Ray would wait for the rest forever
                raise InputError(f"{self.workers} worker(s) need {self.workers * cpus_per_worker:g} CPU(s) and "
                                 f"{self.workers * gpus_per_worker:g} GPU(s); the cluster has {cpus:g} and {gpus:g}")
            actor = ray.remote(Worker).options(num_gpus=gpus_per_worker, num_cpus=cpus_per_worker, max_restarts=-1,
                                               max_task_retries=0)
            root = str(Path(out).resolve())  # a worker on another machine starts in another folder
            self.actors = [actor.remote(root, jobs, threads=int(cpus_per_worker)) for _ in range(self.workers)]
            self.pid = ray.get([a.pid.remote() for a in self.actors])  # asked while idle: a busy actor answers late
            self.idle = deque(range(self.workers))
            self.running: dict = {}  # object ref → (unit, actor index)
            self.restarting: dict = {}  # pid() ref of an actor Ray restarts → its index
        except BaseException:
            if self.started:
                ray.shutdown()
            raise

    def free(self) -> int:
        return len(self.idle)

    def submit(self, unit: Unit, force: bool) -> None:
        i = self.idle.popleft()
        self.running[self.actors[i].run.remote(unit, force=force)] = (unit, i)

    def next(self) -> tuple[Unit, dict | BaseException] | None:
        """The next unit that ended, with its result, an error, or `Died`; None when a worker came back.

        An actor whose unit died is idle again only once Ray has restarted it (its pid() answers):
        until then the retried unit goes to another free worker.
        """
        while True:
            ready, _ = self.ray.wait([*self.running, *self.restarting], num_returns=1, timeout=RESTART_WAIT)
            if not ready:
                if not self.running:
                    raise InputError(f"no worker is left: Ray restarted none within {RESTART_WAIT} s")
                continue
            if ready[0] in self.restarting:
                if self._restarted(ready[0]):
                    return None
                continue
            unit, i = self.running.pop(ready[0])
            try:
                result = self.ray.get(ready[0])
            except self.ray.exceptions.RayActorError as e:
                self.restarting[self.actors[i].pid.remote()] = i
                return unit, Died(first_line(e))
            except self.ray.exceptions.RayTaskError as e:
                result = e.cause if isinstance(e.cause, BaseException) else e
            self.idle.append(i)
            return unit, result

    def _restarted(self, ref) -> bool:
        """Whether the actor asked about is back (then idle); else it is asked again."""
        i = self.restarting.pop(ref)
        try:
            self.pid[i] = self.ray.get(ref)
        except self.ray.exceptions.RayActorError:  # still restarting
            time.sleep(0.2)
            self.restarting[self.actors[i].pid.remote()] = i
            return False
        self.idle.append(i)
        return True

    def pids(self) -> dict[Unit, int]:
        """The process of each running unit's worker (tests kill one)."""
        return {unit: self.pid[i] for unit, i in list(self.running.values())}

    def close(self) -> None:
        for a in self.actors:
            self.ray.kill(a)
        if self.started:
            self.ray.shutdown()


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("--ray needs Ray: pip install 'autokose[scale]'") from None
    return ray


# --------------------------------------------------------------------------- the schedule
class _Schedule:
    """Which units are ready, and what is left of each job."""

    def __init__(self, out: Path, jobs: list[Job], force: bool):
        self.out = out
        self.ready: deque[Unit] = deque()
        self.left: dict[str, int] = {}  # job → units not yet done (None until a video's parts are known)
        self.force: dict[str, bool] = {}
        self.attempts: dict[Unit, int] = {}
        for job in jobs:
            record = read_record(out, job.name)
            # a changed job is drawn again; an unchanged one resumes where it stopped
            self.force[job.name] = force or (bool(record) and record.get("key") != job.key)
            self.ready.append(Unit(job.name, "board" if job.kind == "board" else "prepare"))
            self.left[job.name] = 1

    def after(self, unit: Unit, result: dict) -> bool:
        """Record `unit` done; True when its job is finished."""
        self.force[unit.job] = False
        if unit.step == "prepare":
            self.ready.extend(Unit(unit.job, "part", k) for k in range(result["parts"]))
            self.left[unit.job] = result["parts"]
            return False
        self.left[unit.job] -= 1
        if unit.step == "part" and self.left[unit.job] == 0:
            self.ready.append(Unit(unit.job, "finish"))
            self.left[unit.job] = 1
            return False
        return self.left[unit.job] == 0

    def drop(self, job: str) -> None:
        """A failed job: its queued units go too (its running ones end on their own)."""
        self.ready = deque(u for u in self.ready if u.job != job)
        self.left[job] = -1


Progress = Callable[[Outcome, int, int], None]


def check_outputs(jobs: list[Job], out: Path, *, force: bool = False) -> None:
    """Refuse (InputError) to draw over what this batch did not make: a board made by hand in OUT/NAME,
    another run's video. A job this batch started has a record and resumes; `force` draws over anything."""
    for job in [] if force else jobs:
        found = foreign_output(Path(out), job)
        if found is not None:
            raise InputError(f"{found} exists and this batch did not make it (no record in {Path(out) / BATCH_DIR}); "
                             "move it away, or give --force to draw it again")


def run_batch(jobs: list[Job], out: Path, pool, *, force: bool = False,
              progress: Progress | None = None) -> list[Outcome]:
    """Make every job's output in `out` with `pool`'s workers; how each job ended, in job order.

    `progress(outcome, done, total)` hears of every job that ends. `force` draws every job again.
    """
    out = Path(out)
    check_outputs(jobs, out, force=force)
    outcomes = {job.name: Outcome(job.name, "queued") for job in jobs}
    todo = [job for job in jobs if force or not is_done(out, job)]
    for job in jobs:
        if job not in todo:
            outcomes[job.name].status = "skipped"
    by_name = {job.name: job for job in todo}
    schedule = _Schedule(out, todo, force)
    started: dict[str, float] = {}
    done = len(jobs) - len(todo)
    running = 0
    while schedule.ready or running:
        while schedule.ready and pool.free():
            unit = schedule.ready.popleft()
            job = by_name[unit.job]
            if unit.job not in started:
                started[unit.job] = time.perf_counter()
                write_record(out, job, "started")
            schedule.attempts[unit] = schedule.attempts.get(unit, 0) + 1
            pool.submit(unit, schedule.force[unit.job])
            running += 1
        ended = pool.next()
        if ended is None:  # a worker is back: hand it work
            continue
        unit, result = ended
        running -= 1
        outcome = outcomes[unit.job]
        if outcome.status == "failed":
            continue
        if isinstance(result, Died) and schedule.attempts[unit] < MAX_ATTEMPTS:
            log.warning("%s: its worker died (%s); trying again", unit, result)
            outcome.retries += 1
            schedule.ready.appendleft(unit)
            continue
        if isinstance(result, BaseException):
            outcome.status, outcome.error = "failed", _reason(result)
            outcome.seconds = round(time.perf_counter() - started[unit.job], 3)
            schedule.drop(unit.job)
            done += 1
            if progress:
                progress(outcome, done, len(jobs))
            continue
        outcome.workers.add(result.get("pid"))
        if schedule.after(unit, result):
            outcome.status = "done"
            outcome.seconds = round(time.perf_counter() - started[unit.job], 3)
            extra = {"metrics": result["metrics"]} if "metrics" in result else {}
            write_record(out, by_name[unit.job], "done", **extra)
            done += 1
            if progress:
                progress(outcome, done, len(jobs))
    return [outcomes[job.name] for job in jobs]


def _reason(e: BaseException) -> str:
    if isinstance(e, Died):
        return f"its worker died {MAX_ATTEMPTS} times ({e})"
    if isinstance(e, InputError):
        return str(e)
    return f"internal error: {type(e).__name__}: {first_line(e)}"
