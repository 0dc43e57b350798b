"""evaluate: score the pretrained language model: perplexity and bits per byte on the val and test
splits, overall and per language, next to unigram and bigram models fitted on train; and samples.
An encoder (model.arch=bert) and an encoder-decoder (model.arch=t5) are scored on their own
objectives instead: the loss and accuracy of the masked tokens, or of the tokens of the cut spans,
next to a unigram model. The encoder writes no samples, since it does not generate; the
encoder-decoder's samples are its fillings of a corrupted window, since its pretraining taught it
nothing else.

The fine-tuned models are scored by evaluate_task, lm-evaluation-harness runs in evaluate_harness,
and the report card is the report stage.

Reads: models/pretrain/, data/tokens/.
Writes: metrics/evaluate.json (under `lm`, so registry tags read `lm/val_bpb`); reports/samples.md.
Run: python -m llmpipe.stages.evaluate
"""

from pathlib import Path

from llmpipe.atomic import replace_file
from llmpipe.registry import tracking
from llmpipe.runner import Sections, Stage, stage_main

SUMMARY = ["lm/val_bpb", "lm/bigram_val_bpb", "lm/unigram_val_bpb", "lm/test_bpb"]
SUMMARY += ["lm/val_masked_loss", "lm/val_span_loss"]  # what its summary line shows (runner.summary)


def run(cfg: Sections, root: Path) -> dict:
    # heavy (torch): imported where used, so the stage starts fast (a bad params.yaml fails at once)
    from llmpipe.evaluation.lm_metrics import language_model_scores, objective_scores
    from llmpipe.evaluation.samples import samples_markdown, span_samples
    from llmpipe.registry.export import load_model_dir
    from llmpipe.training.objectives import (
        CAUSAL,
        MASKED,
        SPANS,
        VAL,
        examples_of,
        objective,
        pretrained_objective,
        span_framing_ids,
    )

    pretrained = root / "models" / "pretrain"
    lm, lm_config, tokenizer = load_model_dir(pretrained)
    block_size, tokens_dir, batch_size = (
        lm.config.block_size,
        root / "data" / "tokens",
        cfg.hardware.evaluate.batch_size,
    )
    if objective(lm.config) == CAUSAL:
        metrics = {"lm": language_model_scores(lm, block_size, tokens_dir, batch_size)}
        samples = samples_markdown(lm, tokenizer, cfg.evaluate.samples, cfg.seed)
    else:
        settings, scored = pretrained_objective(pretrained), objective(lm.config)
        examples = lambda windows: examples_of(windows, lm.config, settings, tokenizer, cfg.seed, VAL)  # noqa: E731
        framing = span_framing_ids(tokenizer) if scored == SPANS else ()
        metrics = {"lm": objective_scores(lm, examples, tokens_dir, block_size, batch_size, scored, framing)}
        samples = (
            "An encoder (model.arch=bert) does not generate text: no samples.\n"
            if scored == MASKED
            else span_samples(lm, tokenizer, examples, tokens_dir, block_size, cfg.evaluate.samples)
        )
    with replace_file(root / "reports" / "samples.md") as tmp:
        tmp.write_text("# Samples from the pretrained model\n\n" + samples, encoding="utf-8")
    tracking.log_artifacts([root / "reports" / "samples.md"])
    return metrics


def stage() -> Stage:
    return Stage(
        "evaluate", run, params=["seed", "evaluate"], hardware=True, summary=SUMMARY,
        reads=["data/tokens", "models/pretrain"], writes=["reports/samples.md"],
    )  # fmt: skip


if __name__ == "__main__":
    stage_main(stage)
