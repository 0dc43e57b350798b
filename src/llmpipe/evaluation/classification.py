"""Classifier metrics (torchmetrics): accuracy, macro precision / recall / F1, micro-F1, the
per-class table and the confusion matrix, next to always answering the majority training label."""

import numpy as np
import torch

# torchmetrics is imported where it is used: it takes seconds to import (it loads transformers), and
# the stages that import this module for a generation task never need it.


def classification_metrics(pred: list[int], target: list[int], num_labels: int) -> dict:
    """Accuracy; precision, recall and F1 averaged over classes (macro: each class counts alike) and
    over examples (micro F1, which equals accuracy when every example has one label)."""
    from torchmetrics.functional.classification import (
        multiclass_accuracy,
        multiclass_f1_score,
        multiclass_precision,
        multiclass_recall,
    )

    p, t = torch.tensor(pred), torch.tensor(target)
    return {
        "acc": multiclass_accuracy(p, t, num_labels, average="micro").item(),
        "macro_precision": multiclass_precision(p, t, num_labels, average="macro").item(),
        "macro_recall": multiclass_recall(p, t, num_labels, average="macro").item(),
        "macro_f1": multiclass_f1_score(p, t, num_labels, average="macro").item(),
        "micro_f1": multiclass_f1_score(p, t, num_labels, average="micro").item(),
    }


def per_class_metrics(pred: list[int], target: list[int], labels: list[str]) -> list[dict]:
    """One row per label: precision, recall, F1 and support (how many test examples carry it)."""
    from torchmetrics.functional.classification import multiclass_f1_score, multiclass_precision, multiclass_recall

    p, t, n = torch.tensor(pred), torch.tensor(target), len(labels)
    columns = {
        "precision": multiclass_precision(p, t, n, average="none").tolist(),
        "recall": multiclass_recall(p, t, n, average="none").tolist(),
        "f1": multiclass_f1_score(p, t, n, average="none").tolist(),
        "support": torch.bincount(t, minlength=n).tolist(),
    }
    return [{"label": label, **{k: v[i] for k, v in columns.items()}} for i, label in enumerate(labels)]


def confusion_matrix(pred: list[int], target: list[int], num_labels: int) -> list[list[int]]:
    """counts[actual][predicted]."""
    from torchmetrics.functional.classification import multiclass_confusion_matrix

    return multiclass_confusion_matrix(torch.tensor(pred), torch.tensor(target), num_labels).tolist()


def majority_baseline(train_labels: list[int], target: list[int], num_labels: int) -> dict:
    """Metrics of always answering the most frequent training label."""
    majority = int(np.bincount(train_labels, minlength=num_labels).argmax())
    return classification_metrics([majority] * len(target), target, num_labels)
