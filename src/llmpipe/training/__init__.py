"""Training: one LightningModule for every objective (lit_module), one entry point that every run
calls (fit: pretraining, task-adaptive pretraining and fine-tuning describe their run and hand it
over), the loaders (loaders), what each family's pretraining teaches (objectives, with the encoder's
masks in masking), optimizers and schedules (optimizers, schedules), the Trainer set-up
(trainer_setup), resume checkpoints (checkpoints), training curves (curves) and throughput
(throughput), and the two recipes built on them (pretraining, finetuning, with the SFT data of sft).
It may import the plumbing, data, networks and registry (to write exports)."""
