"""evaluate_harness: lm-evaluation-harness (llmpipe.evaluation.harness) on the pretrained model:
multiple-choice cloze tasks built from held-out test documents, per language, beside chance and a
unigram model fitted on train that answers the same way without reading the context.

Reads: models/pretrain/, data/tokens/ (test documents; train tokens for the unigram).
Writes: data/harness/ (the cloze items); metrics/evaluate_harness.json.
Run: python -m llmpipe.stages.evaluate_harness
"""

import logging
from pathlib import Path

from llmpipe.atomic import replace_dir
from llmpipe.data.task_support import Unsupported
from llmpipe.data.token_files import load_split_docs
from llmpipe.evaluation import harness
from llmpipe.runner import Sections, Stage, stage_main

SUMMARY = ["*/acc", "*/acc_norm", "*/unigram_acc", "*/chance", "not_run"]  # runner.summary
log = logging.getLogger("llmpipe")


def run(cfg: Sections, root: Path) -> dict:
    docs = load_split_docs(root / "data" / "tokens", "test")
    model_dir = root / "models" / "pretrain"
    with replace_dir(root / "data" / "harness") as data_dir:
        reason = harness.unloadable_reason(model_dir)
        if not docs:
            reason = "the test split is empty (tokenize.test_fraction is 0, or no document says split=test)"
        if reason:  # a recurrent model, or no test split: the pipeline goes on without the harness
            log.warning("lm-evaluation-harness not run: %s", reason)
            return {"not_run": reason}
        try:
            tokens = root / "data" / "tokens"  # the unigram baseline is fitted on its train split
            return harness.evaluate(model_dir, docs, data_dir, cfg.evaluate_harness, cfg.seed, tokens_dir=tokens)
        except Unsupported as why:  # too few held-out documents: the rest of the pipeline goes on
            log.warning("lm-evaluation-harness not run: %s", why)
            return {"not_run": str(why)}


def stage() -> Stage:
    return Stage(
        "evaluate_harness", run, params=["seed", "evaluate_harness"], summary=SUMMARY,
        reads=["data/tokens", "models/pretrain"], writes=["data/harness"],
        code=["evaluation/harness_tasks/llmpipe_cloze.yaml"],
    )  # fmt: skip


if __name__ == "__main__":
    stage_main(stage)
