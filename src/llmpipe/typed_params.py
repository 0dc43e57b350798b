"""params.yaml against llmpipe.schema: `check` reports every problem at once (unknown keys, with the
closest known name; missing keys; wrong types; values out of range), so a misspelt override costs
one failed start, not one per mistake and never a half-finished run; `build` turns a checked
mapping into the schema's dataclasses, which is what the stages hand the library.

A stage, `llmpipe compose` and `dvc exp run` (through the stages) all read params.yaml through
config.load_params, which calls `check`.
"""

import difflib
import types
import typing
from dataclasses import fields, is_dataclass

from llmpipe.schema import TASK_TYPES, Finetune, FinetuneTask, Params


def type_name(tp) -> str:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if is_dataclass(tp):
        return "a mapping"
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    if tp in names:
        return names[tp]
    origin = typing.get_origin(tp)
    return {list: "a list", dict: "a mapping"}.get(origin, str(tp))


def matches(value, tp) -> bool:
    """Whether a YAML value has type tp (an int is a float; a bool is neither)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in typing.get_args(tp))
    if tp is typing.Any:
        return True
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if is_dataclass(tp):
        return isinstance(value, dict)
    if origin is list:
        return isinstance(value, list) and all(matches(v, typing.get_args(tp)[0]) for v in value)
    if origin is dict:
        key_type, value_type = typing.get_args(tp)
        return isinstance(value, dict) and all(
            matches(k, key_type) and matches(v, value_type) for k, v in value.items()
        )
    raise AssertionError(f"schema type {tp} is not handled")


def leaves(value):
    """The scalars inside lists and mappings, where a range applies to each."""
    if isinstance(value, list):
        for v in value:
            yield from leaves(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif value is not None:
        yield value


def range_problem(value, meta: dict) -> str | None:
    for v in leaves(value):
        if meta.get("choices") is not None and v not in meta["choices"]:
            return f"{v!r} is not one of {list(meta['choices'])}"
        if meta.get("low") is not None and v < meta["low"]:
            return f"{v} is below the minimum {meta['low']}"
        if meta.get("high") is not None and v > meta["high"]:
            return f"{v} is above the maximum {meta['high']}"
        if meta.get("above") is not None and v <= meta["above"]:
            return f"{v} must be greater than {meta['above']}"
        if meta.get("below") is not None and v >= meta["below"]:
            return f"{v} must be less than {meta['below']}"
    return None


def problems(values: dict, schema: type = Params, prefix: str = "") -> list[str]:
    """Every problem of a params mapping against a schema dataclass, as 'key.path: what' lines."""
    if not isinstance(values, dict):
        return [f"{prefix.rstrip('.') or 'params.yaml'}: expected a mapping, got {values!r}"]
    found = []
    hints = typing.get_type_hints(schema)
    known = {f.name: f for f in fields(schema)}
    names = list(known)  # what an unknown key may be a typo of
    if schema is Finetune:
        found += task_problems(values, prefix)
        names += task_sections(values)
        values = {k: v for k, v in values.items() if k not in task_sections(values)}
    for key in values:
        if key not in known:
            close = difflib.get_close_matches(str(key), names, n=1)
            found.append(f"{prefix}{key}: unknown key" + (f" (did you mean {close[0]}?)" if close else ""))
    for name, spec in known.items():
        path = f"{prefix}{name}"
        if name not in values:
            found.append(f"{path}: missing")
            continue
        value, tp = values[name], hints[name]
        if not matches(value, tp):
            found.append(f"{path}: expected {type_name(tp)}, got {value!r}")
        elif is_dataclass(tp):
            found += problems(value, tp, f"{path}.")
        elif spec.metadata and (problem := range_problem(value, spec.metadata)):
            found.append(f"{path}: {problem}")
    return found


def task_sections(values: dict) -> list[str]:
    """The keys of the finetune section that hold a task: each one finetune.tasks names, and each
    other mapping with a `type`, a task that is set up but not run (`finetune.tasks=[topics]` or
    `[]` leaves the others' settings where they are)."""
    listed = values.get("tasks") if isinstance(values.get("tasks"), list) else []
    unlisted = [k for k, v in values.items() if k not in listed and isinstance(v, dict) and "type" in v]
    return [*listed, *unlisted]


def task_problems(values: dict, prefix: str) -> list[str]:
    """The problems of each task (task_sections), against the schema of its `type`: a task that does
    not run is checked too, so that a typo in it is found before the day it runs."""
    if not isinstance(values.get("tasks"), list):
        return []  # reported as a type problem of `tasks`
    found = []
    for task in task_sections(values):
        entry = values.get(task)
        if not isinstance(entry, dict):
            found.append(f"{prefix}{task}: listed in {prefix}tasks but has no settings (a mapping with a `type`)")
        elif entry.get("type") not in TASK_TYPES:
            found.append(f"{prefix}{task}.type: {entry.get('type')!r} is not one of {list(TASK_TYPES)}")
        else:
            found += problems(entry, TASK_TYPES[entry["type"]], f"{prefix}{task}.")
    return found


def build(value, tp=Params):
    """A params mapping that passes `check`, as instances of the schema's dataclasses: what the
    stages hand the library (attributes, not string keys). Plain lists and mappings stay as they are."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        arm = next(a for a in typing.get_args(tp) if matches(value, a))
        return build(value, arm)
    if not is_dataclass(tp):
        return value
    hints = typing.get_type_hints(tp)
    built = tp(**{f.name: build(value[f.name], hints[f.name]) for f in fields(tp)})
    if tp is Finetune:  # each task under its own name, by its type's schema
        for task in built.tasks:
            setattr(built, task, build(value[task], TASK_TYPES[value[task]["type"]]))
    return built


def type_at(path: str, params: dict, tp=Params):
    """The schema type of the section at a dotted name ("finetune.sft") of a params mapping (a task's
    schema depends on its `type` there)."""
    value = params
    for key in path.split("."):
        if tp is Finetune and key not in {f.name for f in fields(Finetune)}:
            tp = TASK_TYPES.get(value[key].get("type"), FinetuneTask)
        else:
            tp = typing.get_type_hints(tp)[key]
        value = value[key]
    return tp


def check(params: dict, source: str = "params.yaml"):
    """Raise ValueError naming every problem of params, or return quietly."""
    found = problems(params)
    if found:
        raise ValueError(f"{source} has {len(found)} problem(s):\n" + "\n".join(f"  - {p}" for p in found))
