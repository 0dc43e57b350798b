"""A vocabulary above 65,535 ids (as every modern tokenizer has): tokenize trains it, writes uint32
token files, and the tiny model pretrains on them and exports with every id."""

import json
import re

import numpy as np
import pytest
from safetensors.torch import load_file

from llmpipe.config import compose
from llmpipe.data.token_files import load_tokens
from llmpipe.jsonl import write_jsonl
from llmpipe.runner import run_stage
from llmpipe.stages import pretrain, tokenize

from .conftest import FORTUNE_DIR, REPO

pytestmark = pytest.mark.slow


def test_a_100k_vocabulary_writes_uint32_tokens_and_pretrains(tmp_path, monkeypatch, fortunes_installed):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    docs = []  # the whole embedded corpus as cleaned documents: enough distinct text for 100k merges
    for path in sorted(p for p in FORTUNE_DIR.iterdir() if p.is_file() and "." not in p.name):
        entries = re.split(r"^%$", path.read_text(encoding="utf-8", errors="replace"), flags=re.M)
        lang = "zh" if path.name in ("tang300", "song100", "chinese") else "en"
        for i, text in enumerate(e.strip() for e in entries if e.strip()):
            docs.append({"id": f"{path.name}:{i}", "text": text, "lang": lang, "label": path.name, "source": str(path)})
    (tmp_path / "data" / "clean").mkdir(parents=True)
    write_jsonl(tmp_path / "data" / "clean" / "docs.jsonl", docs)
    overrides = ["tokenize.vocab_size=100000", "tokenize.min_frequency=1", "pretrain.max_tokens=2048"]
    # a small val split (about 200 documents): pretrain scores all of it, at 100k logits per token
    overrides += ["tokenize.val_fraction=0.01", "tokenize.test_fraction=0.01"]
    (tmp_path / "params.yaml").write_text(compose(["experiment=tiny", *overrides], conf_dir=REPO / "conf"))

    metrics = run_stage(tokenize.stage(), tmp_path)
    assert metrics["vocab_size"] == 100_000 and metrics["encoder"] == "tiktoken"
    tokens_dir = tmp_path / "data" / "tokens"
    train = load_tokens(tokens_dir, "train")
    assert train.dtype == np.uint32 and int(np.asarray(train).max()) > 65535
    assert (
        sum(p.stat().st_size for p in (tokens_dir / "train").glob("*.bin")) == 4 * metrics["splits"]["train"]["tokens"]
    )
    meta = json.loads((tokens_dir / "meta.json").read_text())
    assert meta["vocab_size"] == 100_000

    scores = run_stage(pretrain.stage(), tmp_path)
    assert np.isfinite(scores["val_bpb"]) and scores["steps"] == 4
    weights = load_file(tmp_path / "models" / "pretrain" / "model.safetensors")
    assert weights["model.embed_tokens.weight"].shape[0] == 100_000
