"""llmpipe uses other packages through their public APIs only (shared/DESIGN.md, "Libraries, not
ports"): no module imports another package's private module or name, reads or sets one of its
private attributes, overrides one of its private methods, or monkey-patches it. A private name is
one that starts with "_" and is not a dunder. An upgrade of a dependency then breaks llmpipe only
where that package's documented API changed."""

import ast
import importlib
import inspect
import textwrap
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "llmpipe"

# (module path relative to src/llmpipe, name) -> why it must stay. Keep it this short.
ALLOWED: dict[tuple[str, str], str] = {
    ("networks/modeling_llmpipe.py", "_keys_to_ignore_on_load_unexpected"): (
        "a transformers model class declares the checkpoint keys it does not load with this class "
        "attribute; transformers' own T5 classes set it to this same key, and a model file loaded "
        "with trust_remote_code has no other way to say it"
    ),
    ("stage_server.py", "_exit"): (
        "os._exit is os's documented way for a forked child to end without the clean-up it shares "
        "with its parent ('should normally only be used in the child process after a fork()')"
    ),
}


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def python_files() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def relative(path: Path) -> str:
    return str(path.relative_to(PACKAGE))


def own_private_names(trees) -> set[str]:
    """Private names llmpipe defines itself: functions, classes, variables, attributes it assigns,
    parameters. Reading one of these is reading our own code."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
    return {name for name in names if is_private(name)}


def foreign_imports(tree) -> dict[str, str]:
    """Names bound by importing another package in this module -> what they were imported from."""
    bound = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not alias.name.startswith("llmpipe"):
                    bound[alias.asname or alias.name.split(".")[0]] = alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and not (node.module or "").startswith("llmpipe"):
            for alias in node.names:
                bound[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return bound


def root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def static_problems(source: str, own: set[str]) -> list[tuple[int, str, str]]:
    """(line, name, what) for each use of another package's private names, and each monkey-patch,
    that the source shows without running it."""
    tree = ast.parse(source)
    imported = foreign_imports(tree)
    problems = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if any(is_private(part) for part in alias.name.split(".")):
                    problems.append((node.lineno, alias.name, "imports a private module"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and not (node.module or "").startswith("llmpipe"):
            if any(is_private(part) for part in (node.module or "").split(".")):
                problems.append((node.lineno, node.module, "imports from a private module"))
            problems += [(node.lineno, a.name, "imports a private name") for a in node.names if is_private(a.name)]
        elif isinstance(node, ast.Attribute) and is_private(node.attr) and node.attr not in own:
            problems.append((node.lineno, node.attr, "uses another package's private attribute"))
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Attribute) and root_name(target) in imported:
                    problems.append((node.lineno, ast.unparse(target), "sets an attribute of another package"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            if node.args and root_name(node.args[0]) in imported:
                problems.append((node.lineno, ast.unparse(node.args[0]), f"{node.func.id} on another package"))
    return problems


def written_in_body(cls: type) -> set[str]:
    """The names a class's own source defines in its body (methods, class attributes): not those
    that Python or a metaclass adds (abc's `_abc_impl`)."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body
    names = {node.name for node in body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    for node in body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        names |= {target.id for target in targets if isinstance(target, ast.Name)}
    return names


def overridden_privates(cls: type) -> list[str]:
    """Private methods and attributes a class defines that one of its bases from another package
    already has: overriding them depends on that package's internals."""
    foreign = [base for base in cls.__mro__[1:] if not base.__module__.startswith("llmpipe") and base is not object]
    return sorted(
        name for name in written_in_body(cls) if is_private(name) and any(hasattr(base, name) for base in foreign)
    )


def module_name(path: Path) -> str:
    return ".".join(("llmpipe", *path.relative_to(PACKAGE).with_suffix("").parts))


def test_no_module_uses_another_packages_private_names_or_patches_it():
    sources = {relative(path): path.read_text() for path in python_files()}
    own = own_private_names(ast.parse(text) for text in sources.values())
    found = [
        f"{path}:{line}: {what} ({name})"
        for path, text in sources.items()
        for line, name, what in static_problems(text, own)
        if (path, name) not in ALLOWED
    ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("path", python_files(), ids=relative)
def test_no_class_overrides_another_packages_private_methods(path):
    if path.name == "__main__.py" or path.parent.name == "stages":
        return  # entry points: importing them runs nothing, but they define no classes either
    module = importlib.import_module(module_name(path))
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass) if c.__module__ == module.__name__]
    found = {c.__name__: names for c in classes if (names := overridden_privates(c))}
    found = {k: v for k, v in found.items() if not all((relative(path), n) in ALLOWED for n in v)}
    assert not found, f"{relative(path)} overrides private names of other packages: {found}"


def test_the_checks_catch_each_kind_of_private_use():
    """The checks can fail: each kind of use they look for, in code written here."""
    source = (
        "from re import _parser\n"
        "import numpy._core\n"
        "from datatrove.executor import base as executor_base\n"
        "from py3langid import modelio\n"
        "x = modelio._to_array(b'')\n"
        "executor_base.setup_logger = print\n"
        "setattr(executor_base, 'x', 1)\n"
        "def _ours():\n    return 1\n"
        "y = _ours()\n"
    )
    found = {(line, what) for line, _, what in static_problems(source, own_private_names([ast.parse(source)]))}
    assert found == {
        (1, "imports a private name"),
        (2, "imports a private module"),
        (5, "uses another package's private attribute"),
        (6, "sets an attribute of another package"),
        (7, "setattr on another package"),
    }

    from json import JSONDecoder

    class Decoder(JSONDecoder):
        def _private_of_ours(self):
            return 1

        def raw_decode(self, s, idx=0):  # public: fine
            return super().raw_decode(s, idx)

    assert overridden_privates(Decoder) == []
    from argparse import ArgumentParser

    class Parser(ArgumentParser):
        def _print_message(self, message, file=None):  # argparse's private method
            pass

    assert overridden_privates(Parser) == ["_print_message"]
