"""The family comparison: the three families the seeds name, put to the seeds' own advice
("对于文本生成任务，可以选择GPT系列；对于文本分类任务，可以选择BERT或T5": GPT to generate text,
BERT or T5 to classify it).

  gpt   the decoder (networks/transformer.py), pretrained on next tokens       conf/model/default.yaml
  bert  the encoder (networks/encoder.py), pretrained on masked tokens         conf/model/bert.yaml
  t5    the encoder-decoder (networks/seq2seq.py), pretrained on cut spans     conf/model/t5.yaml

Their model options hold about the same non-embedding parameters, and all three pretrain on the
same number of tokens (pretrain.max_tokens). Each is then fine-tuned on every classification task
(macro-F1 and accuracy on the test split) and, for the families that write, on SFT (chrF and
ROUGE-L of greedy responses to the test prompts; the response loss, comparable between GPT and T5:
the same tokens, predicted from the same prompt), under `seeds` seeds.

`llmpipe families queue --run [OVERRIDES]` queues one DVC experiment per family and seed
(family-<name>-<seed>: model=<option>, finetune.<task>.seed=<seed> for every task), running up to
the evaluate_task stages. A family pretrains once: DVC's run cache serves its other seeds (and the
decoder's is the default pipeline's own). `llmpipe families report` reads the evaluate_task runs
back from MLflow by experiment name and writes reports/families.md: mean ± sample standard
deviation over the seeds, each seed's score, and whether the advice holds at this scale.
"""

from dataclasses import dataclass
from pathlib import Path

from llmpipe import typed_params
from llmpipe.config import compose
from llmpipe.registry import tracking
from llmpipe.studies import experiments
from llmpipe.studies.transfer import mean_sd, over_seeds

FAMILIES = {"gpt": "default", "bert": "bert", "t5": "t5"}  # family -> its conf/model option
PREFIX = "family-"
# the test metrics a task type is compared on, the first the headline; True: higher is better
METRICS = {
    "classify": {"test_macro_f1": True, "test_acc": True},
    "sft": {"greedy/chrf": True, "greedy/rougeL": True, "test_loss": False},
}
ADVICE = {"classify": ("bert", "t5"), "sft": ("gpt",)}  # the families the seeds advise for each task type


@dataclass(frozen=True)
class Point:
    name: str
    family: str
    seed: int
    tasks: tuple[str, ...]
    overrides: tuple[str, ...]  # Hydra overrides of `dvc exp run -S`


def plan(params, seeds: int, base: list[str] = ()) -> list[Point]:
    """One point per family and seed (seeds from the global seed on), each fine-tuning every task
    in finetune.tasks under that seed; base: the Hydra overrides every point starts from."""
    if seeds < 1:
        raise ValueError(f"--seeds={seeds}: the study needs at least one seed (three to weigh the spread)")
    tasks = tuple(params.finetune.tasks)
    points = []
    for family, option in FAMILIES.items():
        for seed in range(params.seed, params.seed + seeds):
            overrides = (*base, f"model={option}", *(f"finetune.{task}.seed={seed}" for task in tasks))
            points.append(Point(f"{PREFIX}{family}-{seed}", family, seed, tasks, overrides))
    return points


def study(overrides: list[str], seeds: int, conf_dir: str | Path = "conf") -> list[Point]:
    """The points for these overrides, each one's config composed and checked before anything runs."""
    import yaml

    params = typed_params.build(yaml.safe_load(compose(overrides, conf_dir)))
    return experiments.check_points(plan(params, seeds, overrides), conf_dir, "families")


def queue(points: list[Point], run: bool, replace: bool = False) -> list[str]:
    queued = {p.name: list(p.overrides) for p in points}
    targets = [f"evaluate_task@{task}" for task in points[0].tasks] if points else []
    return experiments.queue(queued, targets=targets, replace=replace, run=run)


def collect(client, experiment_id: str, points: list[Point], task_types: dict[str, str]) -> list[dict]:
    """One row per (point, task) with a finished evaluate_task run: its test scores, or why the task
    was skipped (an encoder does not generate)."""
    by_name = {p.name: p for p in points}
    found = {}
    for run in experiments.finished_runs(client, experiment_id, "evaluate_task/%", PREFIX):
        name, stage = run.data.tags[tracking.EXPERIMENT_TAG], run.data.tags[tracking.STAGE_TAG]
        task = stage.removeprefix("evaluate_task/")
        if name not in by_name or task not in by_name[name].tasks or (name, task) in found:
            continue  # another study's run, or an older run of the same point
        point = by_name[name]
        row = {"task": task, "family": point.family, "seed": point.seed}
        if "llmpipe.skipped" in run.data.tags:
            row["skipped"] = run.data.tags["llmpipe.skipped"]
        else:
            metrics = run.data.metrics
            row.update(
                {
                    m: metrics[f"{stage}/{task}/{m}"]
                    for m in METRICS[task_types[task]]
                    if f"{stage}/{task}/{m}" in metrics
                }
            )
        found[(name, task)] = row
    return [found[(p.name, t)] for p in points for t in p.tasks if (p.name, t) in found]


def summarize(rows: list[dict], task_types: dict[str, str]) -> dict[str, dict[str, dict]]:
    """task -> family -> {metric: mean, metric_sd, seeds, by_seed} (or {skipped: why})."""
    out: dict = {}
    for task in dict.fromkeys(r["task"] for r in rows):
        for family in FAMILIES:
            mine = [r for r in rows if r["task"] == task and r["family"] == family]
            if not mine:
                continue
            if all("skipped" in r for r in mine):
                out.setdefault(task, {})[family] = {"skipped": mine[0]["skipped"]}
                continue
            scored = [r for r in mine if "skipped" not in r]
            out.setdefault(task, {})[family] = over_seeds(scored, METRICS[task_types[task]])
    return out


def verdict(task: str, task_type: str, by_family: dict[str, dict]) -> str:
    """Whether a family the seeds advise for this task type comes out best by the headline metric's
    mean, by how much over the best of the others, and whether that margin exceeds the seed-to-seed
    spread."""
    metric, higher = next(iter(METRICS[task_type].items()))
    scored = {f: s for f, s in by_family.items() if metric in s}
    ranked = sorted(scored, key=lambda f: scored[f][metric], reverse=higher)
    order = " > ".join(f"{f} {scored[f][metric]:.4f}" for f in ranked)
    head = f"- {task} ({metric}, {'higher' if higher else 'lower'} is better): {order}."
    advised = [f for f in ranked if f in ADVICE[task_type]]
    others = [f for f in ranked if f not in ADVICE[task_type]]
    if not advised or not others:
        return head + " Nothing to weigh the advice against."
    best, rival = (advised[0], others[0]) if ranked[0] in advised else (others[0], advised[0])
    margin = abs(scored[best][metric] - scored[rival][metric])
    spreads = [scored[f].get(f"{metric}_sd") for f in (best, rival)]
    if None in spreads:
        weight = "one seed: no spread to weigh it against"
    else:
        size = "larger" if margin > max(spreads) else "smaller"
        weight = f"{size} than the larger seed-to-seed standard deviation ({max(spreads):.4f})"
    holds = "holds" if best in ADVICE[task_type] else "does not hold"
    return (
        f"{head} The advice ({' or '.join(ADVICE[task_type])}) {holds}: {best} leads {rival} by {margin:.4f}, {weight}."
    )


def write_report(rows: list[dict], task_types: dict[str, str], sizes: dict[str, dict], out_dir: Path) -> Path:
    """reports/families.md: the families' sizes, then per task each family's mean ± sd over the
    seeds and each seed's headline score, then the verdicts."""
    if not rows:
        raise ValueError("no finished family points in MLflow: run `llmpipe families queue --run` first")
    summaries = summarize(rows, task_types)
    lines = [
        "# Model families: does the seeds' advice hold at this scale?",
        "",
        "GPT (decoder), BERT (encoder) and T5 (encoder-decoder) at about equal non-embedding parameters and",
        "equal pretraining tokens, each fine-tuned on every task under each seed; test-split scores, mean ±",
        "sample standard deviation over the seeds. One DVC experiment per family and seed (`dvc exp show`).",
        "",
        "| family | model option | objective | non-embedding parameters | pretraining token budget |",
        "| --- | --- | --- | --- | --- |",
        *(
            f"| {f} | {FAMILIES[f]} | {s['objective']} | {s['params_non_embedding']:,} | {s['tokens']:,} |"
            for f, s in sizes.items()
        ),
        "",
    ]
    findings = []
    for task, by_family in summaries.items():
        lines += [f"## {task} ({task_types[task]})", "", *task_table(by_family, METRICS[task_types[task]]), ""]
        findings.append(verdict(task, task_types[task], by_family))
    lines += ["## What it shows", "", *findings, ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "families.md"
    path.write_text("\n".join(lines))
    return path


def task_table(by_family: dict[str, dict], metrics: dict[str, bool]) -> list[str]:
    """One task's table: each family's mean ± sd per metric, then its headline score at each seed."""
    headline = next(iter(metrics))
    seeds = sorted({s for v in by_family.values() for s in v.get("by_seed", {})})
    header = ["family", "seeds", *metrics, *(f"{headline}, seed {s}" for s in seeds)]
    lines = ["| " + " | ".join(header) + " |", "| --- " * len(header) + "|"]
    for family, summary in by_family.items():
        if "skipped" in summary:
            lines.append(f"| {family} | skipped: {summary['skipped']} |" + " |" * (len(header) - 2))
            continue
        cells = [mean_sd(summary, m) if m in summary else "" for m in metrics]
        by_seed = summary["by_seed"]
        per_seed = [f"{by_seed[s].get(headline, float('nan')):.4f}" if s in by_seed else "" for s in seeds]
        lines.append(f"| {family} | {summary['seeds']} | " + " | ".join(cells + per_seed) + " |")
    return lines


def family_sizes(overrides: list[str], tokens_dir: Path, conf_dir: str | Path = "conf") -> dict[str, dict]:
    """Each family's objective, non-embedding parameters and pretraining tokens, from its composed
    config and the tokenizer's vocabulary (data/tokens/meta.json): the same numbers pretrain logs."""
    import yaml

    from llmpipe.data.token_files import read_meta
    from llmpipe.families import family_of, model_config

    vocab = read_meta(tokens_dir)["vocab_size"]
    sizes = {}
    for family, option in FAMILIES.items():
        params = yaml.safe_load(compose([*overrides, f"model={option}"], conf_dir))
        cfg = model_config(params["model"], vocab)
        sizes[family] = {
            "objective": family_of(cfg).objective,
            "params_non_embedding": cfg.num_params() - cfg.embedding_params(),
            "tokens": params["pretrain"]["max_tokens"],
        }
    return sizes
