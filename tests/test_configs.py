"""Every config composes and builds what it describes; params.yaml is exactly what conf/ composes to."""

import importlib

import lightning as L
import pytest
import yaml

from llmpipe import dvc_yaml, typed_params
from llmpipe.cli import registered_models
from llmpipe.config import compose, section
from llmpipe.families import language_model, model_config
from llmpipe.runner import Sections
from llmpipe.stages import PER_TASK, STAGES
from llmpipe.training.lit_module import OptimConfig
from llmpipe.training.trainer_setup import batch_split, strategy, token_budget

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
    raw = yaml.safe_load(compose([f"{group}={option}"], conf_dir=CONF))
    params = typed_params.build(raw)
    assert {name for name in STAGES if name not in PER_TASK and name not in ("report", "plan")} <= set(raw)
    cfg = model_config(raw["model"], params.tokenize.vocab_size)
    assert language_model(cfg).num_params(non_embedding=False) == cfg.num_params()
    hardware = params.hardware
    pretrain_batch, pretrain_steps = token_budget(params.pretrain, cfg.block_size)
    runs = {"pretrain": (params.pretrain, pretrain_batch, pretrain_steps)}
    for task in params.finetune.tasks:
        runs[task] = (params.finetune[task], params.finetune[task].batch_size, None)
    for run_settings, batch_size, max_steps in runs.values():
        OptimConfig.from_section(run_settings, max_steps=max_steps)
        micro, accumulate = batch_split(batch_size, hardware)
        assert micro * accumulate * hardware.devices * hardware.num_nodes == batch_size
    if hardware.accelerator == "cpu":
        keys = ("accelerator", "devices", "num_nodes", "precision")
        L.Trainer(**{k: getattr(hardware, k) for k in keys}, strategy=strategy(hardware), logger=False)


def declared(name: str, stage: dict):
    """The runner's Stage of a dvc.yaml stage ("finetune@topics": llmpipe.stages.finetune, topics)."""
    module = importlib.import_module(f"llmpipe.stages.{name.split('@')[0]}")
    return module.stage(stage["item"]) if stage["item"] else module.stage()


def runner_stages(params: dict) -> dict[str, dict]:
    """dvc.yaml's stages but `check`, which runs before them all and outside the runner."""
    return {name: stage for name, stage in dvc_stages(params).items() if name != "check"}


def test_the_check_stage_runs_every_time_and_comes_before_every_other():
    stages = dvc_stages(yaml.safe_load(compose(conf_dir=CONF)))
    assert next(iter(stages)) == "check" and stages["check"]["always_changed"] is True
    assert "params" not in stages["check"]  # it reads all of params.yaml on every run: no key to list
    stamp = next(iter(stages["check"]["outs"][0]))
    assert stamp in stages["ingest"]["deps"]  # every other stage is downstream of ingest or of its outputs
    upstream = {"ingest"}
    for name, stage in stages.items():
        if name in ("check", "ingest"):
            continue
        feeds = {out if isinstance(out, str) else next(iter(out)) for s in upstream for out in outputs(stages[s])}
        assert any(dep.split("#")[0].strip() in feeds for dep in stage["deps"]), f"{name} does not come after check"
        upstream.add(name)


def outputs(stage: dict) -> list:
    return [*stage.get("outs", []), *stage.get("metrics", []), *stage.get("plots", [])]


def test_each_dvc_stage_is_one_module_named_as_its_run_and_metrics_file():
    params = yaml.safe_load(compose(conf_dir=CONF))
    stages = runner_stages(params)
    assert list(dict.fromkeys(name.split("@")[0] for name in stages)) == list(STAGES)
    for name, stage in stages.items():
        module, _, item = name.partition("@")
        assert stage["cmd"] == f"python -m llmpipe.stages.{module}" + (f" {item}" if item else "")
        assert declared(name, stage).name == name.replace("@", "/")  # the MLflow run and metrics file
        for entry in stage.get("metrics", []):
            assert list(entry) == [f"metrics/{name.replace('@', '/')}.json"], name
        for dep in stage["deps"]:
            if dep.startswith("src/"):
                assert (REPO / dep).is_file(), dep
        assert not any(p.startswith("hardware") for p in stage.get("params", [])), "hardware must not be hashed"


def test_dvc_params_are_the_sections_the_runner_hands_each_stage():
    params = yaml.safe_load(compose(conf_dir=CONF))
    for name, stage in runner_stages(params).items():
        assert stage["params"] == declared(name, stage).params, name
        for key in stage["params"]:
            assert section(params, key) is not None, f"stage {name} depends on missing param section {key}"


def test_a_stage_reads_only_the_sections_it_declares():
    params = yaml.safe_load(compose(conf_dir=CONF))
    cfg = Sections(params, ["seed", "finetune.topics", "hardware"])
    assert cfg.finetune["topics"].lr == params["finetune"]["topics"]["lr"]
    assert cfg.hardware.clean.workers == params["hardware"]["clean"]["workers"]
    with pytest.raises(AttributeError, match="did not declare the params section `pretrain`"):
        _ = cfg.pretrain
    with pytest.raises(AttributeError, match="`finetune.sft`"):
        _ = cfg.finetune["sft"]


def test_each_task_has_its_own_stages_params_and_outputs():
    params = yaml.safe_load(compose(conf_dir=CONF))
    stages = dvc_stages(params)
    assert params["finetune"]["tasks"] == ["topics", "sentiment", "sft"]
    for task in params["finetune"]["tasks"]:
        assert f"finetune.{task}" in stages[f"finetune@{task}"]["params"]
        assert f"models/finetune/{task}" in stages[f"evaluate_task@{task}"]["deps"]
        assert f"metrics/evaluate_task/{task}.json" in stages[f"register_task@{task}"]["deps"]
        others = [f"finetune.{t}" for t in params["finetune"]["tasks"] if t != task]
        for stage in (f"finetune@{task}", f"evaluate_task@{task}", f"register_task@{task}"):
            assert not set(others) & set(stages[stage]["params"]), stage  # another task's change leaves it alone


def test_a_fourth_task_needs_a_conf_entry_only():
    """A new task is a conf entry: dvc.yaml's stages, the schema, the registered model name, the
    promotion gates and the report card's section all follow from its name and type."""
    overrides = ["finetune.tasks=[topics,sentiment,sft,themes]", "+finetune.themes=${finetune.topics}"]
    raw = yaml.safe_load(compose(overrides, conf_dir=CONF))
    params = typed_params.build(raw)
    assert params.finetune["themes"].type == "classify"
    stages = dvc_stages(raw)
    assert "finetune.themes" in stages["finetune@themes"]["params"]
    assert "finetune.themes" in stages["evaluate_task@themes"]["params"]
    assert "metrics/evaluate_task/themes.json" in stages["register_task@themes"]["deps"]
    for stage in ("finetune@themes", "evaluate_task@themes", "register_task@themes"):
        assert declared(stage, stages[stage]).params == stages[stage]["params"]
    assert registered_models(params)["themes"] == ("llmpipe-themes", {"themes/test_macro_f1": "max"})
    with pytest.raises(ValueError, match="finetune.extra: listed in finetune.tasks but has no settings"):
        compose(["finetune.tasks=[topics,extra]"], conf_dir=CONF)


def test_the_committed_dvc_yaml_is_what_the_stages_declare():
    """dvc.yaml is generated (llmpipe.dvc_yaml) from each stage module's stage(): its params sections,
    what it reads and writes, and the modules it imports; `llmpipe compose` rewrites it."""
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml.render(), "dvc.yaml is stale: run `llmpipe compose`"
    assert "- src/" not in "".join(line for line in dvc_yaml.render().splitlines(True) if "#" in line)


def test_a_stage_depends_on_the_modules_it_imports_and_on_no_others():
    """Editing a cleaning rule re-runs clean and what follows, never pretraining; an import inside a
    function (the heavy libraries are imported where used) counts; plumbing does not."""
    deps = {name: set(stage["deps"]) for name, stage in dvc_stages(yaml.safe_load(compose(conf_dir=CONF))).items()}
    assert (
        "src/llmpipe/clean/normalize.py" in deps["clean"] and "src/llmpipe/clean/normalize.py" not in deps["pretrain"]
    )
    assert {"src/llmpipe/training/pretraining.py", "src/llmpipe/networks/transformer.py"} <= deps["pretrain"]
    assert "src/llmpipe/networks/transformer.py" not in deps["clean"] | deps["tokenize"]
    assert "src/llmpipe/networks/modeling_llmpipe.py" in deps["finetune@topics"]  # read, not imported
    assert not {"src/llmpipe/runner.py", "src/llmpipe/registry/tracking.py"} & set().union(*deps.values())


def test_imports_are_found_anywhere_in_a_module(tmp_path):
    source = tmp_path / "stage.py"
    source.write_text("import os\nfrom llmpipe.data import splits\n\ndef run():\n    import llmpipe.clean.pii\n")
    assert dvc_yaml.imported_modules(source) == {"llmpipe.data", "llmpipe.data.splits", "llmpipe.clean.pii"}
