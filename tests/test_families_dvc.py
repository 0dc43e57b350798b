"""The three families through the DVC pipeline as a user runs them: `dvc exp run -S model=bert` and
`-S model=t5` on the tiny config each run every stage and register models, the encoder skipping the
task it cannot do (SFT) with its reason. Both runs share one project, so the second re-runs the
model's stages only: the data stages are cached."""

import pytest

from .conftest import sh, tiny_dvc_project
from .own_corpus import metrics

pytestmark = pytest.mark.slow

SMALL = ["model.n_layer=1", "model.d_model=64", "model.n_head=2", "model.block_size=64"]
PRETRAINED_NAMES = {"bert": "llmpipe-mlm", "t5": "llmpipe-seq2seq"}
OBJECTIVES = {"bert": "masked", "t5": "span"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory, fortunes_installed):
    return tiny_dvc_project(tmp_path_factory.mktemp("families"))


@pytest.mark.parametrize("family", ["bert", "t5"])
def test_dvc_exp_run_takes_the_family_through_every_stage_to_the_registry(repo, family):
    overrides = [arg for pair in ("experiment=tiny", f"model={family}", *SMALL) for arg in ("-S", pair)]
    output = sh(repo, "dvc", "exp", "run", *overrides)
    assert "Running stage 'register'" in output and "Running stage 'finetune@topics'" in output
    assert metrics(repo, "pretrain")["objective"] == OBJECTIVES[family]
    assert metrics(repo, "register")["model_name"] == PRETRAINED_NAMES[family]
    for task in ("topics", "sentiment"):  # classification on the encoder's states, for both families
        registered = metrics(repo, f"register_task/{task}")
        assert "skipped" not in registered and registered["alias"] == "challenger"
        assert 0 <= metrics(repo, f"evaluate_task/{task}")[task]["test_macro_f1"] <= 1
    sft = metrics(repo, "register_task/sft")
    if family == "bert":  # an encoder does not generate
        assert "does not generate" in sft["skipped"]
    else:  # text to text: scored on its generations and registered
        assert "skipped" not in sft and sft["model_name"] == "llmpipe-sft"
        assert 0 <= metrics(repo, "evaluate_task/sft")["sft"]["greedy"]["chrf"] <= 100
    assert (repo / "reports" / "report" / "report.html").is_file()
