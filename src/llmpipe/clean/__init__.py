"""The clean stage's library: the rules (normalize.py; quality.py with char_counts.py; pii.py;
language_id.py), exact and near-duplicate removal (minhash.py, near_dedup.py), the datatrove steps
that apply them (steps.py, record_ranges.py), the jobs on datatrove's executors (pipeline.py), and
what the stage writes and reports (outputs.py, report.py)."""
