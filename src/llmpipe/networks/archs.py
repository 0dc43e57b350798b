"""The names `model.arch` takes, by family, without torch: the settings schema, the studies and the
registry's commands (`llmpipe models`, `llmpipe promote`) read them without importing a network,
so they start in a second, not five."""

RECURRENT_ARCHS = ("rnn", "lstm", "gru")  # recurrent.py's cells
ARCHS = ("transformer", "bert", "t5", *RECURRENT_ARCHS)
ENCODER_ARCHS = ("bert",)  # trained on masked tokens, not the next one (training/objectives.py)
SEQ2SEQ_ARCHS = ("t5",)  # trained on corrupted spans, written by a decoder from an encoder's states
CAUSAL_ARCHS = ("transformer", *RECURRENT_ARCHS)  # next-token prediction, in bits per byte
