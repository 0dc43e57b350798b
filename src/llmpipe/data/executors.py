"""datatrove's executors for the data stages (clean, tokenize): a stage is a list of jobs, each a
datatrove pipeline over a fixed number of tasks, run one after another on the executor that its
hardware section names (`hardware.clean`, `hardware.tokenize`):

  local   datatrove's LocalPipelineExecutor: `workers` forked processes share the tasks out;
  ray     tasks on a Ray cluster (datatrove's RayPipelineExecutor): `ray_address` null starts Ray on
          this machine with `workers` CPUs, "auto" joins the cluster this machine belongs to.

Both are used through their constructors and `run()` only. The same pipelines run under datatrove's
SlurmPipelineExecutor (README, "Large corpora"). The number of tasks is a stage parameter, never the
number of workers, so outputs do not depend on the hardware.

A job's files are under the stage's work folder, logs/<job>/: datatrove's task logs (logs/task_<rank>.log,
everything a task logged), its stats.json and completions/, and console.log: what datatrove prints
on stderr while the job runs (each task's pipeline, statistics and progress bars), kept off the
terminal unless LLMPIPE_VERBOSE is set. The terminal shows the stage's own progress bar, one step
per job, and a failed task's error, which names the job and the task's log.
"""

import shutil
import signal
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from loguru import logger
from tqdm import tqdm

from llmpipe.atomic import STORAGE_ERRORS
from llmpipe.logs import quiet_bars, verbose
from llmpipe.schema import DataHardware


def executor(hardware: DataHardware, name: str, pipeline: list, tasks: int, work: Path):
    """A datatrove executor for one job: local processes, or tasks on a Ray cluster."""
    common = {"tasks": tasks, "logging_dir": str(job_logs(work, name)), "skip_completed": False}
    # skip_completed=False: the work folder is fresh every run; never trust a half-finished one
    if hardware.executor == "ray":
        from datatrove.executor import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, **common, cpus_per_task=1, mem_per_cpu_gb=1)
    # fork, not datatrove's default forkserver: the workers inherit the tables and models the stage
    # loaded while it built its pipelines (a forkserver worker imports datatrove, rjieba and the
    # language identifier again for every job, a third of the clean stage's time with 2 workers).
    return LocalPipelineExecutor(pipeline, **common, workers=min(hardware.workers, tasks), start_method="fork")


def job_logs(work: Path, name: str) -> Path:
    return work / "logs" / name


@contextmanager
def console_to(path: Path):
    """While a job runs, what datatrove prints (loguru's lines, tqdm's bars) goes into the file
    `path`, unless LLMPIPE_VERBOSE. datatrove sets loguru up anew in every task with a sink on
    sys.stderr as it is then, so stderr is redirected (logs.quiet_bars; forked workers inherit it);
    this process's loguru sinks point into the file during the job and back to stderr, at WARNING,
    after it (through loguru's logger.remove/add)."""
    if verbose():
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with quiet_bars(path):
        logger.remove()
        logger.add(sys.stderr, level="DEBUG")  # sys.stderr is the file here
        try:
            yield
        finally:
            logger.remove()  # before the file closes
    logger.add(sys.stderr, level="WARNING")


def start_ray(hardware: DataHardware) -> bool:
    """Connect to the Ray cluster at `ray_address` ("auto": the one this machine belongs to), or
    start one here with `workers` CPUs when it is null. True when this call started Ray."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    quiet = {"log_to_driver": verbose(), "logging_level": logging.INFO if verbose() else logging.WARNING}
    if hardware.ray_address:
        ray.init(address=hardware.ray_address, **quiet)
    else:
        ray.init(num_cpus=hardware.workers, include_dashboard=False, **quiet)
    return True


def failed_tasks(job, tasks: int, logs: Path, stage: str, name: str) -> RuntimeError | None:
    """The error for a job some of whose tasks did not complete, naming the task logs that hold an
    error (or the folder of them), or None when every task completed."""
    failed = job.get_incomplete_ranks(range(tasks), skip_completed=True)
    if not failed:
        return None
    task_logs = [logs / "logs" / f"task_{rank:05d}.log" for rank in failed]
    with_error = [path for path in task_logs if path.is_file() and "| ERROR" in path.read_text(errors="replace")]
    where = ", ".join(str(path) for path in with_error[:3]) or str(logs / "logs")
    return RuntimeError(
        f"{stage}: {len(failed)} of {tasks} tasks of job {name!r} did not complete (ranks {failed[:10]}); "
        f"the error is in {where}"
    )


@contextmanager
def default_sigterm():
    """SIGTERM at its default action (end the process) while a job runs, in this process and the
    workers it forks. At the end of a job the local executor's pool stops its idle workers with
    SIGTERM; a worker that inherited a Python handler for it (Lightning's, Ray's, uvicorn's, in a
    process that used them before) would go on waiting for work, and the job would never end."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; the stages run there
        return
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_job(hardware: DataHardware, name: str, pipeline: list, tasks: int, work: Path, stage: str):
    """Run one job; a task's error fails it with the job's name and the task's log."""
    job, logs = executor(hardware, name, pipeline, tasks, work), job_logs(work, name)
    try:
        with console_to(logs / "console.log"), default_sigterm():
            job.run()
    except Exception as err:  # a local task's error stops the job here
        if isinstance(err, OSError) and err.errno in STORAGE_ERRORS:
            raise  # a full disk, a read-only folder: the stage names the output it could not write (atomic.py)
        error = failed_tasks(job, tasks, logs, stage, name)
        if error is None:  # every task completed: the job itself failed
            raise
        raise error from err
    if error := failed_tasks(job, tasks, logs, stage, name):  # datatrove's Ray executor only logs one
        raise error


def run_in_order(jobs: list[tuple[str, list, int]], hardware: DataHardware, work: Path, stage: str, progress=None):
    """Run (name, datatrove pipeline, tasks) jobs one after another, logging into a fresh `work`
    folder (its previous content is removed: never trust a half-finished one)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    started_ray = hardware.executor == "ray" and start_ray(hardware)
    progress = tqdm(disable=True) if progress is None else progress
    progress.reset(total=len(jobs))
    try:
        for name, pipeline, tasks in jobs:
            progress.set_description(f"{stage}: {name}")
            run_job(hardware, name, pipeline, tasks, work, stage)
            progress.update(1)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
