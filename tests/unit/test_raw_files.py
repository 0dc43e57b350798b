"""Ingest writes each label's documents as they arrive (llmpipe.ingest.raw_files), with a bounded number
of open files, and the files are those of writing each label's documents in one go."""

import json

from llmpipe.ingest.raw_files import LabelFiles, file_name


def test_label_files_reopen_for_appending_and_keep_each_labels_order(tmp_path):
    labels = ["a", "b/c", None, "d", None]
    docs = [
        {"id": f"d{i}", "label": labels[i % 5], "source": f"/in/shard-{i % 2}.jsonl:{i}", "text": f"text {i}"}
        for i in range(41)
    ]
    with LabelFiles(tmp_path, max_open=2) as raw:  # six files through two open ones
        for doc in docs:
            raw.write(doc)
        assert len(raw.open) <= 2 and raw.count(docs[0]) == 9
    names = ["a.jsonl", "b_c.jsonl", "d.jsonl", "unlabeled.shard-0.jsonl", "unlabeled.shard-1.jsonl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == names  # no label: a file per source file
    for name in names:
        lines = (tmp_path / name).read_text(encoding="utf-8").splitlines()
        assert [json.loads(line) for line in lines] == [d for d in docs if file_name(d) == name]
