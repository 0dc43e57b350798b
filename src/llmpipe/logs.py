"""Logging for stages and the CLI: what is shown by default (one summary line per stage, our own
progress bars) and what only with LLMPIPE_VERBOSE set (libraries' log lines and progress bars)."""

import logging
import os
import warnings
from contextlib import contextmanager


def verbose() -> bool:
    """LLMPIPE_VERBOSE set (and not 0): libraries' own log lines are shown."""
    return os.environ.get("LLMPIPE_VERBOSE", "") not in ("", "0")


def setup_logging():
    logging.basicConfig(
        level=logging.DEBUG if verbose() else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose():  # Lightning's hardware report and tips, MLflow's notices: on request only
        for name in ("lightning", "lightning.pytorch", "lightning.fabric", "mlflow"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Libraries' notices about their own future (Lightning's, torch's) say nothing about the run.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)


@contextmanager
def quiet_bars():
    """Other libraries' progress bars off while a block runs, unless LLMPIPE_VERBOSE: datatrove's
    (one per task and file, in every worker), lm-evaluation-harness's, datasets' and transformers'.
    tqdm reads TQDM_DISABLE only when it is imported, so its default is changed instead, for every
    bar that does not say otherwise; forked workers inherit it. A stage's own bar passes
    disable=False and stays."""
    if verbose():
        yield
        return
    from functools import partialmethod

    from tqdm import std

    init = std.tqdm.__init__
    std.tqdm.__init__ = partialmethod(init, disable=True)
    try:
        yield
    finally:
        std.tqdm.__init__ = init
