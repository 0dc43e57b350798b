"""MLflow tracking: where the store is, and one run per stage execution.

The default store is a SQLite file `mlflow.db` in the project root with artifacts in `mlartifacts/`
beside it, both set explicitly: MLflow otherwise picks a store relative to whatever the working
directory is. MLFLOW_TRACKING_URI overrides the store.
"""

import os
import socket
import subprocess
from contextlib import contextmanager
from pathlib import Path

from llmpipe import secrets
from llmpipe.config import flatten

# Off by default: users' machines may be offline or private. Set before mlflow is imported.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# MLflow's notices ("Creating initial MLflow database tables...") only with LLMPIPE_VERBOSE; read at import.
if os.environ.get("LLMPIPE_VERBOSE", "") in ("", "0"):
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a bar per file, for local copies

EXPERIMENT = "llmpipe"
# MLflow's kind for an experiment of training runs, which is what llmpipe's hold. MLflow 3.10 to 3.18's
# UI picks an experiment's view from the browser's "GenAI / Model training" switch instead
# (registry/ui.py prints an address that opens on the runs); the tag still says what the experiment is.
KIND_TAG, KIND = "mlflow.experimentKind", "custom_model_development"
STAGE_TAG = "llmpipe.stage"
EXPERIMENT_TAG = "dvc.experiment"
PID_TAG, HOST_TAG = "llmpipe.pid", "llmpipe.host"  # which process runs it: a dead one's run is closed
# A tracking server that does not answer must fail a stage quickly rather than hang it.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def tracking_uri(root: str | Path = ".") -> str:
    """MLFLOW_TRACKING_URI, else mlflow.db in the project root. DVC runs a queued experiment in a
    temporary copy of the project and names the real root in DVC_ROOT: its runs belong there too."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{Path(os.environ.get('DVC_ROOT') or root).resolve() / 'mlflow.db'}"


def artifact_location(uri: str) -> str | None:
    """For a local SQLite store, artifacts live in mlartifacts/ beside the database file."""
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    return None  # a tracking server decides for itself


def check_reachable(uri: str, timeout: float = 5.0):
    """Fail fast, naming the URI, when a tracking server does not answer: MLflow's own client would
    retry for minutes and leave the stage hanging."""
    if not uri.startswith(("http://", "https://")):
        return  # a local store
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return  # it answered: a server without /health, or one that wants credentials, is still there
    except (OSError, ValueError) as err:
        raise ValueError(f"MLflow tracking server {uri} is unreachable ({err}); set MLFLOW_TRACKING_URI") from err


def check_store(root: str | Path = "."):
    """Raise ValueError naming what is wrong with the store the stages will write to: a server that
    does not answer, a local store that is not a database or was made by a newer MLflow, or one that
    cannot be written. A store that is missing, old or half-made is fine: the first stage builds,
    migrates or rebuilds it (registry.store). Quick, and without importing MLflow: the check stage
    runs it on every `dvc repro`."""
    uri = tracking_uri(root)
    check_reachable(uri)
    if uri.startswith("sqlite:///"):
        from llmpipe.registry import store

        db = Path(uri.removeprefix("sqlite:///"))
        store.state(db, store.schema_head())
        target = next(p for p in (db, *db.parents) if p.exists())  # the store, or the folder to make it in
        if not os.access(target, os.W_OK):
            raise ValueError(f"the MLflow store {db} cannot be written: {target} is read-only; set MLFLOW_TRACKING_URI")


def setup(root: str | Path = ".") -> str:
    """Point MLflow at the project's store (a local one made whole first: registry.store) and make
    sure the experiment exists, of the kind whose runs the UI shows; returns its id."""
    import mlflow

    uri = tracking_uri(root)
    check_reachable(uri)
    if uri.startswith("sqlite:///"):
        from llmpipe.registry import store

        store.ensure(Path(uri.removeprefix("sqlite:///")))
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return mlflow.create_experiment(EXPERIMENT, artifact_location=artifact_location(uri), tags={KIND_TAG: KIND})
    if experiment.tags.get(KIND_TAG) != KIND:  # made by an llmpipe before the tag, or changed in the UI
        mlflow.MlflowClient().set_experiment_tag(experiment.experiment_id, KIND_TAG, KIND)
    return experiment.experiment_id


def git_commit(root: str | Path = ".") -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def close_dead_runs(experiment_id: str, stage: str):
    """Mark KILLED the runs of this stage still RUNNING whose process on this machine is gone: a
    stage killed with SIGKILL cannot end its own run, and the MLflow UI would show it running forever."""
    import mlflow

    client = mlflow.MlflowClient()
    found = client.search_runs(
        [experiment_id], f"tags.`{STAGE_TAG}` = '{stage}' and attributes.status = 'RUNNING'", max_results=100
    )
    for run in found:
        tags = run.data.tags
        if tags.get(HOST_TAG) == socket.gethostname() and not process_alive(int(tags.get(PID_TAG, 0))):
            client.set_terminated(run.info.run_id, status="KILLED")


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process with that number
    return True


@contextmanager
def stage_run(stage: str, params: dict, root: str | Path = "."):
    """An MLflow run for one stage execution, with its params and provenance tags."""
    import mlflow

    experiment_id = setup(root)
    close_dead_runs(experiment_id, stage)
    tags = {STAGE_TAG: stage, "dvc.stage": stage, "mlflow.source.git.commit": git_commit(root)}
    tags |= {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    if os.environ.get("DVC_EXP_NAME"):  # a queued DVC experiment (llmpipe.studies.experiments): its name
        tags[EXPERIMENT_TAG] = os.environ["DVC_EXP_NAME"]
    with mlflow.start_run(experiment_id=experiment_id, run_name=stage, tags=tags) as run:
        flat = secrets.redact(flatten(params))
        for start in range(0, len(flat), 100):  # MLflow takes at most 100 params per batch
            mlflow.log_params(dict(list(flat.items())[start : start + 100]))
        yield run


def log_metrics(metrics: dict, prefix: str = "", step: int | None = None):
    """Log the numbers of a nested metrics dict as `prefix/a/b` keys to the active run."""
    import mlflow

    flat = flatten(metrics, sep="/", prefix=f"{prefix}/" if prefix else "")
    mlflow.log_metrics({k: float(v) for k, v in flat.items() if isinstance(v, (int, float))}, step=step)


def set_tag(key: str, value: str):
    """Tag the active run (MLflow keeps at most 5000 characters of a tag's value)."""
    import mlflow

    mlflow.set_tag(key, str(value)[:5000])


def log_artifacts(paths: list[str | Path], artifact_path: str | None = None):
    """Attach files (reports, plots data) to the active run, when there is one."""
    import mlflow

    if mlflow.active_run() is None:
        return
    for path in paths:
        if Path(path).exists():
            mlflow.log_artifact(str(path), artifact_path=artifact_path)
