"""End to end: `dvc repro` on the tiny config in a copy of the repository, as a user would run it."""

import csv
import io
import json

import pytest

from .conftest import sh, tiny_dvc_project

pytestmark = pytest.mark.slow

TASKS = ["topics", "sentiment", "sft"]
STAGES = [
    "ingest", "clean", "tokenize", "pretrain", *(f"finetune@{t}" for t in TASKS),
    "evaluate", *(f"evaluate_task@{t}" for t in TASKS), "evaluate_harness", "report",
    "register", *(f"register_task@{t}" for t in TASKS),
]  # fmt: skip


def ran_stages(output: str) -> list[str]:
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def repo(tmp_path_factory, fortunes_installed):
    return tiny_dvc_project(tmp_path_factory.mktemp("clone"))


def test_dvc_repro_runs_every_stage_then_nothing(repo):
    first = sh(repo, "dvc", "repro")
    assert ran_stages(first) == STAGES
    evaluation = json.loads((repo / "metrics" / "evaluate.json").read_text())
    assert evaluation["lm"]["val_bpb"] < evaluation["lm"]["unigram_val_bpb"]
    assert json.loads((repo / "metrics" / "register.json").read_text())["alias"] == "challenger"
    assert (repo / "mlflow.db").is_file() and (repo / "mlartifacts").is_dir()
    shown = sh(repo, "dvc", "metrics", "show", "--json")
    for key in ("val_ppl", "val_bpb", "bigram_test_bpb", "test_acc", "test_macro_f1", "test_micro_f1", "chrf"):
        assert key in shown
    for key in ("rougeL", "exact_match", "test_loss", "cloze_en", "acc_norm"):
        assert key in shown
    assert (repo / "reports" / "report" / "report.html").is_file()
    for task in TASKS:  # one model per task, each registered under its own name
        assert (
            json.loads((repo / "metrics" / "register_task" / f"{task}.json").read_text())["model_name"]
            == f"llmpipe-{task}"
        )
    sh(repo, "dvc", "plots", "show", "-o", "plots-html")
    page = (repo / "plots-html" / "index.html").read_text()
    assert "pretrain validation bits per byte" in page and "fine-tuning loss by step" in page
    for task in TASKS:  # every task's curves and evaluation pictures, by convention
        assert f"plots/finetune/{task}/val.csv" in page and f"plots/evaluate_task/{task}" in page
    second = sh(repo, "dvc", "repro")
    assert ran_stages(second) == [] and "Data and pipelines are up to date" in second
    promoted = sh(repo, "llmpipe", "promote")
    assert "llmpipe-lm: version 1 promoted" in promoted and "no champion yet" in promoted
    assert "champion" in sh(repo, "llmpipe", "models")


def test_changing_one_task_reruns_that_task_and_what_follows_only(repo):
    out = sh(repo, "dvc", "exp", "run", "-S", "experiment=tiny", "-S", "finetune.topics.lr=0.002")
    assert ran_stages(out) == ["finetune@topics", "evaluate_task@topics", "report", "register_task@topics"]
    assert "lr: 0.002" in (repo / "params.yaml").read_text()


def test_the_transfer_study_runs_as_queued_experiments_tracked_in_the_project_store(repo):
    """`llmpipe transfer` on the tiny config: pretrained and from-scratch topics under two seeds, each a
    queued DVC experiment in a temporary copy, read back from the project's MLflow store."""
    out = sh(repo, "llmpipe", "transfer", "queue", "--run", "experiment=tiny")
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
    out = sh(repo, "llmpipe", "transfer", "report", "experiment=tiny")
    assert "wrote reports/transfer.md (4 of 4 fine-tuning runs)" in out
    text = (repo / "reports" / "transfer.md").read_text()
    assert "## topics" in text and "| from pretrained weights | 2 |" in text and "| from scratch | 2 |" in text
    assert "- topics: pretraining" in text
