"""The only module that talks to the MLflow model registry.

Models are logged as an MLflow pyfunc that wraps the safetensors export directory: loading it never
unpickles weights, and `mlflow.pyfunc.load_model` gives back something that answers text.
"""

from pathlib import Path

import mlflow
import pandas as pd
import torch

import llmpipe

CHALLENGER = "challenger"


class TextClassifier(mlflow.pyfunc.PythonModel):
    """pyfunc over a classifier export: a `text` column in, a `label` column out."""

    def load_context(self, context):
        from llmpipe.export import load_model_dir

        self.net, self.config, self.tokenizer = load_model_dir(context.artifacts["model_dir"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from llmpipe.evaluation import classify_texts

        texts = [str(t) for t in model_input["text"]]
        pred = classify_texts(self.net, self.tokenizer, texts, self.config["max_tokens"])
        return pd.DataFrame({"label": [self.config["labels"][i] for i in pred]})


def log_and_register(model_dir: str, name: str, alias: str, tags: dict[str, str]) -> tuple[str, str]:
    """Log model_dir to the active run, register it as a new version of `name`, point `alias` at it.

    Returns (version, model URI).
    """
    examples = pd.DataFrame({"text": ["I think, therefore I am.", "The computer is down again."]})
    signature = mlflow.models.infer_signature(examples, pd.DataFrame({"label": ["some-topic", "other-topic"]}))
    info = mlflow.pyfunc.log_model(
        name="model",
        python_model=TextClassifier(),
        artifacts={"model_dir": model_dir},
        signature=signature,
        input_example=examples,
        pip_requirements=[f"torch=={torch.__version__.split('+')[0]}", "tokenizers", "safetensors", "pandas"],
        code_paths=[str(Path(llmpipe.__file__).parent)],  # the model carries the code that reads it
        registered_model_name=name,
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(name, alias, version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, str(value))
    return version, info.model_uri
