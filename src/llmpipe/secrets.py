"""Credentials never go into params.yaml: it is committed to git, copied into dvc.lock and hashed by
DVC. The tools that need a credential read it from the environment themselves (MLflow:
MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN; DVC remotes and boto3: AWS_ACCESS_KEY_ID and
AWS_SECRET_ACCESS_KEY; Hugging Face: HF_TOKEN), so params never need one. `refuse` stops a config that
pulls one in (`${oc.env:...}`, or a value typed under a key named like a secret); `redact` hides
such values from what is logged to MLflow, as a second line of defence."""

import os
import re

# Names of environment variables that hold credentials (HF_TOKEN, AWS_SECRET_ACCESS_KEY,
# MLFLOW_TRACKING_PASSWORD, OPENAI_API_KEY, ...): whole words of the name, so that MAX_TOTAL_TOKENS,
# SSH_AUTH_SOCK or XAUTHORITY are not taken for one.
SECRET_NAME = re.compile(
    r"(^|_)(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIALS?|AUTH_?TOKEN)(_|$)", re.I
)
# Param keys that would hold one (a key of their own, not tokenize.* or pretrain.batch_tokens).
SECRET_KEY = re.compile(
    r"(^|[._])(secret|password|passwd|api_?key|access_?key|auth_?token|hf_token|credentials?)$", re.I
)
ENV_INTERPOLATION = re.compile(r"\$\{\s*oc\.env\s*:\s*([^,}\s]+)")
REDACTED = "***"
MIN_SECRET_LENGTH = 6  # shorter values ("1", "true") would match everywhere
INSIDE_FROM = 12  # a value this long is looked for inside params' text too (a URL's user:password@)


def environment_secrets(environ: dict | None = None) -> dict[str, str]:
    """{variable: value} of the environment variables named like credentials, whose values could be
    told apart from ordinary data (not short, not a number)."""
    environ = os.environ if environ is None else environ
    return {
        k: v
        for k, v in environ.items()
        if SECRET_NAME.search(k) and len(v) >= MIN_SECRET_LENGTH and not v.replace(".", "").isdigit()
    }


def holds(value, secret: str) -> bool:
    """Does a param's value carry the secret? Text only (a number is no credential); all of it, or,
    for a secret long enough not to occur by chance, part of it."""
    if not isinstance(value, str):
        return False
    return value == secret or (len(secret) >= INSIDE_FROM and secret in value)


def where_it_belongs(variable: str) -> str:
    return (
        f"leave it in the environment variable {variable}: the tool that needs it (MLflow, a DVC remote, "
        "boto3, huggingface_hub) reads it from there, and no llmpipe stage needs it in params"
    )


def interpolation_problems(texts: dict[str, str]) -> list[str]:
    """`${oc.env:...}` in config text (conf/ files, Hydra overrides): {where: text}. Whatever the
    variable, its value would be written into params.yaml, where a secret must not be and where a
    value that differs from machine to machine breaks DVC's reproducibility."""
    problems = []
    for where, text in texts.items():
        for variable in ENV_INTERPOLATION.findall(text):
            problems.append(
                f"{where}: ${{oc.env:{variable}}} would write the environment's value into params.yaml; "
                + (where_it_belongs(variable) if SECRET_NAME.search(variable) else "set the value in conf/ instead")
            )
    return problems


def value_problems(flat: dict, environ: dict | None = None) -> list[str]:
    """Params (flattened, dotted keys) that hold a credential: a value that contains a secret
    environment variable's value, or a non-empty value under a key named like a secret."""
    secrets = environment_secrets(environ)
    problems = []
    for key, value in flat.items():
        text = "" if value is None else str(value)
        leaked = [name for name, secret in secrets.items() if holds(value, secret)]
        if leaked:
            problems.append(
                f"{key} holds the value of the environment variable {leaked[0]}: {where_it_belongs(leaked[0])}"
            )
        elif SECRET_KEY.search(key) and text:
            problems.append(f"{key} looks like a credential: {where_it_belongs('that the tool reads')}")
    return problems


def refuse(flat: dict, source: str, environ: dict | None = None):
    problems = value_problems(flat, environ)
    if problems:
        raise ValueError(f"{source} must not hold credentials:\n  " + "\n  ".join(problems))


def redact(flat: dict, environ: dict | None = None) -> dict:
    """Params safe to log: a value under a secret-looking key, or one that contains the value of a
    secret-looking environment variable, becomes ***."""
    secrets = list(environment_secrets(environ).values())
    safe = {}
    for key, value in flat.items():
        hidden = SECRET_KEY.search(key) is not None or any(holds(value, secret) for secret in secrets)
        safe[key] = REDACTED if hidden else value
    return safe
