"""The local MLflow store survives a kill at any moment, its birth and its migration included
(llmpipe.registry.store): the next run always finds a whole store, or none, and completes."""

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmpipe.registry import store

from .conftest import REPO, venv_env

OLD_STORE = REPO / "tests" / "fixtures" / "mlflow-3.16.1-store.sql"


def old_store(root: Path) -> Path:
    """The store of the MLflow before the locked one, as its user left it."""
    db = root / "mlflow.db"
    with sqlite3.connect(db) as con:
        con.executescript(OLD_STORE.read_text())
    con.close()
    return db


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def open_store(root: Path, failpoint: str | None = None) -> subprocess.CompletedProcess:
    """tracking.setup in a process of its own, as a stage opens the store (with a failpoint armed)."""
    env = {**venv_env(), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    if failpoint:
        env["LLMPIPE_FAILPOINT"] = failpoint
    code = "from llmpipe.registry import tracking; tracking.setup('.')"
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=300)


def client(root: Path):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def assert_holds_the_old_work(root: Path):
    """The old store's run, its metrics, its model version and alias, all there after migrating."""
    mlflow_client = client(root)
    experiment = mlflow_client.get_experiment_by_name("llmpipe")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    (run,) = mlflow_client.search_runs([experiment.experiment_id])
    assert run.data.params == {"pretrain.lr": "0.003", "model.d_model": "64"}
    history = mlflow_client.get_metric_history(run.info.run_id, "pretrain/val_bpb")
    assert [round(m.value, 6) for m in history] == [4.4, 4.3, 4.2]
    version = mlflow_client.get_model_version_by_alias("llmpipe-lm", "champion")
    assert str(version.version) == "1" and version.tags == {"eval/lm/val_bpb": "4.2"}


@pytest.mark.slow  # processes of their own: seconds each
def test_a_store_of_the_previous_mlflow_is_migrated_on_a_copy_and_keeps_its_work(tmp_path):
    db = old_store(tmp_path)
    head = store.schema_head()
    kind, old_revision = store.state(db, head)
    assert kind == "old" and old_revision != head
    before = digest(db)

    done = open_store(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert store.state(db, head) == ("ready", head)
    assert_holds_the_old_work(tmp_path)
    backup = tmp_path / f"mlflow.db.{old_revision}.bak"
    assert digest(backup) == before  # the store as it was, for a user who goes back to the older MLflow
    assert not (tmp_path / "mlflow.db.tmp").exists()


@pytest.mark.slow
@pytest.mark.parametrize("point", ["store:copied", "store:migrated", "store:synced"])
def test_a_kill_while_migrating_leaves_the_old_store_as_it_was_and_the_rerun_migrates(tmp_path, point):
    db = old_store(tmp_path)
    before = digest(db)
    killed = open_store(tmp_path, failpoint=point)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert digest(db) == before

    done = open_store(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert store.state(db, store.schema_head())[0] == "ready"
    assert_holds_the_old_work(tmp_path)


def half_made(db: Path, runs: bool):
    """A store as a kill inside MLflow's own in-place migration leaves it: a table alembic was
    rebuilding, the revision of the last migration that finished."""
    store.create_tables(db)
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE _alembic_tmp_experiments (experiment_id INTEGER)")
        con.execute("UPDATE alembic_version SET version_num = 'b7e2c1a4d9f3'")
        if runs:
            con.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, "
                "start_time, end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) VALUES "
                "('abc', 'pretrain', 'LOCAL', '', '', 'me', 'FINISHED', 0, 1, '', 'active', '', 0)"
            )
    con.close()


@pytest.mark.slow
def test_a_half_made_store_without_runs_is_set_aside_and_rebuilt(tmp_path):
    db = tmp_path / "mlflow.db"
    half_made(db, runs=False)
    assert store.state(db, store.schema_head())[0] == "half-made"
    done = open_store(tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert store.state(db, store.schema_head())[0] == "ready"
    (aside,) = tmp_path.glob("mlflow.db.half-made.*")  # moved, not deleted
    assert "_alembic_tmp_experiments" in {
        r[0] for r in sqlite3.connect(aside).execute("SELECT name FROM sqlite_master")
    }


def test_a_half_made_store_that_holds_runs_stops_with_one_message_naming_it(tmp_path):
    db = tmp_path / "mlflow.db"
    half_made(db, runs=True)
    before = digest(db)
    with pytest.raises(ValueError, match=rf"the MLflow store {db} was left half-migrated .* holds 1 runs") as err:
        store.ensure(db)
    assert "mlflow db upgrade" in str(err.value)
    assert digest(db) == before


def test_a_file_that_is_no_database_is_named(tmp_path):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"not a database, but a user's file" * 100)
    with pytest.raises(ValueError, match=rf"the MLflow store {db} is not a SQLite database"):
        store.ensure(db)


def test_a_store_killed_inside_a_write_is_read_after_sqlite_rolls_the_write_back(tmp_path):
    """A writer killed inside a transaction leaves a hot journal beside the store (`mlflow.db-journal`):
    the store is still the one before the transaction, and the next connection rolls it back. A
    read-only look cannot, and took the store for "not a SQLite database" (a resumed pretraining
    failed so after its first run was killed)."""
    db = old_store(tmp_path)
    before = store.state(db, store.schema_head())
    killed_inside_a_write = (
        "import os, signal, sqlite3, sys\n"
        "con = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "con.execute('PRAGMA cache_size = 1')\n"  # every changed page goes to the file, the journal first
        "con.execute('BEGIN')\n"
        "con.execute('UPDATE experiments SET name = name || ?', ('x' * 500,))\n"
        "con.execute('CREATE TABLE filler (x)')\n"
        "con.executemany('INSERT INTO filler VALUES (?)', [('y' * 1000,)] * 2000)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    subprocess.run([sys.executable, "-c", killed_inside_a_write, str(db)], timeout=60)
    assert (tmp_path / "mlflow.db-journal").stat().st_size > 0  # hot: the kill came before the commit
    assert store.state(db, store.schema_head()) == before
    assert not (tmp_path / "mlflow.db-journal").exists() or (tmp_path / "mlflow.db-journal").stat().st_size == 0
    assert "filler" not in {r[0] for r in sqlite3.connect(db).execute("SELECT name FROM sqlite_master")}


def test_a_store_made_by_a_newer_mlflow_is_refused_naming_the_lock(tmp_path):
    db = tmp_path / "mlflow.db"
    store.create_tables(db)
    with sqlite3.connect(db) as con:
        con.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    con.close()
    with pytest.raises(ValueError, match=r"made by a newer MLflow .* requirements.lock"):
        store.ensure(db)


def start_ingest(root: Path, failpoint: str | None = None) -> subprocess.Popen:
    env = {**venv_env(), "OMP_NUM_THREADS": "1"}
    if failpoint:
        env["LLMPIPE_FAILPOINT"] = failpoint
    return subprocess.Popen(
        [sys.executable, "-m", "llmpipe.stages.ingest"],
        cwd=root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def timed_birth(root: Path) -> float:
    """Seconds from the temporary store's appearance to the store's, in a run that is not killed."""
    process = start_ingest(root)
    tmp, db = root / "mlflow.db.tmp", root / "mlflow.db"
    while not tmp.exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        time.sleep(0.002)
    started = time.monotonic()
    while not db.exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        time.sleep(0.002)
    took = time.monotonic() - started
    assert process.wait(timeout=300) == 0, process.stderr.read().decode()[-3000:]
    return took


def kill_at(root: Path, delay: float | None, failpoint: str | None) -> int:
    """Start ingest and kill its process group `delay` seconds after the temporary store appeared
    (None: when a failpoint kills it, or right at the start); returns the exit code."""
    process = start_ingest(root, failpoint)
    if delay is not None:
        while not (root / "mlflow.db.tmp").exists() and process.poll() is None:
            time.sleep(0.002)
        time.sleep(delay)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    code = process.wait(timeout=300)
    process.stderr.close()
    return code


@pytest.mark.slow
def test_the_first_stage_killed_anywhere_in_the_stores_birth_leaves_a_store_the_rerun_completes(tmp_path):
    """ingest (the first stage that opens MLflow) killed at failpoints and at real moments spread over
    the store's creation: after each kill, the store is whole or absent, never half-made, and ingest
    run again completes with a whole store holding its run."""
    from llmpipe.config import compose

    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(compose(["experiment=tiny"], conf_dir=REPO / "conf"))
    birth = timed_birth(root)
    points = [(None, f"store:{name}") for name in ("built", "synced", "renamed")]
    points += [(birth * i / 8, None) for i in range(8)]  # 0 to 7/8 of the way through its creation
    killed = 0
    for delay, failpoint in points:
        for leftover in root.glob("mlflow.db*"):
            leftover.unlink()
        killed += kill_at(root, delay, failpoint) == -signal.SIGKILL
        kind, detail = store.state(root / "mlflow.db", store.schema_head())
        assert kind in ("missing", "ready"), (delay, failpoint, kind, detail)
        rerun = start_ingest(root)
        assert rerun.wait(timeout=300) == 0, (delay, failpoint, rerun.stderr.read().decode()[-3000:])
        rerun.stderr.close()
        assert store.state(root / "mlflow.db", store.schema_head())[0] == "ready"
        experiment = client(root).get_experiment_by_name("llmpipe")
        assert client(root).search_runs([experiment.experiment_id], "tags.`llmpipe.stage` = 'ingest'")
    assert killed >= 10, f"only {killed} of {len(points)} attempts were killed before they finished"
