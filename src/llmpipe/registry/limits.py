"""What a request to a model may ask, and how much: the limits of params.yaml's `serve` section (the
most new tokens, the longest prompt, the most rows, the time per request) and the checks of every
input and sampling parameter. `llmpipe serve`, `llmpipe generate` and the registered pyfuncs' predict
all check here, before any work, so a request is refused the same way everywhere, with a message
that names the parameter (and the limit) at fault. A `Stop` carries a request's time limit and its
cancellation into the work (here, free of torch: serving.py and server.py hand it on without
importing the code that runs models)."""

import math
import time
from numbers import Integral, Real
from pathlib import Path

from llmpipe.config import PARAMS_FILE
from llmpipe.schema import Serve

# conf/config.yaml's `serve` section, for a process whose current directory holds no params.yaml (a
# registered model loaded elsewhere: its logged code has no conf/). tests/test_serving.py checks that
# the two agree, so conf/ stays the one place to change them.
SERVE_DEFAULTS = {"max_new_tokens": 1024, "max_prompt_chars": 20000, "max_rows": 64, "request_seconds": 60}

# What a generating model's request may set, and what it gets when it does not (the registered
# pyfunc's params schema, model_registry.pyfunc_for).
DEFAULT_SAMPLING = {
    "max_new_tokens": 100, "temperature": 0.8, "top_k": 50, "top_p": 0.95,
    "repetition_penalty": 1.0, "no_repeat_ngram_size": 0, "seed": 0,
}  # fmt: skip  # repeats allowed by default: a request, or evaluate_task.generation, turns them down
SAMPLING_HELP = {  # what each means (`llmpipe generate --help`)
    "max_new_tokens": "at most serve.max_new_tokens of params.yaml",
    "temperature": "0 for greedy decoding",
    "top_k": "sample among the k most likely tokens (0: all)",
    "top_p": "nucleus sampling: the smallest set with this mass",
    "repetition_penalty": "above 1: what the answer already said is less likely",
    "no_repeat_ngram_size": "n: never write an n-gram the answer already holds (0: off)",
    "seed": "the seed of the sampling",
}
INTEGER_PARAMS = ("max_new_tokens", "top_k", "no_repeat_ngram_size", "seed")  # the others are numbers
# Below this, softmax(logits / temperature) is greedy in all but name, and near 1e-38 it overflows
# into NaN: ask for 0 instead.
MIN_TEMPERATURE = 0.01
SHOWN_PROBLEMS = 5  # a request with many bad rows is told about the first few


class BadRequest(ValueError):
    """A request that asks for something wrong or too much: a list of (parameter, what is wrong),
    where the parameter is a sampling parameter, an input column or a part of the request's body."""

    status, error_code = 400, "INVALID_PARAMETER_VALUE"  # what the HTTP server answers

    def __init__(self, problems: list[tuple[str, str]]):
        assert problems
        self.params = [param for param, _ in problems]
        shown = "; ".join(f"{param}: {what}" for param, what in problems[:SHOWN_PROBLEMS])
        more = len(problems) - SHOWN_PROBLEMS
        super().__init__(shown + (f" (and {more} more)" if more > 0 else ""))


class TooLarge(BadRequest):
    """A request body larger than any the limits allow: refused before it is read whole."""

    status, error_code = 413, "REQUEST_TOO_LARGE"


def serve_limits(path: str | Path = PARAMS_FILE) -> Serve:
    """The `serve` section of the current directory's params.yaml, else conf/'s (SERVE_DEFAULTS).
    Only that section is read and checked: serving needs nothing else from the file, and a params.yaml
    of another version of llmpipe must not keep a model from being served."""
    import yaml

    from llmpipe import typed_params

    path = Path(path)
    section = SERVE_DEFAULTS
    if path.is_file():
        try:
            params = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid YAML ({err}); compose it again with `llmpipe compose`") from err
        if isinstance(params, dict) and params.get("serve") is not None:
            section = params["serve"]
    found = typed_params.problems(section, Serve, "serve.")
    if found:
        raise ValueError(f"{path} has {len(found)} problem(s):\n" + "\n".join(f"  - {p}" for p in found))
    return typed_params.build(section, Serve)


def body_limit(limits: Serve) -> int:
    """The most bytes a request body may hold: max_rows texts of max_prompt_chars characters, each
    character written as JSON's longest escape (a surrogate pair, 12 bytes), plus room for the rest."""
    return 12 * limits.max_rows * limits.max_prompt_chars + 64 * 1024


def text_problem(text, limits: Serve) -> str | None:
    """What is wrong with one prompt or text, if anything. An empty text is refused for every kind of
    model: it holds no tokens to continue, answer, label or fill in."""
    if not isinstance(text, str):
        return f"is not a string (got {text!r:.40})"
    if not text:
        return "is empty"
    if len(text) > limits.max_prompt_chars:
        return f"has {len(text)} characters, more than serve.max_prompt_chars ({limits.max_prompt_chars})"
    return None


def checked_texts(frame, column: str, limits: Serve) -> tuple[list[str], list[tuple[str, str]]]:
    """The `column` of a request's rows, and its problems: the column must be there (and no other),
    in at most serve.max_rows rows, each text passing text_problem."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        return [], [(column, f"expected a table with a `{column}` column, got {type(frame).__name__}")]
    problems = [(str(c), f"unknown column (this model reads `{column}` only)") for c in frame.columns if c != column]
    if column not in frame.columns:
        return [], [*problems, (column, "missing column")]
    if len(frame) > limits.max_rows:
        return [], [*problems, (column, too_many_rows(len(frame), limits))]
    texts = list(frame[column])
    problems += [(column, f"row {i} {problem}") for i, t in enumerate(texts) if (problem := text_problem(t, limits))]
    return texts, problems


def too_many_rows(rows: int, limits: Serve) -> str:
    return f"{rows} rows, more than serve.max_rows ({limits.max_rows})"


def unknown_params(params, known: dict) -> list[tuple[str, str]]:
    """Problems of a request's `params` that are not a mapping or hold names not in `known`."""
    if params is None:
        return []
    if not isinstance(params, dict):
        return [("params", f"expected a mapping of parameter names to values, got {type(params).__name__}")]
    takes = f"this model takes {sorted(known)}" if known else "this model takes no parameters"
    return [(str(name), f"unknown parameter ({takes})") for name in params if name not in known]


def checked_sampling(params, limits: Serve) -> tuple[dict, list[tuple[str, str]]]:
    """A generating model's sampling parameters (DEFAULT_SAMPLING for those not given; the default
    max_new_tokens never over the limit), and the problems of those given."""
    problems = unknown_params(params, DEFAULT_SAMPLING)
    default_tokens = min(DEFAULT_SAMPLING["max_new_tokens"], limits.max_new_tokens)
    given = {k: v for k, v in (params or {}).items() if k in DEFAULT_SAMPLING} if isinstance(params, dict) else {}
    sampling = {**DEFAULT_SAMPLING, "max_new_tokens": default_tokens, **given}
    for name, value in sampling.items():
        if name in INTEGER_PARAMS and (isinstance(value, bool) or not isinstance(value, Integral)):
            problems.append((name, f"expected an integer, got {value!r:.40}"))
        elif isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            problems.append((name, f"expected a finite number, got {value!r:.40}"))
        elif rule := broken_rule(name, value, limits):
            problems.append((name, f"{value} {rule}"))
    return sampling, problems


def checked_generation(prompt, params: dict, limits: Serve) -> dict:
    """The sampling parameters of one prompt (`llmpipe generate`), or BadRequest naming every fault."""
    sampling, problems = checked_sampling(params, limits)
    if problem := text_problem(prompt, limits):
        problems.insert(0, ("prompt", problem))
    if problems:
        raise BadRequest(problems)
    return sampling


def broken_rule(name: str, value, limits: Serve) -> str | None:
    """The rule a sampling parameter's value (of the right type) breaks, if any."""
    if name == "max_new_tokens" and not 1 <= value <= limits.max_new_tokens:
        return f"must be from 1 to serve.max_new_tokens ({limits.max_new_tokens})"
    if name == "temperature" and not (value == 0 or value >= MIN_TEMPERATURE):
        return f"must be 0 (greedy decoding) or at least {MIN_TEMPERATURE}"
    if name == "top_k" and value < 0:
        return "must be 0 (every token) or more"
    if name == "top_p" and not 0 < value <= 1:
        return "must be above 0 and at most 1"
    if name == "repetition_penalty" and not value > 0:
        return "must be above 0 (1: off; above 1 makes what the answer already said less likely)"
    if name == "no_repeat_ngram_size" and value < 0:
        return "must be 0 (off) or more"
    if name == "seed" and not 0 <= value < 2**63:
        return "must be from 0 to 2**63 - 1"
    return None


class Cancelled(Exception):
    """The work of a request was stopped from outside: its client went away, or the server is stopping."""


class TimeLimit(ValueError):
    """The work of a request took longer than serve.request_seconds."""

    def __init__(self, seconds: float):
        super().__init__(f"request_seconds: the request took longer than serve.request_seconds ({seconds:g} s)")


class Stop:
    """When the work of one request must end: someone cancelled it (from another thread) or its
    time ran out. Plain attributes, no lock: cancel() may be called from a signal handler or the
    event loop while a worker thread runs check()."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.cancelled = False

    def cancel(self):
        self.cancelled = True

    def out_of_time(self) -> bool:
        return time.monotonic() > self.deadline

    def check(self):
        """Raise if the work must end: called between steps, so no request outlives its client or its
        time by more than one step (a token, a batch of texts)."""
        if self.cancelled:
            raise Cancelled("the request was cancelled")
        if self.out_of_time():
            raise TimeLimit(self.seconds)
