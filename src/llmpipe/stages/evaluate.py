"""evaluate: score the pretrained language model: perplexity and bits per byte on the val and test
splits, overall and per language, next to unigram and bigram models fitted on train; and samples.
A model whose loss is not in bits per byte (its family says: an encoder, model.arch=bert, or an
encoder-decoder, model.arch=t5) is scored on its own objective instead: the loss and accuracy of the
masked tokens, or of the tokens of the cut spans, next to a unigram model. A model that does not
generate (the encoder) writes no samples; the encoder-decoder's samples are its fillings of a
corrupted window, since its pretraining taught it nothing else.

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
    from llmpipe.evaluation.samples import filling_samples, samples_markdown
    from llmpipe.families import family_of
    from llmpipe.families.objectives import VAL, pretrained_objective
    from llmpipe.registry.export import load_model_dir

    pretrained = root / "models" / "pretrain"
    lm, lm_config, tokenizer = load_model_dir(pretrained)
    family, block_size = family_of(lm.config), lm.config.block_size
    tokens_dir, batch_size = root / "data" / "tokens", cfg.hardware.evaluate.batch_size
    if family.bits_per_byte:  # a next-token model
        metrics = {"lm": language_model_scores(lm, block_size, tokens_dir, batch_size)}
        samples = samples_markdown(lm, tokenizer, cfg.evaluate.samples, cfg.seed)
    else:  # scored on its own objective, whose examples the family makes from whole windows
        settings = pretrained_objective(pretrained)
        examples = lambda windows: family.examples(windows, lm.config, settings, tokenizer, cfg.seed, VAL)  # noqa: E731
        scored = (family.objective, family.scored_logits, family.unscored(tokenizer))
        metrics = {"lm": objective_scores(lm, examples, tokens_dir, block_size, batch_size, *scored)}
        samples = (
            filling_samples(lm, tokenizer, examples, tokens_dir, block_size, cfg.evaluate.samples)
            if family.generates
            else f"This model (model.arch={lm_config['model'].get('arch')}) does not generate text: no samples.\n"
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
