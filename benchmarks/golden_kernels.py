"""How far the golden curve moves under other CPU kernels, and under small real changes to training.

Builds the tiny project's tokens once, then runs the tiny pretraining (one thread, as the golden
record) in a process of its own for each variant, and prints for each its largest difference from
the golden record (tests/golden/tiny_pretrain.json) and from this machine's own run:
  - kernels: this CPU's own; ATEN_CPU_CAPABILITY=avx2 with oneDNN and MKL held to AVX2; and
    ATEN_CPU_CAPABILITY=default (no vector kernels): what other x86-64 CPUs compute;
  - changes: the learning rate 0.1 % higher, the second Adam beta 0.95 -> 0.951, weight decay
    0.1 -> 0.11: changes far smaller than a typical edit of the model or optimizer.
tests/test_golden.py's GOLDEN_TOLERANCE must sit above the first group and below the second.

Run: python benchmarks/golden_kernels.py   (about 2 minutes on 2 cores)
"""

import json
import os
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.test_golden import GOLDEN, GOLDEN_TOLERANCE, pretrain_copy  # noqa: E402

KERNELS = {
    "this CPU": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "default": {"ATEN_CPU_CAPABILITY": "default"},
}
CHANGES = {
    "lr x1.001": ("pretrain", "lr", lambda v: v * 1.001),
    "beta2 0.951": ("pretrain", "betas", lambda v: [v[0], 0.951]),
    "weight decay 0.11": ("pretrain", "weight_decay", lambda v: 0.11),
}


def loss_difference(ours: dict, other: dict) -> float:
    """The largest absolute difference of a logged loss (or bits per byte)."""
    return max(
        abs(a[key] - b[key])
        for curve in ("train", "val")
        for a, b in zip(ours[curve], other[curve], strict=True)
        for key in a
        if key in ("loss", "bpb")
    )


def weight_difference(ours: dict, other: dict) -> float:
    """The largest difference of a weight tensor's sums, relative as the golden test takes it: a sum
    against the sum of absolute values, the others against themselves."""
    found = 0.0
    for name, sums in ours["weights"].items():
        theirs = other["weights"][name]
        for mine, their, scale in zip(sums, theirs, (theirs[1], theirs[1], theirs[2]), strict=True):
            found = max(found, abs(mine - their) / max(1.0, scale))
    return found


def tiny_tokens(root: Path) -> Path:
    from llmpipe.config import compose
    from llmpipe.stages import run_all

    root.mkdir(parents=True)
    (root / "params.yaml").write_text(compose(["experiment=tiny"], conf_dir=REPO / "conf"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlflow.db'}"
    run_all(root, yaml.safe_load((root / "params.yaml").read_text()), only=["ingest", "clean", "tokenize"])
    return root


def main():
    golden = json.loads(GOLDEN.read_text())
    with tempfile.TemporaryDirectory() as tmp:
        project = tiny_tokens(Path(tmp) / "project")
        params = yaml.safe_load((project / "params.yaml").read_text())
        runs = {}
        for name, env in KERNELS.items():
            runs[name] = pretrain_copy(project, Path(tmp) / name.replace(" ", "_"), extra_env=env)
        for name, (section, key, change) in CHANGES.items():
            changed = json.loads(json.dumps(params))
            changed[section][key] = change(changed[section][key])
            text = yaml.safe_dump(changed, sort_keys=False)
            runs[name] = pretrain_copy(project, Path(tmp) / name.replace(" ", "_"), text)
    print(f"golden recorded on: {golden.get('machine', 'not recorded')}")
    print(f"this machine:       {runs['this CPU']['machine']}")
    print(f"GOLDEN_TOLERANCE = {GOLDEN_TOLERANCE:g}\n")
    header = "largest loss difference from golden | from this CPU's run | largest weight-sum difference from it"
    print(f"| run | {header} |")
    print("| --- | ---: | ---: | ---: |")
    for name, run in runs.items():
        print(
            f"| {name} | {loss_difference(run, golden):.3g} | {loss_difference(run, runs['this CPU']):.3g} "
            f"| {weight_difference(run, runs['this CPU']):.3g} |"
        )


if __name__ == "__main__":
    main()
