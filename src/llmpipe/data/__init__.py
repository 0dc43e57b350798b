"""What the data stages and training share: the splits (splits.py), the BPE tokenizer (tokenizer.py)
and token files (token_files.py), datatrove's executors (executors.py), the quarantine reasons
(quarantine.py), and the data of fine-tuning tasks (task_support.py, labeled_docs.py, chat_template.py).
It knows nothing of networks or training: it may import only the plumbing at the package's top
(jsonl, atomic, logs, schema)."""
