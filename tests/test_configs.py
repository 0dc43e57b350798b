"""Every config composes and builds what it describes; params.yaml is exactly what conf/ composes to."""

import lightning as L
import pytest
import yaml

from llmpipe import networks
from llmpipe.config import compose, section
from llmpipe.lit_module import OptimConfig
from llmpipe.stages import STAGES
from llmpipe.training import batch_split, strategy, token_budget

from .conftest import REPO, dvc_stages

CONF = REPO / "conf"
GROUPS = sorted(p.name for p in CONF.iterdir() if p.is_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def test_committed_params_yaml_is_what_conf_composes_to():
    committed = (REPO / "params.yaml").read_text(encoding="utf-8")
    assert committed == compose(conf_dir=CONF), "params.yaml is stale: run `llmpipe compose` and commit it"


@pytest.mark.parametrize("group", [g for g in GROUPS if g != "experiment"])
def test_every_group_has_a_tiny_option(group):
    assert "tiny" in options(group)


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_and_instantiates(group, option):
    params = yaml.safe_load(compose([f"{group}={option}"], conf_dir=CONF))
    assert set(STAGES) - {"ingest"} <= set(params) | {"ingest"}
    cfg = networks.model_config(params["model"], params["tokenize"]["vocab_size"])
    assert networks.language_model(cfg).num_params(non_embedding=False) == cfg.num_params()
    hardware = params["trainer"]
    pretrain_batch, pretrain_steps = token_budget(params["pretrain"], cfg.block_size)
    runs = {"pretrain": (params["pretrain"], pretrain_batch, pretrain_steps)}
    for task in params["finetune"]["tasks"]:
        runs[task] = (params["finetune"][task], params["finetune"][task]["batch_size"], None)
    for run_section, batch_size, max_steps in runs.values():
        OptimConfig.from_section(run_section, max_steps=max_steps)
        micro, accumulate = batch_split(batch_size, hardware)
        assert micro * accumulate * hardware["devices"] * hardware["num_nodes"] == batch_size
    if hardware["accelerator"] == "cpu":
        keys = ("accelerator", "devices", "num_nodes", "precision")
        L.Trainer(**{k: hardware[k] for k in keys}, strategy=strategy(hardware), logger=False)


def module_of(name: str) -> str:
    """The stage module a dvc.yaml stage runs: evaluate_task@sft and evaluate_report run
    llmpipe.stages.evaluate."""
    return name.split("@")[0].split("_")[0]


def target_of(name: str, stage: dict) -> str | None:
    """The target a dvc.yaml stage passes its module: the foreach item, `harness` or `report` for
    evaluate_harness / evaluate_report, `lm` for evaluate and register, else none."""
    kind = name.split("@")[0].partition("_")[2]
    if stage["item"] or kind in ("harness", "report"):
        return stage["item"] or kind
    return "lm" if module_of(name) in ("evaluate", "register") else None


def test_dvc_yaml_params_and_deps_exist():
    params = yaml.safe_load(compose(conf_dir=CONF))
    stages = dvc_stages(params)
    assert list(dict.fromkeys(module_of(name) for name in stages)) == list(STAGES)
    for name, stage in stages.items():
        target = target_of(name, stage)
        assert stage["cmd"] == f"python -m llmpipe.stages.{module_of(name)}" + (f" {target}" if target else "")
        for key in stage.get("params", []):
            assert section(params, key) is not None, f"stage {name} depends on missing param section {key}"
        for dep in stage["deps"]:
            if dep.startswith("src/"):
                assert (REPO / dep).is_file(), dep
        assert "trainer" not in stage.get("params", []), "hardware settings must not invalidate finished runs"


def test_a_bad_override_is_a_clear_error():
    with pytest.raises(ValueError, match="model=nope"):
        compose(["model=nope"], conf_dir=CONF)


def test_tiny_experiment_switches_every_group():
    tiny = yaml.safe_load(compose(["experiment=tiny"], conf_dir=CONF))
    default = yaml.safe_load(compose(conf_dir=CONF))
    assert tiny["model"]["d_model"] < default["model"]["d_model"]
    assert tiny["ingest"]["max_docs_per_file"] is not None
    assert tiny["pretrain"]["max_tokens"] < default["pretrain"]["max_tokens"]


def test_dvc_params_are_what_each_stage_reads():
    import importlib

    params = yaml.safe_load(compose(conf_dir=CONF))
    for name, stage in dvc_stages(params).items():
        module = importlib.import_module(f"llmpipe.stages.{module_of(name)}")
        target = target_of(name, stage)
        expected = module.SECTIONS if target is None else module.sections(target)
        assert stage["params"] == expected, name


def test_each_task_has_its_own_stages_params_and_outputs():
    params = yaml.safe_load(compose(conf_dir=CONF))
    stages = dvc_stages(params)
    assert params["finetune"]["tasks"] == ["topics", "sentiment", "sft"]
    for task in params["finetune"]["tasks"]:
        assert f"finetune.{task}" in stages[f"finetune@{task}"]["params"]
        assert f"models/finetune/{task}" in stages[f"evaluate_task@{task}"]["deps"]
        assert f"metrics/evaluate/{task}.json" in stages[f"register_task@{task}"]["deps"]
        others = [f"finetune.{t}" for t in params["finetune"]["tasks"] if t != task]
        for stage in (f"finetune@{task}", f"evaluate_task@{task}", f"register_task@{task}"):
            assert not set(others) & set(stages[stage]["params"]), stage  # another task's change leaves it alone


PLUMBING = {
    "runner",
    "tracking",
    "config",
    "schema",
    "atomic",
    "throughput",
    "__init__",
}  # cannot change what a stage computes


def llmpipe_imports(module: str, seen: set[str] | None = None) -> set[str]:
    """The llmpipe modules that `module` (e.g. 'stages/pretrain') imports, transitively."""
    import ast

    seen = set() if seen is None else seen
    tree = ast.parse((REPO / "src" / "llmpipe" / f"{module}.py").read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("llmpipe"):
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name.startswith("llmpipe")]
        for name in names:
            path = name.removeprefix("llmpipe").lstrip(".").replace(".", "/")
            if path and (REPO / "src" / "llmpipe" / f"{path}.py").is_file() and path not in seen:
                seen.add(path)
                llmpipe_imports(path, seen)
    return seen


def test_every_stage_depends_on_the_library_modules_it_imports():
    params = yaml.safe_load(compose(conf_dir=CONF))
    for name, stage in dvc_stages(params).items():
        module = module_of(name)
        needed = {
            f"src/llmpipe/{m}.py" for m in llmpipe_imports(f"stages/{module}") if m.split("/")[-1] not in PLUMBING
        }
        needed.add(f"src/llmpipe/stages/{module}.py")
        missing = needed - set(stage["deps"])
        assert not missing, f"stage {name} imports {sorted(missing)} but does not list them as deps"
