"""The tokenize stage's library: the byte-level BPE trained on a sample and every clean shard
encoded into token files on datatrove's executors (shards.py, encode.py), with tiktoken where it
gives the same ids (fast_encoding.py). The tokenizer and token-file formats that training reads are
in llmpipe.data."""
