"""Sweep the pretraining recipe at equal wall time on a small CPU: which vocabulary, model shape,
context, batch, learning rate and optimizer give the lowest validation bits per byte when every run
gets the same seconds of 2-core training time.

The loss a recipe reaches after a given number of steps does not depend on the machine that computes
it; the number of steps a budget of seconds buys does. So the sweep is two commands:

  time   on the small CPU machine, alone: seconds per optimizer step of each shape (the training step
         of `pretrain`: micro-batches of trainer.micro_batch_size sequences, fp32, fused AdamW or
         Muon), written to a JSON table;
  train  anywhere (a GPU runs hundreds of these small models in minutes): each recipe for the
         number of steps its shape takes in --seconds on the timed machine, then scored on the whole
         validation split. One JSON line per recipe, written as each finishes.

`prepare` first tokenizes the shards of data/clean at each vocabulary size with the tokenize stage's
own code (splits by id hash, byte-level BPE on train), so bits per byte are comparable across sizes,
and records each size's bigram baseline (evaluation.bigram_token_nats), the figure `evaluate` sets
the model against.

  python benchmarks/recipe_sweep.py prepare --vocab 1024 2048 4096 --out /tmp/sweep
  python benchmarks/recipe_sweep.py time --tokens-root /tmp/sweep --grid benchmarks/recipe_grid.yaml
  python benchmarks/recipe_sweep.py train --tokens-root /tmp/sweep --grid benchmarks/recipe_grid.yaml \
      --times /tmp/sweep/times.json --seconds 240 --jobs 8 --out /tmp/sweep/results.jsonl
  python benchmarks/recipe_sweep.py show /tmp/sweep/results.jsonl

The training loop is LitLM's step without Lightning: the same network (model.py), seed, windows
(datasets.RandomWindows), parameter groups, schedule (lit_module.OptimConfig), clipping and optimizer
(lit_module.build_optimizer); on a GPU in fp32 with TF32 matrix products. A recipe that wins here is
then run through the real stage (`dvc repro pretrain`) and timed there.
"""

import argparse
import itertools
import json
import math
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np
import yaml

SHAPE_KEYS = ("vocab", "n_layer", "d_model", "n_head", "block_size")


def expand(grid: dict) -> list[dict]:
    """The recipes of a grid file: `base` settings, overridden by each entry of `sweeps`, where an
    entry's lists are crossed (a product) and its scalars apply to every recipe it makes; `shape`
    names an (n_layer, d_model, n_head) of the file's `shapes`. Duplicates are dropped; the order is
    the file's, so the first sweeps run first."""
    recipes, seen = [], set()
    for sweep in grid["sweeps"]:
        axes = {k: v if isinstance(v, list) else [v] for k, v in sweep.items()}
        for values in itertools.product(*axes.values()):
            recipe = {**grid["base"], **dict(zip(axes, values, strict=True))}
            if "shape" in recipe:  # a named (n_layer, d_model, n_head) of the grid's `shapes`
                recipe["n_layer"], recipe["d_model"], recipe["n_head"] = grid["shapes"][recipe.pop("shape")]
            key = json.dumps(recipe, sort_keys=True)
            if key not in seen:
                seen.add(key)
                recipes.append(recipe)
    return recipes


def shape_key(recipe: dict) -> str:
    return "-".join(f"{k}={recipe[k]}" for k in SHAPE_KEYS) + f"-{recipe.get('precision', '32-true')}"


def recipe_name(recipe: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(recipe.items()))


# ---- prepare ------------------------------------------------------------------------------------


def cmd_prepare(args):
    from llmpipe.data.token_files import load_tokens
    from llmpipe.evaluation.lm_metrics import bigram_token_nats, bits_per_byte
    from llmpipe.schema import DataHardware, Tokenize
    from llmpipe.tokenize.shards import tokenize_corpus

    docs = Path(args.docs).resolve()
    for vocab in args.vocab:
        root = Path(args.out) / f"v{vocab}"
        cfg = Tokenize(vocab, 2, 64_000_000, "hash", 0.05, 0.05)
        tokens = root / "data" / "tokens"
        tokenize_corpus(cfg, DataHardware("local", None, 2), docs, tokens, root / "data" / "work" / "tokenize")
        meta = json.loads((tokens / "meta.json").read_text())
        nats = bigram_token_nats(load_tokens(tokens, "train"), load_tokens(tokens, "val"), meta["vocab_size"])
        meta["bigram_val_bpb"] = bits_per_byte(float(nats.sum()), meta["splits"]["val"]["bytes"])
        (tokens / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        train_tokens = meta["splits"]["train"]["tokens"]
        print(f"vocab {vocab}: {train_tokens} train tokens, bigram val bpb {meta['bigram_val_bpb']:.4f}")


# ---- the training step ------------------------------------------------------------------------------


def build(recipe: dict, meta: dict, device):
    import torch

    from llmpipe.networks.transformer import GPT, GPTConfig

    torch.manual_seed(recipe.get("seed", 1337))
    cfg = GPTConfig(
        vocab_size=meta["vocab_size"],
        block_size=recipe["block_size"],
        n_layer=recipe["n_layer"],
        n_head=recipe["n_head"],
        n_kv_head=recipe.get("n_kv_head", recipe["n_head"]),
        d_model=recipe["d_model"],
        dropout=recipe.get("dropout", 0.0),
        tie_embeddings=True,
    )
    return cfg, GPT(cfg).to(device)


def optimizer_for(net, recipe: dict, steps: int, device):
    import torch

    from llmpipe.training.optimizers import OptimConfig, build_optimizer

    optim = OptimConfig(
        lr=recipe["lr"],
        max_steps=steps,
        warmup_steps=min(recipe["warmup_steps"], max(1, steps // 10)),
        min_lr_ratio=recipe["min_lr_ratio"],
        weight_decay=recipe["weight_decay"],
        betas=tuple(recipe.get("betas", (0.9, 0.95))),
        schedule=recipe.get("schedule", "cosine"),
        decay_fraction=recipe.get("decay_fraction", 0.2),
        optimizer=recipe.get("optimizer", "adamw"),
    )
    optimizer = build_optimizer(net, optim)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, optim.lr_multiplier)


def autocast(device, precision: str):
    """Lightning's precision setting as torch.autocast: bf16-mixed computes matrix products in
    bfloat16 (weights and optimizer stay float32), on a CPU as on a GPU."""
    import contextlib

    import torch

    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    assert precision == "32-true", precision
    return contextlib.nullcontext()


def train_step(net, optimizer, scheduler, batch, micro: int, grad_clip: float, precision: str = "32-true"):
    """One optimizer step over a batch (B, T + 1) of windows in micro-batches of `micro` rows, as
    Lightning's accumulation does it (each micro-batch's loss divided by their number)."""
    import torch

    parts = batch.split(micro)
    total = 0.0
    for part in parts:
        with autocast(batch.device, precision):
            loss = net(part[:, :-1], targets=part[:, 1:]) / len(parts)
        loss.backward()
        total += loss.detach()
    torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    scheduler.step()
    return total


# ---- time -------------------------------------------------------------------------------------------
# A step costs its forward and backward passes, which grow with the tokens of the batch, plus the
# clipping and the optimizer's update, which grow with the parameters: each is timed once per shape
# (the forward/backward at REFERENCE_TOKENS tokens), so a recipe's step time follows for any batch.

REFERENCE_TOKENS = 4096


def cmd_time(args):
    import torch

    recipes = expand(yaml.safe_load(Path(args.grid).read_text()))
    table = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    shapes = {shape_key({**r, "precision": args.precision}): r for r in recipes}
    todo = [k for k in shapes if k not in table]
    print(f"{len(shapes)} shapes, {len(todo)} to time, {torch.get_num_threads()} threads", flush=True)
    for key in todo:
        recipe = shapes[key]
        meta = json.loads(
            (Path(args.tokens_root) / f"v{recipe['vocab']}" / "data" / "tokens" / "meta.json").read_text()
        )
        table[key] = row = time_shape(recipe, meta, args)
        Path(args.out).write_text(json.dumps(table, indent=1) + "\n")
        print(f"passes {row['passes']:.4f} s, adamw {row['adamw']:.4f} s, muon {row['muon']:.4f} s  {key}", flush=True)


def time_shape(recipe: dict, meta: dict, args) -> dict:
    """Seconds of one step's forward and backward passes at REFERENCE_TOKENS tokens, and of the
    clipping and update with each optimizer, on this machine."""
    import torch

    device = torch.device("cpu")
    cfg, net = build(recipe, meta, device)
    batch = torch.randint(0, meta["vocab_size"], (REFERENCE_TOKENS // cfg.block_size, cfg.block_size + 1))
    optimizers = {
        name: optimizer_for(net, {**recipe, "optimizer": name, "lr": 1e-4}, 1000, device) for name in ("adamw", "muon")
    }

    def passes():
        for part in batch.split(args.micro_batch):
            with autocast(device, args.precision):
                loss = net(part[:, :-1], targets=part[:, 1:])
            loss.backward()

    def update(name):
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer, scheduler = optimizers[name]
        optimizer.step()
        scheduler.step()

    row = {"params_non_embedding": net.num_params()}
    for name, work in (("passes", passes), ("adamw", lambda: update("adamw")), ("muon", lambda: update("muon"))):
        for _ in range(args.warmup):
            work()
        start = time.perf_counter()
        for _ in range(args.steps):
            work()
        row[name] = (time.perf_counter() - start) / args.steps
    return row


def step_seconds(recipe: dict, times: dict) -> float:
    """Seconds per optimizer step of a recipe on the timed machine."""
    key = shape_key(recipe)
    if key not in times:
        raise SystemExit(f"no CPU time for shape {key}: run `time` with this grid first")
    row = times[key]
    return row["passes"] * recipe["batch_tokens"] / REFERENCE_TOKENS + row[recipe.get("optimizer", "adamw")]


# ---- train ------------------------------------------------------------------------------------------


def val_bpb(net, tokens: np.ndarray, block_size: int, n_bytes: int) -> float:
    from llmpipe.evaluation.lm_metrics import bits_per_byte, token_nats

    net.eval()
    nats = token_nats(net, tokens, block_size, batch_size=64)
    net.train()
    return bits_per_byte(float(nats.sum()), n_bytes)


def train_one(recipe: dict, steps: int, tokens_root: Path, device_name: str) -> dict:
    import torch

    from llmpipe.data.token_files import load_tokens
    from llmpipe.data.windows import RandomWindows

    device = torch.device(device_name)
    tokens_dir = tokens_root / f"v{recipe['vocab']}" / "data" / "tokens"
    meta = json.loads((tokens_dir / "meta.json").read_text())
    cfg, net = build(recipe, meta, device)
    optimizer, scheduler = optimizer_for(net, recipe, steps, device)
    rows = recipe["batch_tokens"] // recipe["block_size"]
    windows = RandomWindows(load_tokens(tokens_dir, "train"), cfg.block_size, steps * rows, recipe.get("seed", 1337))
    start = time.perf_counter()
    losses = []
    for step in range(steps):
        batch = torch.stack([torch.cat([x, y[-1:]]) for x, y in (windows[step * rows + i] for i in range(rows))])
        loss = train_step(net, optimizer, scheduler, batch.to(device), rows, 1.0, recipe.get("precision", "32-true"))
        if step % 50 == 0 or step == steps - 1:
            losses.append((step, float(loss)))
            if not math.isfinite(losses[-1][1]):
                break
    seconds = time.perf_counter() - start
    val = meta["splits"]["val"]
    bpb = (
        val_bpb(net, load_tokens(tokens_dir, "val"), cfg.block_size, val["bytes"])
        if math.isfinite(losses[-1][1])
        else float("nan")
    )
    return {
        **recipe,
        "recipe": recipe_name(recipe),
        "steps": steps,
        "tokens": steps * rows * cfg.block_size,
        "epochs": steps * rows * cfg.block_size / meta["splits"]["train"]["tokens"],
        "params_non_embedding": net.num_params(),
        "train_loss": losses[-1][1],
        "val_bpb": bpb,
        "bigram_val_bpb": meta["bigram_val_bpb"],
        "device_seconds": seconds,
    }


def worker(queue, results, tokens_root, device_name, threads):
    import torch

    torch.set_num_threads(threads)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    while True:
        item = queue.get()
        if item is None:
            return
        recipe, steps = item
        try:
            results.put(train_one(recipe, steps, tokens_root, device_name))
        except Exception as err:  # a recipe that cannot run is recorded, not fatal to the sweep
            results.put(
                {**recipe, "recipe": recipe_name(recipe), "steps": steps, "error": f"{type(err).__name__}: {err}"}
            )


def steps_for(recipe: dict, times: dict, seconds: float) -> int:
    if "steps" in recipe:
        return recipe["steps"]
    if "tokens" in recipe:
        return recipe["tokens"] // recipe["batch_tokens"]
    return max(1, int(recipe.get("seconds", seconds) / step_seconds(recipe, times)))


def cmd_train(args):
    recipes = expand(yaml.safe_load(Path(args.grid).read_text()))
    times = json.loads(Path(args.times).read_text()) if args.times else {}
    done = set()  # recipes of an earlier (interrupted) run into the same file are not trained again
    if Path(args.out).exists():
        done = {json.loads(line).get("recipe") for line in Path(args.out).read_text().splitlines()}
    todo = [(r, steps_for(r, times, args.seconds)) for r in recipes if recipe_name(r) not in done]
    print(f"{len(recipes)} recipes, {len(todo)} to train on {args.device} with {args.jobs} jobs", flush=True)
    ctx = mp.get_context("spawn")
    queue, results = ctx.Queue(), ctx.Queue()
    for item in todo:
        queue.put(item)
    for _ in range(args.jobs):
        queue.put(None)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    procs = [
        ctx.Process(target=worker, args=(queue, results, Path(args.tokens_root), args.device, threads))
        for _ in range(args.jobs)
    ]
    for p in procs:
        p.start()
    started = time.perf_counter()
    with open(args.out, "a") as out:
        for n in range(len(todo)):
            row = results.get()
            out.write(json.dumps(row) + "\n")
            out.flush()
            figure = f"val bpb {row['val_bpb']:.4f}" if "val_bpb" in row else row["error"]
            print(f"[{n + 1}/{len(todo)} {time.perf_counter() - started:.0f}s] {figure}  {row['recipe']}", flush=True)
    for p in procs:
        p.join()


def cmd_show(args):
    rows = [json.loads(line) for path in args.results for line in Path(path).read_text().splitlines()]
    rows = [r for r in rows if "val_bpb" in r and math.isfinite(r["val_bpb"])]
    rows.sort(key=lambda r: r["val_bpb"])
    keys = [k for k in rows[0] if k not in ("recipe", "train_loss", "device_seconds", "bigram_val_bpb")] if rows else []
    varying = [k for k in keys if len({json.dumps(r.get(k)) for r in rows}) > 1]
    print(" ".join(f"{k:>12}" for k in varying) + f" {'bigram':>8}")
    for r in rows[: args.top]:
        print(
            " ".join(f"{str(round(r[k], 4) if isinstance(r[k], float) else r[k]):>12}" for k in varying)
            + f" {r['bigram_val_bpb']:>8.4f}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = parser.add_subparsers(dest="verb", required=True)
    prepare = verbs.add_parser("prepare", help="tokenize data/clean at each vocabulary size")
    prepare.add_argument("--docs", default="data/clean", help="the shards of data/clean")
    prepare.add_argument("--vocab", type=int, nargs="+", required=True)
    prepare.add_argument("--out", required=True)
    timing = verbs.add_parser("time", help="seconds per optimizer step of each shape, on this CPU")
    timing.add_argument("--tokens-root", required=True)
    timing.add_argument("--grid", required=True)
    timing.add_argument("--micro-batch", type=int, default=16, help="trainer.micro_batch_size")
    timing.add_argument("--warmup", type=int, default=3)
    timing.add_argument("--steps", type=int, default=8)
    timing.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    timing.add_argument("--out", default="times.json")
    train = verbs.add_parser("train", help="train each recipe for its share of --seconds and score it")
    train.add_argument("--tokens-root", required=True)
    train.add_argument("--grid", required=True)
    train.add_argument("--times", help="the `time` table; recipes without `steps` or `tokens` need it")
    train.add_argument("--seconds", type=float, default=240.0, help="training time on the timed machine")
    train.add_argument("--device", default="cuda")
    train.add_argument("--jobs", type=int, default=1)
    train.add_argument("--out", default="results.jsonl")
    show = verbs.add_parser("show", help="the results, best first")
    show.add_argument("results", nargs="+")
    show.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    {"prepare": cmd_prepare, "time": cmd_time, "train": cmd_train, "show": cmd_show}[args.verb](args)


if __name__ == "__main__":
    main()
