"""The data stages' jobs on datatrove's local executor (llmpipe.data.executors): workers are forked
after the stage loaded its tables, datatrove's console output goes to the job's console.log, and a
failed task fails the stage with the job's name and the task's log."""

import json
import os
import signal

import pytest
from datatrove.pipeline.base import PipelineStep
from tqdm import tqdm

from llmpipe.data.executors import run_in_order
from llmpipe.schema import DataHardware

TABLES: dict[str, int] = {}  # what a stage loads before its workers fork


class Probe(PipelineStep):
    """Writes, per task, the process it ran in and the tables it found; fails on rank `fail`."""

    name = "probe"
    type = "test"

    def __init__(self, out, fail: int | None = None):
        super().__init__()
        self.out, self.fail = out, fail

    def run(self, data, rank: int = 0, world_size: int = 1):
        if rank == self.fail:
            raise ValueError(f"planted failure in rank {rank}")
        for _ in tqdm(range(3), desc=f"library bar {rank}"):  # a library's bar, as datatrove's dedup steps make
            pass
        self.out.mkdir(exist_ok=True)
        (self.out / f"{rank}.json").write_text(json.dumps({"pid": os.getpid(), "tables": TABLES}))
        yield from ()


@pytest.fixture(autouse=True)
def quiet(monkeypatch):
    monkeypatch.delenv("LLMPIPE_VERBOSE", raising=False)


def test_forked_workers_inherit_what_was_loaded_before_the_job(tmp_path):
    TABLES["words"] = 42  # loaded after import, before the job: only a forked worker has it
    try:
        out = tmp_path / "out"
        run_in_order([("probe", [Probe(out)], 4)], DataHardware("local", None, 2), tmp_path / "work", "test")
    finally:
        TABLES.clear()
    seen = [json.loads((out / f"{rank}.json").read_text()) for rank in range(4)]
    assert all(task["tables"] == {"words": 42} for task in seen)
    assert os.getpid() not in {task["pid"] for task in seen}  # the tasks ran in the workers


@pytest.mark.timeout(120)
def test_a_job_ends_in_a_process_that_handles_sigterm(tmp_path):
    """The pool stops its idle workers with SIGTERM at the end of a job: workers forked from a
    process with a Python handler for it (Lightning installs one while it trains) must still end."""
    handled = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        for rerun in range(3):  # the hang came at random: a worker blocked on the task queue at the end
            out = tmp_path / f"out{rerun}"
            run_in_order([("probe", [Probe(out)], 4)], DataHardware("local", None, 2), tmp_path / "work", "test")
            assert len(list(out.glob("*.json"))) == 4
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL  # this process's handler is back
    finally:
        signal.signal(signal.SIGTERM, handled)


@pytest.mark.parametrize("workers", [1, 2])
def test_datatroves_console_output_goes_to_the_jobs_console_log(tmp_path, capfd, workers):
    work = tmp_path / "work"
    jobs = [("probe", [Probe(tmp_path / "out")], 2)]
    with tqdm(total=1, desc="stage bar", disable=False) as progress:  # the stage's own bar stays
        run_in_order(jobs, DataHardware("local", None, workers), work, "test", progress)
    printed = capfd.readouterr()
    assert "stage bar" in printed.err
    assert "Processing done" not in printed.err + printed.out and "library bar" not in printed.err + printed.out
    console = (work / "logs" / "probe" / "console.log").read_text()
    assert "library bar 0" in console and "library bar 1" in console
    assert "Stats: All 2 tasks" in console  # the job's summary, from this process
    assert "Processing done for rank=" in console  # datatrove prints the tasks of one worker (local rank 0)
    for rank in (0, 1):  # every task's lines are in its own log
        task_log = work / "logs" / "probe" / "logs" / f"task_{rank:05d}.log"
        assert f"Processing done for rank={rank}" in task_log.read_text()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_failed_task_fails_the_stage_naming_the_job_and_the_task_log(tmp_path, workers):
    work = tmp_path / "work"
    jobs = [("fine", [Probe(tmp_path / "out")], 3), ("boom", [Probe(tmp_path / "out", fail=1)], 3)]
    with pytest.raises(RuntimeError, match=r"test: .* tasks of job 'boom' did not complete") as failed:
        run_in_order(jobs, DataHardware("local", None, workers), work, "test")
    task_log = work / "logs" / "boom" / "logs" / "task_00001.log"
    assert str(task_log) in str(failed.value)
    assert "planted failure in rank 1" in task_log.read_text()
