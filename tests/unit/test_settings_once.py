"""A setting's default is written once, in conf/ (composed into params.yaml): no dataclass of the code
declares a default of its own for a key of params.yaml. Read from the source, so a default added to
any dataclass of the package is caught, not only to the classes listed here."""

import ast
from pathlib import Path

import yaml

from ..conftest import default_params_text

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "llmpipe"
# Fields that share a name with a setting but hold something else (checked to be so):
NOT_SETTINGS = {
    ("Seq2SeqConfig", "num_buckets"),  # relative-position buckets; clean.dedup.num_buckets is MinHash's
    ("Stage", "hardware"),  # whether the stage is handed the hardware section
    ("Run", "val_batches"),  # None: no cap, what fine-tuning runs take; pretrain.val_batches sets it
    ("Pair", "lang"),  # an SFT pair's language, not a corpus field's name
}


def setting_names() -> set[str]:
    names = set()

    def walk(section: dict):
        for key, value in section.items():
            names.add(str(key))
            if isinstance(value, dict):
                walk(value)

    walk(yaml.safe_load(default_params_text()))
    return names


def has_default(value: ast.expr | None) -> bool:
    """A field's value is a default, not field metadata only (the schema's `between(...)` ranges)."""
    if value is None:
        return False
    if isinstance(value, ast.Call) and getattr(value.func, "id", "") in ("between", "field"):
        return any(k.arg in ("default", "default_factory") for k in value.keywords)
    return True


def defaults_of_settings(path: Path, settings: set[str]) -> list[str]:
    """`Class.field = default` of every dataclass in a file whose field is named like a setting."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        decorators = [d.func if isinstance(d, ast.Call) else d for d in getattr(node, "decorator_list", [])]
        if not isinstance(node, ast.ClassDef) or not any(getattr(d, "id", "") == "dataclass" for d in decorators):
            continue
        for field in node.body:
            if isinstance(field, ast.AnnAssign) and has_default(field.value) and isinstance(field.target, ast.Name):
                name = field.target.id
                if name in settings and (node.name, name) not in NOT_SETTINGS:
                    found.append(f"{path.name}: {node.name}.{name} = {ast.unparse(field.value)}")
    return found


def test_no_setting_has_a_second_default():
    settings = setting_names()
    assert {"block_size", "lr", "warmup_steps", "tie_embeddings", "end"} <= settings
    found = [d for path in sorted(PACKAGE.rglob("*.py")) for d in defaults_of_settings(path, settings)]
    assert found == []


def test_the_check_finds_a_second_default(tmp_path):
    (tmp_path / "second.py").write_text(
        "from dataclasses import dataclass\n\n@dataclass(frozen=True)\nclass C:\n    lr: float = 0.1\n    x: int = 1\n"
        "    warmup_steps: int = field(metadata={})\n"
    )
    found = defaults_of_settings(tmp_path / "second.py", {"lr"})
    assert [f.split(": ", 1)[1] for f in found] == ["C.lr = 0.1"]
