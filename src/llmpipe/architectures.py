"""The architecture comparison: the Transformer against RNN, LSTM and GRU language models at about
the same parameter count (conf/model/{default,rnn,lstm,gru}.yaml) and the same token budget.

`llmpipe architectures queue --run` queues one DVC experiment per architecture (`dvc exp run
--queue -n arch-<name> -S model=<option>`) and runs the queue; each experiment runs the whole
pipeline, so `dvc exp show` lists them side by side and every stage lands in MLflow.
`llmpipe architectures report` then reads the pretraining runs back from MLflow and writes
reports/architectures.md and reports/architectures.png: validation bits per byte against training
tokens for each architecture, and training throughput.
"""

from pathlib import Path

from llmpipe import experiments

# architecture -> the conf/model option that holds its comparison size
OPTIONS = {"transformer": "default", "rnn": "rnn", "lstm": "lstm", "gru": "gru"}


def queue(run: bool, replace: bool = False, poll_seconds: float = 10.0) -> list[str]:
    """Queue one experiment per architecture; with run, start the queue and wait for it."""
    points = {f"arch-{arch}": [f"model={option}"] for arch, option in OPTIONS.items()}
    names = experiments.queue(points, replace=replace)
    if run:
        experiments.run_queue(names, poll_seconds)
    return names


def collect(client, experiment_id: str) -> dict[str, dict]:
    """For each architecture, its latest finished pretraining run: sizes, speed and the validation
    curve (training tokens -> bits per byte)."""
    runs = client.search_runs(
        [experiment_id],
        filter_string="tags.`llmpipe.stage` = 'pretrain' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
    )
    found = {}
    for run in runs:
        arch = run.data.params.get("model.arch", "transformer")
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
        }
    return found


def write_report(results: dict[str, dict], out_dir: Path) -> Path:
    """reports/architectures.md with its table and reports/architectures.png with its two plots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("no finished pretraining runs in MLflow: run `llmpipe architectures queue --run` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    order = [a for a in OPTIONS if a in results]
    fig, (curves, speed) = plt.subplots(1, 2, figsize=(11, 4))
    for arch in order:
        tokens, bpb = zip(*results[arch]["curve"], strict=True) if results[arch]["curve"] else ((), ())
        curves.plot(tokens, bpb, marker="o", label=arch)
    curves.set(xlabel="training tokens", ylabel="validation bits per byte", title="Learning curves")
    curves.legend()
    speed.bar(order, [results[a]["tokens_per_s"] or 0 for a in order], color="tab:gray")
    speed.set(ylabel="training tokens per second", title="Throughput")
    fig.tight_layout()
    fig.savefig(out_dir / "architectures.png", dpi=120)
    plt.close(fig)

    rows = [
        f"| {a} | {r['params'] / 1e6:.2f}M | {r['params_non_embedding'] / 1e6:.2f}M | {r['tokens']:,} | "
        f"{r['val_bpb']:.3f} | {r['tokens_per_s']:,.0f} | {r['seconds']:.0f} |"
        for a, r in ((a, results[a]) for a in order)
    ]
    best = min(order, key=lambda a: results[a]["val_bpb"])
    fastest = max(order, key=lambda a: results[a]["tokens_per_s"] or 0)
    text = "\n".join(
        [
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
            f"Lowest bits per byte: {best}. Highest throughput: {fastest}.",
            "",
            "![validation bits per byte against training tokens, and throughput](architectures.png)",
            "",
            "MLflow runs: " + ", ".join(f"{a} `{results[a]['run_id']}`" for a in order),
            "",
        ]
    )
    report = out_dir / "architectures.md"
    report.write_text(text, encoding="utf-8")
    return report
