"""`llmpipe <verb>`: the command line. Each verb calls the same library code as the DVC stages."""

import argparse
import importlib
import json
import sys
from pathlib import Path

from llmpipe.registry import store
from llmpipe.stage_client import repro
from llmpipe.stages import PER_TASK, STAGES


def cmd_compose(args) -> int:
    from llmpipe import dvc_yaml
    from llmpipe.config import write_params

    path = write_params(args.overrides, args.output, args.conf)
    print(f"wrote {path} from {args.conf}/ {' '.join(args.overrides)}".rstrip())
    if path.name == "params.yaml":  # a project's: its dvc.yaml too, from the stages' declarations
        print(f"wrote {dvc_yaml.write(path.parent)} from the stages' declarations (src/llmpipe/stages/)")
    return 0


def cmd_run(args) -> int:
    from llmpipe.runner import stage_main

    make_stage = importlib.import_module(f"llmpipe.stages.{args.stage}").stage
    stage_main(make_stage, targets=args.stage in PER_TASK, args=[args.target] if args.target else [])
    return 0


def resolve_model_dir(model: str, scratch: str):
    """A local export directory, or one copied from the registry into scratch for a models:/ or
    runs:/ URI (its files checked against the SHA-256 tags of its version)."""
    if model.startswith(("models:/", "runs:/")):
        from llmpipe.registry.model_registry import download_model_dir

        store.open_registry()
        return download_model_dir(model, scratch)
    return model


def cmd_serve(args) -> int:
    """A registered model (its files checked against its SHA-256 tags) or an export directory over
    HTTP (registry/server.py), within params.yaml's `serve` limits. It is loaded from a checked copy,
    which is gone before the server starts."""
    import tempfile

    from llmpipe.registry.limits import serve_limits
    from llmpipe.registry.server import serve
    from llmpipe.registry.serving import load_export

    limits = serve_limits()  # first: a bad `serve` section is reported before the model loads
    with tempfile.TemporaryDirectory(prefix="llmpipe-model-") as scratch:
        model = load_export(resolve_model_dir(args.model, scratch), limits)
    print(f"serving {args.model} on http://{args.host}:{args.port} within {limits}", flush=True)
    return serve(model, args.host, args.port)


def cmd_ui(args) -> int:
    from llmpipe.registry.ui import serve_ui

    return serve_ui(args.host, args.port)


def cmd_register(args) -> int:
    """Register every model again (`dvc repro -f -s` of the register stages), e.g. into a new store."""
    import subprocess

    from llmpipe.config import load_typed

    targets = ["register", *(f"register_task@{task}" for task in load_typed().finetune.tasks)]
    return subprocess.run(["dvc", "repro", "--force", "--single-item", *targets]).returncode


def cmd_generate(args) -> int:
    """Sample from a language model within the limits `llmpipe serve` keeps (params.yaml's `serve`
    section): the prompt and every sampling option are checked before the model loads, and the
    generation stops after serve.request_seconds."""
    import tempfile

    from llmpipe.data.chat_template import model_prompt
    from llmpipe.registry.export import load_model_dir
    from llmpipe.registry.inference import GENERATING_KINDS, stream_text
    from llmpipe.registry.limits import DEFAULT_SAMPLING, Stop, checked_generation, serve_limits

    limits = serve_limits()
    given = {name: getattr(args, name) for name in DEFAULT_SAMPLING if getattr(args, name) is not None}
    sampling = checked_generation(args.prompt, given, limits)
    with tempfile.TemporaryDirectory(prefix="llmpipe-model-") as scratch:
        net, config, tokenizer = load_model_dir(resolve_model_dir(args.model, scratch))
    if config["kind"] not in GENERATING_KINDS:
        raise ValueError(f"{args.model} holds a {config['kind']}, not a model that generates text")
    answers = "template" in config or config["kind"] == "seq2seq_lm"  # not a continuation of the prompt
    print(args.prompt, end="\n" if answers else "", flush=True)
    stop = Stop(limits.request_seconds)
    try:
        prompt = model_prompt(config, args.prompt)
        for piece in stream_text(net, tokenizer, prompt, stop_strings=args.stop, stop=stop, **sampling):
            print(piece, end="", flush=True)
    finally:
        print()  # the error, if any, on a line of its own
    return 0


def cmd_eval_harness(args) -> int:
    """lm-evaluation-harness on an exported model, with the cloze tasks built from held-out data."""
    import json
    import tempfile

    from llmpipe.config import load_typed
    from llmpipe.data.token_files import load_split_docs
    from llmpipe.evaluation import harness

    params = load_typed()
    docs = load_split_docs(args.tokens, args.split)
    with tempfile.TemporaryDirectory(prefix="llmpipe-harness-") as data_dir:
        model_dir = Path(resolve_model_dir(args.model, data_dir))
        cfg, seed = params.evaluate_harness, params.seed
        scores = harness.evaluate(model_dir, docs, Path(data_dir), cfg, seed, limit=args.limit, tokens_dir=args.tokens)
    print(f"{'task':<12} {'acc':>7} {'± stderr':>9} {'acc_norm':>9} {'chance':>7} {'examples':>9}")
    for task, s in scores.items():
        figures = f"{s['acc']:>7.4f} {s['acc_stderr']:>9.4f} {s['acc_norm']:>9.4f} {s['chance']:>7.3f}"
        print(f"{task:<12} {figures} {s['examples']:>9}")
    if args.out:
        Path(args.out).write_text(json.dumps(scores, indent=2) + "\n")
    return 0


def registered_models(params) -> dict[str, tuple[str, dict[str, str]]]:
    """target -> (registered model name, promotion gates): the pretrained LM and each task in
    finetune.tasks, named and gated by convention (register.name_prefix, promote.gates by kind)."""
    from llmpipe.families import family

    pretrained = family(params.model.arch)  # its gates are on evaluate's "lm" metrics
    models = {
        "lm": (params.register.model_name(pretrained.registered_as), params.promote.gates_of("lm", pretrained.gates))
    }
    for task in params.finetune.tasks:
        models[task] = (params.register.model_name(task), params.promote.gates_of(task, params.finetune[task].type))
    return models


def skip_reason_of(target: str) -> str | None:
    """Why a task's register stage skipped it (the corpus could not feed the task), or None."""
    path = Path("metrics") / "register_task" / f"{target}.json"
    return json.loads(path.read_text(encoding="utf-8")).get("skipped") if target != "lm" and path.is_file() else None


def cmd_promote(args) -> int:
    from llmpipe.config import load_typed
    from llmpipe.registry.model_registry import promote

    params = load_typed()
    store.open_registry()
    refused = 0
    for target, (name, gates) in registered_models(params).items():
        if args.model and name not in args.model:
            continue
        skipped = skip_reason_of(target)
        if skipped:
            print(f"{name}: not registered, the task was skipped: {skipped}")
            continue
        d = promote(name, gates, params.register.alias, params.promote.champion_alias, args.force)
        verdict = "promoted" if d.promoted else "unchanged" if d.champion == d.challenger else "refused"
        print(f"{name}: version {d.challenger} {verdict} (champion was {d.champion or 'none'}): {d.reason}")
        for metric, figures in d.compared.items():
            print(
                f"    {metric} ({figures['goal']}): challenger {figures['challenger']}, champion {figures['champion']}"
            )
        refused += not d.promoted and d.champion != d.challenger  # already champion is nothing to refuse
    return 1 if refused else 0


def cmd_models(args) -> int:
    from llmpipe.config import load_typed
    from llmpipe.registry.model_registry import list_versions

    params = load_typed()
    store.open_registry()
    for name, gates in registered_models(params).values():
        metrics = list(gates)
        rows = list_versions(name, metrics)
        print(f"{name}: {len(rows)} version(s)")
        for row in rows:
            figures = ", ".join(f"{m}={row[m]:.4g}" for m in metrics if row[m] is not None)
            print(f"    v{row['version']:<4} {','.join(row['aliases']) or '-':<22} {figures}")
    return 0


def cmd_architectures(args) -> int:
    from llmpipe.registry import tracking
    from llmpipe.studies import architectures

    if args.action == "queue":
        names = architectures.queue(args.overrides, run=args.run, replace=args.replace)
        print(f"queued {', '.join(names)}" + ("; all finished" if args.run else "; run them with `dvc queue start`"))
        return 0
    import mlflow

    experiment_id = tracking.setup()
    results = architectures.collect(mlflow.MlflowClient(), experiment_id)
    gpu = architectures.load_gpu_results(Path(args.out) / "architectures_gpu.json")
    report = architectures.write_report(results, Path(args.out), gpu)
    print(f"wrote {report} and {report.with_suffix('.png')} ({', '.join(results)})")
    return 0


def queued(names: list[str], ran: bool) -> int:
    print(f"queued {len(names)} points" + ("; all finished" if ran else "; run them with `dvc queue start`"))
    return 0


def cmd_scaling(args) -> int:
    from llmpipe.registry import tracking
    from llmpipe.studies import scaling

    points = scaling.study(args.overrides)
    if args.action == "queue":
        return queued(scaling.queue(points, run=args.run, replace=args.replace), args.run)
    import mlflow

    experiment_id = tracking.setup()
    found = scaling.collect(mlflow.MlflowClient(), experiment_id, points)
    report = scaling.write_report(found, Path(args.out))
    print(f"wrote {report} and {report.with_suffix('.png')} ({len(found)} of {len(points)} points)")
    return 0


def task_types(overrides: list[str]) -> dict[str, str]:
    """finetune.tasks -> their type (classify, sft), from conf/ composed with these overrides."""
    import yaml

    from llmpipe import typed_params
    from llmpipe.config import compose

    finetune = typed_params.build(yaml.safe_load(compose(overrides))).finetune
    return {task: finetune[task].type for task in finetune.tasks}


def cmd_transfer(args) -> int:
    from llmpipe.registry import tracking
    from llmpipe.studies import transfer

    points = transfer.study(args.overrides)
    if args.action == "queue":
        return queued(transfer.queue(points, run=args.run, replace=args.replace), args.run)
    import mlflow

    types = task_types(args.overrides)
    rows = transfer.collect(mlflow.MlflowClient(), tracking.setup(), points, types)
    report = transfer.write_report(rows, types, Path(args.out))
    runs = sum(len(p.tasks) for p in points)
    print(f"wrote {report} ({len(rows)} of {runs} fine-tuning runs)")
    return 0


def cmd_families(args) -> int:
    from llmpipe.registry import tracking
    from llmpipe.studies import families

    points = families.study(args.overrides, args.seeds)
    if args.action == "queue":
        return queued(families.queue(points, run=args.run, replace=args.replace), args.run)
    import mlflow

    types = task_types(args.overrides)
    rows = families.collect(mlflow.MlflowClient(), tracking.setup(), points, types)
    sizes = families.family_sizes(args.overrides, Path("data") / "tokens")
    report = families.write_report(rows, types, sizes, Path(args.out))
    print(f"wrote {report} ({len(rows)} of {sum(len(p.tasks) for p in points)} evaluated tasks)")
    return 0


def study_verb(verbs, name: str, what: str, func) -> argparse.ArgumentParser:
    """A verb for a study of queued DVC experiments: `queue` them (and run them), then `report`."""
    study = verbs.add_parser(name, help=f"{what} (queue, then report)")
    study.add_argument("action", choices=["queue", "report"])
    study.add_argument("--run", action="store_true", help="queue: run them now, one at a time, in temporary copies")
    study.add_argument("--replace", action="store_true", help="queue: remove experiments of the same names first")
    study.add_argument("--out", default="reports", help=f"report: folder for {name}.md (and .png)")
    study.add_argument("overrides", nargs="*", help="Hydra overrides every point starts from, e.g. experiment=tiny")
    study.set_defaults(func=func)
    return study


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llmpipe", description="Raw text to a trained, evaluated, registered language model."
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    add_pipeline_verbs(verbs)
    add_model_verbs(verbs)
    study_verb(verbs, "architectures", "compare the Transformer with RNN, LSTM and GRU models", cmd_architectures)
    study_verb(verbs, "scaling", "data-scale study: data fraction x model size, with and without cleaning", cmd_scaling)
    study_verb(
        verbs, "transfer", "fine-tuning from pretrained weights against from scratch (and unadapted), over seeds",
        cmd_transfer,
    )  # fmt: skip
    families = study_verb(
        verbs, "families", "GPT, BERT and T5 at equal size, fine-tuned on every task over seeds", cmd_families
    )
    families.add_argument("--seeds", type=int, default=3, help="seeds per family, from the global seed on")
    return parser


def add_pipeline_verbs(verbs):
    compose = verbs.add_parser("compose", help="compose conf/ into params.yaml, and write dvc.yaml from the stages")
    compose.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. experiment=tiny model.n_layer=6")
    compose.add_argument("-o", "--output", default="params.yaml", help="file to write (default: params.yaml)")
    compose.add_argument("--conf", default="conf", help="Hydra config folder (default: conf)")
    compose.set_defaults(func=cmd_compose)

    verbs.add_parser("repro", help="`dvc repro [ARGS]` with a warm stage runner: the stages skip their imports")
    run = verbs.add_parser("run", help="run one pipeline stage outside DVC, exactly as `dvc repro` would")
    run.add_argument("stage", choices=STAGES)
    run.add_argument("target", nargs="?", help="a task in finetune.tasks, for finetune, evaluate_task, register_task")
    run.set_defaults(func=cmd_run)


def add_generate_verb(verbs):
    from llmpipe.registry.limits import DEFAULT_SAMPLING, SAMPLING_HELP

    generate = verbs.add_parser("generate", help="sample text from an exported language model directory")
    generate.add_argument("model", help="models/pretrain, or a registry URI (models:/llmpipe-lm@champion)")
    generate.add_argument("prompt")
    for name, default in DEFAULT_SAMPLING.items():  # left out: a served model's default
        flag = f"--{name.replace('_', '-')}"
        generate.add_argument(flag, type=type(default), help=f"{SAMPLING_HELP[name]} (default: {default})")
    generate.add_argument("--stop", action="append", default=[], metavar="TEXT", help="stop before it (repeatable)")
    generate.set_defaults(func=cmd_generate)


def add_model_verbs(verbs):
    add_generate_verb(verbs)

    harness = verbs.add_parser(
        "eval-harness", help="run lm-evaluation-harness (offline) on held-out cloze tasks built from our data"
    )
    harness.add_argument("--model", default="models/pretrain", help="export directory or registry URI")
    harness.add_argument("--tokens", default="data/tokens", help="tokenize's output folder (default: data/tokens)")
    harness.add_argument("--split", default="test", choices=["val", "test"], help="held-out split (default: test)")
    harness.add_argument("--limit", type=int, help="at most this many examples per task")
    harness.add_argument("--out", help="also write the scores to this JSON file")
    harness.set_defaults(func=cmd_eval_harness)

    promote = verbs.add_parser("promote", help="make each challenger champion if it beats the champion on the gates")
    promote.add_argument("--model", action="append", help="registered model name (repeatable; default: all)")
    promote.add_argument("--force", action="store_true", help="promote even when the gates refuse, and say so")
    promote.set_defaults(func=cmd_promote)

    models = verbs.add_parser("models", help="list registered versions with their aliases and gate metrics")
    models.set_defaults(func=cmd_models)

    serve = verbs.add_parser(
        "serve", help="serve a model over HTTP (MLflow's /invocations) within params.yaml's `serve` limits"
    )
    serve.add_argument(
        "model", help="registry URI, e.g. models:/llmpipe-lm@champion (its SHA-256 tags checked), or export directory"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    serve.add_argument("--port", type=int, default=5001)
    serve.set_defaults(func=cmd_serve)

    ui = verbs.add_parser("ui", help="the MLflow UI on the project's store, with the address of the pipeline's runs")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)

    register = verbs.add_parser(
        "register", help="register every exported model again (dvc repro -f -s register...), e.g. into a new store"
    )
    register.set_defaults(func=cmd_register)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["repro"]:  # every argument after it is dvc repro's
        return repro(argv[1:])
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # argparse fills a verb's positionals before its options: the Hydra overrides after an option
    # (`llmpipe scaling queue --run experiment=tiny`) come back unparsed.
    if extra and hasattr(args, "overrides") and not any(e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from llmpipe.atomic import WriteError

    try:
        return args.func(args)
    except (ValueError, WriteError) as err:
        print(f"llmpipe {args.verb}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
