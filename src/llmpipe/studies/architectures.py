"""The architecture comparison: the Transformer against RNN, LSTM and GRU language models at about
the same parameter count (conf/model/{default,rnn,lstm,gru}.yaml) and the same token budget.

`llmpipe architectures queue --run` queues one DVC experiment per architecture (`dvc exp run
--queue -n arch-<name> -S model=<option> pretrain`) and runs the queue; `dvc exp show` lists them
side by side and each pretraining run lands in MLflow, tagged with its experiment's name.
`llmpipe architectures report` then reads those runs back from MLflow and writes
reports/architectures.md and reports/architectures.png:
- validation bits per byte against training tokens, and throughput, on this machine;
- validation bits per token against how many tokens of its document the model had read (the
  pretrain stage measures it on the whole val split): how far back each architecture reads;
- when reports/architectures_gpu.json exists (benchmarks/arch_equal_time.py, run on a GPU), the
  same models given the same training time there, and their throughput at two context lengths.
"""

import json
from pathlib import Path

from llmpipe.registry import tracking
from llmpipe.studies import experiments

# architecture -> the conf/model option that holds its comparison size
OPTIONS = {"transformer": "default", "rnn": "rnn", "lstm": "lstm", "gru": "gru"}
PREFIX = "arch-"  # experiment names: arch-transformer, arch-rnn, ...
TARGET = "pretrain"  # the last stage an experiment runs: the comparison needs nothing after it
CONTEXT_METRIC = "pretrain/val_context_bits/"
# Half the default pretraining budget (300 steps of 4,096 tokens), so the four models train in about
# 20 minutes on 2 CPU cores. Every point starts from it; overrides given to `queue` come after it.
BUDGET = ["pretrain.max_tokens=1228800"]


def queue(overrides: list[str], run: bool, replace: bool = False) -> list[str]:
    """Queue one experiment per architecture (the budget, the overrides, then its model option);
    with run, run them now, one at a time (experiments.queue)."""
    points = {f"{PREFIX}{arch}": [*BUDGET, *overrides, f"model={option}"] for arch, option in OPTIONS.items()}
    names = experiments.queue(points, targets=[TARGET], replace=replace, run=run)
    return names


def context_bits(metrics: dict) -> list[tuple[int, int, float]]:
    """(lowest, highest context, bits per token) of each bucket a pretraining run logged, in order."""
    buckets = []
    for key, value in metrics.items():
        if key.startswith(CONTEXT_METRIC):
            low, _, high = key.removeprefix(CONTEXT_METRIC).partition("-")
            buckets.append((int(low), int(high or low), value))
    return sorted(buckets)


def bucket_label(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}-{high}"


def collect(client, experiment_id: str) -> dict[str, dict]:
    """For each architecture, the latest finished pretraining run of its experiment: sizes, speed,
    the validation curve (training tokens -> bits per byte) and bits per token by context length."""
    runs = experiments.finished_runs(client, experiment_id, TARGET, PREFIX)
    found = {}
    for run in runs:
        arch = run.data.tags[tracking.EXPERIMENT_TAG].removeprefix(PREFIX)
        if arch in found or arch not in OPTIONS:
            continue
        batch_tokens, tokens = (
            int(run.data.params["pretrain.batch_tokens"]),
            int(run.data.metrics["pretrain/tokens_seen"]),
        )
        # Lightning logs a validation after step k under step k - 1; the stage's closing validation
        # repeats the last one under the step count itself, hence the cap at the budget.
        history = client.get_metric_history(run.info.run_id, "val/bpb")
        curve = sorted({min((m.step + 1) * batch_tokens, tokens): m.value for m in history}.items())
        speed = [m.value for m in client.get_metric_history(run.info.run_id, "perf/tokens_per_s")]
        found[arch] = {
            "run_id": run.info.run_id,
            "params": int(run.data.metrics["pretrain/params"]),
            "params_non_embedding": int(run.data.metrics["pretrain/params_non_embedding"]),
            "tokens": tokens,
            "val_bpb": run.data.metrics["pretrain/val_bpb"],
            "tokens_per_s": sum(speed) / len(speed) if speed else None,
            "seconds": (run.info.end_time - run.info.start_time) / 1000,
            "curve": curve,
            "context_bits": context_bits(run.data.metrics),
        }
    return found


def load_gpu_results(path: Path) -> dict | None:
    """benchmarks/arch_equal_time.py's JSON, if it has been run and saved there."""
    return json.loads(path.read_text()) if path.exists() else None


def context_gain(buckets: list[tuple[int, int, float]], near: int = 4) -> float | None:
    """Bits per token saved by a long context: the loss with 4-7 tokens of the document read,
    minus the loss in the longest bucket. None when the run logged too few buckets."""
    short = [bits for low, _, bits in buckets if low == near]
    if not short or buckets[-1][0] <= near:
        return None
    return short[0] - buckets[-1][2]


def findings(results: dict[str, dict], gpu: dict | None) -> list[str]:
    """What the numbers say, sentence by sentence, computed from them (nothing here is fixed text
    about which model wins)."""
    order = [a for a in OPTIONS if a in results]
    best = min(order, key=lambda a: results[a]["val_bpb"])
    lines = [
        f"- Same tokens, this machine: lowest validation bits per byte is the {best}'s "
        f"({results[best]['val_bpb']:.3f}); "
        + ", ".join(f"{a} {results[a]['val_bpb']:.3f}" for a in order if a != best)
        + "."
    ]
    gains = {a: context_gain(results[a]["context_bits"]) for a in order}
    gains = {a: g for a, g in gains.items() if g is not None}
    if gains:
        longest = results[next(iter(gains))]["context_bits"][-1]
        reader = max(gains, key=gains.get)
        lines.append(
            f"- Context: from 4-7 tokens of the document read to {bucket_label(*longest[:2])}, "
            "the loss per token falls by "
            + ", ".join(f"{gains[a]:.2f} ({a})" for a in gains)
            + f" bits per token; the {reader} gains most from what came long before."
        )
    if gpu:
        runs, speed = gpu["runs"], gpu["throughput"]
        first = min(runs, key=lambda a: runs[a]["best_val_bpb"])
        lines.append(
            f"- Same time on a GPU ({gpu['device']}, {gpu['seconds']:g} s each): the lowest validation bits per "
            f"byte reached is the {first}'s ({runs[first]['best_val_bpb']:.3f}); "
            + ", ".join(f"{a} {runs[a]['best_val_bpb']:.3f}" for a in runs if a != first)
            + "."
        )
        for block, by_arch in sorted(speed.items(), key=lambda kv: int(kv[0])):
            if "transformer" in by_arch and len(by_arch) > 1:
                fastest_rnn = max((a for a in by_arch if a != "transformer"), key=by_arch.get)
                lines.append(
                    f"- GPU throughput at context {block}: the Transformer trains "
                    f"{by_arch['transformer'] / by_arch[fastest_rnn]:.2f}x as many tokens per second as the "
                    f"fastest recurrent model ({fastest_rnn})."
                )
    return lines


def plot(results: dict[str, dict], gpu: dict | None, path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = [a for a in OPTIONS if a in results]
    panels = 3 if gpu else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    curves, context = axes[0], axes[1]
    for arch in order:
        tokens, bpb = zip(*results[arch]["curve"], strict=True) if results[arch]["curve"] else ((), ())
        curves.plot(tokens, bpb, marker="o", label=arch)
        buckets = results[arch]["context_bits"]
        if buckets:
            context.plot([max(low, 0.5) for low, _, _ in buckets], [b for _, _, b in buckets], marker="o", label=arch)
    curves.set(xlabel="training tokens", ylabel="validation bits per byte", title="Same tokens (this machine)")
    curves.legend()
    context.set_xscale("log", base=2)
    context.set(
        xlabel="tokens of the document already read (bucket start; 0 plotted at 0.5)",
        ylabel="validation bits per token",
        title="Loss by context length",
    )
    context.legend()
    if gpu:
        for arch, run in gpu["runs"].items():
            seconds, _, bpb = zip(*run["curve"], strict=True)
            axes[2].plot(seconds, bpb, marker=".", label=arch)
        axes[2].set(
            xlabel="training seconds",
            ylabel="validation bits per byte",
            title=f"Same time on {gpu['device']}",
            ylim=(min(r["best_val_bpb"] for r in gpu["runs"].values()) - 0.1, 4.0),
        )
        axes[2].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(results: dict[str, dict], out_dir: Path, gpu: dict | None = None) -> Path:
    """reports/architectures.md with its tables and findings, and reports/architectures.png."""
    if not results:
        raise ValueError("no finished arch-* pretraining runs in MLflow: run `llmpipe architectures queue --run` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    order = [a for a in OPTIONS if a in results]
    plot(results, gpu, out_dir / "architectures.png")

    rows = [
        f"| {a} | {r['params'] / 1e6:.2f}M | {r['params_non_embedding'] / 1e6:.2f}M | {r['tokens']:,} | "
        f"{r['val_bpb']:.3f} | {r['tokens_per_s']:,.0f} | {r['seconds']:.0f} |"
        for a, r in ((a, results[a]) for a in order)
    ]
    text = [
        "# Transformer and recurrent language models, side by side",
        "",
        "Same corpus, tokenizer, token budget and training recipe; about the same non-embedding",
        "parameter count. Validation bits per byte are measured during pretraining on the held-out",
        "split (lower is better); throughput is the mean over logging intervals on this machine.",
        "",
        "| model | parameters | non-embedding | training tokens | val bits/byte | tokens/s | pretrain s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ]
    buckets = [bucket_label(low, high) for low, high, _ in results[order[0]]["context_bits"]]
    if buckets:
        text += [
            "Validation bits per token by how many tokens of its own document the model had read before",
            "each token (the window and the document boundary both cut the context). Each column holds",
            "different tokens (every document's first ones, only long documents' late ones), so compare",
            "the models within a column, and how much each one's loss drops from short to long context,",
            "rather than the shape of a row:",
            "",
            "| model | " + " | ".join(buckets) + " |",
            "| --- |" + " --- |" * len(buckets),
            *(
                f"| {a} | " + " | ".join(f"{bits:.2f}" for _, _, bits in results[a]["context_bits"]) + " |"
                for a in order
            ),
            "",
        ]
    if gpu:
        text += [
            f"The same models given the same training time on a GPU: {gpu['device']}, torch {gpu['torch']},",
            f"{gpu['date']}, `{gpu['command']}` ({gpu['batch_tokens']:,} tokens per step, bf16, pretraining's",
            "recipe with the cosine over the time budget). The train split is small, so every model",
            "overfits within the budget: the best validation value is the one to compare.",
            "",
            "| model | parameters | tokens/s | tokens in the budget | best val bits/byte | at second |",
            "| --- | --- | --- | --- | --- | --- |",
            *(
                f"| {a} | {r['params'] / 1e6:.2f}M | {r['tokens_per_s']:,.0f} | {r['tokens']:,} | "
                f"{r['best_val_bpb']:.3f} | {min(r['curve'], key=lambda p: p[2])[0]:.1f} |"
                for a, r in gpu["runs"].items()
            ),
            "",
            "| context | " + " | ".join(gpu["runs"]) + " |",
            "| --- |" + " --- |" * len(gpu["runs"]),
            *(
                f"| {block} | " + " | ".join(f"{by_arch[a]:,.0f}" for a in gpu["runs"]) + " |"
                for block, by_arch in sorted(gpu["throughput"].items(), key=lambda kv: int(kv[0]))
            ),
            "",
            "(training tokens per second at each context length, random tokens)",
            "",
        ]
    text += [
        "## What it shows",
        "",
        "Two things set attention apart, and each has its measurement above. A recurrent layer reads one",
        "token after another, so its training time grows with the context however many cores the GPU",
        "has, while attention computes every position at once (the GPU throughput by context). And a",
        "recurrent state is a fixed-size summary of everything read, while attention looks back at each",
        "earlier token (the loss by context length). From the numbers:",
        "",
        *findings(results, gpu),
        "",
        "![bits per byte against training tokens, loss by context length, and the same time on a GPU]"
        "(architectures.png)",
        "",
        "MLflow runs: " + ", ".join(f"{a} `{results[a]['run_id']}`" for a in order),
        "",
    ]
    report = out_dir / "architectures.md"
    report.write_text("\n".join(text), encoding="utf-8")
    return report
