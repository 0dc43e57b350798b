"""The networks, in plain PyTorch: the decoder-only Transformer (transformer), the BERT-style
encoder (encoder), the recurrent language models and classifiers (recurrent), LoRA adapters (lora),
the factory that builds one from the `model` section (build; archs names them without torch), the
padding of batches they take (batches), and the transformers custom code copied into mean-pooling
classifier exports (modeling_llmpipe). They import nothing of llmpipe: a reader can lift any file
out with torch alone."""
