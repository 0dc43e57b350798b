"""requirements.lock agrees with pyproject.toml, and the environment the tests run in is the lock.

pyproject.toml gives ranges (llmpipe installs beside a user's other packages); requirements.lock pins
one version of every package, with hashes, and `make setup` installs exactly that. torch alone is
installed apart (the Makefile's TORCH: a CPU or CUDA build), its dependencies locked."""

import ast
import importlib.metadata
import re
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ..conftest import REPO

LOCK = REPO / "requirements.lock"
INSTALLED_APART = {"torch", "llmpipe", "pip"}  # TORCH, the project itself (editable), the venv's own pip


def pyproject_requirements() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in [*project["dependencies"], *project["optional-dependencies"]["dev"]]]


def locked() -> dict[str, str]:
    """{canonical name: version} of every `name==version` line of the lock."""
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)", LOCK.read_text(), flags=re.M)
    return {canonicalize_name(name): version for name, version in pins}


def directly_locked() -> set[str]:
    """The packages the lock holds because pyproject.toml asks for them (pip-compile's annotations)."""
    names, current = set(), None
    for line in LOCK.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", line)
        if pin:
            current = canonicalize_name(pin.group(1))
        elif current and re.search(r"#\s+(via\s+)?llmpipe \(pyproject\.toml\)", line):
            names.add(current)
    return names


def test_every_requirement_is_locked_at_a_version_its_range_allows():
    pins = locked()
    for requirement in pyproject_requirements():
        name = canonicalize_name(requirement.name)
        if name == "torch":
            assert name not in pins, "torch is installed apart (the Makefile's TORCH), not from the lock"
            continue
        assert name in pins, f"{requirement} is in pyproject.toml but not in requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"requirements.lock pins {name}=={pins[name]}, outside pyproject.toml's {requirement}: run `make lock`"
        )


def test_the_lock_holds_no_requirement_that_pyproject_dropped():
    asked = {canonicalize_name(r.name) for r in pyproject_requirements()} - {"torch"}
    assert directly_locked() == asked, "requirements.lock was made from another pyproject.toml: run `make lock`"


def test_the_environment_is_exactly_the_lock():
    """What `pip freeze` lists is what the lock pins: no package missing, none extra, no other version.
    (make setup builds a new venv whenever the lock changes.)"""
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}
    pins = locked()
    others = {n: v for n, v in installed.items() if n not in INSTALLED_APART and pins.get(n) != v}
    missing = {n: v for n, v in pins.items() if installed.get(n) != v}
    assert not others and not missing, (
        f"the environment at {sys.prefix} is not requirements.lock (run `make setup`):\n"
        f"installed, not as locked: {others}\nlocked, not installed: {missing}"
    )
    torch_pin = re.search(r"^TORCH \?= torch==(\S+)", (REPO / "Makefile").read_text(), flags=re.M).group(1)
    assert installed["torch"].split("+")[0] == torch_pin, (installed["torch"], torch_pin)


def imported_packages() -> set[str]:
    """The top-level names that src/llmpipe imports from outside itself and the standard library."""
    names = set()
    for path in (REPO / "src" / "llmpipe").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"llmpipe", "__future__"}


def test_every_package_llmpipe_imports_is_declared():
    declared = {canonicalize_name(r.name) for r in pyproject_requirements()}
    providers = importlib.metadata.packages_distributions()
    undeclared = {
        name: providers.get(name)
        for name in imported_packages()
        if not declared & {canonicalize_name(d) for d in providers.get(name, [])}
    }
    assert not undeclared, f"src/llmpipe imports packages that pyproject.toml does not declare: {undeclared}"
