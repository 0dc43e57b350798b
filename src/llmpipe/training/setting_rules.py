"""Rules between settings: what the schema, which checks one value at a time, cannot see. The model's
shape (head width, query heads against key/value heads, RoPE's even head width, each family's own
rules), pretraining's batch against the block size, the masking shares, and each batch against the
devices that share it.

The check stage runs them all before any stage runs (`check`), and training runs the same
functions where it uses the values, so each rule is written once: the model's in its family's config
class (networks/), the others here. Every problem names each key involved, as params.yaml spells it.
"""

import re
from dataclasses import fields

from llmpipe.schema import Hardware, Model, Params, Pretrain

# A family config names its fields bare ("d_model=100 is not divisible by n_head=3"); params.yaml
# holds them under `model`, and the vocabulary size under `tokenize`.
MODEL_KEYS = re.compile(r"(?<![\w.])(" + "|".join(f.name for f in fields(Model)) + r"|vocab_size)\b")


def batch_problems(pretrain: Pretrain, block_size: int) -> list[str]:
    """Pretraining's batch is whole windows, and a run is at least one batch."""
    if pretrain.batch_tokens % block_size:
        return [
            f"pretrain.batch_tokens={pretrain.batch_tokens} must be a multiple of model.block_size={block_size} "
            "(a batch is whole windows)"
        ]
    if pretrain.epochs is None and pretrain.max_tokens < pretrain.batch_tokens:
        batch = f"pretrain.batch_tokens={pretrain.batch_tokens}"
        return [f"pretrain.max_tokens={pretrain.max_tokens} is less than one batch ({batch})"]
    return []


def devices_problems(batch_size: int, hardware: Hardware, key: str) -> list[str]:
    """A batch is shared out evenly among the devices of every node."""
    world = hardware.devices * hardware.num_nodes
    if batch_size % world:
        return [
            f"{key}={batch_size} is not divisible by hardware.devices x hardware.num_nodes = "
            f"{hardware.devices} x {hardware.num_nodes}"
        ]
    return []


def model_problems(model: dict, vocab_size: int) -> list[str]:
    """The family's own rules, run by building its config as pretraining will (with the vocabulary
    size asked for: the one learned is at most that, and no rule depends on it but being positive)."""
    from llmpipe.families import model_config  # torch: only when a check gets this far

    try:
        model_config(model, vocab_size)
    except ValueError as err:
        reasons = str(err).removeprefix("invalid model config: ").split("; ")
        return [
            f"model (arch={model.get('arch')}): "
            + MODEL_KEYS.sub(lambda m: ("tokenize." if m[1] == "vocab_size" else "model.") + m[1], reason)
            for reason in reasons
        ]
    return []


def problems(params: Params, model: dict) -> list[str]:
    """Every rule between settings that params (typed, having passed the schema) breaks; `model` is
    its model section as a mapping, as the stages hand it to llmpipe.families."""
    from llmpipe.families.masking import masking_problems  # torch, as model_problems has imported it

    found = model_problems(model, params.tokenize.vocab_size)
    block_size = params.model.block_size
    found += batch_problems(params.pretrain, block_size)
    found += masking_problems(params.pretrain.masking)  # checked whatever the family, as the schema checks it
    if not found:  # sequences per pretraining batch, once the batch is whole windows
        sequences = params.pretrain.batch_tokens // block_size
        found += devices_problems(sequences, params.hardware, "pretrain.batch_tokens / model.block_size")
    for task in params.finetune.tasks:
        found += devices_problems(params.finetune[task].batch_size, params.hardware, f"finetune.{task}.batch_size")
    return found


def check(params: dict, source: str = "params.yaml"):
    """Raise ValueError listing every rule between settings that params (a mapping that passed the
    schema) breaks."""
    from llmpipe import typed_params

    found = problems(typed_params.build(params), params["model"])
    if found:
        listed = "\n".join(f"  - {p}" for p in found)
        raise ValueError(f"{source} has {len(found)} problem(s) between settings:\n{listed}")
