"""config.json for an export: a transformers config with the label names, and, for a classifier that
pools the mean of its tokens, the pointer to its own class in modeling_llmpipe.py."""


def config_dict(hf, labels: list[str] | None, mean_pool: tuple[str, str] | None) -> dict:
    """hf (a transformers PretrainedConfig) as config.json holds it. mean_pool: (model type, class
    name prefix) of a mean-pooling classifier's custom code, or None. Such a config gets a model type
    of its own, so transformers refuses it without trust_remote_code rather than loading its stock
    classifier, which pools another token."""
    if labels is not None:
        hf.id2label = dict(enumerate(labels))
        hf.label2id = {label: i for i, label in enumerate(labels)}
    config = hf.to_dict()
    if mean_pool is not None:
        model_type, prefix = mean_pool
        config["model_type"] = model_type
        config["architectures"] = [f"{prefix}ForSequenceClassification"]
        config["auto_map"] = {
            "AutoConfig": f"modeling_llmpipe.{prefix}Config",
            "AutoModelForSequenceClassification": f"modeling_llmpipe.{prefix}ForSequenceClassification",
        }
    return config
