"""End to end, as a user runs it: the README's labelled-CSV recipe (`dvc exp run` on their own corpus,
tiny model) in a fresh copy of the repository runs every stage once, then nothing; one task's change
re-runs that task only; the transfer study runs as queued experiments on the same corpus. (The
embedded corpus goes through `dvc repro` in tests/test_chaos.py, killed at every stage, and the other
two recipes in tests/own_corpus/.)"""

import csv
import io
import json
import shutil
import subprocess

import pytest

from .conftest import assert_up_to_date, sh, tiny_dvc_project, venv_env
from .own_corpus import entries, metrics, readme_recipes, recipe_args

pytestmark = pytest.mark.slow

TASKS = ["topics", "sentiment", "sft"]
STAGES = [
    "check", "ingest", "plan", "clean", "tokenize", "pretrain", *(f"finetune@{t}" for t in TASKS),
    "evaluate", *(f"evaluate_task@{t}" for t in TASKS), "evaluate_harness", "report",
    "register", *(f"register_task@{t}" for t in TASKS),
]  # fmt: skip
CATEGORIES = ["computers", "food", "love"]


def ran_stages(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, fortunes_installed):
    """A CSV of real English texts (Debian's fortunes) with `body` and `category` columns."""
    table = tmp_path_factory.mktemp("corpus") / "reviews.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["id", "body", "category"])
        for name in CATEGORIES:
            writer.writerows([f"{name}-{i}", text, name] for i, text in enumerate(entries(name)[:60]))
    return recipe_args(readme_recipes()[2], "/data/reviews.csv", table)  # the README's line, as -S pairs


@pytest.fixture(scope="module")
def repo(tmp_path_factory, fortunes_installed):
    return tiny_dvc_project(tmp_path_factory.mktemp("clone"))


def test_the_labelled_csv_recipe_runs_every_stage_then_nothing(repo, corpus):
    first = sh(repo, *corpus, "-S", "experiment=tiny")
    assert ran_stages(first) == STAGES
    assert metrics(repo, "plan")["tasks"] == {task: "runs" for task in TASKS}
    topics = metrics(repo, "evaluate_task/topics")["topics"]
    assert topics["test_examples"] > 0 and 0 <= topics["test_macro_f1"] <= 1
    labels = json.loads((repo / "models" / "finetune" / "topics" / "llmpipe.json").read_text())["labels"]
    assert labels == CATEGORIES  # the classifier learned the CSV's own categories
    evaluation = metrics(repo, "evaluate")
    assert evaluation["lm"]["val_bpb"] < evaluation["lm"]["unigram_val_bpb"]
    assert metrics(repo, "register")["alias"] == "challenger"
    assert (repo / "mlflow.db").is_file() and (repo / "mlartifacts").is_dir()
    shown = sh(repo, "dvc", "metrics", "show", "--json")
    for key in ("val_ppl", "val_bpb", "bigram_test_bpb", "test_acc", "test_macro_f1", "test_micro_f1", "chrf"):
        assert key in shown
    for key in ("rougeL", "exact_match", "test_loss", "acc_norm"):
        assert key in shown
    assert (repo / "reports" / "report" / "report.html").is_file()
    for task in TASKS:  # one model per task, each registered under its own name
        assert metrics(repo, f"register_task/{task}")["model_name"] == f"llmpipe-{task}"
    sh(repo, "dvc", "plots", "show", "-o", "plots-html")
    page = (repo / "plots-html" / "index.html").read_text()
    assert "pretrain validation bits per byte" in page and "fine-tuning loss by step" in page
    for task in TASKS:  # every task's curves and evaluation pictures, by convention
        assert f"plots/finetune/{task}/val.csv" in page and f"plots/evaluate_task/{task}" in page
    second = sh(repo, "dvc", "repro")
    assert ran_stages(second) == ["check"]  # always: it looks at the MLflow store; nothing else changed
    promoted = sh(repo, "llmpipe", "promote")
    assert "llmpipe-lm: version 1 promoted" in promoted and "no champion yet" in promoted
    assert "champion" in sh(repo, "llmpipe", "models")


def test_changing_one_task_reruns_that_task_and_what_follows_only(repo, corpus):
    out = sh(repo, *corpus, "-S", "experiment=tiny", "-S", "finetune.topics.lr=0.002")
    # plan checks every task's needs (seconds); then the changed task only
    assert ran_stages(out) == [
        "check", "plan", "finetune@topics", "evaluate_task@topics", "report", "register_task@topics"
    ]  # fmt: skip
    assert "lr: 0.002" in (repo / "params.yaml").read_text()


BAD_RUNS = [  # `dvc exp run -S` overrides -> what the check's report must name
    (["pretrain.lr=abc"], ["pretrain.lr"]),
    (["+pretrian.lr=0.1"], ["pretrian: unknown key"]),
    (["model.d_model=100", "model.n_head=3"], ["model.d_model=100", "model.n_head=3"]),
    (["model.n_kv_head=3"], ["model.n_head=2", "model.n_kv_head=3"]),
    (["pretrain.batch_tokens=1000"], ["pretrain.batch_tokens=1000", "model.block_size=64"]),
]


def test_a_bad_value_an_unknown_key_or_a_bad_shape_fails_before_any_output_is_removed(repo, corpus):
    """`dvc exp run -S` with a value of the wrong type, with DVC's own `+key` hint for a typo, and with
    settings that are each valid but not together (the model's shape, the batch against the block):
    the check stage stops each with a report naming every key involved, before DVC removes any
    stage's outputs, and puts params.yaml back as it was. So does a tracking server that does not
    answer, which the check stage looks for on every run."""
    params = (repo / "params.yaml").read_text()
    kept = ["models/pretrain/model.safetensors", "metrics/pretrain.json", "plots/pretrain/val.csv", "data/clean"]
    before = {path: files_of(repo / path) for path in kept}
    unreachable = (
        ["clean.min_chars=3"],
        ["http://127.0.0.1:9", "unreachable"],
        {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"},
    )
    for overrides, names, env in [*((o, n, {}) for o, n in BAD_RUNS), unreachable]:
        settings = ["experiment=tiny", "finetune.topics.lr=0.002", *overrides]
        done = subprocess.run(
            [*corpus, *(arg for setting in settings for arg in ("-S", setting))],
            cwd=repo, env={**venv_env(), **env}, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        out = done.stdout + done.stderr
        assert done.returncode != 0 and "check failed" in out, out[-3000:]
        assert all(name in out for name in names), (overrides, out[-3000:])
        assert ran_stages(out) == ["check"], out[-3000:]
        assert (repo / "params.yaml").read_text() == params, overrides
        assert {path: files_of(repo / path) for path in kept} == before, overrides
    assert_up_to_date(repo)


def files_of(path):
    """The bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.read_bytes()
    return {p.relative_to(path): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_a_deleted_store_is_said_plainly_and_rebuilt_from_the_exports(repo, tmp_path):
    shutil.move(repo / "mlflow.db", tmp_path / "mlflow.db")
    done = subprocess.run(["llmpipe", "models"], cwd=repo, env=venv_env(), capture_output=True, text=True)
    assert done.returncode == 2 and "is missing" in done.stderr and "llmpipe register" in done.stderr, done.stderr
    assert not (repo / "mlflow.db").exists()  # no empty store made in its place
    sh(repo, "llmpipe", "register")
    listing = sh(repo, "llmpipe", "models")
    for task in ["lm", *TASKS]:
        assert f"llmpipe-{task}: 1 version(s)" in listing
    assert "challenger" in listing


def test_the_transfer_study_runs_as_queued_experiments_tracked_in_the_project_store(repo, corpus):
    """`llmpipe transfer` on the tiny config: pretrained and from-scratch topics under two seeds, each a
    queued DVC experiment in a temporary copy, read back from the project's MLflow store."""
    overrides = ["experiment=tiny", *corpus[4::2]]  # the recipe's own settings, without `dvc exp run -S`
    out = sh(repo, "llmpipe", "transfer", "queue", "--run", *overrides)
    assert "queued 4 points; all finished" in out
    shown = sh(repo, "dvc", "exp", "show", "--csv")
    points = {row["Experiment"]: row for row in csv.DictReader(io.StringIO(shown)) if row["Experiment"]}
    names = [f"transfer-{v}-{s}" for s in (1337, 1338) for v in ("pretrained", "scratch")]
    assert set(names) <= set(points)
    for name in names:  # each point's own params and metrics, as DVC recorded them
        row = points[name]
        assert row["finetune.topics.init"] == name.split("-")[1] and row["finetune.topics.seed"] == name.split("-")[2]
        assert 0 < float(row["metrics/finetune/topics.json:macro_f1"]) <= 1
        assert row["metrics/finetune/topics.json:seed"] == name.split("-")[2]
    out = sh(repo, "llmpipe", "transfer", "report", *overrides)
    assert "wrote reports/transfer.md (4 of 4 fine-tuning runs)" in out
    text = (repo / "reports" / "transfer.md").read_text()
    assert "## topics" in text and "| from pretrained weights | 2 |" in text and "| from scratch | 2 |" in text
    assert "- topics: pretraining" in text


def test_no_task_trains_evaluates_and_registers_the_language_model_only(repo, corpus):
    """`-S 'finetune.tasks=[]'`: pretraining only. The tasks' settings stay in params.yaml unused; no
    task stage is in the DAG; plan says so; the report and the language model's registration stand.
    Last in this module: it leaves the project without tasks."""
    out = sh(repo, *corpus, "-S", "experiment=tiny", "-S", "finetune.tasks=[]")
    assert "no fine-tuning task (finetune.tasks is empty)" in out, out[-3000:]
    assert not [s for s in ran_stages(out) if "@" in s], ran_stages(out)
    assert set(ran_stages(out)) <= {"check", "plan", "report"}  # the rest is the language model's, done
    assert "finetune@" not in sh(repo, "dvc", "dag")
    assert metrics(repo, "plan") == {"tasks": {}, "runs": 0, "skipped_tasks": 0}
    assert "topics" in (repo / "params.yaml").read_text()  # set up, not run
    assert metrics(repo, "register")["model_name"] == "llmpipe-lm"
    assert (repo / "reports" / "report" / "report.html").is_file()
    assert_up_to_date(repo)
