"""End to end: `dvc repro` on the tiny config in a copy of the repository, as a user would run it."""

import csv
import io
import json
import time

import pytest

from .conftest import sh, tiny_dvc_project

pytestmark = pytest.mark.slow

TASKS = ["topics", "sentiment", "sft"]
STAGES = [
    "ingest", "clean", "tokenize", "pretrain", *(f"finetune@{t}" for t in TASKS),
    "evaluate", *(f"evaluate_task@{t}" for t in TASKS), "evaluate_harness", "evaluate_report",
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
    for key in ("rougeL", "exact_match", "test_loss", "from_scratch", "cloze_en", "acc_norm"):
        assert key in shown
    assert (repo / "reports" / "report" / "report.html").is_file()
    for task in TASKS:  # one model per task, each registered under its own name
        assert (
            json.loads((repo / "metrics" / "register" / f"{task}.json").read_text())["model_name"] == f"llmpipe-{task}"
        )
    sh(repo, "dvc", "plots", "show", "-o", "plots-html")
    page = (repo / "plots-html" / "index.html").read_text()
    assert "pretrain validation bits per byte" in page and "finetune topics: validation macro-F1" in page
    assert "evaluate topics: confusion matrix on the test split" in page
    second = sh(repo, "dvc", "repro")
    assert ran_stages(second) == [] and "Data and pipelines are up to date" in second
    promoted = sh(repo, "llmpipe", "promote")
    assert "llmpipe-lm: version 1 promoted" in promoted and "no champion yet" in promoted
    assert "champion" in sh(repo, "llmpipe", "models")


def test_changing_one_task_reruns_that_task_and_what_follows_only(repo):
    out = sh(repo, "dvc", "exp", "run", "-S", "experiment=tiny", "-S", "finetune.topics.lr=0.002")
    assert ran_stages(out) == ["finetune@topics", "evaluate_task@topics", "evaluate_report", "register_task@topics"]
    assert "lr: 0.002" in (repo / "params.yaml").read_text()


def test_a_queued_sweep_runs_every_point_and_tracks_it_in_the_project_store(repo):
    sh(repo, "dvc", "exp", "run", "--queue", "-S", "experiment=tiny", "-S", "finetune.topics.lr=choice(0.0005,0.004)")
    sh(repo, "dvc", "queue", "start")
    deadline = time.monotonic() + 900
    while True:
        status = sh(repo, "dvc", "queue", "status")
        if "Queued" not in status and "Running" not in status:
            break
        assert time.monotonic() < deadline, f"the queue did not finish:\n{status}"
        time.sleep(5)
    assert "Failed" not in status, status
    shown = sh(repo, "dvc", "exp", "show", "--csv")
    points = {row["finetune.topics.lr"]: row for row in csv.DictReader(io.StringIO(shown))}
    assert {"0.0005", "0.004"} <= set(points)
    assert all(points[lr]["topics.test_macro_f1"] for lr in ("0.0005", "0.004"))
    # the queued runs ran in temporary copies, but their MLflow runs landed in the project's store
    import mlflow

    # A client of its own: mlflow.set_tracking_uri would also set MLFLOW_TRACKING_URI for the whole
    # test session, where other tests use the tiny project's store.
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("llmpipe").experiment_id
    runs = client.search_runs([experiment], filter_string="tags.`llmpipe.stage` = 'finetune/topics'")
    assert {"0.0005", "0.004"} <= {run.data.params["finetune.topics.lr"] for run in runs}
