"""What a registered model answers: MLflow pyfuncs over the safetensors export directory. A language
model answers a `prompt` column with a `text` column; a masked language model (the encoder) answers
a `text` column holding <|mask|> tokens with a `text` column where they are filled in; a classifier
answers a `text` column with a `label` column. They are logged "from code" (pyfunc_generator.py,
pyfunc_filler.py, pyfunc_classifier.py), so loading one unpickles nothing."""

import mlflow
import pandas as pd

MODEL_DIR_ARTIFACT = "model_dir"  # the export directory, inside the logged model's artifacts


DEFAULT_SAMPLING = {"max_new_tokens": 100, "temperature": 0.8, "top_k": 50, "top_p": 0.95, "seed": 0}


class ExportModel(mlflow.pyfunc.PythonModel):
    """A pyfunc that loads the llmpipe export directory logged as its artifact."""

    def load_context(self, context):
        from llmpipe.registry.export import load_model_dir

        self.net, self.config, self.tokenizer = load_model_dir(context.artifacts[MODEL_DIR_ARTIFACT])


class TextGenerator(ExportModel):
    """pyfunc over a decoder's or encoder-decoder's export: `prompt` in, generated `text` out."""

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from llmpipe.data.chat_template import model_prompt
        from llmpipe.registry.inference import generate_text

        sampling = {**DEFAULT_SAMPLING, **(params or {})}
        prompts = [model_prompt(self.config, str(p)) for p in model_input["prompt"]]
        texts = [generate_text(self.net, self.tokenizer, p, **sampling) for p in prompts]
        return pd.DataFrame({"text": texts})


class TextClassifier(ExportModel):
    """pyfunc over a classifier export: `text` in, `label` out."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from llmpipe.registry.inference import classify_texts

        texts = [str(t) for t in model_input["text"]]
        pred = classify_texts(self.net, self.tokenizer, texts, self.config["max_tokens"])
        return pd.DataFrame({"label": [self.config["labels"][i] for i in pred]})


class MaskFiller(ExportModel):
    """pyfunc over a masked language model export: `text` with <|mask|> tokens in, filled `text` out."""

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        from llmpipe.registry.inference import fill_masks

        texts = [str(t) for t in model_input["text"]]
        return pd.DataFrame({"text": fill_masks(self.net, self.tokenizer, texts, self.net.config.block_size)})
