"""A vocabulary the corpus cannot fill: the BPE learns fewer tokens than tokenize.vocab_size asks for.
It is said (a warning, and both sizes in the stage's metrics), and the stage stops before encoding
anything when the gap is over tokenize.max_vocab_shortfall times."""

import json
import logging

import pytest

from llmpipe.jsonl import write_jsonl
from llmpipe.runner import run_stage
from llmpipe.stages import tokenize
from llmpipe.tokenize.shards import tokenize_corpus

from ..conftest import REPO, typed_section

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "A journey of a thousand miles begins with a single step.",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "Those who do not learn from history are doomed to repeat it.",
]


@pytest.fixture
def clean(tmp_path):
    docs = [{"id": f"d{i}", "text": text, "lang": "zh" if "明" in text else "en"} for i, text in enumerate(TEXTS * 25)]
    folder = tmp_path / "data" / "clean"
    folder.mkdir(parents=True)
    write_jsonl(folder / "00000.jsonl", [{**doc, "id": f"{doc['id']}-{n}"} for n, doc in enumerate(docs)])
    return folder


def test_a_vocabulary_far_beyond_the_corpus_stops_naming_both_settings(clean, tmp_path):
    cfg = typed_section("tokenize", vocab_size=200_000, min_frequency=1, val_fraction=0.3, test_fraction=0.3)
    hardware = typed_section("hardware.tokenize", workers=1)
    with pytest.raises(ValueError) as err:
        tokenize_corpus(cfg, hardware, clean, tmp_path / "data" / "tokens", tmp_path / "work")
    message = str(err.value)
    assert "tokenize.vocab_size" in message and "200000" in message and "tokenize.max_vocab_shortfall" in message
    assert not (tmp_path / "data" / "tokens").exists()  # nothing written


def test_a_small_gap_is_warned_and_both_sizes_are_in_the_metrics(clean, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    from llmpipe.config import compose

    # the corpus holds some 300 tokens' worth of merges: 500 is within the default factor of 2
    overrides = [
        "tokenize.vocab_size=500",
        "tokenize.min_frequency=1",
        "tokenize.val_fraction=0.3",
        "tokenize.test_fraction=0.3",
    ]
    (tmp_path / "params.yaml").write_text(compose(["experiment=tiny", *overrides], conf_dir=REPO / "conf"))
    with caplog.at_level(logging.WARNING, logger="llmpipe"):
        metrics = run_stage(tokenize.stage(), tmp_path)
    assert metrics["requested_vocab_size"] == 500 and metrics["vocab_size"] < 500
    assert f"the BPE learned {metrics['vocab_size']} tokens, not the 500" in caplog.text
    written = json.loads((tmp_path / "metrics" / "tokenize.json").read_text())
    assert written["vocab_size"] == metrics["vocab_size"] and written["requested_vocab_size"] == 500
    meta = json.loads((tmp_path / "data" / "tokens" / "meta.json").read_text())
    assert meta["vocab_size"] == metrics["vocab_size"] and meta["requested_vocab_size"] == 500


def test_the_shortfall_factor_is_a_setting(clean, tmp_path):
    cfg = typed_section(
        "tokenize", vocab_size=200_000, min_frequency=1, val_fraction=0.3, test_fraction=0.3, max_vocab_shortfall=1e6
    )
    meta = tokenize_corpus(
        cfg, typed_section("hardware.tokenize", workers=1), clean, tmp_path / "tokens", tmp_path / "w"
    )
    assert meta["vocab_size"] < 200_000 and meta["requested_vocab_size"] == 200_000
