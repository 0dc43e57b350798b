"""Adding a model family is one module and one conf file: a toy family (a small MLP language model
that reads the last few tokens), written to a temporary folder as another package would ship it
(its module, and an entry point in the "llmpipe.families" group), pretrains on the tiny config,
exports, is evaluated and registered by the pipeline's own stages, with no edit to llmpipe. And no
module outside llmpipe's families asks which family it holds: the source is checked for it."""

import ast
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml

from llmpipe import families
from llmpipe.config import compose
from llmpipe.registry.export import load_model_dir, read_config
from llmpipe.registry.inference import generate_text
from llmpipe.stages import run_all

from .conftest import REPO

TOY_FAMILY = '''
"""A toy family: an MLP language model that reads the embeddings of the last `context` tokens."""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmpipe.families.base import Family


@dataclass(frozen=True)
class MLPConfig:
    vocab_size: int
    block_size: int = 64
    n_layer: int = 1
    d_model: int = 32
    tie_embeddings: bool = True
    dropout: float = 0.0
    context: int = 3  # tokens it reads, the current one included

    def to_dict(self) -> dict:
        return {"arch": "mlp", **asdict(self)}

    def embedding_params(self) -> int:
        return self.vocab_size * self.d_model

    def num_params(self) -> int:
        hidden = self.context * self.d_model
        layers = hidden * hidden + hidden + (self.n_layer - 1) * (hidden * hidden + hidden)
        head = 0 if self.tie_embeddings else self.vocab_size * self.d_model
        return self.embedding_params() + layers + hidden * self.d_model + head

    def flops_per_token(self) -> int:
        return 6 * (self.num_params() - self.embedding_params() + self.vocab_size * self.d_model)


class MLPLM(nn.Module):
    def __init__(self, cfg: MLPConfig):
        super().__init__()
        self.config = cfg
        hidden = cfg.context * cfg.d_model
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(cfg.n_layer))
        self.out = nn.Linear(hidden, cfg.d_model, bias=False)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def forward(self, idx, targets=None):
        e = self.embed(idx)  # (B, T, C); position t reads tokens t - context + 1 .. t
        h = torch.cat([F.pad(e, (0, 0, k, 0))[:, : idx.shape[1]] for k in range(self.config.context)], dim=-1)
        for layer in self.layers:
            h = F.gelu(layer(h))
        logits = self.lm_head(self.out(h))
        if targets is None:
            return logits
        return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100)


class MLPFamily(Family):
    archs = ("mlp",)
    config_class = MLPConfig
    unused_keys = ("n_head", "n_kv_head")

    def language_model(self, cfg):
        return MLPLM(cfg)


FAMILY = MLPFamily()
'''

TOY_CONF = """\
# the toy family on the tiny config
defaults:
  - tiny
  - _self_
arch: mlp
"""


@pytest.fixture
def toy_family(tmp_path, monkeypatch):
    """The toy family's package in a folder on sys.path, as pip would install it."""
    site = tmp_path / "site"
    (site / "toy_mlp-0.1.dist-info").mkdir(parents=True)
    (site / "toy_mlp.py").write_text(TOY_FAMILY)
    (site / "toy_mlp-0.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-mlp\nVersion: 0.1\n")
    (site / "toy_mlp-0.1.dist-info" / "entry_points.txt").write_text("[llmpipe.families]\nmlp = toy_mlp:FAMILY\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))  # for what MLflow runs in a process of its own
    families.registered.cache_clear()
    yield site
    families.registered.cache_clear()


def test_a_new_family_is_one_module_and_one_conf_file(toy_family, tiny_project, tmp_path, monkeypatch):
    source, _, _ = tiny_project
    assert "mlp" in families.arch_names()
    conf = shutil.copytree(REPO / "conf", tmp_path / "conf")
    (conf / "model" / "mlp.yaml").write_text(TOY_CONF)
    root = tmp_path / "project"
    shutil.copytree(source / "data" / "tokens", root / "data" / "tokens")  # the tiny corpus, tokenized
    (root / "params.yaml").write_text(compose(["experiment=tiny", "model=mlp", "finetune.tasks=[]"], conf_dir=conf))
    params = yaml.safe_load((root / "params.yaml").read_text())
    assert params["model"]["arch"] == "mlp"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")

    metrics = run_all(root, params, only=["pretrain", "evaluate", "register"])

    pretrain, evaluate = metrics["pretrain"], metrics["evaluate"]["lm"]
    assert pretrain["objective"] == "causal" and pretrain["steps"] > 0 and pretrain["val_bpb"] > 0
    assert evaluate["val_bpb"] < evaluate["unigram_val_bpb"]  # it learned more than token frequencies
    net, config, tokenizer = load_model_dir(root / "models" / "pretrain")
    assert read_config(root / "models" / "pretrain")["model"]["arch"] == "mlp" and config["kind"] == "causal_lm"
    assert type(net).__name__ == "MLPLM" and not (root / "models" / "pretrain" / "config.json").exists()
    assert generate_text(net, tokenizer, "The", max_new_tokens=5, temperature=0.0)  # it writes text
    assert "| prompt | continuation |" in (root / "reports" / "samples.md").read_text()
    registered = metrics["register"]
    assert registered["model_name"].endswith("-lm") and registered["alias"] == "challenger"
    version = mlflow.MlflowClient().get_model_version_by_alias(registered["model_name"], "challenger")
    assert str(version.version) == str(registered["version"])


# Family-specific code: the family modules with their Hugging Face names, and the networks they
# build; and the two studies whose subject is named architectures (they compare conf/model options,
# and branch no pipeline code). What families share may be imported anywhere: the interface, the
# objectives any family may pick (masked tokens, corrupted spans), batching, LoRA, pooling.
FAMILY_CODE = ("families/", "networks/", "studies/architectures.py", "studies/families.py")
SHARED = {"llmpipe.networks.batches", "llmpipe.networks.lora", "llmpipe.networks.shared"}
SHARED |= {f"llmpipe.families.{m}" for m in ("base", "objectives", "masking", "span_corruption")}
OBJECTIVES = ("causal", "masked", "span")


def family_questions(path: Path, arch_names: set[str]) -> list[str]:
    """Where a source file asks which family it holds: it imports a family's own code (a network's
    classes, a family's Hugging Face names, a family module), or compares with a model.arch name or
    an objective's name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = (
                [node.module]
                if node.module != "llmpipe.networks"
                else [f"llmpipe.networks.{a.name}" for a in node.names]
            )
            for name in names:
                if name.startswith(("llmpipe.networks.", "llmpipe.families.")) and name not in SHARED:
                    found.append(f"{path}:{node.lineno} imports {name}")
        elif isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                values = side.elts if isinstance(side, ast.Tuple | ast.List | ast.Set) else [side]
                for value in values:
                    if isinstance(value, ast.Constant) and value.value in arch_names | set(OBJECTIVES):
                        found.append(f"{path}:{node.lineno} compares with {value.value!r}")
    return found


def test_no_module_outside_the_families_asks_which_family_it_holds():
    package = REPO / "src" / "llmpipe"
    arch_names = set(families.arch_names())
    outside = [
        path
        for path in sorted(package.rglob("*.py"))
        if not path.relative_to(package).as_posix().startswith(FAMILY_CODE)
    ]
    assert len(outside) > 80  # the check reads the whole package
    found = [question for path in outside for question in family_questions(path, arch_names)]
    assert found == []


def test_the_check_finds_a_family_question(tmp_path):
    """The check above can fail: the questions the package used to ask are found."""
    asks = tmp_path / "asks.py"
    asks.write_text(
        "from llmpipe.networks.seq2seq import Seq2SeqConfig\n"
        "from llmpipe.networks import encoder, batches\n"
        "def f(cfg, kind):\n"
        "    return cfg.arch in ('bert', 't5') or kind == 'causal'\n"
    )
    found = family_questions(asks, {"bert", "t5"})
    assert [q.split(" ", 1)[1] for q in found] == [
        "imports llmpipe.networks.seq2seq",
        "imports llmpipe.networks.encoder",
        "compares with 'bert'",
        "compares with 't5'",
        "compares with 'causal'",
    ]


def test_a_broken_family_of_another_package_does_not_stop_the_others(tmp_path, monkeypatch):
    """A family whose module cannot be imported fails when it is asked for, by name; llmpipe's own
    families are found as before."""
    site = tmp_path / "site"
    (site / "broken_family-0.1.dist-info").mkdir(parents=True)
    (site / "broken_family.py").write_text("import a_module_that_is_not_installed\n")
    (site / "broken_family-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-family\nVersion: 0.1\n"
    )
    entry = "[llmpipe.families]\naaa_broken = broken_family:FAMILY\n"  # first by name
    (site / "broken_family-0.1.dist-info" / "entry_points.txt").write_text(entry)
    monkeypatch.syspath_prepend(str(site))
    families.registered.cache_clear()
    try:
        assert "aaa_broken" in families.arch_names()
        section = {"arch": "transformer", "block_size": 16, "n_layer": 1, "n_head": 2, "n_kv_head": 2, "d_model": 16}
        cfg = families.model_config({**section, "tie_embeddings": True, "dropout": 0.0}, vocab_size=64)
        assert families.family_of(cfg) is families.family("transformer")
        assert type(families.language_model(cfg)).__name__ == "GPT"
        with pytest.raises(ModuleNotFoundError, match="a_module_that_is_not_installed"):
            families.family("aaa_broken")
    finally:
        families.registered.cache_clear()
