"""The project's local MLflow store, a SQLite file: made and migrated whole, or not at all.

MLflow builds a new SQLite store, and migrates an old one, in place and over many transactions
(alembic's migrations, one table rebuild at a time). A process killed in between leaves a file that
no later MLflow can open ("table _alembic_tmp_experiments already exists"), and with it every later
stage. So llmpipe never lets MLflow make or migrate the store where it lies: under a lock (two
stages never do it at once) it builds a new store, or migrates a copy of an old one, beside its place,
then renames it in. A kill at any moment leaves the old file (or none) and a temporary one that the
next attempt replaces.

A store that an earlier llmpipe or a bare MLflow left half-made is rebuilt when it holds no runs and
no models (it is moved aside, not deleted); one that holds some stops the stage with a message that
names the file and what to do.
"""

import fcntl
import importlib.util
import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
import time
from contextlib import closing, contextmanager
from pathlib import Path

from llmpipe.failpoints import failpoint

log = logging.getLogger("llmpipe")

TMP_TABLE_PREFIX = "_alembic_tmp_"  # alembic's copy of a table it is rebuilding (SQLite's ALTER TABLE)


def ensure(db: Path):
    """Make `db` a whole store of the installed MLflow's schema; a no-op when it is one already."""
    head = schema_head()
    if state(db, head)[0] == "ready":
        return
    with locked(db):
        kind, detail = state(db, head)  # again: another process may have done it while we waited
        if kind == "ready":
            return
        if kind == "old":
            log.info("migrating the MLflow store %s from schema %s to %s (on a copy)", db, detail, head)
            migrate(db, head, detail)
            return
        if kind == "half-made":
            set_aside(db, detail)
        build(db, head)


def schema_head() -> str:
    """The alembic revision that the installed MLflow's stores are at: the one revision of MLflow's
    migration scripts that no other names as its parent. Read from the scripts' text (a few ms);
    alembic's ScriptDirectory imports all of them (about 0.8 s, at every stage's start)."""
    revisions, parents = migration_revisions()
    heads = revisions - parents
    if len(heads) == 1:
        return heads.pop()
    from alembic.script import ScriptDirectory  # scripts of a shape the patterns do not read

    return ScriptDirectory(str(migrations_folder())).get_current_head()


def migration_revisions() -> tuple[set[str], set[str]]:
    """(every revision of MLflow's migration scripts, every revision one of them names as its parent)."""
    revisions, parents = set(), set()
    for script in migrations_folder().glob("versions/*.py"):
        text = script.read_text(encoding="utf-8")
        revisions.update(REVISION.findall(text))
        parents.update(DOWN_REVISION.findall(text))
    return revisions, parents


REVISION = re.compile(r"^revision(?:\s*:\s*\w+)?\s*=\s*[\"']([0-9a-f]+)[\"']", re.M)
DOWN_REVISION = re.compile(r"^down_revision(?:\s*:[^=]+)?\s*=\s*[\"']([0-9a-f]+)[\"']", re.M)


def migrations_folder() -> Path:
    """MLflow's alembic migrations: the folder of its package `mlflow.store.db_migrations`, found from
    the top package's (a submodule's spec would import mlflow, over a second, for a folder's name)."""
    spec = importlib.util.find_spec("mlflow")
    assert spec is not None and spec.submodule_search_locations, "MLflow is not installed"
    folder = Path(spec.submodule_search_locations[0]) / "store" / "db_migrations"
    assert (folder / "env.py").is_file(), f"MLflow's store migrations are not in {folder}"
    return folder


def state(db: Path, head: str) -> tuple[str, str]:
    """("missing" | "ready" | "old" | "half-made", detail) of the file at `db`, read with SQLite alone:
    MLflow would start migrating it in place the moment it opened it. A store of a newer MLflow, or a
    file that is no database, raises ValueError naming it."""
    if not db.is_file() or db.stat().st_size == 0:
        return "missing", ""
    # A store whose writer was killed in a transaction keeps a hot journal, which SQLite rolls back
    # on the next read; a read-only connection cannot ("attempt to write a readonly database"), so
    # the store is opened for writing then: the rollback is what any connection would do first.
    mode = "rw" if Path(f"{db}-journal").exists() else "ro"
    try:
        with closing(sqlite3.connect(f"{db.as_uri()}?mode={mode}", uri=True, timeout=30)) as con:
            tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            versions = []
            if "alembic_version" in tables:
                versions = [row[0] for row in con.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.DatabaseError as err:  # not a database at all: a user must look at it
        raise ValueError(
            f"the MLflow store {db} is not a SQLite database ({err}): move it away to start a new store"
        ) from err
    if not tables:
        return "missing", ""
    leftovers = sorted(t for t in tables if t.startswith(TMP_TABLE_PREFIX))
    if len(versions) != 1 or leftovers or not {"experiments", "runs"} <= tables:
        return "half-made", f"schema {versions or 'unknown'}, tables {', '.join(leftovers) or 'missing'}"
    if versions[0] == head:
        return "ready", head
    if known_revision(versions[0]):
        return "old", versions[0]
    raise ValueError(
        f"the MLflow store {db} was made by a newer MLflow (schema {versions[0]}; this one is at {head}): "
        "install the versions of requirements.lock (`make setup`), or upgrade MLflow with `make lock`"
    )


def known_revision(revision: str) -> bool:
    """Whether the installed MLflow's migrations know `revision` (an older schema it can migrate)."""
    return revision in migration_revisions()[0]


def build(db: Path, head: str):
    """A new, empty store made beside `db`, then renamed in."""
    tmp = fresh_tmp(db)
    create_tables(tmp)
    failpoint("store:built")
    finish(tmp, db, head)


def create_tables(path: Path):
    """MLflow's own creation of a SQLite store: every table, migrated to its head revision."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{path}", (path.parent / "mlartifacts").as_uri())
    store.engine.dispose()  # no connection stays open on the file that is about to be renamed


def migrate(db: Path, head: str, old_revision: str):
    """An old store's copy migrated with `mlflow db upgrade`, then renamed in. The old file stays
    beside it (`<db>.<old revision>.bak`, a hard link: it costs no space until the store changes),
    for a user who goes back to the older MLflow."""
    tmp = fresh_tmp(db)
    with closing(sqlite3.connect(db, timeout=30)) as source, closing(sqlite3.connect(tmp)) as copy:
        source.backup(copy)  # SQLite's online backup: a consistent copy, even of a store in use
    failpoint("store:copied")
    done = subprocess.run(
        [sys.executable, "-m", "mlflow", "db", "upgrade", f"sqlite:///{tmp}"], capture_output=True, text=True
    )
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ValueError(
            f"migrating the MLflow store {db} to schema {head} failed; it is unchanged:\n{done.stderr[-2000:]}"
        )
    failpoint("store:migrated")
    backup = db.with_name(f"{db.name}.{old_revision}.bak")
    backup.unlink(missing_ok=True)
    os.link(db, backup)
    finish(tmp, db, head)


def finish(tmp: Path, db: Path, head: str):
    """Check the made store, make it durable and rename it into place."""
    kind, detail = state(tmp, head)
    assert kind == "ready", (tmp, kind, detail)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    failpoint("store:synced")
    os.replace(tmp, db)
    sync_folder(db.parent)
    failpoint("store:renamed")


def set_aside(db: Path, detail: str):
    """Move a half-made store out of the way, or stop when it holds work."""
    with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=30)) as con:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        held = {
            t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("runs", "registered_models")
            if t in tables
        }
    if any(held.values()):
        runs, models = held.get("runs", 0), held.get("registered_models", 0)
        raise ValueError(
            f"the MLflow store {db} was left half-migrated ({detail}) and holds {runs} runs and {models} registered "
            f"models, so llmpipe will not rebuild it: back it up, then run `mlflow db upgrade sqlite:///{db}`; "
            "or move it away to start a new store"
        )
    aside = db.with_name(f"{db.name}.half-made.{time.strftime('%Y%m%d-%H%M%S')}")
    os.replace(db, aside)
    log.warning(
        "the MLflow store %s was half-made (%s) and held no runs: moved to %s, a new one is built", db, detail, aside
    )


def fresh_tmp(db: Path) -> Path:
    """The temporary file beside `db`; one that a killed attempt left behind goes first."""
    tmp = db.with_name(f"{db.name}.tmp")
    for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
        leftover.unlink(missing_ok=True)
    return tmp


@contextmanager
def locked(db: Path):
    """An exclusive lock beside the store: the kernel drops it with the process, so a kill never
    leaves it held."""
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(f"{db.name}.lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def sync_folder(folder: Path):
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def recorded_versions() -> list[str]:
    """What the register stages recorded in metrics/ ("llmpipe-lm version 3", ...)."""
    paths = [Path("metrics") / "register.json", *sorted(Path("metrics", "register_task").glob("*.json"))]
    records = [json.loads(p.read_text(encoding="utf-8")) for p in paths if p.is_file()]
    return [f"{r['model_name']} version {r['version']}" for r in records if "version" in r]


REBUILD = (
    "`dvc repro` will not bring it back, as its stages are up to date: rebuild the registry from the exported "
    "models with `llmpipe register` (each registered again as challenger; then `llmpipe promote`), or point "
    "MLFLOW_TRACKING_URI at the store's new place"
)


def open_registry(root: Path = Path(".")):
    """tracking.setup for the verbs that read the registry, refusing to create an empty store where
    metrics/ says models were registered: the store was deleted or moved, and an empty one would hide
    that."""
    from llmpipe.registry import tracking

    uri = tracking.tracking_uri(root)
    recorded = recorded_versions()
    if uri.startswith("sqlite:///") and recorded:
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.is_file() or db.stat().st_size == 0:
            raise ValueError(f"the MLflow store {db} is missing, but metrics/ records {', '.join(recorded)}: {REBUILD}")
    tracking.setup(root)
    if recorded:
        import mlflow

        if not mlflow.MlflowClient().search_registered_models(max_results=1):
            raise ValueError(
                f"the MLflow store {uri} holds no models, but metrics/ records {', '.join(recorded)}: {REBUILD}"
            )
