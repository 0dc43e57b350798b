"""`llmpipe <verb>`: the command line. Each verb calls the same library code as the DVC stages."""

import argparse
import importlib
import sys

from llmpipe.stages import STAGES


def cmd_compose(args) -> int:
    from llmpipe.config import write_params

    path = write_params(args.overrides, args.output, args.conf)
    print(f"wrote {path} from {args.conf}/ {' '.join(args.overrides)}".rstrip())
    return 0


def cmd_run(args) -> int:
    importlib.import_module(f"llmpipe.stages.{args.stage}").main()
    return 0


def cmd_generate(args) -> int:
    import torch

    from llmpipe.export import load_model_dir
    from llmpipe.tokenizer import EOT, special_id

    net, config, tokenizer = load_model_dir(args.model)
    if config["kind"] != "causal_lm":
        raise ValueError(f"{args.model} holds a {config['kind']}, not a language model")
    ids = torch.tensor([tokenizer.encode(args.prompt).ids])
    generator = torch.Generator().manual_seed(args.seed)
    out = net.generate(ids, args.max_new_tokens, args.temperature, args.top_k, special_id(tokenizer, EOT), generator)
    print(args.prompt + tokenizer.decode(out[0, ids.shape[1] :].tolist()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmpipe", description="Raw text to a trained, evaluated, registered language model."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    compose = verbs.add_parser("compose", help="compose conf/ into params.yaml (what `dvc repro` reads)")
    compose.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=tiny model.n_layer=6")
    compose.add_argument("-o", "--output", default="params.yaml", help="file to write (default: params.yaml)")
    compose.add_argument("--conf", default="conf", help="Hydra config folder (default: conf)")
    compose.set_defaults(func=cmd_compose)

    run = verbs.add_parser("run", help="run one pipeline stage outside DVC, exactly as `dvc repro` would")
    run.add_argument("stage", choices=STAGES)
    run.set_defaults(func=cmd_run)

    generate = verbs.add_parser("generate", help="sample text from an exported language model directory")
    generate.add_argument("model", help="model directory, e.g. models/pretrain")
    generate.add_argument("prompt")
    generate.add_argument("--max-new-tokens", type=int, default=100)
    generate.add_argument("--temperature", type=float, default=0.8, help="0 for greedy decoding")
    generate.add_argument("--top-k", type=int, default=50)
    generate.add_argument("--seed", type=int, default=0)
    generate.set_defaults(func=cmd_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as err:
        print(f"llmpipe {args.verb}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
