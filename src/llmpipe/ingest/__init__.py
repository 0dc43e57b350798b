"""The ingest stage's library: corpus files of any format (formats.py: txt, fortune, jsonl, json,
csv/tsv, Parquet, .gz/.zst, any text encoding) read as a stream into JSON-lines shards of data/raw
(corpus.py), their ids made unique (duplicate_ids.py), long texts cut into documents (pieces.py),
the raw files listed with their splits (raw_files.py). What later stages share is in llmpipe.data."""
