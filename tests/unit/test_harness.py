"""The cloze tasks built for lm-evaluation-harness from held-out documents."""

from dataclasses import replace

import yaml

from llmpipe.data.tokenizer import train_bpe
from llmpipe.evaluation import harness

from ..conftest import typed_section

DOCS = [
    {"id": f"en{i}", "lang": "en", "text": f"Fortune number {i} says: be kind.\nIt costs nothing at all, {i} times."}
    for i in range(6)
] + [{"id": f"zh{i}", "lang": "zh", "text": f"床前明月光，疑是地上霜。举头望明月，低头思故乡{i}。"} for i in range(5)]


def test_a_document_is_cut_near_its_middle_at_the_best_boundary():
    context, ending = harness.split_document("First line here.\nSecond line there.", "en")
    assert (context, ending) == ("First line here.", " Second line there.")  # a line break, kept as a space
    context, ending = harness.split_document("床前明月光，疑是地上霜。举头望明月，低头思故乡。", "zh")
    assert context + ending == "床前明月光，疑是地上霜。举头望明月，低头思故乡。" and context.endswith("。")
    assert harness.split_document("word", "en") is None  # nowhere to cut
    context, ending = harness.split_document("one two three four", "en")
    assert context + ending == "one two three four" and ending.startswith(" ")
    # an ending that does not fit moves the cut towards the end
    assert harness.split_document("a\nb\nc\nd\ne", "en", fits=lambda ending: len(ending) <= 2) == ("a\nb\nc\nd", " e")


def test_cloze_items_hold_the_true_ending_among_other_documents_endings():
    tokenizer = train_bpe((d["text"] for d in DOCS), 300, 1)
    cfg = typed_section("evaluate_harness", choices=4, max_docs=10, min_chars=10, max_tokens=200)
    items = harness.cloze_items(DOCS, tokenizer, cfg, seed=0)
    assert set(items) == {"en", "zh"} and len(items["en"]) == 6 and len(items["zh"]) == 5
    for lang, rows in items.items():
        fits = lambda ending: len(tokenizer.encode(ending).ids) <= 100  # noqa: E731
        cuts = {harness.split_document(d["text"], lang, fits) for d in DOCS if d["lang"] == lang}
        for row in rows:
            assert len(row["choices"]) == 4 and len(set(row["choices"])) == 4
            assert (row["context"], row["choices"][row["label"]]) in cuts  # the label is the document's own ending
            assert set(row["choices"]) <= {ending for _, ending in cuts}  # the others: same language's endings
    assert harness.cloze_items(DOCS, tokenizer, cfg, seed=0) == items  # the same tasks in every run
    assert harness.cloze_items(DOCS, tokenizer, replace(cfg, max_tokens=4), seed=0) == {}  # no ending fits


def test_task_configs_are_the_repo_definition_pointed_at_the_data(tmp_path):
    paths = harness.write_items({"en": [{"context": "a", "choices": ["b", "c"], "label": 0}]}, tmp_path)
    (config,) = harness.task_configs(paths, str(tmp_path / "cache"))
    definition = yaml.safe_load(harness.TASK_FILE.read_text())
    assert config["task"] == "llmpipe_cloze_en" and config["output_type"] == definition["output_type"]
    assert config["dataset_kwargs"]["data_files"] == {"train": str(paths["en"].resolve())}
    assert config["metric_list"] == definition["metric_list"]


def test_the_unigram_baseline_answers_from_the_endings_alone_as_the_harness_picks():
    """acc: the ending of highest total log-likelihood; acc_norm: per character. A unigram model
    that has seen mostly `a` picks the `a` ending, wherever the context points."""
    import numpy as np

    tokenizer = train_bpe(["a a a a b b c"] * 20, 300, 1)
    train = np.array(tokenizer.encode("a a a a a a a a b c " * 50).ids)
    log_probs = np.log(np.bincount(train, minlength=tokenizer.get_vocab_size()) + 1.0)
    log_probs -= np.log(np.exp(log_probs).sum())
    rows = [
        {"context": "b b", "choices": [" b", " a"], "label": 1},  # the frequent ending is the true one
        {"context": "a a", "choices": [" a", " c c c"], "label": 1},  # a long rare ending: acc misses it
    ]
    scores = harness.unigram_scores({"en": rows}, tokenizer, log_probs)
    assert scores == {"cloze_en": {"unigram_acc": 0.5, "unigram_acc_norm": 0.5}}
    assert harness.unigram_scores({"en": rows}, tokenizer, log_probs, limit=1)["cloze_en"]["unigram_acc"] == 1.0
