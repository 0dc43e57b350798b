"""`llmpipe ui`'s server command: the project's store, loopback, and no MLflow job consumers."""

from llmpipe.registry.ui import runs_address, server_command


def test_the_server_runs_on_the_given_store_and_address_without_job_consumers(monkeypatch):
    monkeypatch.delenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", raising=False)
    argv, env = server_command("sqlite:////p/mlflow.db", "127.0.0.1", 5123)
    assert argv[1:4] == ["-m", "mlflow", "server"]
    assert argv[argv.index("--backend-store-uri") + 1] == "sqlite:////p/mlflow.db"
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and argv[argv.index("--port") + 1] == "5123"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"


def test_a_user_who_wants_the_job_consumers_keeps_them(monkeypatch):
    monkeypatch.setenv("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "true")
    assert (
        server_command("sqlite:////p/mlflow.db", "127.0.0.1", 5000)[1]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "true"
    )


def test_the_address_opens_the_experiments_runs_in_the_model_training_view():
    assert runs_address("7") == "/#/experiments/7/runs?workflowType=machine_learning"
