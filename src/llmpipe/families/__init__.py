"""The model families, found by name: `model.arch` -> the family module that builds it.

Each family is one module defining FAMILY (families/base.py says what it provides), registered as a
Python entry point of the group "llmpipe.families": name = a model.arch value, value = the module.
llmpipe's own (pyproject.toml):

  transformer         decoder.py          GPT/Llama-style decoder, next-token prediction
  bert                encoder.py          BERT-style encoder, masked tokens
  t5                  encoder_decoder.py  T5-style encoder-decoder, corrupted spans
  rnn, lstm, gru      recurrent.py        recurrent language models, next-token prediction

Another package adds a family the same way, in its own pyproject.toml, and it works everywhere
(pretraining, fine-tuning, export, registry, evaluation) with no edit to llmpipe. The names are read
from the installed packages' metadata without importing any family (no torch); a family's module is
imported when it is first asked for.
"""

import difflib
import functools
from importlib.metadata import EntryPoint, entry_points

GROUP = "llmpipe.families"
DEFAULT_ARCH = "transformer"  # an export written before model.arch existed holds a decoder's config


@functools.cache
def registered() -> dict[str, EntryPoint]:
    """model.arch name -> its entry point, from every installed package (cache_clear() to look again)."""
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def arch_names() -> tuple[str, ...]:
    return tuple(sorted(registered()))


def family(arch: str):
    """The Family that builds model.arch=`arch`; a clear error naming the known ones otherwise."""
    found = registered().get(arch)
    if found is None:
        close = difflib.get_close_matches(str(arch), arch_names(), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ValueError(f"model.arch={arch!r} is not one of {list(arch_names())}{hint}")
    loaded = found.load()  # the module's FAMILY
    assert arch in loaded.archs, f"entry point {arch} -> {found.value} builds {loaded.archs}"
    return loaded


def families() -> list:
    """Every installed family, once each."""
    unique = {}
    for arch in arch_names():
        unique.setdefault(id(f := family(arch)), f)
    return list(unique.values())


def family_of(cfg):
    """The family of a network config (as model_config returned it): the one its `arch` names, where
    the config holds one, else the one whose config class it is. Only that family is loaded when the
    name is right, so a broken family of another package does not stop the others."""
    arch = getattr(cfg, "arch", DEFAULT_ARCH)
    named = family(arch) if arch in registered() else None
    if named is not None and type(cfg) is named.config_class:
        return named
    for candidate in families():
        if type(cfg) is candidate.config_class:
            return candidate
    raise AssertionError(f"no family builds {type(cfg).__name__}")


def family_of_section(section: dict):
    """The family of a model section (params.yaml) or a saved config dict (llmpipe.json)."""
    return family(section.get("arch", DEFAULT_ARCH))


def model_config(section: dict, vocab_size: int | None = None):
    """The network config from a `model` section (params.yaml) or a saved config dict (llmpipe.json,
    which holds vocab_size)."""
    values = dict(section)
    if vocab_size is not None:
        values["vocab_size"] = vocab_size
    arch = values.pop("arch", DEFAULT_ARCH)
    return family(arch).config(arch, values)


def language_model(cfg):
    """The network that pretraining trains, for a config from model_config."""
    return family_of(cfg).language_model(cfg)


def classifier(cfg, num_labels: int, pooling: str = "mean"):
    return family_of(cfg).classifier(cfg, num_labels, pooling)


def shard_units() -> tuple[type, ...]:
    """The module classes FSDP2 shards one by one, of every family."""
    return tuple(unit for f in families() for unit in f.shard_units)
