"""evaluate: score the pretrained language model and the fine-tuned classifier beside baselines.

Reads: models/pretrain/, models/finetune/, data/tokens/ (val.bin, train.bin, meta.json, *.jsonl).
Writes: metrics/evaluate.json; reports/samples.md (also an MLflow artifact).
  lm:       val perplexity and bits per byte, next to a unigram model fitted on train
  classify: test accuracy and macro-F1, next to always answering the majority training label
Run: python -m llmpipe.stages.evaluate
"""

import json
from pathlib import Path

from llmpipe import evaluation
from llmpipe.atomic import replace_file
from llmpipe.datasets import load_tokens, read_jsonl
from llmpipe.export import load_model_dir
from llmpipe.generation import generate_text
from llmpipe.runner import stage_main

STAGE = "evaluate"
SECTIONS = ["seed", STAGE]
LOGGED: list[str] = []  # sections logged to MLflow that are not DVC params


def evaluate_lm(net, block_size: int, tokens_dir: Path, batch_size: int) -> dict:
    meta = json.loads((tokens_dir / "meta.json").read_text())
    val, val_bytes = load_tokens(tokens_dir, "val"), meta["splits"]["val"]["bytes"]
    nats, count = evaluation.lm_nats(net, val, block_size, batch_size, progress=True)
    uni_nats, uni_count = evaluation.unigram_nats(load_tokens(tokens_dir, "train"), val, meta["vocab_size"])
    return {
        "val_ppl": evaluation.perplexity(nats, count),
        "val_bpb": evaluation.bits_per_byte(nats, val_bytes),
        "unigram_val_ppl": evaluation.perplexity(uni_nats, uni_count),
        "unigram_val_bpb": evaluation.bits_per_byte(uni_nats, val_bytes),
        "val_tokens": count,
    }


def evaluate_classifier(net, config: dict, tokenizer, tokens_dir: Path) -> dict:
    labels, lang, max_tokens = config["labels"], config["lang"], config["max_tokens"]
    train, test = (
        [d for d in read_jsonl(tokens_dir / f"{s}.jsonl") if d["lang"] == lang and d.get("label") in labels]
        for s in ("train", "test")
    )
    target = [labels.index(d["label"]) for d in test]
    pred = evaluation.classify_texts(net, tokenizer, [d["text"] for d in test], max_tokens)
    scores = evaluation.classification_metrics(pred, target, len(labels))
    baseline = evaluation.majority_baseline([labels.index(d["label"]) for d in train], target, len(labels))
    return {
        "test_acc": scores["accuracy"],
        "test_macro_f1": scores["macro_f1"],
        "majority_test_acc": baseline["accuracy"],
        "majority_test_macro_f1": baseline["macro_f1"],
        "test_examples": len(target),
    }


def samples_markdown(net, tokenizer, cfg: dict, seed: int) -> str:
    rows = ["| prompt | continuation |", "| --- | --- |"]
    for i, prompt in enumerate(cfg["prompts"]):
        text = generate_text(
            net,
            tokenizer,
            prompt,
            max_new_tokens=cfg["max_new_tokens"],
            temperature=cfg["temperature"],
            top_k=cfg["top_k"],
            top_p=cfg["top_p"],
            seed=seed + i,
        )
        cell = text.replace("|", "\\|").replace("\n", "<br>")
        rows.append(f"| {prompt} | {cell} |")
    return "\n".join(rows) + "\n"


def run(params: dict, root: Path) -> dict:
    cfg = params[STAGE]
    tokens_dir = root / "data" / "tokens"
    lm, lm_config, tokenizer = load_model_dir(root / "models" / "pretrain")
    classifier, classifier_config, classifier_tokenizer = load_model_dir(root / "models" / "finetune")
    metrics = {
        "lm": evaluate_lm(lm, lm_config["model"]["block_size"], tokens_dir, cfg["batch_size"]),
        "classify": evaluate_classifier(classifier, classifier_config, classifier_tokenizer, tokens_dir),
    }
    samples = samples_markdown(lm, tokenizer, cfg["samples"], params["seed"])
    with replace_file(root / "reports" / "samples.md") as tmp:
        tmp.write_text("# Samples from the pretrained model\n\n" + samples, encoding="utf-8")
    import mlflow

    if mlflow.active_run():
        mlflow.log_text(samples, "samples.md")
    return metrics


def main():
    stage_main(STAGE, run, SECTIONS, LOGGED)


if __name__ == "__main__":
    main()
