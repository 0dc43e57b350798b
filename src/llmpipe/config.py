"""Compose conf/ into params.yaml, and read params.yaml back.

conf/ is the source of truth. `dvc exp run` composes it itself (hydra.enabled in .dvc/config);
`llmpipe compose` does the same thing the same way (compose, resolve, dump with OmegaConf), so the
file is byte for byte what DVC would write and plain `dvc repro` sees the same parameters.
"""

from pathlib import Path

import yaml

PARAMS_FILE = "params.yaml"
CONF_DIR = "conf"


def compose(overrides: list[str] | None = None, conf_dir: str | Path = CONF_DIR) -> str:
    """The YAML text that conf/ composes to with the given Hydra overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    conf_dir = Path(conf_dir).resolve()
    if not (conf_dir / "config.yaml").is_file():
        raise ValueError(f"no Hydra config found: {conf_dir / 'config.yaml'} does not exist")
    refuse_environment(overrides or [], conf_dir)
    try:
        with initialize_config_dir(str(conf_dir), version_base=None):
            cfg = hydra_compose(config_name="config", overrides=list(overrides or []))
    except HydraException as err:
        raise ValueError(f"cannot compose {conf_dir} with overrides {overrides}: {err}") from err
    OmegaConf.resolve(cfg)
    text = OmegaConf.to_yaml(cfg)
    check_params(yaml.safe_load(text), source=f"the config composed from {conf_dir} with overrides {overrides}")
    return text


def refuse_environment(overrides: list[str], conf_dir: Path):
    """No `${oc.env:...}` in the overrides or in conf/: it would write the environment's value (a
    credential, or a value that differs from machine to machine) into params.yaml."""
    from llmpipe import secrets

    texts = {f"override {o!r}": o for o in overrides}
    texts |= {
        str(p.relative_to(conf_dir.parent)): p.read_text(encoding="utf-8") for p in sorted(conf_dir.rglob("*.yaml"))
    }
    problems = secrets.interpolation_problems(texts)
    if problems:
        raise ValueError("the config reads the environment into params.yaml:\n  " + "\n  ".join(problems))


def check_params(params: dict, source: str):
    """Every problem of a params mapping at once (llmpipe.schema), and no credentials in it."""
    from llmpipe import secrets, typed_params

    typed_params.check(params, source=source)
    secrets.refuse(flatten(params), source)


def write_params(
    overrides: list[str] | None = None, output: str | Path = PARAMS_FILE, conf_dir: str | Path = CONF_DIR
) -> Path:
    output = Path(output)
    output.write_text(compose(overrides, conf_dir), encoding="utf-8")
    return output


def load_params(path: str | Path = PARAMS_FILE) -> dict:
    """params.yaml, checked against llmpipe.schema: every problem is reported before any work."""

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} not found: run `llmpipe compose` in the project root first")
    try:
        params = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid YAML ({err}); compose it again with `llmpipe compose`") from err
    if not isinstance(params, dict):
        raise ValueError(f"{path} holds no mapping of params sections; compose it again with `llmpipe compose`")
    check_params(params, source=str(path))
    return params


def load_typed(path: str | Path = PARAMS_FILE):
    """params.yaml as llmpipe.schema.Params: checked, then typed (for the CLI; stages get theirs
    from the runner, restricted to the sections they declare)."""
    from llmpipe import typed_params

    return typed_params.build(load_params(path))


def section(params: dict, name: str) -> dict:
    """One section of params by its dotted name ("finetune.sft"), with a clear error when missing."""
    value = params
    for i, key in enumerate(name.split(".")):
        if not isinstance(value, dict) or key not in value:
            where = ".".join(name.split(".")[:i]) or "params.yaml"
            have = sorted(value) if isinstance(value, dict) else []
            raise ValueError(f"params.yaml has no section `{name}` ({where} has {have})")
        value = value[key]
    return value


def flatten(d: dict, sep: str = ".", prefix: str = "") -> dict:
    """{'a': {'b': 1}} -> {'a.b': 1}: params are dotted, metric keys use sep='/'."""
    flat = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, sep, f"{name}{sep}"))
        else:
            flat[name] = value
    return flat
