"""The only module that talks to the MLflow model registry: log and register a version with its
evaluation tags, promote a challenger through the gates, list the versions."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import torch
from mlflow.models import infer_signature

import llmpipe
from llmpipe.registry import tracking
from llmpipe.registry.serving import DEFAULT_SAMPLING, MODEL_DIR_ARTIFACT

EVAL_TAG_PREFIX = "eval/"  # version tags holding the evaluation metrics a version was judged by


PACKAGE_DIR = Path(llmpipe.__file__).parent  # logged with every model, which needs it to load


def pyfunc_for(model_dir: str | Path):
    """(model-from-code file, signature, input example) for an export directory, by its kind."""
    from llmpipe.registry.export import read_config

    config = read_config(model_dir)
    if config["kind"] == "classifier":
        example = pd.DataFrame({"text": ["I think, therefore I am.", "The computer is down again."]})
        signature = infer_signature(example, pd.DataFrame({"label": config["labels"][:2]}))
        return PACKAGE_DIR / "registry" / "pyfunc_classifier.py", signature, example
    example = pd.DataFrame({"prompt": ["The computer", "床前明月光，"]})
    signature = infer_signature(example, pd.DataFrame({"text": ["...", "..."]}), params=DEFAULT_SAMPLING)
    return PACKAGE_DIR / "registry" / "pyfunc_generator.py", signature, example


def log_and_register(model_dir: str | Path, name: str, alias: str, tags: dict[str, str]) -> tuple[str, str]:
    """Log model_dir to the active run, register it as a new version of `name`, point `alias` at it,
    and tag the version. Returns (version, model URI)."""
    model_code, signature, example = pyfunc_for(model_dir)
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=str(model_code),
        artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "tokenizers", "safetensors", "pandas"],
        code_paths=[str(PACKAGE_DIR)],
        registered_model_name=name,
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, alias, version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    return version, info.model_uri


def download_model_dir(uri: str) -> Path:
    """The export directory inside a registered model, e.g. models:/llmpipe-lm@champion."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    artifacts = mlflow.models.Model.load(str(local / "MLmodel")).flavors.get("python_function", {}).get("artifacts", {})
    if MODEL_DIR_ARTIFACT not in artifacts:
        raise ValueError(f"{uri} is not an llmpipe model (no {MODEL_DIR_ARTIFACT} among its artifacts)")
    return local / artifacts[MODEL_DIR_ARTIFACT]["path"]


@dataclass
class Decision:
    model: str
    challenger: str | None
    champion: str | None
    promoted: bool
    reason: str
    compared: dict = field(default_factory=dict)  # metric -> {"challenger": x, "champion": y, "goal": "min"|"max"}


def version_metric(version, metric: str) -> float | None:
    value = version.tags.get(EVAL_TAG_PREFIX + metric)
    return float(value) if value is not None else None


def compare(challenger, champion, gates: dict[str, str]) -> tuple[bool, str, dict]:
    """Does the challenger beat the champion on every gated metric? (verdict, reason, figures)."""
    compared, failures = {}, []
    for metric, goal in gates.items():
        if goal not in ("min", "max"):
            raise ValueError(f"promote gate {metric}: goal {goal!r} must be 'min' or 'max'")
        new, old = version_metric(challenger, metric), version_metric(champion, metric)
        compared[metric] = {"challenger": new, "champion": old, "goal": goal}
        if new is None or old is None:
            failures.append(f"{metric} is missing on the {'challenger' if new is None else 'champion'}")
        elif not (new < old if goal == "min" else new > old):
            failures.append(f"{metric}: {new:.4g} is not {'lower' if goal == 'min' else 'higher'} than {old:.4g}")
    if failures:
        return False, "; ".join(failures), compared
    return True, "better on " + ", ".join(gates), compared


def promote(
    name: str, gates: dict[str, str], challenger_alias: str, champion_alias: str, force: bool = False
) -> Decision:
    """Move `champion_alias` to the version under `challenger_alias` when it beats the current
    champion on every gate (or when forced), recording the decision as tags on the challenger."""
    client = mlflow.MlflowClient()
    challenger = alias_version(client, name, challenger_alias)
    if challenger is None:
        raise ValueError(f"model {name!r} has no version with alias {challenger_alias!r}: run `dvc repro` first")
    champion = alias_version(client, name, champion_alias)
    if champion is None:
        promoted, reason, compared = True, "no champion yet", {}
    elif champion.version == challenger.version:
        promoted, reason, compared = False, f"version {challenger.version} already is {champion_alias}", {}
    else:
        promoted, reason, compared = compare(challenger, champion, gates)
    if force and not promoted:
        promoted, reason = True, f"forced over: {reason}"
    decision = Decision(name, challenger.version, champion.version if champion else None, promoted, reason, compared)
    if promoted:
        client.set_registered_model_alias(name, champion_alias, challenger.version)
    client.set_model_version_tag(name, challenger.version, "promotion.decision", "promoted" if promoted else "refused")
    client.set_model_version_tag(name, challenger.version, "promotion.reason", reason)
    client.set_model_version_tag(name, challenger.version, "promotion.compared", json.dumps(compared))
    return decision


def alias_version(client, name: str, alias: str):
    try:
        return client.get_model_version_by_alias(name, alias)
    except mlflow.exceptions.MlflowException:
        return None


def list_versions(name: str, metrics: list[str]) -> list[dict]:
    """Every version of a registered model, newest first, with its aliases and the given metrics."""
    client = mlflow.MlflowClient()
    try:
        aliases = client.get_registered_model(name).aliases  # alias -> version
    except mlflow.exceptions.MlflowException:
        return []
    rows = []
    for version in client.search_model_versions(f"name='{name}'"):
        rows.append(
            {
                "model": name,
                "version": int(version.version),
                "aliases": sorted(a for a, v in aliases.items() if str(v) == str(version.version)),
                "created": version.creation_timestamp,
                **{m: version_metric(version, m) for m in metrics},
            }
        )
    return sorted(rows, key=lambda r: -r["version"])


def register_export(root: Path, export: str, metrics_file: str, name: str, alias: str) -> dict:
    """Log the export directory `export` (under root) to the active MLflow run, register it as a new
    version of `name` with `alias`, tagged with the evaluation metrics in `metrics_file` (what
    `llmpipe promote` compares) and the git commit; what metrics/register*.json records."""
    evaluation = json.loads((root / metrics_file).read_text())
    active = mlflow.active_run()
    if active is None:
        raise ValueError("register needs an active MLflow run: run it through `python -m llmpipe.stages.register`")
    tags = {EVAL_TAG_PREFIX + key: value for key, value in tracking.flatten(evaluation, sep="/").items()}
    tags["git_commit"] = tracking.git_commit(root)
    version, uri = log_and_register(root / export, name, alias, tags)
    return {"alias": alias, "run_id": active.info.run_id, "model_name": name, "version": int(version), "model_uri": uri}
