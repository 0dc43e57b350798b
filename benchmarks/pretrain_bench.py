"""Training throughput of llmpipe's pretraining step, against references run in the same process.

Three runs at one shape (layers, heads, width, context, batch, vocabulary), one after another:
  llmpipe   the real engine: LitLM through the Lightning Trainer that `pretrain` builds, fed by the
            stage's own loader (RandomWindows + ResumableLoader), with its logging and checks;
  plain     the same model and optimizer in a bare PyTorch loop: what Lightning and our checks cost;
  nanogpt   with --nanogpt PATH, nanoGPT's model.py from a checkout (fetched for benchmarking only,
            never committed) in its train.py's loop: forward, backward, clip, fused AdamW step.
Each is timed over --steps optimizer steps after --warmup steps (compilation happens in the
warmup), with the device synchronized at both ends. Tokens are random: speed does not depend on
them. Prints tokens/s, MFU and the ratios against llmpipe.

  python benchmarks/pretrain_bench.py --preset cpu-small --nanogpt ../nanoGPT
  python benchmarks/pretrain_bench.py --preset gpt2 --nanogpt ../nanoGPT      # on a GPU
"""

import argparse
import contextlib
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from llmpipe import typed_params
from llmpipe.config import compose
from llmpipe.data.windows import RandomWindows
from llmpipe.networks.transformer import GPT, GPTConfig
from llmpipe.schema import Hardware, Pretrain
from llmpipe.training.fit import Run, fit
from llmpipe.training.lit_module import LitLM, OptimConfig
from llmpipe.training.throughput import SpeedMonitor, peak_flops

PRESETS = {
    # nanoGPT's GPT-2 small (config/train_gpt2.py) at batch 16 x 1024 tokens, bf16, compiled.
    "gpt2": dict(
        n_layer=12, n_head=12, d_model=768, block_size=1024, batch=16, vocab=50304,
        accelerator="gpu", precision="bf16-mixed", compile=True, warmup=20, steps=50,
    ),
    # nanoGPT README's CPU run (shakespeare_char: 65 characters) in eager mode, as that command has it.
    "cpu-small": dict(
        n_layer=4, n_head=4, d_model=128, block_size=64, batch=12, vocab=65,
        accelerator="cpu", precision="32-true", compile=False, warmup=20, steps=300,
    ),
    # llmpipe's default CPU run (conf/model/default.yaml, conf/pretrain/default.yaml's 4096-token
    # batch, conf/hardware/cpu.yaml's bf16-mixed; the tokenizer's 4096 ids); --precision 32-true for fp32.
    "cpu-default": dict(
        n_layer=4, n_head=4, d_model=256, block_size=256, batch=16, vocab=4096,
        accelerator="cpu", precision="bf16-mixed", compile=False, warmup=5, steps=40,
    ),
}  # fmt: skip
LR, BETAS, WEIGHT_DECAY, GRAD_CLIP = 6e-4, (0.9, 0.95), 0.1, 1.0
# The default config's hardware and pretrain sections, which each preset overrides where it differs.
DEFAULTS = yaml.safe_load(compose(conf_dir=Path(__file__).resolve().parents[1] / "conf"))
HARDWARE, PRETRAIN = DEFAULTS["hardware"], DEFAULTS["pretrain"]


def synchronize(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, precision: str):
    if precision.startswith("bf16"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def random_batches(tokens: np.ndarray, block_size: int, batch: int, device: torch.device, seed: int = 0):
    """Endless (x, y) batches at random offsets, moved to the device the way nanoGPT's get_batch does
    (pinned memory, non-blocking copy)."""
    rng = np.random.default_rng(seed)
    while True:
        starts = rng.integers(0, len(tokens) - block_size - 1, batch)
        chunk = torch.from_numpy(np.stack([tokens[s : s + block_size + 1] for s in starts]).astype(np.int64))
        x, y = chunk[:, :-1].contiguous(), chunk[:, 1:].contiguous()
        if device.type == "cuda":
            x, y = x.pin_memory().to(device, non_blocking=True), y.pin_memory().to(device, non_blocking=True)
        yield x, y


PROFILE = False  # --profile: print the top kernels of a few steps after the timed ones
SYNC_DEBUG = False  # --sync-debug: report where llmpipe's timed steps wait for the GPU


def report_syncs():
    """Print each distinct place that waits for the GPU (torch's sync debug mode), with its stack."""
    import traceback
    import warnings

    seen = set()

    def show(message, category, filename, lineno, file=None, line=None):
        stack = "".join(traceback.format_stack(limit=12)[:-2])
        if stack not in seen:
            seen.add(stack)
            print(f"SYNC: {message}\n{stack}", flush=True)

    warnings.showwarning = show
    warnings.simplefilter("always")
    torch.cuda.set_sync_debug_mode("warn")


def time_loop(step, batches, warmup: int, steps: int, device: torch.device) -> float:
    """Seconds for `steps` calls of step(x, y) after `warmup` untimed ones."""
    for _ in range(warmup):
        step(*next(batches))
    if PROFILE:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                step(*next(batches))
            synchronize(device)
        sort = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=sort, row_limit=25, max_name_column_width=70), flush=True)
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step(*next(batches))
    synchronize(device)
    return time.perf_counter() - start


def adamw(net: torch.nn.Module, device: torch.device) -> torch.optim.Optimizer:
    decay = [p for p in net.parameters() if p.dim() >= 2]
    no_decay = [p for p in net.parameters() if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": WEIGHT_DECAY}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=LR, betas=BETAS, fused=True)


def run_plain(cfg: GPTConfig, p: dict, tokens: np.ndarray, device: torch.device) -> float:
    torch.manual_seed(0)
    net = GPT(cfg).to(device)
    if p["compile"]:
        net.compile(mode=p.get("compile_mode"))
    optimizer = adamw(net, device)

    def step(x, y):
        with autocast(device, p["precision"]):
            loss = net(x, targets=y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    batches = random_batches(tokens, cfg.block_size, p["batch"], device)
    return time_loop(step, batches, p["warmup"], p["steps"], device)


class StepClock(Callback):
    """Wall-clock seconds from the start of step `warmup` to the end of training."""

    def __init__(self, warmup: int):
        self.warmup, self.start, self.seconds = warmup, None, None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if trainer.global_step == self.warmup and self.start is None:
            synchronize(module.device)
            self.start = time.perf_counter()
            if SYNC_DEBUG and module.device.type == "cuda":
                report_syncs()

    def on_train_end(self, trainer, module):
        if module.device.type == "cuda":
            torch.cuda.set_sync_debug_mode(0)
        synchronize(module.device)
        self.seconds = time.perf_counter() - self.start


def run_llmpipe(cfg: GPTConfig, p: dict, tokens: np.ndarray, device: torch.device, workers: int) -> float:
    """Our training step as the pretrain stage runs it: through training.fit, the one entry point."""
    torch.manual_seed(0)
    total = p["warmup"] + p["steps"]
    hardware = typed_params.build(
        {**HARDWARE, "accelerator": p["accelerator"], "precision": p["precision"], "micro_batch_size": p["batch"],
         "num_workers": workers, "compile": p["compile"]},
        Hardware,
    )  # fmt: skip
    module = LitLM(
        GPT(cfg),
        OptimConfig(
            lr=LR,
            max_steps=total,
            warmup_steps=10,
            min_lr_ratio=0.1,
            weight_decay=WEIGHT_DECAY,
            betas=BETAS,
            schedule="cosine",
            decay_fraction=0.0,
            optimizer="adamw",
        ),
    )
    clock = StepClock(p["warmup"])
    speed = SpeedMonitor(p["batch"] * cfg.block_size, cfg.flops_per_token())
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(
            train_set=RandomWindows(tokens, cfg.block_size, total * p["batch"], seed=0),
            batch_size=p["batch"],
            steps=total,
            settings=typed_params.build({**PRETRAIN, "val_every": total + 1, "grad_clip": GRAD_CLIP}, Pretrain),
            checkpoint_dir=Path(tmp) / "checkpoints",
            curves_dir=Path(tmp) / "curves",
            callbacks=[clock, speed],
        )
        fit(module, run, hardware)
    return clock.seconds


def run_nanogpt(path: Path, p: dict, tokens: np.ndarray, device: torch.device) -> tuple[float, int]:
    sys.path.insert(0, str(path))
    import model as nanogpt  # nanoGPT's model.py

    torch.manual_seed(0)
    conf = nanogpt.GPTConfig(
        block_size=p["block_size"], vocab_size=p["vocab"], n_layer=p["n_layer"], n_head=p["n_head"],
        n_embd=p["d_model"], dropout=0.0, bias=False,
    )  # fmt: skip
    net = nanogpt.GPT(conf).to(device)
    params = sum(q.numel() for q in net.parameters())
    optimizer = net.configure_optimizers(WEIGHT_DECAY, LR, BETAS, device.type)
    model = torch.compile(net) if p["nanogpt_compile"] else net

    def step(x, y):
        with autocast(device, p["precision"]):
            _, loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), GRAD_CLIP)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    batches = random_batches(tokens, p["block_size"], p["batch"], device)
    return time_loop(step, batches, p["warmup"], p["steps"], device), params


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default="cpu-small")
    parser.add_argument("--nanogpt", type=Path, help="a nanoGPT checkout to run beside ours")
    parser.add_argument("--steps", type=int, help="timed steps (default: the preset's)")
    parser.add_argument("--warmup", type=int, help="untimed steps first (default: the preset's)")
    parser.add_argument("--precision", help="every run's precision (default: the preset's), e.g. 32-true")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile llmpipe and plain")
    parser.add_argument("--nanogpt-compile", action=argparse.BooleanOptionalAction, help="torch.compile nanoGPT")
    parser.add_argument("--workers", type=int, help="llmpipe loader workers (default: 2 on GPU, 0 on CPU)")
    parser.add_argument("--repeat", type=int, default=1, help="time every run this many times")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--profile", action="store_true", help="print the top kernels of plain and nanoGPT")
    parser.add_argument(
        "--sdpa",
        choices=["default", "flash", "cudnn", "efficient"],
        default="default",
        help="attention kernel for every run (default: PyTorch's choice)",
    )
    parser.add_argument("--plain-compile-mode", help="torch.compile mode for the plain run, e.g. max-autotune")
    parser.add_argument("--only", nargs="+", choices=["llmpipe", "plain", "nanogpt"], help="run only these")
    parser.add_argument("--sync-debug", action="store_true", help="report where llmpipe's steps wait for the GPU")
    args = parser.parse_args()
    global PROFILE, SYNC_DEBUG
    PROFILE, SYNC_DEBUG = args.profile, args.sync_debug

    p = dict(PRESETS[args.preset])
    p["steps"], p["warmup"] = args.steps or p["steps"], args.warmup or p["warmup"]
    p["compile"] = p["compile"] if args.compile is None else args.compile
    p["precision"] = args.precision or p["precision"]
    p["nanogpt_compile"] = p["compile"] if args.nanogpt_compile is None else args.nanogpt_compile
    device = torch.device("cuda" if p["accelerator"] == "gpu" else "cpu")
    workers = args.workers if args.workers is not None else (2 if device.type == "cuda" else 0)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True  # as nanoGPT's train.py
    cfg = GPTConfig(
        vocab_size=p["vocab"], block_size=p["block_size"], n_layer=p["n_layer"], n_head=p["n_head"],
        n_kv_head=p["n_head"], d_model=p["d_model"], tie_embeddings=True, dropout=0.0)  # fmt: skip
    tokens = np.random.default_rng(0).integers(0, p["vocab"], 4_000_000).astype(np.uint16)
    tokens_per_step = p["batch"] * p["block_size"]
    peak = peak_flops(device, p["precision"])
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU x{torch.get_num_threads()}"
    print(f"{args.preset}: {json.dumps(p)}\ndevice: {device_name}, torch {torch.__version__}", flush=True)

    runs = {
        "llmpipe": lambda: run_llmpipe(cfg, p, tokens, device, workers),
        "plain": lambda: run_plain(cfg, p, tokens, device),
    }
    if args.nanogpt:
        runs["nanogpt"] = lambda: run_nanogpt(args.nanogpt, p, tokens, device)[0]
    if args.only:
        runs = {k: v for k, v in runs.items() if k in args.only}
    p["compile_mode"] = args.plain_compile_mode
    if args.sdpa != "default":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        backend = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION,
                   "efficient": SDPBackend.EFFICIENT_ATTENTION}[args.sdpa]  # fmt: skip
        sdpa_kernel(backend).__enter__()  # for the whole process
    results = {}
    for _ in range(args.repeat):
        for name, fn in runs.items():
            seconds = fn()
            results.setdefault(name, []).append(seconds)
            print(f"  {name}: {p['steps'] / seconds:.2f} steps/s", flush=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()

    print(f"\n{'run':<10}{'steps/s':>10}{'tokens/s':>12}{'MFU':>8}{'llmpipe / run':>16}")
    best = {name: min(times) for name, times in results.items()}
    base = best.get("llmpipe", next(iter(best.values())))
    summary = {}
    for name, seconds in best.items():
        steps_per_s = p["steps"] / seconds
        tokens_per_s = steps_per_s * tokens_per_step
        mfu = tokens_per_s * cfg.flops_per_token() / peak if peak else None
        ratio = best[name] / base
        summary[name] = {
            "steps_per_s": steps_per_s,
            "tokens_per_s": tokens_per_s,
            "mfu": mfu,
            "llmpipe_over_run": ratio,
            "seconds": results[name],
        }
        mfu_text = f"{mfu:.1%}" if mfu else "-"
        print(f"{name:<10}{steps_per_s:>10.2f}{tokens_per_s:>12.0f}{mfu_text:>8}{ratio:>15.2f}x")
    print(
        f"(MFU from llmpipe's FLOPs per token, {cfg.flops_per_token() / 1e6:.1f} M, for every run;"
        f" fastest of {args.repeat})"
    )
    if args.json:
        args.json.write_text(json.dumps({"preset": args.preset, "device": device_name, **summary}, indent=2))


if __name__ == "__main__":
    main()
