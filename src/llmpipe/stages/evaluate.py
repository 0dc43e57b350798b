"""evaluate: score the pretrained language model: perplexity and bits per byte on the val and test
splits, overall and per language, next to unigram and bigram models fitted on train; and samples.

The fine-tuned models are scored by evaluate_task, lm-evaluation-harness runs in evaluate_harness,
and the report card is the report stage.

Reads: models/pretrain/, data/tokens/.
Writes: metrics/evaluate.json (under `lm`, so registry tags read `lm/val_bpb`); reports/samples.md.
Run: python -m llmpipe.stages.evaluate
"""

from pathlib import Path

from llmpipe.atomic import replace_file
from llmpipe.evaluation.lm_metrics import language_model_scores
from llmpipe.evaluation.samples import samples_markdown
from llmpipe.registry import tracking
from llmpipe.registry.export import load_model_dir
from llmpipe.runner import Sections, Stage, stage_main

SUMMARY = ["lm/val_bpb", "lm/bigram_val_bpb", "lm/unigram_val_bpb", "lm/test_bpb"]  # runner.summary


def run(cfg: Sections, root: Path) -> dict:
    lm, lm_config, tokenizer = load_model_dir(root / "models" / "pretrain")
    block_size, tokens_dir = lm_config["model"]["block_size"], root / "data" / "tokens"
    metrics = {"lm": language_model_scores(lm, block_size, tokens_dir, cfg.hardware.evaluate.batch_size)}
    samples = samples_markdown(lm, tokenizer, cfg.evaluate.samples, cfg.seed)
    with replace_file(root / "reports" / "samples.md") as tmp:
        tmp.write_text("# Samples from the pretrained model\n\n" + samples, encoding="utf-8")
    tracking.log_artifacts([root / "reports" / "samples.md"])
    return metrics


def stage() -> Stage:
    return Stage("evaluate", run, params=["seed", "evaluate"], hardware=True, summary=SUMMARY)


if __name__ == "__main__":
    stage_main(stage)
