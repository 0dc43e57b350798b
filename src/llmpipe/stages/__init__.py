"""One module per DVC stage, each with run(params, root) -> metrics and a main() for `python -m`."""

STAGES = ("ingest", "clean", "tokenize", "pretrain", "finetune", "evaluate", "register")
