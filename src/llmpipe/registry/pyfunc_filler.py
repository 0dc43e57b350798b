"""MLflow "model from code" for a masked language model (the encoder): MLflow runs this file to
build the model, so the logged model holds no pickle. Not imported by llmpipe itself."""

from mlflow.models import set_model

from llmpipe.registry.serving import MaskFiller

set_model(MaskFiller())
