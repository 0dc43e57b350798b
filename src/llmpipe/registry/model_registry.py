"""The only module that talks to the MLflow model registry: log and register a version with its
evaluation tags, promote a challenger through the gates, list the versions, download a version
after checking its files (registry.integrity).

Registry writes are crash-consistent: a kill at any point leaves a state the next run completes.
register creates a version and all its tags in one call (a version never exists half-tagged) and
moves the alias last; a rerun finds a version of the same weights, evaluation and commit and points
the alias at it instead of adding a copy, and deletes versions that an older llmpipe left without
their evaluation tags. promote writes its decision (`pending`) before it moves the champion alias and
`promoted` after, finishes a pending one on rerun, and refuses a challenger that lacks the metrics its
gates compare.
"""

import atexit
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import infer_signature

import llmpipe
from llmpipe.digests import tree_sha256
from llmpipe.failpoints import failpoint
from llmpipe.registry import integrity, tracking
from llmpipe.registry.serving import DEFAULT_SAMPLING, MODEL_DIR_ARTIFACT

log = logging.getLogger(__name__)
EVAL_TAG_PREFIX = "eval/"  # version tags holding the evaluation metrics a version was judged by
DECISION_TAG, PENDING = "promotion.decision", "pending"  # promoted | refused | pending (alias not yet moved)


PACKAGE_DIR = Path(llmpipe.__file__).parent  # logged with every model, which needs it to load


def pyfunc_for(model_dir: str | Path):
    """(model-from-code file, signature, input example) for an export directory, by its kind."""
    from llmpipe.registry.export import read_config

    config = read_config(model_dir)
    if config["kind"] == "classifier":
        example = pd.DataFrame({"text": ["I think, therefore I am.", "The computer is down again."]})
        signature = infer_signature(example, pd.DataFrame({"label": config["labels"][:2]}))
        return PACKAGE_DIR / "registry" / "pyfunc_classifier.py", signature, example
    if config["kind"] == "masked_lm":
        example = pd.DataFrame({"text": ["The computer is <|mask|> again.", "床前明月<|mask|>，"]})
        signature = infer_signature(example, pd.DataFrame({"text": ["...", "..."]}))
        return PACKAGE_DIR / "registry" / "pyfunc_filler.py", signature, example
    example = pd.DataFrame({"prompt": ["The computer", "床前明月光，"]})
    signature = infer_signature(example, pd.DataFrame({"text": ["...", "..."]}), params=DEFAULT_SAMPLING)
    return PACKAGE_DIR / "registry" / "pyfunc_generator.py", signature, example


def log_and_register(model_dir: str | Path, name: str, alias: str, tags: dict[str, str]) -> tuple[str, str]:
    """Log model_dir to the active run, register it as a new version of `name` with `tags` and the
    SHA-256 of its weights and code (one call), then point `alias` at it. Returns (version, model URI)."""
    import torch  # heavy: imported where used (its version only), so a stage that registers nothing new starts fast

    model_code, signature, example = pyfunc_for(model_dir)
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=str(model_code),
        artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
        signature=signature,
        input_example=example,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "tokenizers", "safetensors", "pandas"],
        code_paths=[str(PACKAGE_DIR)],
    )
    failpoint("register:logged")
    with tempfile.TemporaryDirectory(prefix="llmpipe-register-") as tmp:  # the files as logged
        logged = Path(mlflow.artifacts.download_artifacts(artifact_uri=info.model_uri, dst_path=tmp))
        tags = {**tags, **integrity.digests(logged, integrity.model_dir_of(logged, MODEL_DIR_ARTIFACT))}
    version = str(mlflow.register_model(info.model_uri, name, tags=tags).version)
    failpoint("register:versioned")
    mlflow.MlflowClient().set_registered_model_alias(name, alias, version)  # last: the version is whole
    failpoint("register:aliased")
    return version, f"models:/{name}/{version}"


def same_version(client, name: str, weights: str, tags: dict[str, str]):
    """A version of `name` holding these weights (their SHA-256) with these tags: a rerun after a
    kill, or after DVC restored an older state, registers nothing new."""
    for version in client.search_model_versions(f"name='{name}'"):
        if version.tags.get(integrity.WEIGHTS_TAG) == weights and all(
            version.tags.get(k) == str(v) for k, v in tags.items()
        ):
            return version
    return None


def reconcile(client, name: str, alias: str):
    """Delete the versions of `name` that a register killed half-way left without evaluation tags
    (an older llmpipe tagged a version after creating it), so that `alias` never points at one. Only
    versions made by llmpipe's register stages and under no other alias: a version registered by
    hand, or one someone made champion, is left alone (promote refuses it for want of metrics)."""
    try:
        aliases = client.get_registered_model(name).aliases  # alias -> version
    except mlflow.exceptions.MlflowException:
        return  # no such model yet
    for version in client.search_model_versions(f"name='{name}'"):
        if any(k.startswith(EVAL_TAG_PREFIX) for k in version.tags) or integrity.WEIGHTS_TAG in version.tags:
            continue
        if any(str(v) == str(version.version) and a != alias for a, v in aliases.items()):
            continue
        try:
            stage = client.get_run(version.run_id).data.tags.get(tracking.STAGE_TAG, "") if version.run_id else ""
        except mlflow.exceptions.MlflowException:  # its run was deleted: nothing says llmpipe made it
            continue
        if stage.startswith("register"):
            log.warning("deleting version %s of %s: a killed register left it without tags", version.version, name)
            client.delete_model_version(name, version.version)


def download_model_dir(uri: str, dst: str | Path | None = None) -> Path:
    """The export directory inside a registered model, e.g. models:/llmpipe-lm@champion, copied
    into dst (a new temporary folder if None) and checked against the SHA-256 tags of its version."""
    return verified_download(uri, dst)[1]


def verified_download(uri: str, dst: str | Path | None = None) -> tuple[Path, Path]:
    """(the logged model folder, the export directory in it) of a models:/ or runs:/ URI, copied into
    dst (a new temporary folder if None), after checking a registered version's files against its
    SHA-256 tags. Always a copy: for a local store MLflow would otherwise hand back the store's own
    folder, which could change between the check and the load (and which loading writes into). An
    alias is resolved once, so the files checked are those of the version whose tags they are
    checked against."""
    if dst is None:  # ours: removed when this process ends (the loaded model lives in memory by then)
        dst = tempfile.mkdtemp(prefix="llmpipe-model-")
        atexit.register(shutil.rmtree, dst, ignore_errors=True)
    dst = Path(dst)
    try:
        version = registered_version(uri)
        source = f"models:/{version.name}/{version.version}" if version is not None else uri
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dst)))
    except mlflow.exceptions.MlflowException as err:
        raise ValueError(f"{uri} cannot be loaded from the registry: {err.message}") from err
    if not (local / "MLmodel").is_file():
        raise ValueError(
            f"{uri}: the artifact store holds no model files for it (was mlartifacts/ moved or deleted?); "
            "restore it, or register the models again with `llmpipe register`"
        )
    model_dir = integrity.model_dir_of(local, MODEL_DIR_ARTIFACT)
    if version is not None:
        integrity.verify(local, model_dir, version.tags, f"{uri} (version {version.version} of {version.name})")
    else:
        log.warning("%s names no registered version: its files are not checked against registered digests", uri)
    return local, local / model_dir


def registered_version(uri: str):
    """The registry's version for models:/<name>@<alias> or models:/<name>/<version>; None otherwise."""
    if not uri.startswith("models:/"):
        return None
    ref = uri.removeprefix("models:/").rstrip("/")
    client = mlflow.MlflowClient()
    if "@" in ref:
        name, alias = ref.split("@", 1)
        return client.get_model_version_by_alias(name, alias)
    name, _, number = ref.rpartition("/")
    return client.get_model_version(name, number) if name and number.isdigit() else None


def load_pyfunc(uri: str):
    """mlflow.pyfunc.load_model for a registered llmpipe model, after checking that its weights and
    code are what was registered (mlflow.pyfunc.load_model alone would run whatever code is there).
    The checked copy stays in a temporary folder: MLflow imports the model's code from it."""
    local, _ = verified_download(uri)
    return mlflow.pyfunc.load_model(str(local))


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
    champion on every gate (or when forced), recording the decision as tags on the challenger. The
    tags are written first and the alias moved last, so a kill in between leaves the champion as it
    was and a rerun decides again. A challenger without the gates' metrics is refused, even forced:
    there is nothing to say it was evaluated."""
    client = mlflow.MlflowClient()
    challenger = alias_version(client, name, challenger_alias)
    if challenger is None:
        raise ValueError(f"model {name!r} has no version with alias {challenger_alias!r}: run `dvc repro` first")
    missing = [metric for metric in gates if version_metric(challenger, metric) is None]
    if missing:
        raise ValueError(
            f"{name} version {challenger.version} ({challenger_alias}) lacks the gate metrics "
            f"{', '.join(EVAL_TAG_PREFIX + m for m in missing)}: it was not registered by a complete `register`, "
            "so it is not promoted. Run `dvc repro` (register reconciles the registry), then promote again"
        )
    champion = alias_version(client, name, champion_alias)
    if champion is not None and champion.version == challenger.version:  # nothing to decide
        if challenger.tags.get(DECISION_TAG) == PENDING:  # a promote killed after moving the alias: finish it
            client.set_model_version_tag(name, challenger.version, DECISION_TAG, "promoted")
        reason = f"version {challenger.version} already is {champion_alias}"
        return Decision(name, challenger.version, champion.version, False, reason)
    if champion is None:
        promoted, reason, compared = True, "no champion yet", {}
    else:
        promoted, reason, compared = compare(challenger, champion, gates)
    if force and not promoted:
        promoted, reason = True, f"forced over: {reason}"
    decision = Decision(name, challenger.version, champion.version if champion else None, promoted, reason, compared)
    # The decision says `pending` until the alias has moved: no tag ever claims a promotion not made.
    client.set_model_version_tag(name, challenger.version, DECISION_TAG, PENDING if promoted else "refused")
    client.set_model_version_tag(name, challenger.version, "promotion.reason", reason)
    client.set_model_version_tag(name, challenger.version, "promotion.compared", json.dumps(compared))
    failpoint("promote:decided")
    if promoted:
        client.set_registered_model_alias(name, champion_alias, challenger.version)
        failpoint("promote:aliased")
        client.set_model_version_tag(name, challenger.version, DECISION_TAG, "promoted")
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
    `llmpipe promote` compares) and the git commit; what metrics/register*.json records. A version
    that already holds these weights with this evaluation and commit is pointed at, not copied
    (`reused`): a rerun after a kill, or after DVC brought back an earlier model, adds nothing. The
    llmpipe package's source is part of that match: changed serving code makes a new version."""
    evaluation = json.loads((root / metrics_file).read_text())
    active = mlflow.active_run()
    if active is None:
        raise ValueError("register needs an active MLflow run: run it through `python -m llmpipe.stages.register`")
    tags = {EVAL_TAG_PREFIX + key: str(value) for key, value in tracking.flatten(evaluation, sep="/").items()}
    tags["git_commit"] = tracking.git_commit(root)
    tags[integrity.PACKAGE_TAG] = tree_sha256(PACKAGE_DIR)  # the code a reused version must have been logged with
    client = mlflow.MlflowClient()
    reconcile(client, name, alias)
    same = same_version(client, name, tree_sha256(root / export), tags)
    if same is not None:
        client.set_registered_model_alias(name, alias, same.version)
        version, uri, run_id, reused = str(same.version), f"models:/{name}/{same.version}", same.run_id, True
    else:
        version, uri = log_and_register(root / export, name, alias, tags)
        run_id, reused = active.info.run_id, False
    return {
        "alias": alias,
        "run_id": run_id,  # the run that logged the version
        "model_name": name,
        "version": int(version),
        "model_uri": uri,
        "reused": reused,
    }
