import pytest

from llmpipe.training.trainer_setup import token_budget

from ..conftest import typed_section

SECTION = {"batch_tokens": 512, "max_tokens": 5120, "epochs": None, "data_fraction": 1.0}


def pretrain(**keys):
    return typed_section("pretrain", **{**SECTION, **keys})


def test_the_run_length_is_max_tokens_or_epochs_of_the_training_tokens():
    assert token_budget(pretrain(), block_size=64) == (8, 10)
    assert token_budget(pretrain(epochs=1), 64, train_tokens=2000) == (8, 3)  # whole batches: 1536 tokens
    assert token_budget(pretrain(epochs=2.5), 64, train_tokens=2000) == (8, 9)


def test_an_epoch_budget_below_one_batch_names_the_fraction():
    with pytest.raises(ValueError, match=r"pretrain.epochs=1 x 300 training tokens \(pretrain.data_fraction=0.1"):
        token_budget(pretrain(epochs=1, data_fraction=0.1), 64, train_tokens=300)
