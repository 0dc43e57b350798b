"""Named points where a test can kill the process, to prove that a crash there loses nothing.

`LLMPIPE_FAILPOINT=register:versioned dvc repro` kills register with SIGKILL right after it created a
model version, exactly as a power cut or the OOM killer would; the test then checks that the rerun
reconciles. Unset (always, outside tests) a failpoint costs one dictionary lookup.
"""

import os
import signal

ENV = "LLMPIPE_FAILPOINT"


def failpoint(name: str):
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
