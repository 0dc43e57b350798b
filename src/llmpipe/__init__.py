"""llmpipe: raw text to a trained, evaluated, registered language model with one `dvc repro`."""

__version__ = "0.1.0"
