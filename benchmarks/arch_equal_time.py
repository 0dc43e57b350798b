"""The Transformer and the recurrent models given the same wall-clock time on one device, on the
pipeline's own tokens: what each learns per second, where the architecture comparison
(llmpipe architectures) gives each the same number of tokens.

Each model (its comparison size from conf/model/{default,rnn,lstm,gru}.yaml) trains with
pretraining's recipe (conf/pretrain/default.yaml: AdamW, warmup, cosine decay to min_lr_ratio,
gradient clipping), except that the run length is --seconds of training time and the cosine follows
the elapsed fraction of it. Validation bits per byte on the whole val split are taken every
--eval-every seconds with the clock stopped. bf16 autocast on a GPU, fp32 on a CPU; no compilation.
It also times a training step at --block-sizes with random tokens (throughput alone).

  python benchmarks/arch_equal_time.py --seconds 60 --json reports/architectures_gpu.json   # on a GPU

The JSON is what `llmpipe architectures report` reads for its "same time on a GPU" part.
"""

import argparse
import contextlib
import datetime
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from llmpipe.data.token_files import load_tokens
from llmpipe.evaluation.lm_metrics import bits_per_byte, token_nats
from llmpipe.families import language_model, model_config
from llmpipe.studies.architectures import OPTIONS


def model_section(option: str, conf: Path) -> dict:
    """conf/model/<option>.yaml over conf/model/default.yaml (what Hydra composes for these files,
    read without Hydra so the script runs where only torch is installed)."""
    section = yaml.safe_load((conf / "model" / "default.yaml").read_text())
    if option != "default":
        override = yaml.safe_load((conf / "model" / f"{option}.yaml").read_text())
        override.pop("defaults", None)
        section.update(override)
    return section


def synchronize(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast(device: torch.device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def adamw(net: torch.nn.Module, recipe: dict, device: torch.device) -> torch.optim.Optimizer:
    """Decay on matrices only, as LitLM's optimizer (norm gains and biases are left alone)."""
    params = [p for p in net.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": recipe["weight_decay"]},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=recipe["lr"], betas=tuple(recipe["betas"]), fused=device.type == "cuda")


def lr_at(step: int, fraction: float, recipe: dict) -> float:
    """Linear warmup over warmup_steps, then cosine from lr to lr * min_lr_ratio over the time budget."""
    peak = recipe["lr"]
    if step < recipe["warmup_steps"]:
        return peak * (step + 1) / recipe["warmup_steps"]
    floor = peak * recipe["min_lr_ratio"]
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))


def val_bpb(net, val_tokens: np.ndarray, block_size: int, val_bytes: int) -> float:
    net.eval()
    nats = token_nats(net, val_tokens, block_size, batch_size=64)
    net.train()
    return bits_per_byte(float(nats.sum()), val_bytes)


def train_for(arch: str, section: dict, data: dict, args, recipe: dict, device: torch.device) -> dict:
    """Train one model for args.seconds of training time; its validation curve and throughput."""
    torch.manual_seed(0)
    cfg = model_config({**section, "dropout": 0.0}, data["vocab_size"])
    net = language_model(cfg).to(device)
    optimizer = adamw(net, recipe, device)
    block, batch = cfg.block_size, args.batch_tokens // cfg.block_size
    train = data["train"]
    offsets = torch.arange(block + 1, device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    curve = [(0.0, 0, val_bpb(net, data["val"], block, data["val_bytes"]))]
    trained, step, next_eval = 0.0, 0, args.eval_every
    while trained < args.seconds:
        synchronize(device)
        start = time.perf_counter()
        while trained + (time.perf_counter() - start) < min(next_eval, args.seconds):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, (trained + time.perf_counter() - start) / args.seconds, recipe)
            starts = torch.randint(0, len(train) - block - 1, (batch, 1), device=device, generator=generator)
            window = train[starts + offsets]
            with autocast(device):
                loss = net(window[:, :-1], targets=window[:, 1:])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), recipe["grad_clip"])
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % 10 == 0:
                synchronize(device)  # keep the clock honest: queued GPU work counts when it runs
        synchronize(device)
        trained += time.perf_counter() - start
        next_eval += args.eval_every
        curve.append((round(trained, 2), step * batch * block, val_bpb(net, data["val"], block, data["val_bytes"])))
        print(f"  {arch}: {trained:6.1f} s, {step} steps, val bpb {curve[-1][2]:.3f}", flush=True)
    tokens = step * batch * block
    return {
        "params": cfg.num_params(),
        "steps": step,
        "tokens": tokens,
        "tokens_per_s": tokens / trained,
        "best_val_bpb": min(bpb for _, _, bpb in curve),
        "final_val_bpb": curve[-1][2],
        "curve": curve,  # (training seconds, training tokens, val bits per byte)
    }


def throughput(section: dict, vocab_size: int, block_size: int, batch_tokens: int, device: torch.device) -> float:
    """Training tokens per second of one model at this context length (random tokens, 5 warm-up
    steps, 20 timed)."""
    torch.manual_seed(0)
    cfg = model_config({**section, "block_size": block_size, "dropout": 0.0}, vocab_size)
    net = language_model(cfg).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-4, fused=device.type == "cuda")
    x = torch.randint(0, vocab_size, (max(1, batch_tokens // block_size), block_size + 1), device=device)
    for step in range(25):
        if step == 5:
            synchronize(device)
            start = time.perf_counter()
        with autocast(device):
            loss = net(x[:, :-1], targets=x[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    synchronize(device)
    return 20 * x.shape[0] * block_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=Path, default=Path("data/tokens"), help="tokenize's output folder")
    parser.add_argument("--conf", type=Path, default=Path("conf"))
    parser.add_argument("--seconds", type=float, default=60.0, help="training time per model")
    parser.add_argument("--eval-every", type=float, help="seconds of training between validations (default: 1/10)")
    parser.add_argument("--batch-tokens", type=int, default=65536, help="tokens per optimizer step")
    parser.add_argument("--block-sizes", type=int, nargs="*", default=[256, 1024], help="throughput at these")
    parser.add_argument("--archs", nargs="+", choices=list(OPTIONS), default=list(OPTIONS))
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    args.eval_every = args.eval_every or args.seconds / 10
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not (args.tokens / "meta.json").exists():
        sys.exit(f"{args.tokens}/meta.json not found: run `dvc repro tokenize` first (or pass --tokens)")
    meta = json.loads((args.tokens / "meta.json").read_text())
    recipe = yaml.safe_load((args.conf / "pretrain" / "default.yaml").read_text())
    data = {
        "train": torch.from_numpy(np.asarray(load_tokens(args.tokens, "train"), dtype=np.int64)).to(device),
        "val": load_tokens(args.tokens, "val"),
        "val_bytes": meta["splits"]["val"]["bytes"],
        "vocab_size": meta["vocab_size"],
    }
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU x{torch.get_num_threads()}"
    print(f"device: {name}, torch {torch.__version__}; {args.seconds:g} s each, {args.batch_tokens} tokens/step")

    sections = {arch: model_section(OPTIONS[arch], args.conf) for arch in args.archs}
    speed = {
        str(block): {
            arch: throughput(s, meta["vocab_size"], block, args.batch_tokens, device) for arch, s in sections.items()
        }
        for block in args.block_sizes
    }
    runs = {arch: train_for(arch, s, data, args, recipe, device) for arch, s in sections.items()}

    print(f"\n{'model':<12}{'params':>9}{'tokens/s':>12}{'tokens':>13}{'best val bpb':>14}")
    for arch, r in runs.items():
        size, speed_text = f"{r['params'] / 1e6:>8.2f}M", f"{r['tokens_per_s']:>12,.0f}"
        print(f"{arch:<12}{size}{speed_text}{r['tokens']:>13,}{r['best_val_bpb']:>14.3f}")
    for block, by_arch in speed.items():
        print(f"throughput at context {block}: " + ", ".join(f"{a} {v:,.0f} tokens/s" for a, v in by_arch.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = {
            "device": name,
            "torch": torch.__version__,
            "date": datetime.date.today().isoformat(),
            "command": "python benchmarks/arch_equal_time.py "
            + " ".join(sys.argv[1:]).replace(f" --json {args.json}", ""),
            "seconds": args.seconds,
            "batch_tokens": args.batch_tokens,
            "runs": runs,
            "throughput": speed,
        }
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
