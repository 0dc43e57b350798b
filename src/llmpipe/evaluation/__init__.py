"""Evaluation: language-model metrics beside unigram and bigram baselines (lm_metrics), classifier
metrics beside the majority label (classification), generation metrics (generation_metrics), the
fine-tuned models on their test splits (tasks), samples (samples), lm-evaluation-harness on
held-out cloze tasks (harness, harness_tasks/) and the report card (report_card). It may import
everything below it: the plumbing, data, networks, registry and training."""
