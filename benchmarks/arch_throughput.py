"""Training throughput of the Transformer and the recurrent models at their comparison sizes
(conf/model/{default,rnn,lstm,gru}.yaml), same batch and context, on whatever device is here.

A recurrent layer must finish position t before t + 1; a Transformer layer computes all positions
at once. On a CPU with two cores that hardly matters; on a GPU it is most of the difference.

  python benchmarks/arch_throughput.py [--batch 64] [--steps 20]
"""

import argparse
import contextlib
import time

import torch

from llmpipe.families import language_model, model_config

SIZES = {  # the comparison sizes, as in conf/model (vocabulary of the default tokenizer)
    "transformer": {"arch": "transformer", "n_layer": 4, "n_head": 4, "n_kv_head": 4, "d_model": 256},
    "rnn": {"arch": "rnn", "n_layer": 2, "d_model": 896},
    "lstm": {"arch": "lstm", "n_layer": 2, "d_model": 448},
    "gru": {"arch": "gru", "n_layer": 2, "d_model": 512},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU x{torch.get_num_threads()}"
    print(f"device: {name}, torch {torch.__version__}, batch {args.batch} x {args.block_size} tokens")
    print(f"{'model':<12}{'params':>10}{'tokens/s':>12}{'vs transformer':>16}")
    base = None
    for arch, size in SIZES.items():
        section = {"block_size": args.block_size, "tie_embeddings": True, "dropout": 0.0, **size}
        cfg = model_config(section, vocab_size=4096)
        net = language_model(cfg).to(device)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, fused=True)
        x = torch.randint(0, 4096, (args.batch, args.block_size + 1), device=device)
        for step in range(args.warmup + args.steps):
            if step == args.warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
            with autocast:
                loss = net(x[:, :-1], targets=x[:, 1:])
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        tokens_per_s = args.steps * args.batch * args.block_size / (time.perf_counter() - start)
        base = base or tokens_per_s
        print(
            f"{arch:<12}{cfg.num_params() / 1e6:>9.2f}M{tokens_per_s:>12,.0f}{tokens_per_s / base:>15.2f}x", flush=True
        )


if __name__ == "__main__":
    main()
