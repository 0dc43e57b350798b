"""DVC experiments for the studies that compare runs (llmpipe.studies.architectures, .scaling, .transfer):
named points with Hydra overrides, queued (`dvc exp run --queue -n NAME -S ...`) for `dvc queue start`,
or run now, one at a time (`dvc exp run --temp`).

Each point runs in a temporary copy of the project; its MLflow runs land in the project's store
(tracking.tracking_uri) and are tagged with the experiment's name (tracking.stage_run).
"""

import subprocess

from tqdm import tqdm

from llmpipe.registry import tracking


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


def queue(points: dict[str, list[str]], targets: list[str] = (), replace: bool = False, run: bool = False) -> list[str]:
    """Queue one experiment per point (name -> Hydra overrides), running only up to `targets` (stage
    names; none: the whole pipeline), for `dvc queue start`. With run, run each one now instead, one
    after another, each in a temporary copy of the project (`dvc exp run --temp`). A run that waits for
    its results does not use DVC's queue worker: on its file-system broker the worker can die on a
    half-written message after an experiment or two and leave the rest queued for ever
    (treeverse/dvc#10398, #10428; it happened here under load). With replace, experiments of those
    names are removed first; without, an existing name is an error, before anything is queued."""
    taken = existing(list(points))
    if taken and not replace:
        raise ValueError(f"experiments {taken} exist already: pass --replace to run them again, or `dvc exp remove`")
    if taken:
        subprocess.run(["dvc", "exp", "remove", *taken], check=True)
    mode = "--temp" if run else "--queue"
    for name, overrides in tqdm(points.items(), desc="experiments", unit=" exp", disable=not run):
        command = ["dvc", "exp", "run", mode, "-n", name, *(a for o in overrides for a in ("-S", o)), *targets]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            raise ValueError(f"`{' '.join(command)}` failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return list(points)


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
