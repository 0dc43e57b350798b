"""Tracking, exports and the model registry: MLflow runs of every stage (tracking), the local store
made and migrated whole (store), the MLflow UI on it (ui), the safetensors export directory that
transformers loads (export), running a trained model (inference), the pyfuncs that registered models
answer with (serving, pyfunc_generator, pyfunc_classifier), what a request may ask of them (limits),
the HTTP server of `llmpipe serve` (server) and the registry itself: register, promote, list
(model_registry). It may import the plumbing, data and networks, never training or evaluation."""
