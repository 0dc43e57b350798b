import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from llmpipe import stage_client

REPO = Path(__file__).resolve().parents[1]
FORTUNE_DIR = Path("/usr/share/games/fortunes")

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
if "PYTEST_XDIST_WORKER" in os.environ:
    # One of several pytest workers (make test runs one per core): one thread each, for this process
    # and the stages it starts, set before torch is imported. Two workers with a thread per core each
    # would fight over the cores, and PyTorch's threads slow down many times over when they do.
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
# The environment of the commands tests run (venv_env), as it is before any test runs llmpipe in this
# process: llmpipe's code sets a few variables when it runs (HF_HUB_OFFLINE for lm-eval,
# TOKENIZERS_PARALLELISM), which would otherwise reach later commands, and make the warm runner decline.
STARTING_ENV = dict(os.environ)


# A test that uses these builds or runs the tiny pipeline (minutes): it is in the slow tier.
PIPELINE_FIXTURES = {"tiny_project"}


# The longest test files (each a few minutes on 2 cores), longest first. make test gives each pytest
# worker one file at a time (--dist loadfile) in collection order: starting these first, then the
# rest, keeps both workers busy to the end instead of leaving one long file running alone (the
# Makefile passes --no-loadscope-reorder, or xdist would reorder files by their number of tests).
LONGEST_FIRST = [
    "test_pipeline", "test_chaos", "test_resume", "test_families_dvc", "test_scaling", "test_large_vocab",
    "test_store", "test_jsonl_folder", "test_book", "test_stage_server", "test_book_split", "test_distributed",
    "test_stages", "test_clean", "test_seq2seq_family", "test_finetune_tasks", "test_new_family", "test_ui",
]  # fmt: skip  # by their time in a make test of 2026-12-07 (--durations), with the warm runner


def pytest_collection_modifyitems(config, items):
    import torch

    for item in items:
        if PIPELINE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.stem, len(rank)))  # stable: the rest keep their order
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def fortunes_installed():
    if not (FORTUNE_DIR / "fortunes").is_file() or not (FORTUNE_DIR / "tang300").is_file():
        pytest.fail(f"Debian's fortunes and fortunes-zh are not installed in {FORTUNE_DIR}: run `make setup`")
    return FORTUNE_DIR


def copy_repo(dest: Path) -> Path:
    """A copy of the project's tracked and new (not ignored) files, as a fresh clone would have."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def running(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (state, parent, process group, ...) of
    a running process; None once it has ended, or is a zombie that only waits to be reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()  # the name may hold spaces
    except OSError:
        return None
    return fields if fields[0] != "Z" else None


def alive(pid: int) -> bool:
    """The process runs: it has not ended, and is no zombie."""
    return running(pid) is not None


def running_processes() -> dict[int, list[str]]:
    """Every running process: {pid: its running() fields}."""
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = running(int(entry.name))
        if fields is not None:
            found[int(entry.name)] = fields
    return found


def venv_env() -> dict:
    """The environment of a command run as in an activated venv, with the project's own MLflow store,
    and this worker's warm stage runner once a test started it (start_warm_runner)."""
    env = {**STARTING_ENV, "PATH": f"{Path(sys.executable).parent}:{STARTING_ENV['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)  # the project's own default store
    env.pop("PYTEST_CURRENT_TEST", None)  # changes with every test (and would make the warm runner decline)
    if WARM_RUNNER:
        env[stage_client.ENV] = WARM_RUNNER[0].args[3]
    return env


WARM_RUNNER: list = []  # this worker's llmpipe.stage_server, once started


def start_warm_runner():
    """Start this pytest worker's warm stage runner, once: from then on the stage processes a test
    starts (dvc repro, dvc exp run, queued experiments, python -m llmpipe.stages...) hand their work
    to it, as under `llmpipe repro`: 2 to 6 s less each. It ends with the worker. A test that wants
    stages in processes of their own, as plain `dvc repro` runs them, sets LLMPIPE_STAGE_SERVER to ""."""
    if not WARM_RUNNER:
        env = venv_env()
        WARM_RUNNER.append(stage_client.start(env))


@pytest.fixture(autouse=True)
def warm_runner_for_slow_tests(request):
    """Every slow test (those that start stage processes) finds the worker's runner started."""
    if request.node.get_closest_marker("slow"):
        start_warm_runner()


def sh(cwd: Path, *cmd: str) -> str:
    """Run a command with the venv's tools on PATH (as in an activated venv) and the project's own
    MLflow store; fail the test with its output if it fails."""
    done = subprocess.run(cmd, cwd=cwd, env=venv_env(), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout + done.stderr


def assert_up_to_date(root: Path):
    """`dvc status` names no stage but `check`, which is always changed: it looks at the MLflow store,
    which DVC cannot see (dvc.yaml)."""
    status = sh(root, "dvc", "status")
    assert status.split() == ["check:", "always", "changed"], status


def remove_outputs(folder: Path):
    """Every file under folder but the `.keep` placeholders (git keeps the folders of per-task outputs
    with them, so that the report stage finds them when no task runs)."""
    for path in sorted(folder.rglob("*"), reverse=True):  # files before their folders
        if path.is_dir() and not any(path.iterdir()):
            path.rmdir()
        elif path.is_file() and path.name != ".keep":
            path.unlink()


def tiny_dvc_project(root: Path) -> Path:
    """A copy of the repository at root, as a fresh clone, with no outputs, params.yaml composed for
    the tiny experiment, and committed to a git repository of its own."""
    copy_repo(root)
    for path in ("mlflow.db", "mlartifacts", "data", "models", "metrics", "checkpoints"):
        if (root / path).is_dir():
            remove_outputs(root / path)
        else:
            (root / path).unlink(missing_ok=True)
    sh(root, "git", "init", "-q")
    sh(root, "llmpipe", "compose", "experiment=tiny")
    sh(root, "git", "add", "-A")
    sh(root, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny")
    return root


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory, fortunes_installed):
    """Every stage run once, in order, on the tiny config in a temporary project with its own MLflow
    store: (root, metrics per stage, params). Tests read it; tests that register more versions
    build on what is there."""
    import yaml

    from llmpipe.config import compose
    from llmpipe.stages import run_all

    root = tmp_path_factory.mktemp("project")
    (root / "params.yaml").write_text(compose(["experiment=tiny"], conf_dir=REPO / "conf"))
    old = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    params = yaml.safe_load((root / "params.yaml").read_text())
    metrics = run_all(root, params)  # keys: "pretrain", "finetune/topics", "evaluate", "evaluate_task/sft", ...
    yield root, metrics, params
    if old is None:
        os.environ.pop("MLFLOW_TRACKING_URI")
    else:
        os.environ["MLFLOW_TRACKING_URI"] = old


def free_port() -> int:
    """A loopback port nothing listens on (until someone binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_on_loopback(
    args: list[str], ready: str, cwd: Path, env: dict | None = None, program: str = "mlflow", stdout: Path | None = None
):
    """Run `<program> <args> --port P` (mlflow, or llmpipe serve) bound to 127.0.0.1 with the venv's
    tools on PATH (as in an activated venv), wait until GET <ready> answers, yield the base URL, and
    stop it afterwards. What it prints goes to `stdout`, when given."""
    port = free_port()
    mlflow_cli = Path(sys.executable).parent / program
    env = {**(env or os.environ), "PATH": f"{mlflow_cli.parent}{os.pathsep}{os.environ['PATH']}"}
    # Without this, `mlflow server` starts seven job consumers (GenAI judges and evaluations, which
    # llmpipe does not use) that outlive the server and take a core between them.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    log = tempfile.TemporaryFile()
    printed = open(stdout, "w") if stdout else subprocess.DEVNULL  # closed below, with the server
    server = subprocess.Popen(
        [str(mlflow_cli), *args, "--port", str(port)],
        cwd=cwd,
        env=env,
        stdout=printed,
        stderr=log,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{base}{ready}", timeout=2).close()
                break
            except OSError:
                if server.poll() is not None:
                    log.seek(0)
                    raise AssertionError(f"mlflow {args[0]} exited: {log.read().decode()[-2000:]}") from None
                assert time.monotonic() < deadline, f"mlflow {args[0]} did not come up within 120 s"
                time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
        log.close()
        if stdout:
            printed.close()


def dvc_stages(params: dict) -> dict[str, dict]:
    """dvc.yaml's stages with each `foreach` expanded over its items, as DVC names them
    ("finetune@topics"), each with the `item` it was made for (None for a single stage)."""
    import yaml

    stages = {}
    for name, stage in yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].items():
        if "foreach" not in stage:
            stages[name] = {**stage, "item": None}
            continue
        assert stage["foreach"] == "${finetune.tasks}", name
        for item in params["finetune"]["tasks"]:
            text = yaml.safe_dump(stage["do"]).replace("${item}", item)
            stages[f"{name}@{item}"] = {**yaml.safe_load(text), "item": item}
    return stages


@functools.lru_cache(maxsize=1)
def default_params_text() -> str:
    from llmpipe.config import compose

    return compose(conf_dir=REPO / "conf")


def typed_section(name: str, **overrides):
    """One params section of the default config (a dotted name: "finetune.topics"), with `overrides`
    of its keys, typed as the runner hands it to a stage."""
    import yaml

    from llmpipe import typed_params
    from llmpipe.config import section

    params = yaml.safe_load(default_params_text())
    value = {**section(params, name), **overrides}
    return typed_params.build(value, typed_params.type_at(name, params))


def optim_config(**settings):
    """The optimizer settings of the tests' small runs: conf/pretrain's (the one place they are
    written), but AdamW without warmup unless `settings` (lr, max_steps, ...) say otherwise."""
    import dataclasses

    from llmpipe.training.optimizers import OptimConfig

    default = OptimConfig.from_section(typed_section("pretrain"), max_steps=1)
    return dataclasses.replace(default, **{"optimizer": "adamw", "warmup_steps": 0, **settings})


def fortune_docs(folder: Path, zh_files: list[str], exclude: list[str]):
    """Every entry of a fortune folder in Debian's layout, as ingest reads it (`zh_files` are Chinese)."""
    from llmpipe.ingest.corpus import read_corpus

    section = typed_section("ingest", source=str(folder), format="fortune", zh_files=zh_files, exclude_files=exclude)
    return read_corpus(section)


def split_documents(docs: list[dict], val_fraction: float, test_fraction: float, split_by: str = "hash"):
    """{split: its documents}, each placed (and cut) as tokenize places it, one at a time; a raw
    document's part that cleaning removed is not held out."""
    from llmpipe.data.splits import SPLITS, Placement

    place = Placement.of(docs, val_fraction, test_fraction, split_by)
    splits = {name: [] for name in SPLITS}
    for doc in docs:
        for split, kept in place.parts(doc):
            if kept is not None:
                splits[split].append(kept)
    return splits


def assert_loads_as_transformers_classifier(model_dir: Path):
    """A classifier export loads in transformers' AutoModelForSequenceClassification (custom code
    allowed) and gives llmpipe's logits on a text."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from llmpipe.registry.export import load_model_dir

    hf = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    net, _, tokenizer = load_model_dir(model_dir)
    ids = torch.tensor([tokenizer.encode("A fortune about computers and programs.").ids])
    with torch.no_grad():
        assert torch.allclose(hf(ids).logits, net(ids, torch.tensor([ids.shape[1]])), atol=1e-5, rtol=1e-4)
