"""SHA-256 of what a registered model version holds, so that loading it runs only what was registered.

A logged model is two things: the weights (the export directory, an MLflow artifact) and code (the
model-from-code file, the llmpipe package logged beside it, MLmodel, the environment files). MLflow runs
that code when the model is loaded or served; whoever can write to the artifact store could change it.
register computes one digest of each part from the files as logged and creates the version with them
as tags (`llmpipe.sha256.weights`, `llmpipe.sha256.code`). `llmpipe generate`, `llmpipe serve` and
`model_registry.load_pyfunc` download a version, recompute both digests and refuse it on any
difference, before a line of its code runs. The tags live in the registry's database, apart from the
artifacts they vouch for.
"""

import logging
from pathlib import Path

import yaml

from llmpipe.digests import tree_sha256

log = logging.getLogger(__name__)

WEIGHTS_TAG = "llmpipe.sha256.weights"
CODE_TAG = "llmpipe.sha256.code"
PACKAGE_TAG = "llmpipe.sha256.package"  # the installed llmpipe source that register ran: when a version may be reused
# Written by MLflow when a logged model is registered (the model's name and version): not code.
NOT_CODE = {"registered_model_meta"}


class IntegrityError(ValueError):
    """A registered version's files differ from what was registered."""


def model_dir_of(logged: Path, artifact: str) -> str:
    """The path, inside a logged model, of the export directory logged as `artifact`."""
    mlmodel = yaml.safe_load((logged / "MLmodel").read_text(encoding="utf-8"))
    artifacts = mlmodel.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    if artifact not in artifacts:
        raise ValueError(f"{logged} is not an llmpipe model (no {artifact} among its artifacts)")
    return artifacts[artifact]["path"]


def digests(logged: Path, model_dir: str) -> dict[str, str]:
    """The two tags of a logged model: its export directory's digest and its code's."""
    return {
        WEIGHTS_TAG: tree_sha256(logged / model_dir),
        CODE_TAG: tree_sha256(logged, skip={model_dir, *NOT_CODE}),
    }


def verify(logged: Path, model_dir: str, tags: dict[str, str], what: str):
    """Raise IntegrityError unless the logged model's files have the digests its version was tagged with."""
    if WEIGHTS_TAG not in tags or CODE_TAG not in tags:
        log.warning("%s carries no SHA-256 tags (registered by an older llmpipe): its files are not verified", what)
        return
    found = digests(logged, model_dir)
    changed = [
        f"its {part} (SHA-256 {found[tag][:12]}..., registered as {tags[tag][:12]}...)"
        for part, tag in (("weights", WEIGHTS_TAG), ("code", CODE_TAG))
        if found[tag] != tags[tag]
    ]
    if changed:
        raise IntegrityError(
            f"{what}: {' and '.join(changed)} differ from what was registered; the artifact store was "
            "changed after registration, so it is not loaded. Register the model again "
            "(`dvc repro -f -s register`) or restore the artifact store"
        )
