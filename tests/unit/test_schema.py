import copy

import pytest
import yaml

from llmpipe.config import load_params
from llmpipe.runner import Stage, run_stage
from llmpipe.typed_params import check, problems

from ..conftest import REPO


@pytest.fixture
def params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_the_committed_params_have_no_problems(params):
    assert problems(params) == []


def test_every_problem_is_named_in_one_message(params):
    bad = copy.deepcopy(params)
    bad["model"]["n_layr"] = 3  # misspelt
    bad["model"]["n_head"] = 0  # out of range
    bad["pretrain"]["lr"] = "fast"  # wrong type
    bad["hardware"]["precision"] = "bf17"  # not a choice
    bad["pretrain"]["betas"] = [0.9, 1.5]  # one element out of range
    del bad["clean"]["dedup"]  # missing
    bad["extra"] = {}  # unknown section
    with pytest.raises(ValueError) as err:
        check(bad)
    message = str(err.value)
    assert "7 problem(s)" in message
    for expected in (
        "model.n_layr: unknown key (did you mean n_layer?)",
        "model.n_head: 0 is below the minimum 1",
        "pretrain.lr: expected a number, got 'fast'",
        "hardware.precision: 'bf17' is not one of",
        "pretrain.betas: 1.5 must be less than 1",
        "clean.dedup: missing",
        "extra: unknown key",
    ):
        assert expected in message


def test_types_follow_yaml_an_int_is_a_number_a_bool_is_not(params):
    ok = copy.deepcopy(params)
    ok["pretrain"]["lr"] = 1  # YAML's 1 for 1.0
    ok["finetune"]["topics"]["labels"] = ["a", "b"]  # list or null
    assert problems(ok) == []
    bad = copy.deepcopy(params)
    bad["model"]["n_layer"] = True
    bad["model"]["tie_embeddings"] = 1
    bad["finetune"]["topics"]["labels"] = ["a", 2]
    assert problems(bad) == [
        "model.n_layer: expected an integer, got True",
        "model.tie_embeddings: expected true or false, got 1",
        "finetune.topics.labels: expected a list or null, got ['a', 2]",
    ]


def test_nested_sections_and_mappings_are_checked(params):
    bad = copy.deepcopy(params)
    bad["evaluate"]["samples"]["top_p"] = 0.0
    bad["promote"]["gates"]["lm"]["val_bpb"] = "lowest"
    assert problems(bad) == [
        "evaluate.samples.top_p: 0.0 must be greater than 0",
        "promote.gates: 'lowest' is not one of ['min', 'max']",
    ]


def test_a_stage_with_a_bad_params_file_stops_before_any_work(params, tmp_path):
    bad = copy.deepcopy(params)
    bad["ingest"]["formt"] = "jsonl"
    bad["tokenize"]["vocab_size"] = 100
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(bad))
    with pytest.raises(ValueError, match=r"2 problem\(s\)") as err:
        run_stage(Stage("ingest", lambda cfg, root: pytest.fail("the stage ran"), ["ingest"]), tmp_path)
    assert "ingest.formt: unknown key (did you mean format?)" in str(err.value)
    assert "tokenize.vocab_size: 100 is below the minimum 277" in str(err.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written
    with pytest.raises(ValueError, match="params.yaml"):
        load_params(tmp_path / "params.yaml")


@pytest.mark.parametrize("tasks", [[], ["topics"], ["sft", "topics"]])
def test_a_task_list_may_name_some_tasks_or_none_and_the_others_are_still_checked(params, tasks):
    """finetune.tasks=[] (pretraining only) or a subset: the other tasks' settings stay, unused but
    checked, so a typo in one is found before the day it runs."""
    chosen = copy.deepcopy(params)
    chosen["finetune"]["tasks"] = tasks
    assert problems(chosen) == []
    chosen["finetune"]["sentiment"]["lr"] = "fast"  # a task that does not run
    chosen["finetune"]["topcs"] = {"lr": 0.1}  # a typo'd task name
    assert problems(chosen) == [
        "finetune.sentiment.lr: expected a number, got 'fast'",
        "finetune.topcs: unknown key (did you mean topics?)",
    ]
