"""finetune: sequence classification on the documents' labels, from the pretrained weights.

Reads: models/pretrain/, data/tokens/{train,val}.jsonl.
Writes: models/finetune/ (the classifier, with its label names in config.json); metrics/finetune.json;
  per-step metrics to MLflow; checkpoints under checkpoints/finetune/ (the best by val macro-F1 is kept).
Run: python -m llmpipe.stages.finetune
"""

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from llmpipe import networks, training
from llmpipe.datasets import (
    Epochs,
    ResumableLoader,
    choose_labels,
    collate_labeled,
    labeled_examples,
    read_jsonl,
)
from llmpipe.export import load_model_dir, save_model_dir
from llmpipe.lit_module import LitLM, OptimConfig
from llmpipe.runner import stage_main
from llmpipe.tokenizer import PAD, special_id

STAGE = "finetune"
SECTIONS = ["seed", STAGE]
LOGGED = ["trainer"]  # hardware: logged to MLflow, not a DVC param


def class_weights(labels: list[int], num_labels: int) -> list[float]:
    """Inverse class frequency, normalized so a balanced set gets weight 1 everywhere."""
    counts = torch.bincount(torch.tensor(labels), minlength=num_labels).float().clamp(min=1)
    return (len(labels) / (num_labels * counts)).tolist()


def run(params: dict, root: Path) -> dict:
    cfg, hardware, seed = params[STAGE], params["trainer"], params["seed"]
    if cfg["task"] != "classify":
        raise ValueError(f"finetune.task={cfg['task']!r} is not supported; supported: 'classify'")
    backbone, pretrain_config, tokenizer = load_model_dir(root / "models" / "pretrain")
    model_cfg = networks.model_config(pretrain_config["model"])
    max_tokens = min(cfg["max_tokens"], model_cfg.block_size)  # the model sees no further
    tokens_dir = root / "data" / "tokens"
    train_docs, val_docs = (
        [d for d in read_jsonl(tokens_dir / f"{s}.jsonl") if d["lang"] == cfg["lang"]] for s in ("train", "val")
    )
    labels = choose_labels(train_docs, cfg["labels"], cfg["min_examples_per_label"], cfg["max_labels"])
    train_set = labeled_examples(train_docs, labels, tokenizer, max_tokens)
    val_set = labeled_examples(val_docs, labels, tokenizer, max_tokens)

    L.seed_everything(seed, workers=True, verbose=False)
    net = networks.classifier(model_cfg, len(labels))
    net.backbone.load_state_dict(backbone.state_dict())
    training.compile_model(net, hardware)
    weights = class_weights(train_set.labels, len(labels)) if cfg["class_weighted_loss"] else None
    module = LitLM(net, OptimConfig.from_section(cfg), task="classify", num_labels=len(labels), class_weights=weights)
    collate = collate_labeled(special_id(tokenizer, PAD))
    micro_batch, accumulate = training.batch_split(cfg["batch_size"], hardware)
    loader_args = {"batch_size": micro_batch, "num_workers": hardware["num_workers"], "collate_fn": collate}
    # Shuffled epoch after epoch by (seed, position), so resuming and sharding across ranks are exact.
    epochs = Epochs(train_set, cfg["max_steps"] * cfg["batch_size"], seed)
    train_loader = ResumableLoader(epochs, consumed=lambda: trainer.global_step * accumulate, **loader_args)
    val_loader = DataLoader(val_set, **loader_args)

    pretrained = training.file_digest(root / "models" / "pretrain" / "model.safetensors")
    checkpoint_dir = root / "checkpoints" / STAGE / training.fingerprint({k: params[k] for k in SECTIONS}, pretrained)
    checkpoint = ModelCheckpoint(
        dirpath=checkpoint_dir, filename="best", monitor="val/macro_f1", mode="max", save_top_k=1, save_last=True
    )
    trainer = training.build_trainer(
        hardware, cfg, accumulate, [checkpoint, training.CurveWriter(root / "plots" / STAGE)]
    )
    training.fit(trainer, module, train_loader, val_loader, checkpoint_dir)
    best = torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(best["state_dict"])
    final = trainer.validate(module, val_loader, verbose=False)[0]

    trained = training.gathered(net, lambda: networks.classifier(model_cfg, len(labels)))
    if trainer.is_global_zero:  # one process writes the export
        save_model_dir(
            root / "models" / STAGE,
            trained,
            model_cfg,
            root / "models" / "pretrain" / "tokenizer.json",
            {k: params[k] for k in SECTIONS},
            extra={"labels": labels, "max_tokens": max_tokens, "lang": cfg["lang"]},
        )

    return {
        "val_acc": final["val/acc"],
        "val_macro_f1": final["val/macro_f1"],
        "best_step": int(best["global_step"]),
        "num_labels": len(labels),
        "train_examples": len(train_set),
        "val_examples": len(val_set),
    }


def main():
    stage_main(STAGE, run, SECTIONS, LOGGED)


if __name__ == "__main__":
    main()
