"""What a registered model answers: MLflow pyfuncs over the safetensors export directory. A language
model answers a `prompt` column with a `text` column; a masked language model (the encoder) answers
a `text` column holding <|mask|> tokens with a `text` column where they are filled in; a classifier
answers a `text` column with a `label` column. They are logged "from code" (pyfunc_generator.py,
pyfunc_filler.py, pyfunc_classifier.py), so loading one unpickles nothing.

Every request is checked against the limits of params.yaml's `serve` section before any work
(limits.py), and its work stops after serve.request_seconds: through MLflow's Python API
(`mlflow.pyfunc.load_model(...).predict(df, params=...)`), and in `llmpipe serve` (server.py), which
answers with these same classes, calling `check` and `answer` itself so that it can stop the work."""

from abc import ABC, abstractmethod

import mlflow
import pandas as pd

from llmpipe.registry.limits import DEFAULT_SAMPLING, BadRequest, Stop, checked_sampling, checked_texts, unknown_params
from llmpipe.schema import Serve

MODEL_DIR_ARTIFACT = "model_dir"  # the export directory, inside the logged model's artifacts
# DEFAULT_SAMPLING is here too: model_registry logs it as the generator's params schema
__all__ = ["DEFAULT_SAMPLING", "MODEL_DIR_ARTIFACT", "MaskFiller", "TextClassifier", "TextGenerator", "load_export"]


class ExportModel(mlflow.pyfunc.PythonModel, ABC):
    """A pyfunc that loads the llmpipe export directory logged as its artifact. `column` is the
    input column; `check` refuses a bad request before any work, `answer` does the work."""

    column = "text"

    def load_context(self, context):
        # The Python API has no command line: the limits of the current directory's params.yaml
        # (a project's), else conf/'s.
        from llmpipe.registry.limits import serve_limits

        self.load(context.artifacts[MODEL_DIR_ARTIFACT], serve_limits())

    def load(self, model_dir, limits: Serve):
        from llmpipe.registry.export import load_model_dir

        self.net, self.config, self.tokenizer = load_model_dir(model_dir)
        self.limits = limits

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        texts, options = self.check(model_input, params)
        return self.answer(texts, options, Stop(self.limits.request_seconds))

    def check(self, model_input, params) -> tuple[list[str], dict]:
        """The request's texts and options, or BadRequest naming every input at fault."""
        texts, problems = checked_texts(model_input, self.column, self.limits)
        options, more = self.checked_options(params)
        if problems + more:
            raise BadRequest(problems + more)
        return texts, options

    def checked_options(self, params) -> tuple[dict, list[tuple[str, str]]]:
        """Options of the work and their problems: a classifier or a mask filler takes none."""
        return {}, unknown_params(params, {})

    @abstractmethod
    def answer(self, texts: list[str], options: dict, stop: Stop) -> pd.DataFrame:
        """The model's answer to checked texts and options, its work stopping when `stop` says."""


class TextGenerator(ExportModel):
    """pyfunc over a decoder's or encoder-decoder's export: `prompt` in, generated `text` out."""

    column = "prompt"

    def checked_options(self, params) -> tuple[dict, list[tuple[str, str]]]:
        return checked_sampling(params, self.limits)

    def answer(self, texts: list[str], options: dict, stop: Stop) -> pd.DataFrame:
        from llmpipe.data.chat_template import model_prompt
        from llmpipe.registry.inference import generate_text

        prompts = [model_prompt(self.config, p) for p in texts]
        return pd.DataFrame(
            {"text": [generate_text(self.net, self.tokenizer, p, stop=stop, **options) for p in prompts]}
        )


class TextClassifier(ExportModel):
    """pyfunc over a classifier export: `text` in, `label` out."""

    def answer(self, texts: list[str], options: dict, stop: Stop) -> pd.DataFrame:
        from llmpipe.registry.inference import classify_texts

        pred = classify_texts(self.net, self.tokenizer, texts, self.config["max_tokens"], stop=stop)
        return pd.DataFrame({"label": [self.config["labels"][i] for i in pred]})


class MaskFiller(ExportModel):
    """pyfunc over a masked language model export: `text` with <|mask|> tokens in, filled `text` out."""

    def answer(self, texts: list[str], options: dict, stop: Stop) -> pd.DataFrame:
        from llmpipe.registry.inference import fill_masks

        filled = fill_masks(self.net, self.tokenizer, texts, self.net.config.block_size, stop=stop)
        return pd.DataFrame({"text": filled})


# export kinds (registry/export.py) -> the class that answers for them
MODELS = {
    "causal_lm": TextGenerator,
    "seq2seq_lm": TextGenerator,
    "classifier": TextClassifier,
    "masked_lm": MaskFiller,
}


def load_export(model_dir, limits: Serve) -> ExportModel:
    """The model that answers for an export directory, by its kind, loaded (its files checked)."""
    from llmpipe.registry.export import read_config

    model = MODELS[read_config(model_dir)["kind"]]()
    model.load(model_dir, limits)
    return model
