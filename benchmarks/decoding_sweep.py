"""Greedy decoding settings of an SFT model scored on the validation split, to choose the defaults of
evaluate_task.generation.greedy (conf/evaluate_task/default.yaml) without looking at the test split.

For each repetition penalty and no-repeat n-gram size of the grid, the model answers the first
--pairs validation prompts of each language (interleaved, as the evaluate_task stage takes its test
prompts), and the answers are scored by chrF against the references, overall and per language, next
to a random training response of the same language (the baseline the stage reports). It also counts
answers that repeat themselves (a word 4-gram, or for Chinese a character 4-gram, written twice).

Run in a project where `dvc repro finetune@sft` has run (models/finetune/sft, data/tokens, params.yaml):
  .venv/bin/python /path/to/llmpipe/benchmarks/decoding_sweep.py --root . --pairs 40
"""

import argparse
import itertools
import json
import time
from pathlib import Path

import yaml

from llmpipe.evaluation import generation_metrics
from llmpipe.evaluation.tasks import baseline_responses, generate_responses, interleave_languages
from llmpipe.registry.export import load_model_dir
from llmpipe.runner import Sections
from llmpipe.training import sft


def repeats_itself(text: str, n: int = 4) -> bool:
    units = text.split() if len(text.split()) > 3 else list(text.replace(" ", ""))
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    return len(grams) != len(set(grams))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--task", default="sft")
    parser.add_argument("--pairs", type=int, default=40, help="validation prompts per language")
    parser.add_argument("--penalties", default="1.0,1.2,1.4")
    parser.add_argument("--ngrams", default="0,3,4")
    parser.add_argument("--max-new-tokens", help="comma-separated (default: evaluate_task.generation's)")
    parser.add_argument("--out", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args()

    # the params of the run that trained the model, of which only these sections are read (a project of
    # an llmpipe before these decoding controls has no settings for them)
    params = yaml.safe_load((args.root / "params.yaml").read_text(encoding="utf-8"))
    cfg = Sections(params, ["seed", f"finetune.{args.task}"])
    task_cfg, seed = cfg.finetune[args.task], cfg.seed
    max_new_tokens = params["evaluate_task"]["generation"]["max_new_tokens"]
    tokens_dir = args.root / "data" / "tokens"
    net, config, tokenizer = load_model_dir(args.root / "models" / "finetune" / args.task)
    shown = interleave_languages(sft.task_pairs(task_cfg, "val", tokens_dir), args.pairs)
    references, langs = [p.response for p in shown], [p.lang for p in shown]
    print(f"{len(shown)} validation pairs ({', '.join(f'{l}: {langs.count(l)}' for l in sorted(set(langs)))})")

    baseline = baseline_responses(shown, sft.task_pairs(task_cfg, "train", tokens_dir), seed)
    rows = [{"decoding": "random_response", **score_row(baseline, references, langs)}]
    lengths = [int(n) for n in args.max_new_tokens.split(",")] if args.max_new_tokens else [max_new_tokens]
    grid = itertools.product(lengths, map(float, args.penalties.split(",")), map(int, args.ngrams.split(",")))
    for max_new_tokens, penalty, ngram in grid:
        decoding = {"temperature": 0.0, "top_k": None, "top_p": None}
        decoding |= {"repetition_penalty": penalty, "no_repeat_ngram_size": ngram}
        started = time.perf_counter()
        answers = generate_responses(net, tokenizer, config, shown, decoding, max_new_tokens, seed)
        name = f"greedy, {max_new_tokens} tokens, penalty {penalty:g}, no-repeat {ngram}"
        row = {"decoding": name, **score_row(answers, references, langs)}
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(row, flush=True)

    columns = [k for k in rows[1] if k != "decoding"]
    print("\n| decoding | " + " | ".join(columns) + " |")
    print("| --- |" + " ---: |" * len(columns))
    for row in rows:
        print(f"| {row['decoding']} | " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")


def score_row(answers: list[str], references: list[str], langs: list[str]) -> dict:
    """chrF overall and per language, answers that repeat themselves, and their mean length."""
    scores = generation_metrics.scores_by_language(answers, references, langs)
    row = {"chrf": round(scores["chrf"], 2)}
    row |= {f"chrf_{lang}": round(scores[lang]["chrf"], 2) for lang in sorted(set(langs))}
    row["repeating"] = sum(map(repeats_itself, answers))
    row["mean_chars"] = round(sum(map(len, answers)) / len(answers), 1)
    return row


if __name__ == "__main__":
    main()
