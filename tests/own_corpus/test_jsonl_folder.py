"""The README's first own-corpus recipe: a folder of JSON lines without labels."""

import json

import pytest

from ..conftest import sh, tiny_dvc_project
from . import entries, metrics, readme_recipes, run_recipe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def repo(tmp_path_factory, fortunes_installed):
    return tiny_dvc_project(tmp_path_factory.mktemp("own"))


def test_a_folder_of_json_lines_without_labels_runs_and_skips_topics_saying_why(repo, tmp_path):
    corpus = tmp_path / "my-corpus"
    corpus.mkdir()
    for i, name in enumerate(["computers", "food"]):
        lines = [json.dumps({"text": text}) for text in entries(name)[:150]] + [json.dumps({"text": ""})]
        (corpus / f"part-{i:05d}.jsonl").write_text("\n".join(lines) + "\n")
    run_recipe(repo, readme_recipes()[0], "/data/my-corpus", corpus)
    ingest = metrics(repo, "ingest")
    assert ingest["quarantined"]["empty"] == 2 and sum(ingest["quarantined"].values()) == 2
    assert ingest["labels"] == {}  # shard names are not labels
    assert ingest["docs"] == 120 and ingest["capped"] == 180  # tiny keeps 60 per file; the rest is counted
    assert sorted(p.name for p in (repo / "data" / "raw").iterdir()) == [
        "unlabeled.part-00000.jsonl", "unlabeled.part-00001.jsonl"
    ]  # fmt: skip  # a file per shard, so clean's workers share them out
    assert metrics(repo, "plan")["tasks"]["topics"].startswith("skipped: ")
    assert metrics(repo, "plan")["tasks"]["sft"] == "runs"
    for stage in ("finetune/topics", "evaluate_task/topics", "register_task/topics"):
        assert "no labels" in metrics(repo, stage)["skipped"], stage
    assert (repo / "models" / "finetune" / "topics" / "skipped.json").is_file()
    assert metrics(repo, "register")["version"] and metrics(repo, "register_task/sft")["version"]
    card = (repo / "reports" / "report" / "report.md").read_text()
    assert "Task `topics`: skipped" in card
    sh(repo, "dvc", "plots", "show", "-o", "plots-html")  # the skipped task's plot folders are empty
    assert "fine-tuning loss by step" in (repo / "plots-html" / "index.html").read_text()
    promoted = sh(repo, "llmpipe", "promote")
    assert "llmpipe-topics: not registered, the task was skipped" in promoted
