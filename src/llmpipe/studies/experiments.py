"""Queued DVC experiments, for the studies that compare runs (llmpipe.studies.architectures, .scaling, .transfer):
queue named points with Hydra overrides (`dvc exp run --queue -n NAME -S ...`), run the queue one
experiment at a time, and wait until every one of them has finished.

Each point runs in a temporary copy of the project; its MLflow runs land in the project's store
(tracking.tracking_uri) and are tagged with the experiment's name (tracking.stage_run).
"""

import subprocess
import time

from tqdm import tqdm

from llmpipe.registry import tracking

FINISHED = ("Success", "Failed")


def check_points(points, conf_dir, study: str):
    """Compose each point's Hydra overrides (its `overrides`) before anything is queued, so a bad
    override fails at once, naming the point (`<study> point <name>: ...`)."""
    from llmpipe.config import compose

    for point in points:
        try:
            compose(list(point.overrides), conf_dir)
        except ValueError as err:
            raise ValueError(f"{study} point {point.name}: {err}") from err
    return points


def existing(names: list[str]) -> list[str]:
    """Those of names that are already DVC experiments of this repository (any commit)."""
    listed = subprocess.run(
        ["dvc", "exp", "ls", "--all-commits", "--name-only"], capture_output=True, text=True, check=True
    ).stdout.split()
    return [name for name in names if name in listed]


def queue(points: dict[str, list[str]], targets: list[str] = (), replace: bool = False) -> list[str]:
    """Queue one experiment per point (name -> Hydra overrides), running only up to `targets` (stage
    names; none: the whole pipeline). With replace, experiments of those names are removed first;
    without, an existing name is an error, before anything is queued."""
    taken = existing(list(points))
    if taken and not replace:
        raise ValueError(f"experiments {taken} exist already: pass --replace to run them again, or `dvc exp remove`")
    if taken:
        subprocess.run(["dvc", "exp", "remove", *taken], check=True)
    for name, overrides in points.items():
        command = ["dvc", "exp", "run", "--queue", "-n", name, *(a for o in overrides for a in ("-S", o)), *targets]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise ValueError(f"`{' '.join(command)}` failed:\n{done.stdout}{done.stderr}")
    return list(points)


def statuses(names: list[str]) -> dict[str, str]:
    """name -> Queued | Running | Success | Failed, for those of names that `dvc queue status` lists
    (its rows: task, name, created (one or two words), status)."""
    out = subprocess.run(["dvc", "queue", "status"], capture_output=True, text=True, check=True).stdout
    rows = [line.split() for line in out.splitlines()]
    return {row[1]: row[-1] for row in rows if len(row) >= 4 and row[1] in names}


def run_queue(names: list[str], poll_seconds: float = 10.0) -> dict[str, str]:
    """Start the queue's worker and wait for the named experiments; a failed one is an error that
    names it. One worker, so experiments run one at a time: fair timings, and a laptop stays usable."""
    subprocess.run(["dvc", "queue", "start", "-j", "1"], check=True)
    with tqdm(total=len(names), desc="experiments", unit=" exp") as progress:
        while True:
            state = statuses(names)
            finished = sum(s in FINISHED for s in state.values())
            progress.update(finished - progress.n)
            if finished == len(names):
                break
            missing = set(names) - set(state)
            if missing:
                raise ValueError(f"`dvc queue status` does not list {sorted(missing)}: were they removed?")
            time.sleep(poll_seconds)
    failed = [name for name, s in state.items() if s == "Failed"]
    if failed:
        raise ValueError(f"experiments {failed} failed: see `dvc queue logs <name>`")
    return state


def finished_runs(client, experiment_id: str, stage: str, prefix: str) -> list:
    """The finished MLflow runs of one stage (`stage` may end in % to match the per-task stages:
    "finetune/%") in a study's queued experiments (named <prefix>...), newest first."""
    match = "LIKE" if stage.endswith("%") else "="
    return client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{tracking.STAGE_TAG}` {match} '{stage}' and attributes.status = 'FINISHED' "
        f"and tags.`{tracking.EXPERIMENT_TAG}` LIKE '{prefix}%'",
        order_by=["attributes.start_time DESC"],
    )
