"""datatrove's executors for the data stages (clean, tokenize): a stage is a list of jobs, each a
datatrove pipeline over a fixed number of tasks, run one after another on the executor that its
hardware section names (`hardware.clean`, `hardware.tokenize`):

  local   datatrove's LocalPipelineExecutor: `workers` processes share the tasks out;
  ray     tasks on a Ray cluster (datatrove's RayPipelineExecutor): `ray_address` null starts Ray on
          this machine with `workers` CPUs, "auto" joins the cluster this machine belongs to.

The same pipelines run under datatrove's SlurmPipelineExecutor (README, "Large corpora"). The number
of tasks is a stage parameter, never the number of workers, so outputs do not depend on the hardware.
"""

import os
import shutil
import sys
from contextlib import contextmanager
from copy import deepcopy
from pathlib import Path

import multiprocess
from datatrove.executor import LocalPipelineExecutor
from datatrove.executor import base as datatrove_executor_base
from datatrove.utils import logging as datatrove_logging
from datatrove.utils.stats import PipelineStats
from loguru import logger

from llmpipe.logs import quiet_bars, verbose
from llmpipe.schema import DataHardware


class TaskLogFile:
    """A loguru sink that writes to the log file of the task running now, and nowhere between tasks.
    One sink per process, added once: loguru's `add` costs about 3 ms (it looks up Python's library
    folders for its exception formatter), and datatrove's own set-up added three handlers per task."""

    def __init__(self):
        self.file = None

    def write(self, message: str):
        if self.file is not None:
            self.file.write(message)


task_log = TaskLogFile()
configured_in: int | None = None  # the process whose loguru handlers quiet_logging set up


def quiet_logging(again: bool = False):
    """loguru in this process: warnings and errors on stderr, everything into the running task's
    log file. Set up once per process (a forked worker sets up its own), or `again`."""
    global configured_in
    if configured_in == os.getpid() and not again:
        return
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    logger.add(task_log, level="DEBUG")
    configured_in = os.getpid()


def end_of_task():
    """What datatrove calls as setup_default_logger when a task ends (then it closes the file)."""
    task_log.file = None
    quiet_logging()


def task_logger_quiet_on_stderr(logging_dir, rank: int, local_rank: int = 0, node_rank: int = -1):
    """datatrove's add_task_logger, with stderr at WARNING: its INFO lines (the pipeline, per-task
    statistics) go to the task's log file under data/work/<stage>/logs/<job>/logs/."""
    quiet_logging()
    task_log.file = logging_dir.open(f"logs/task_{rank:05d}.log", "w")
    return task_log.file


class Executor(LocalPipelineExecutor):
    """datatrove's local executor, quiet on stderr unless LLMPIPE_VERBOSE is set (datatrove sets up
    loguru in every task, so the quieting is done where tasks run: in this process and in each
    worker). Tasks run in this process when the job has one worker, else in the stage's pool of
    forked workers (`worker_pool`), one pool for all the jobs of a stage: datatrove starts a pool
    and a multiprocess Manager (three processes) for every job, 0.08 s a job here."""

    shared_pool = None  # the stage's pool, while run_in_order runs a stage on several local workers

    def run(self):
        if self.depends or (self.workers > 1 and Executor.shared_pool is None):
            return super().run()
        self._launched = True
        self.save_executor_as_json()
        ranks = self.get_incomplete_ranks(range(self.local_rank_offset, self.local_rank_offset + self.local_tasks))
        if self.workers == 1:
            pipeline, stats = self.pipeline, []
            for rank in ranks:
                self.pipeline = deepcopy(pipeline)  # each task starts from the pipeline as built, as in datatrove
                stats.append(self._launch_run_for_rank(rank))
            self.pipeline = pipeline
        else:  # each task gets this executor pickled, pipeline and all, as datatrove's own pool gets it
            stats = list(Executor.shared_pool.imap_unordered(self._launch_run_for_rank, ranks))
        merged = sum(stats, start=PipelineStats())
        with self.logging_dir.open("stats.json", "wt") as statsfile:
            merged.save_to_disk(statsfile)
        logger.success(merged.get_repr(f"All {self.local_tasks} tasks"))
        return merged

    def _launch_run_for_rank(self, rank: int, ranks_q=None, completed=None, completed_lock=None):
        if not verbose():
            datatrove_executor_base.add_task_logger = task_logger_quiet_on_stderr
            datatrove_logging.setup_default_logger = end_of_task  # called by close_task_logger
        if ranks_q is None:  # our own run: no queue of local ranks (they only choose datatrove's console output)
            return self._run_for_rank(rank, 0)
        return super()._launch_run_for_rank(rank, ranks_q, completed, completed_lock)


@contextmanager
def worker_pool(hardware: DataHardware):
    """The stage's pool of `workers` forked processes when it runs locally on more than one, for
    Executor.run; forked now, after the stage has loaded its tables, so every worker inherits them."""
    if hardware.executor != "local" or hardware.workers <= 1:
        yield
        return
    with multiprocess.get_context("fork").Pool(hardware.workers) as pool:
        Executor.shared_pool = pool
        try:
            yield
        finally:
            Executor.shared_pool = None


def executor(hardware: DataHardware, name: str, pipeline: list, tasks: int, work: Path):
    """A datatrove executor for one job: local processes, or tasks on a Ray cluster."""
    common = {"tasks": tasks, "logging_dir": str(work / "logs" / name), "skip_completed": False}
    # skip_completed=False: the work folder is fresh every run; never trust a half-finished one
    if hardware.executor == "ray":
        from datatrove.executor import RayPipelineExecutor

        return RayPipelineExecutor(pipeline, **common, cpus_per_task=1, mem_per_cpu_gb=1)
    # fork, not datatrove's default forkserver: a forkserver worker imports datatrove, jieba and
    # py3langid again for every job, which cost a third of the clean stage's time with 2 workers here.
    return Executor(pipeline, **common, workers=min(hardware.workers, tasks), start_method="fork")


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


def run_in_order(jobs: list[tuple[str, list, int]], hardware: DataHardware, work: Path, stage: str, progress=None):
    """Run (name, datatrove pipeline, tasks) jobs one after another, logging into a fresh `work`
    folder (its previous content is removed: never trust a half-finished one)."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    if not verbose():
        quiet_logging(again=True)  # the executors' own messages in this process; anew, whatever changed it
    started_ray = hardware.executor == "ray" and start_ray(hardware)
    if progress is not None:
        progress.reset(total=len(jobs))
    try:
        with quiet_bars(), worker_pool(hardware):  # the pool's workers inherit the quiet bars
            for name, pipeline, tasks in jobs:
                if progress is not None:
                    progress.set_description(f"{stage}: {name}")
                job = executor(hardware, name, pipeline, tasks, work)
                job.run()
                # A local task's error stops the job here; datatrove's Ray executor only logs one.
                if failed := job.get_incomplete_ranks(range(tasks), skip_completed=True):
                    raise RuntimeError(
                        f"{stage}: {len(failed)} of {tasks} tasks of job {name!r} failed (ranks {failed[:10]}); "
                        f"their logs are in {work / 'logs' / name / 'logs'}"
                    )
                if progress is not None:
                    progress.update(1)
    finally:
        if started_ray:
            import ray

            ray.shutdown()
