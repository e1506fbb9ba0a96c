"""`autokose batch`: many boards and long videos, on this machine or across a Ray cluster.

    jobs = load_jobs("jobs.jsonl")                 # checked; settings resolved; paths absolute
    outcomes = run_batch(jobs, out, LocalPool(out, jobs))            # the plain local loop
    outcomes = run_batch(jobs, out, RayPool(out, jobs, address="local"))   # the same on Ray

`jobs.py` reads and checks the jobs and records what finished; `worker.py` runs a unit of work
(a board; a video's keyframe, part or join) and keeps its pipeline loaded; `runner.py` hands
units to free workers, retries a unit whose worker died, and skips jobs finished before.
A board's files are the same whichever pool drew it: the job carries its seed and settings.
"""

from autokose.batch.jobs import Job, Unit, load_jobs
from autokose.batch.runner import LocalPool, Outcome, RayPool, run_batch
from autokose.batch.worker import Worker

__all__ = ["Job", "LocalPool", "Outcome", "RayPool", "Unit", "Worker", "load_jobs", "run_batch"]
