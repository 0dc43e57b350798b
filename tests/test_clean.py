"""The ingest and clean stages on corpora made for the purpose: every class of bad input, planted
near-duplicates in English and Chinese, and the same result on 1 and 2 workers."""

import json
import random

import pytest

from llmpipe.clean.near_dedup import random_edits
from llmpipe.config import compose
from llmpipe.data import quarantine
from llmpipe.data.token_files import load_split_docs
from llmpipe.runner import run_stage
from llmpipe.stages import clean, ingest, tokenize

from .conftest import REPO, fortune_docs

GOOD = [
    "The committee met on Tuesday to discuss the new library budget and the roof repairs.",
    "A good traveller has no fixed plans, and is not intent on arriving anywhere in particular.",
    "Programs must be written for people to read, and only incidentally for machines to execute.",
    "She planted tomatoes along the fence, where the afternoon sun lingered the longest.",
    "床前明月光，疑是地上霜。举头望明月，低头思故乡。",
    "在这样规模的项目中，很难避免遇到与你意见不和的人，请接受这一事实并保持礼貌。",
    "春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。",
]


def run(root, overrides, stages=(ingest, clean)):
    overrides = ["experiment=tiny", "ingest.max_docs_per_file=null", *overrides]
    (root / "params.yaml").write_text(compose(overrides, conf_dir=REPO / "conf"))
    return {module.stage().name: run_stage(module.stage(), root) for module in stages}


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def read_clean(root):
    """The kept documents: every shard of data/clean, in order."""
    return [doc for path in sorted((root / "data" / "clean").glob("*.jsonl")) for doc in read(path)]


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_bad_input_is_quarantined_with_reason_and_position_and_good_records_all_come_through(tmp_path, mlflow_store):
    source = tmp_path / "corpus"
    source.mkdir()
    lines = [json.dumps({"text": GOOD[0]}).encode()]
    bad = {  # line number -> (stage that catches it, reason)
        2: ("ingest", "malformed_json", b'{"text": "an unterminated string'),
        3: ("ingest", "invalid_utf8", b'{"text": "caf\xe9 au lait, served in Latin-1"}'),
        4: ("ingest", "missing_text", json.dumps({"body": "the text is under another key"}).encode()),
        5: ("ingest", "not_an_object", b'["a", "list", "is", "not", "a", "record"]'),
        6: (
            "clean",
            "binary",
            json.dumps({"text": "PK\x03\x04\x00\x00 zip bytes \x00\x00\x07 pasted as text"}).encode(),
        ),
        7: ("clean", "empty", json.dumps({"text": " \n\t "}).encode()),
        8: ("clean", "too_large", json.dumps({"text": "A long record. " * 200}).encode()),
        9: ("clean", "empty", json.dumps({"text": "\x1b[1;31m\x1b[0m"}).encode()),  # only colour codes
    }
    for lineno in range(2, 10):
        lines.append(bad[lineno][2])
    lines += [
        json.dumps({"text": t, "lang": "zh" if ord(t[0]) > 0x3000 else "en"}, ensure_ascii=False).encode()
        for t in GOOD[1:]
    ]
    (source / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    metrics = run(tmp_path, ["ingest.format=jsonl", f"ingest.source={source}", "clean.max_bytes=2000"])

    quarantined = {
        q["source"].rsplit(":", 1)[1]: ("ingest", q["reason"])
        for q in read(tmp_path / "data" / "quarantine" / "ingest.jsonl")
    }
    quarantined |= {
        q["id"].rsplit(":", 1)[1].lstrip("0"): ("clean", q["reason"])
        for q in read(tmp_path / "data" / "quarantine" / "clean.jsonl")
    }
    assert quarantined == {str(n): (stage, reason) for n, (stage, reason, _) in bad.items()}
    ingest_counts = {"malformed_json": 1, "invalid_utf8": 1, "missing_text": 1, "not_an_object": 1}
    assert metrics["ingest"]["quarantined"] == {reason: ingest_counts.get(reason, 0) for reason in quarantine.INGEST}
    assert metrics["clean"]["quarantined"] == {"binary": 1, "empty": 2, "too_large": 1}
    assert metrics["clean"]["ingest_quarantined"] == metrics["ingest"]["quarantined"]  # 0s too: runs line up
    invalid = next(q for q in read(tmp_path / "data" / "quarantine" / "ingest.jsonl") if q["reason"] == "invalid_utf8")
    assert invalid["raw"] == '{"text": "caf\\xe9 au lait, served in Latin-1"}'  # the bytes, escaped, kept

    kept = read_clean(tmp_path)
    assert sorted(d["text"] for d in kept) == sorted(GOOD)
    assert {d["lang"] for d in kept} == {"en", "zh"}
    assert metrics["clean"]["docs_in"] == len(GOOD) + 4 and metrics["clean"]["docs_out"] == len(GOOD)


def test_an_unreadable_source_folder_stops_ingest_naming_it(tmp_path, mlflow_store):
    with pytest.raises(ValueError, match="ingest.source=.*nowhere.* is not a readable folder"):
        run(tmp_path, ["ingest.format=jsonl", f"ingest.source={tmp_path / 'nowhere'}"])


def planted_corpus(source, fortunes, rng):
    """Real fortunes and Tang poems, each distinct, and for some of them a copy with 5-15 % of the
    characters edited at random; returns the ids of (original, copy) pairs."""
    from llmpipe.clean.normalize import clean_text

    docs = [d for d in fortune_docs(fortunes, ["tang300"], []) if 60 < len(clean_text(d["text"])[0]) < 600]
    originals = [
        doc for label in ("fortunes", "tang300") for doc in rng.sample([d for d in docs if d["label"] == label], 30)
    ]
    records, pairs = [], []
    for i, doc in enumerate(originals):
        text = clean_text(doc["text"])[0]
        records.append({"id": f"orig-{i:03d}", "text": text, "lang": doc["lang"]})
        if i % 2 == 0:
            copy = random_edits(text, rng.uniform(0.05, 0.15), rng)
            records.append({"id": f"copy-{i:03d}", "text": copy, "lang": doc["lang"]})
            pairs.append((f"orig-{i:03d}", f"copy-{i:03d}"))
    rng.shuffle(records)
    source.mkdir()
    (source / "planted.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    return pairs


def test_planted_near_duplicates_are_removed_in_english_and_chinese_and_the_kept_copy_does_not_depend_on_workers(
    tmp_path, mlflow_store, fortunes_installed
):
    source = tmp_path / "corpus"
    pairs = planted_corpus(source, fortunes_installed, random.Random(7))
    kept_by_workers = {}
    for workers in (1, 2):
        root = tmp_path / f"workers{workers}"
        root.mkdir()
        metrics = run(
            root,
            [
                "ingest.format=jsonl",
                f"ingest.source={source}",
                f"hardware.clean.workers={workers}",
                "clean.quality.default.min_words=1",
            ],
        )
        kept = {d["id"] for d in read_clean(root)}
        removed = {d["id"] for d in read(root / "data" / "removed" / "near_duplicate.jsonl")}
        for original, copy in pairs:
            assert (original in kept) != (copy in kept), f"exactly one of {original}, {copy} is kept"
        assert removed == {id_ for pair in pairs for id_ in pair} - kept  # nothing else is a near-duplicate
        assert metrics["clean"]["removed"]["near_duplicate"]["docs"] == len(pairs)
        assert set(metrics["clean"]["removed"]["near_duplicate"]["per_language"]) == {"en", "zh"}
        kept_by_workers[workers] = kept
    assert kept_by_workers[1] == kept_by_workers[2]


def test_exact_duplicates_differing_in_case_and_spacing_keep_one_copy(tmp_path, mlflow_store):
    source = tmp_path / "corpus"
    source.mkdir()
    texts = [GOOD[0], GOOD[0].upper(), "  " + GOOD[0].replace(" ", "   "), GOOD[4], GOOD[4] + "\n", GOOD[1]]
    (source / "dups.jsonl").write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8"
    )
    metrics = run(tmp_path, ["ingest.format=jsonl", f"ingest.source={source}"])
    assert metrics["clean"]["removed"]["exact_duplicate"]["docs"] == 3
    assert metrics["clean"]["docs_out"] == 3


@pytest.mark.slow  # starts a Ray cluster on this machine
def test_the_ray_executor_gives_the_local_executors_output(tmp_path, mlflow_store, fortunes_installed):
    """The cluster path, on a Ray instance started on this machine: the same pipelines, the same
    kept, removed and quarantined documents."""
    source = tmp_path / "corpus"
    planted_corpus(source, fortunes_installed, random.Random(11))
    outputs = {}
    for executor in ("local", "ray"):
        root = tmp_path / executor
        root.mkdir()
        hardware = [
            f"hardware.{stage}.{key}"
            for stage in ("clean", "tokenize")
            for key in (f"executor={executor}", "workers=2")
        ]
        run(root, ["ingest.format=jsonl", f"ingest.source={source}", *hardware], stages=(ingest, clean, tokenize))
        data = root / "data"
        outputs[executor] = {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted((data / "clean").glob("*.jsonl"))
            + [data / "quarantine" / "clean.jsonl"]
            + sorted((data / "removed").glob("*.jsonl"))
            + sorted((data / "tokens").rglob("*.*"))
        }
    assert outputs["ray"] == outputs["local"]
    assert "data/removed/near_duplicate.jsonl" in outputs["ray"] and "data/tokens/train/00001.bin" in outputs["ray"]


def test_languages_outside_the_keep_list_are_removed_and_kept_when_listed(tmp_path, mlflow_store):
    source = tmp_path / "corpus"
    source.mkdir()
    french = "Le chat dort sur la table de la cuisine pendant que les enfants jouent dans le jardin."
    records = [{"text": t} for t in GOOD] + [{"text": french, "lang": "en"}]  # a wrong declared language
    (source / "langs.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8"
    )
    (tmp_path / "a").mkdir()
    dropped = run(tmp_path / "a", ["ingest.format=jsonl", f"ingest.source={source}"])
    assert dropped["clean"]["removed"]["language"] == {"docs": 1, "bytes": len(french), "per_language": {"fr": 1}}
    (tmp_path / "b").mkdir()
    kept = run(tmp_path / "b", ["ingest.format=jsonl", f"ingest.source={source}", "clean.language.keep=[en,zh,fr]"])
    assert "language" not in kept["clean"]["removed"] and kept["clean"]["languages"]["fr"]["docs_out"] == 1
    docs = read_clean(tmp_path / "b")
    assert {d["lang"] for d in docs if d["text"] == french} == {"fr"}


def test_a_book_in_one_file_becomes_documents_split_by_position(tmp_path, mlflow_store, fortunes_installed):
    """A 2 MB English text in one .txt file (Debian's English fortunes, one after another): cut into
    documents at paragraph breaks by ingest, kept by clean, and split in order by tokenize."""
    entries = [d["text"] for d in fortune_docs(fortunes_installed, [], ["tang300", "song100", "chinese"])]
    book, i = [], 0
    while sum(map(len, book)) < 2_000_000:
        book.append(entries[i % len(entries)].strip() + f" ({i})\n\n")  # numbered: no two paragraphs alike
        i += 1
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "book.txt").write_text("".join(book), encoding="utf-8")
    overrides = ["ingest.format=auto", f"ingest.source={tmp_path / 'corpus'}", "ingest.max_doc_bytes=20000"]
    metrics = run(tmp_path, [*overrides, "tokenize.split_by=position", "clean.max_bytes=1000000"])
    assert metrics["ingest"]["cut_into_pieces"] == 1 and metrics["ingest"]["docs"] > 90
    assert metrics["clean"]["docs_out"] > 0.9 * metrics["ingest"]["docs"]
    tokens = run_stage(tokenize.stage(), tmp_path)
    tokens_dir = tmp_path / "data" / "tokens"
    ids = {s: sorted(d["id"] for d in load_split_docs(tokens_dir, s)) for s in ("train", "val", "test")}
    assert ids["train"] and ids["val"] and ids["test"]
    assert ids["train"][-1] < ids["val"][0] and ids["val"][-1] < ids["test"][0]  # in book order (ids sort so)
    splits = tokens["splits"]  # 80/10/10 by bytes: a piece that straddles a boundary is cut there
    assert abs(splits["train"]["bytes"] / sum(s["bytes"] for s in splits.values()) - 0.8) < 0.01


def test_a_zero_fraction_leaves_its_split_empty_and_the_stage_that_needs_it_names_the_setting(
    tmp_path, mlflow_store, fortunes_installed
):
    """tokenize.test_fraction 0 (or val_fraction 0) is a choice, not an error: the split is written
    empty; reading it names the setting. A fraction above 0 that leaves a split empty still fails."""
    from llmpipe.data.token_files import load_tokens

    texts = [d["text"] for d in fortune_docs(fortunes_installed, [], ["tang300", "song100", "chinese"])][:300]
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "notes.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    source = f"ingest.source={tmp_path / 'corpus'}"
    run(tmp_path, ["ingest.format=auto", source, "tokenize.test_fraction=0", "tokenize.val_fraction=0.2"])
    splits = run_stage(tokenize.stage(), tmp_path)["splits"]
    assert splits["test"]["docs"] == 0 and splits["val"]["docs"] > 0 and splits["train"]["docs"] > 0
    assert len(load_tokens(tmp_path / "data" / "tokens", "val")) > 0
    with pytest.raises(ValueError, match=r"test split has no documents \(tokenize.test_fraction is 0"):
        load_tokens(tmp_path / "data" / "tokens", "test")
    too_small = ["experiment=tiny", "tokenize.val_fraction=0.0001"]  # 300 documents leave 0.01 % nothing
    (tmp_path / "params.yaml").write_text(compose(too_small, conf_dir=REPO / "conf"))
    with pytest.raises(ValueError, match=r"splits \['val'\] are empty: .* val_fraction=0.0001"):
        run_stage(tokenize.stage(), tmp_path)
