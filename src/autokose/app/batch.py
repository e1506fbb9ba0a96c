"""`autokose batch JOBS --out DIR [--ray local|ADDRESS]`: a thin shell over `autokose.batch`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from autokose.app.terminal import console, literal, user_errors
from autokose.errors import InputError
from autokose.fsio import ensure_writable_dir


def batch(
    jobs: Annotated[Path, typer.Argument(metavar="JOBS", help="A JSONL file, one job a line ({\"logline\": ...}, "
                                                              "{\"story\": ...}, {\"video\": ...}), or a folder of "
                                                              "boards.")],
    out: Annotated[Path, typer.Option(help="Output folder (shared storage on a cluster): OUT/NAME/ per board, "
                                           "OUT/NAME.mp4 per video.")],
    ray: Annotated[Optional[str], typer.Option(help="Run on Ray: 'local' starts Ray on this machine, else the "
                                                    "cluster's address (e.g. ray://head:10001 or auto).")] = None,
    workers: Annotated[Optional[int], typer.Option(min=1, help="Workers (Ray actors); default: one per GPU, or per "
                                                               "CPU on a cluster without GPUs.")] = None,
    gpus_per_worker: Annotated[Optional[float], typer.Option(min=0, help="GPUs each worker holds (default 1 where "
                                                                         "the cluster has GPUs, else 0).")] = None,
    cpus_per_worker: Annotated[float, typer.Option(min=1, help="CPU threads each worker draws with (and holds on "
                                                              "Ray); the same number gives the same bytes.")] = 1.0,
    force: Annotated[bool, typer.Option(help="Draw every job again, finished ones too.")] = False,
) -> None:
    """Make many boards and videos; a re-run skips finished ones. Without --ray, one after another here."""
    from autokose.batch import LocalPool, RayPool, load_jobs, run_batch
    from autokose.batch.runner import check_outputs

    with user_errors(interrupted="interrupted; run the same command again to continue (finished jobs are "
                                 "skipped, started ones resume)"):
        if ray is None and (workers or gpus_per_worker):
            raise InputError("--workers and --gpus-per-worker need --ray (without it the batch runs here, "
                             "one job at a time)")
        plan = load_jobs(jobs, out)
        check_outputs(plan, out, force=force)  # before a Ray instance is started for nothing
        if ray is None:
            pool = LocalPool(out, plan, cpus_per_worker=cpus_per_worker)
        else:
            pool = RayPool(out, plan, address=ray, workers=workers, gpus_per_worker=gpus_per_worker,
                           cpus_per_worker=cpus_per_worker)
        with pool:  # workers (and a Ray instance started here) end with the command, however it ends
            ensure_writable_dir(out, "--out")  # after the cluster is checked: a refused batch leaves no folder
            where = f" (Ray: {ray})" if ray else ""
            console.print(literal(f"{len(plan)} job(s) on {pool.workers} worker(s){where}"))
            with Progress(TextColumn("jobs    "), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          console=console, disable=not console.is_terminal) as bars:
                task = bars.add_task("jobs", total=len(plan))

                def report(outcome, done, total):
                    bars.update(task, completed=done)
                    line = f"{outcome.job}: {outcome.status}" + (f" ({outcome.error})" if outcome.error else "")
                    bars.console.print(literal(line))

                outcomes = run_batch(plan, out, pool, force=force, progress=report)
    table = Table("job", "status", "seconds", "note")
    for o in outcomes:
        table.add_row(literal(o.job), o.status, f"{o.seconds:.1f}" if o.seconds else "", literal(o.error or ""))
    console.print(table)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise typer.Exit(1)
