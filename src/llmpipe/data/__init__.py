"""The data path: corpus readers (corpus) over file formats and encodings (formats), long texts cut
into documents (pieces), the cleaning rules (cleaning, quality, language_id, pii), exact and
near-duplicate removal (near_dedup) wired into datatrove's executors (clean_pipeline, clean_outputs,
clean_report), the splits (splits), the token files (token_files), the BPE tokenizer (tokenizer),
the documents of classification tasks (labeled_docs) and the SFT prompt template (chat_template).
It knows nothing of networks or training: it may import only the plumbing at the package's top
(jsonl, atomic, logs, schema)."""
