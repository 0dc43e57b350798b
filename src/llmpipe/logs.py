"""Logging for stages and the CLI: what is shown by default (one summary line per stage, our own
progress bars) and what only with LLMPIPE_VERBOSE set (libraries' log lines and progress bars)."""

import logging
import os
import warnings
from contextlib import contextmanager, redirect_stderr, suppress
from pathlib import Path


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
def quiet_bars(to: Path | None = None):
    """Other libraries' progress bars off the terminal while a block runs, unless LLMPIPE_VERBOSE:
    datatrove's (one per task and file, in every worker), lm-evaluation-harness's, datasets' and
    transformers'. They go, with whatever else is written to stderr meanwhile, into the file `to`
    (appended), or nowhere when it is None. A tqdm bar writes to sys.stderr as it is when the bar
    is made, so stderr is redirected (contextlib.redirect_stderr) and forked workers inherit the
    redirection. A stage's own bar, made before the block, and llmpipe's logging handlers keep the
    terminal. (tqdm's TQDM_DISABLE is read once, when tqdm is imported: too early to turn on here.)"""
    if verbose():
        yield
        return
    # line-buffered: a forked worker must not inherit, and write again, lines still in a buffer
    sink = open(to or os.devnull, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 (closed below)
    try:
        with redirect_stderr(sink):
            yield
    except BaseException:
        with suppress(OSError):  # a full disk fails the close too: the error on its way says where it struck first
            sink.close()
        raise
    sink.close()
