"""`llmpipe ui`: the MLflow UI on the project's store, and the address that opens on the pipeline's runs.

MLflow 3.10 and later open an experiment, from their home page, on the view of the browser's
workflow switch: "GenAI" (an overview of traces, empty for llmpipe) until the user picks "Model
training", which the browser then remembers. The experiment's kind tag (tracking.KIND_TAG) does not
change that in these versions, so llmpipe prints the address of the runs page, which opens on the
runs whatever the switch says.
"""

import os
import sys

from llmpipe.registry import tracking


def runs_address(experiment_id: str) -> str:
    return f"/#/experiments/{experiment_id}/runs?workflowType=machine_learning"


def serve_ui(host: str, port: int) -> int:
    """`mlflow server` on the project's store (made whole first); for a tracking server, its address."""
    runs = runs_address(tracking.setup())
    uri = tracking.tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"the runs, on the tracking server: {uri.rstrip('/')}{runs}")
        return 0
    print(f"the runs: http://{host}:{port}{runs}  (Ctrl-C stops the UI)", flush=True)
    argv, env = server_command(uri, host, port)
    os.execve(argv[0], argv, env)


def server_command(uri: str, host: str, port: int) -> tuple[list[str], dict]:
    """`mlflow server` on the store at `uri`, and its environment. MLflow's job consumers run GenAI
    judges and evaluations, which llmpipe does not use: seven processes that would take a core
    between them, and outlive the server, so they are off unless the user turned them on. So is
    telemetry: the server then tells the UI that its telemetry is off, and drops what it sends."""
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true", **os.environ}
    argv = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    return argv, env
