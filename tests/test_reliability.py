"""Faults a user or the machine can cause, each reproduced for real on the tiny project: damaged token
files and weights, a full disk, a deleted MLflow store, a credential pulled into params, a registry
artifact changed after registration, a version registered by hand without evaluation tags, and a
half-made version left by a killed register. Each must stop with one clear message naming the input
(and how to rebuild it) and lose nothing; the kills inside `dvc repro` are in test_chaos.py."""

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest

from llmpipe.atomic import WriteError
from llmpipe.data.token_files import load_tokens
from llmpipe.registry import integrity, tracking
from llmpipe.registry.export import load_model_dir
from llmpipe.registry.model_registry import load_pyfunc, promote
from llmpipe.runner import run_stage
from llmpipe.stages import register

from .conftest import REPO


def llmpipe(
    root: Path, *args: str, env: dict | None = None, module: str = "llmpipe.cli"
) -> subprocess.CompletedProcess:
    """Run `llmpipe <args>` (or `python -m <module>`) in root with root's own MLflow store."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": store_of(root), **(env or {})}
    cmd = [sys.executable, "-m", module, *args]
    return subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)


def store_of(root: Path) -> str:
    """root's own MLflow store (tracking.tracking_uri would answer the session's MLFLOW_TRACKING_URI)."""
    return f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def project_copy(tiny_project, dest: Path, *paths: str) -> Path:
    """A new project at dest with the tiny project's params.yaml and the given outputs copied."""
    root = tiny_project[0]
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(root / "params.yaml", dest / "params.yaml")
    for path in paths:
        if (root / path).is_dir():
            shutil.copytree(root / path, dest / path)
        else:
            (dest / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(root / path, dest / path)
    return dest


@pytest.mark.parametrize("damage", ["truncated", "zeroed", "random"])
def test_damaged_token_files_stop_pretraining_naming_the_file(tiny_project, tmp_path, damage):
    root = project_copy(tiny_project, tmp_path / "p", "data/tokens", "models/pretrain")
    train = root / "data" / "tokens" / "train" / "00000.bin"  # the first shard
    size = train.stat().st_size
    if damage == "truncated":
        train.write_bytes(train.read_bytes()[: size // 10])
    elif damage == "zeroed":
        train.write_bytes(bytes(size))
    else:
        train.write_bytes(np.random.default_rng(0).bytes(size))
    if damage != "truncated":  # in this process: the same check the stage makes
        with pytest.raises(
            ValueError, match=r"train/00000.bin does not hold what tokenize wrote.*dvc repro -f -s tokenize"
        ):
            load_tokens(root / "data" / "tokens", "train")
        return
    export = (root / "models" / "pretrain" / "model.safetensors").read_bytes()
    done = llmpipe(root, "run", "pretrain")  # as the issue ran it: the stage, in its own process
    assert done.returncode == 2, done.stderr[-2000:]
    assert "data/tokens/train/00000.bin" in done.stderr and "dvc repro -f -s tokenize" in done.stderr, done.stderr[
        -2000:
    ]
    assert (root / "models" / "pretrain" / "model.safetensors").read_bytes() == export  # not overwritten


def test_documents_of_a_split_are_checked_too(tiny_project, tmp_path):
    from llmpipe.data.token_files import load_split_docs

    root = project_copy(tiny_project, tmp_path / "p", "data/tokens")
    val = root / "data" / "tokens" / "val" / "00000.jsonl"  # the first shard
    assert load_split_docs(root / "data" / "tokens", "val")
    val.write_text("".join(val.read_text(encoding="utf-8").splitlines(keepends=True)[1:]), encoding="utf-8")
    with pytest.raises(ValueError, match="val/00000.jsonl has .* bytes where tokenize wrote"):
        load_split_docs(root / "data" / "tokens", "val")


def test_a_half_written_safetensors_file_is_refused_naming_the_file(tiny_project, tmp_path):
    root = project_copy(tiny_project, tmp_path / "p", "models/pretrain")
    export = root / "models" / "pretrain"
    weights = export / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(
        ValueError, match=r"model.safetensors is not the file that was exported.*dvc repro -f -s pretrain"
    ):
        load_model_dir(export)
    done = llmpipe(root, "generate", str(export), "The")
    assert done.returncode == 2 and str(weights) in done.stderr, done.stderr[-2000:]
    # An export written before llmpipe.json recorded its files: the safetensors error, with the name.
    config = json.loads((export / "llmpipe.json").read_text())
    config.pop("files")
    (export / "llmpipe.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"model.safetensors cannot be read as safetensors"):
        load_model_dir(export)


def small_disk_available() -> bool:
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


def test_a_full_disk_stops_tokenize_with_the_path_and_keeps_the_previous_output(tiny_project, tmp_path, monkeypatch):
    """tokenize on a small tmpfs (in a mount namespace of its own) that holds its input and its
    previous output but has no room for a new one; a patched writer where namespaces are not allowed."""
    root = project_copy(tiny_project, tmp_path / "p", "data/clean", "data/tokens")
    before = files_of(root / "data" / "tokens")
    if small_disk_available():
        data_bytes = sum(p.stat().st_size for p in (root / "data").rglob("*") if p.is_file())
        size_kb = data_bytes // 1024 + 64  # the input and old tokens, plus a little: not a second copy of tokens
        script = (
            f"cp -a data {tmp_path}/data-copy && mount -t tmpfs -o size={size_kb}k tmpfs data && "
            f"cp -a {tmp_path}/data-copy/. data/ && "
            f"{sys.executable} -m llmpipe.stages.tokenize; rc=$?; "
            "ls -a data > listing.txt; cp -a data/tokens tokens-after; exit $rc"
        )
        unshare = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script]
        env = {**os.environ, "MLFLOW_TRACKING_URI": store_of(root)}
        done = subprocess.run(unshare, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr[-3000:]
        assert "no space left on the device" in done.stderr and "data/tokens" in done.stderr, done.stderr[-3000:]
        assert "tokens.tmp" not in (root / "listing.txt").read_text()  # the partial files were removed
        after = root / "tokens-after"
    else:  # a writer that fails as a full disk does, after writing part of a file
        from llmpipe.stages import tokenize
        from llmpipe.tokenize.encode import SplitWriter

        def full(writer, *args, **kwargs):
            writer.bin.write(bytes(4096))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), writer.bin.name)

        monkeypatch.setattr(SplitWriter, "write", full)
        with pytest.raises(WriteError, match="no space left on the device"):
            run_stage(tokenize.stage(), root)
        assert not (root / "data" / "tokens.tmp").exists()
        after = root / "data" / "tokens"
    assert files_of(after) == before  # the previous output, intact


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_deleted_or_empty_mlflow_store_is_said_plainly(tiny_project, tmp_path):
    root = project_copy(tiny_project, tmp_path / "p", "metrics/register.json", "metrics/register_task")
    done = llmpipe(root, "models")
    assert done.returncode == 2 and "is missing, but metrics/ records llmpipe-lm version" in done.stderr, done.stderr
    assert "llmpipe register" in done.stderr
    assert not (root / "mlflow.db").exists()  # and no empty store was made in its place
    mlflow.MlflowClient(tracking_uri=store_of(root)).search_experiments()  # a store with its tables, no models
    done = llmpipe(root, "promote")
    assert done.returncode == 2 and "holds no models" in done.stderr and "llmpipe register" in done.stderr


@pytest.mark.parametrize("how", ["override", "value"])
def test_a_credential_never_reaches_params_yaml(tmp_path, how):
    secret = "aws-s3cr3t-value-0123"
    env = {"AWS_SECRET_ACCESS_KEY": secret}
    if how == "override":  # llmpipe compose (what `dvc exp run -S` runs through the check stage too)
        out = tmp_path / "params.yaml"
        override = "register.name_prefix=${oc.env:AWS_SECRET_ACCESS_KEY}"
        done = llmpipe(REPO, "compose", "experiment=tiny", override, "-o", str(out), env=env)
        assert done.returncode == 2 and "AWS_SECRET_ACCESS_KEY" in done.stderr, done.stderr
        assert not out.exists()
    else:  # a params.yaml that holds the value: the check stage refuses it before any stage runs
        text = (REPO / "params.yaml").read_text().replace("name_prefix: llmpipe", f"name_prefix: {secret}")
        (tmp_path / "params.yaml").write_text(text)
        done = llmpipe(tmp_path, env=env, module="llmpipe.stages.check")
        assert done.returncode == 2, done.stderr
        assert "register.name_prefix holds the value of the environment variable AWS_SECRET_ACCESS_KEY" in done.stderr
        assert not (tmp_path / "metrics" / "check.json").exists()
    assert secret not in done.stderr  # the message names the variable, never its value


def logged_model_folder(client, name: str, alias: str) -> Path:
    """Where the artifact store holds the files of a registered version."""
    version = client.get_model_version_by_alias(name, alias)
    model_id = version.source.removeprefix("models:/")
    return Path(client.get_logged_model(model_id).artifact_location.removeprefix("file://"))


@pytest.mark.parametrize("part", ["code", "weights"])
def test_a_registered_model_changed_in_the_artifact_store_is_refused(tiny_project, part):
    root = tiny_project[0]
    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    folder = logged_model_folder(mlflow.MlflowClient(), "llmpipe-lm", "challenger")
    target = (
        folder / "code" / "llmpipe" / "registry" / "serving.py"
        if part == "code"
        else next(folder.glob("artifacts/*/model.safetensors"))
    )
    original = target.read_bytes()
    changed = original + b"\nimport os; os.system('echo pwned')\n" if part == "code" else original[:-1] + b"\0"
    try:
        target.write_bytes(changed)
        with pytest.raises(integrity.IntegrityError, match=f"its {part} .* differ from what was registered"):
            load_pyfunc("models:/llmpipe-lm@challenger")
        if part == "code":  # the command line checks the same way (once is enough: seconds per command)
            done = llmpipe(root, "generate", "models:/llmpipe-lm@challenger", "The", "--max-new-tokens", "2")
            assert done.returncode == 2 and "differ from what was registered" in done.stderr, done.stderr[-2000:]
            done = llmpipe(root, "serve", "models:/llmpipe-lm@challenger", "--port", "1")
            assert done.returncode == 2 and "differ from what was registered" in done.stderr, done.stderr[-2000:]
    finally:
        target.write_bytes(original)
    assert load_pyfunc("models:/llmpipe-lm@challenger") is not None  # as registered: loads


def test_promote_refuses_a_challenger_without_its_gate_metrics(tiny_project):
    root = tiny_project[0]
    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    client = mlflow.MlflowClient()
    source = client.get_model_version_by_alias("llmpipe-lm", "challenger").source
    client.create_registered_model("handmade-lm")
    version = client.create_model_version("handmade-lm", source)  # by hand: no evaluation tags
    client.set_registered_model_alias("handmade-lm", "challenger", version.version)
    gates = {"lm/val_bpb": "min"}
    for force in (False, True):
        with pytest.raises(ValueError, match="lacks the gate metrics eval/lm/val_bpb"):
            promote("handmade-lm", gates, "challenger", "champion", force=force)
    with pytest.raises(mlflow.exceptions.MlflowException):
        client.get_model_version_by_alias("handmade-lm", "champion")


def test_register_reuses_its_version_and_removes_one_a_killed_register_left(tiny_project):
    """A rerun registers nothing new; a version an older register left untagged (created, then killed
    before its tags) is deleted, never promoted."""
    root = tiny_project[0]
    mlflow.set_tracking_uri(tracking.tracking_uri(root))
    client = mlflow.MlflowClient()
    complete = client.get_model_version_by_alias("llmpipe-lm", "challenger")
    before = {str(v.version) for v in client.search_model_versions("name='llmpipe-lm'")}
    half = client.create_model_version("llmpipe-lm", complete.source, run_id=complete.run_id)  # untagged
    client.set_registered_model_alias("llmpipe-lm", "challenger", half.version)
    again = run_stage(register.stage(), root)  # the project's own export and evaluation, registered before
    assert again["reused"] and str(again["version"]) in before
    assert str(client.get_model_version_by_alias("llmpipe-lm", "challenger").version) == str(again["version"])
    assert {str(v.version) for v in client.search_model_versions("name='llmpipe-lm'")} == before  # half: gone
