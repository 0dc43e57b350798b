"""The package's layout, checked against the real code: which folder may import which, stage files
that stay thin, modules and functions of readable size, and a docstring on every folder."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "llmpipe"

# The plumbing at the top of the package that everything may use, and that uses nothing else.
BASE = {"atomic", "jsonl", "logs", "schema", "typed_params", "config", "secrets", "failpoints", "lifetime", "digests"}
BASE |= {"stage_client", "stage_server"}  # the warm stage runner (its server imports the rest at run time only)
# Each part of the package -> the parts it may import (itself always). Read top to bottom, it is
# the order of the layers: nothing imports a part listed after it.
ALLOWED = {
    "base": set(),
    "networks": set(),  # pure PyTorch: not even the plumbing
    "data": {"base"},  # what several stages and training share: splits, token files, the tokenizer, executors
    "families": {"base", "data", "networks"},  # each model family: its network, objective, export names
    "ingest": {"base", "data"},
    "clean": {"base", "data"},
    "tokenize": {"base", "data"},
    "registry": {"base", "data", "networks", "families"},
    "training": {"base", "data", "networks", "families", "registry"},
    "evaluation": {"base", "data", "networks", "families", "registry", "training"},
    "studies": {"base", "data", "networks", "families", "registry", "training", "evaluation"},
    "runner": {"base", "registry"},
    "stages": {"base", "data", "ingest", "clean", "tokenize", "networks", "families", "registry", "training"}
    | {"evaluation", "runner"},
    "dvc_yaml": {"base", "runner", "stages"},  # dvc.yaml, written from the stages' declarations
    "cli": {"base", "data", "ingest", "clean", "tokenize", "networks", "families", "registry", "training"}
    | {"evaluation", "studies", "runner", "stages", "dvc_yaml"},
}
# Functions that write a report (a page of text, top to bottom) may run longer than others.
REPORT_WRITERS = {("clean/report.py", "report"), ("studies/architectures.py", "write_report")}
REPORT_WRITERS |= {("studies/scaling.py", "write_report")}


def part_of(module: str) -> str:
    """The part of the package a dotted module name belongs to ("llmpipe.training.fit": training)."""
    parts = module.split(".")[1:]
    if not parts or parts[0] in BASE or parts[0] == "__init__":
        return "base"
    return parts[0]


def python_files():
    return sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    return ".".join(("llmpipe", *path.relative_to(PACKAGE).with_suffix("").parts))


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("llmpipe"):
            found |= {node.module} if node.module != "llmpipe" else {f"llmpipe.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("llmpipe")}
    return found


def test_every_part_of_the_package_is_known():
    assert {part_of(module_name(p)) for p in python_files()} == set(ALLOWED)


@pytest.mark.parametrize("path", python_files(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_follow_the_layers(path):
    here = part_of(module_name(path))
    crossing = {m for m in imports(path) if part_of(m) not in ALLOWED[here] | {here}}
    assert not crossing, f"{here} may import {sorted(ALLOWED[here])} only, but imports {sorted(crossing)}"


def test_the_layer_rules_catch_a_crossing():
    """The check above can fail: a network that imports the schema, or data that imports training."""
    assert part_of("llmpipe.schema") not in ALLOWED["networks"]
    assert part_of("llmpipe.training.fit") not in ALLOWED["data"]
    assert part_of("llmpipe.clean.quality") not in ALLOWED["ingest"] | ALLOWED["tokenize"] | ALLOWED["training"]
    assert part_of("llmpipe.stages.pretrain") not in ALLOWED["training"] | ALLOWED["studies"]


def test_stage_files_are_thin():
    for path in sorted((PACKAGE / "stages").glob("*.py")):
        assert len(path.read_text().splitlines()) <= 80, path.name


def test_modules_and_functions_stay_readable():
    for path in python_files():
        text = path.read_text()
        assert len(text.splitlines()) <= 400, f"{path.relative_to(PACKAGE)} has {len(text.splitlines())} lines"
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                where = (str(path.relative_to(PACKAGE)), node.name)
                assert length <= 50 or where in REPORT_WRITERS, f"{where} is {length} lines"


def test_every_folder_says_what_it_holds():
    for folder in sorted(p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()):
        doc = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
        assert doc and len(doc) > 200, f"{folder.name}/__init__.py needs a paragraph on what lives there"
