"""Serving cannot be run away with (issue #38, item 7): `llmpipe serve` refuses every bad request with
a 4xx naming the parameter, answers valid ones beside them, stops the work of a request whose client
has gone or whose time is up, and stops within seconds on SIGTERM; `llmpipe generate` and a
registered model's Python API keep the same limits. All on tiny exports made here, in seconds."""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from llmpipe import cli
from llmpipe.data.tokenizer import EOT, special_id, train_bpe
from llmpipe.families import language_model
from llmpipe.networks.encoder import EncoderConfig
from llmpipe.networks.transformer import GPT, GPTClassifier, GPTConfig
from llmpipe.registry.export import save_model_dir
from llmpipe.registry.inference import generate_text, stream_tokens
from llmpipe.registry.limits import SERVE_DEFAULTS, BadRequest, Cancelled, Stop, TimeLimit, serve_limits
from llmpipe.registry.serving import load_export
from llmpipe.schema import Serve

from .conftest import REPO, free_port

TEXTS = ["The quick brown fox jumps over the lazy dog.", "床前明月光，疑是地上霜。举头望明月，低头思故乡。"] * 30
# Small enough to test each limit, with room for a generation that would run for minutes
LIMITS = {"max_new_tokens": 1_000_000, "max_prompt_chars": 200, "max_rows": 8, "request_seconds": 6}
LONG = {"dataframe_records": [{"prompt": "ab ab ab ab"}], "params": {"max_new_tokens": 1_000_000, "temperature": 0}}


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> dict[str, Path]:
    """A tiny language model, classifier and masked language model, exported as the pipeline does."""
    root = tmp_path_factory.mktemp("exports")
    tok = train_bpe(TEXTS, vocab_size=320)
    tok.save(str(root / "tokenizer.json"))
    torch.manual_seed(0)
    shape = {"block_size": 32, "n_layer": 2, "n_head": 4, "n_kv_head": 2, "d_model": 64}
    cfg = GPTConfig(vocab_size=tok.get_vocab_size(), tie_embeddings=False, **shape, dropout=0.0)
    lm = GPT(cfg).eval()
    with torch.no_grad():  # end of text scores 0, below the best of 300 other tokens: greedy never stops
        lm.lm_head.weight[special_id(tok, EOT)] = 0
    save_model_dir(root / "lm", lm, cfg, root / "tokenizer.json", params={})
    classifier = GPTClassifier(cfg, num_labels=2, pooling="last").eval()
    labels = {"labels": ["en", "zh"], "max_tokens": 32}
    save_model_dir(root / "cls", classifier, cfg, root / "tokenizer.json", params={}, extra=labels)
    enc = EncoderConfig(
        arch="bert",
        vocab_size=tok.get_vocab_size(),
        block_size=32,
        n_layer=1,
        n_head=2,
        d_model=32,
        tie_embeddings=True,
        dropout=0.0,
    )
    save_model_dir(root / "mlm", language_model(enc).eval(), enc, root / "tokenizer.json", params={})
    return {"lm": root / "lm", "cls": root / "cls", "mlm": root / "mlm"}


def project(path: Path, **limits) -> Path:
    """A folder whose params.yaml holds only a `serve` section: what serve_limits reads."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "params.yaml").write_text(yaml.safe_dump({"serve": {**LIMITS, **limits}}))
    return path


def start_server(model: Path, cwd: Path) -> tuple[subprocess.Popen, str]:
    """`llmpipe serve <export>` on a loopback port, once it answers /ping; its log in cwd/serve.log."""
    port = free_port()
    llmpipe = Path(sys.executable).parent / "llmpipe"
    args = [str(llmpipe), "serve", str(model), "--port", str(port)]
    with open(cwd / "serve.log", "w") as log:  # the server has its own copy of the file
        server = subprocess.Popen(args, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{base}/ping", timeout=2).close()
            return server, base
        except OSError:
            assert server.poll() is None, f"llmpipe serve exited: {(cwd / 'serve.log').read_text()[-2000:]}"
            assert time.monotonic() < deadline, "llmpipe serve did not come up within 60 s"
            time.sleep(0.2)


@pytest.fixture(scope="module")
def served(exports, tmp_path_factory):
    """(the server process, its base URL)."""
    server, base = start_server(exports["lm"], project(tmp_path_factory.mktemp("serve")))
    yield server, base
    if server.poll() is None:
        server.kill()
    server.wait(timeout=30)


def post(base: str, body, timeout: float = 60) -> tuple[int, str, float]:
    """(status, body, seconds) of POST /invocations; a 4xx or 5xx is an answer like any other."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/invocations", data, {"Content-Type": "application/json"})
    start = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, r.read().decode(), time.monotonic() - start
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), time.monotonic() - start


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process, all its threads (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def records(prompt, **params) -> dict:
    return {"dataframe_records": [{"prompt": prompt}], "params": params}


BAD = {  # the parameter each must name -> the request
    "max_new_tokens": records("ab ab ab ab", max_new_tokens=1_000_000_000, temperature=0),  # issue #38's
    "temperature": records("The", temperature=-1),  # issue #38's
    "prompt": records(""),  # issue #38's
    "top_p": records("The", top_p=0),
    "top_k": records("The", top_k=-1),
    "repetition_penalty": records("The", repetition_penalty=0),
    "no_repeat_ngram_size": records("The", no_repeat_ngram_size=1.5),
    "max_tokens": records("The", max_tokens=5),  # not ours: max_new_tokens
    "max_prompt_chars": records("x" * (LIMITS["max_prompt_chars"] + 1)),
    "max_rows": {"dataframe_split": {"columns": ["prompt"], "data": [["The"]] * (LIMITS["max_rows"] + 1)}},
    "seed": records("The", seed="zero"),
    "text": {"inputs": {"text": ["a column this model does not read"]}},
    "params": {"inputs": {"prompt": "The"}, "params": [1, 2]},
    "dataframe_split": {"dataframe_split": {"columns": ["prompt"]}},
    "body": b"{not json",
}


def valid(i: int) -> dict:
    """Twenty valid requests in each of MLflow's formats, greedy and sampled."""
    params = {"max_new_tokens": 8, "temperature": 0.0 if i % 2 else 0.9, "seed": i, "no_repeat_ngram_size": i % 3}
    formats = [
        {"dataframe_records": [{"prompt": "The"}, {"prompt": "床前明月光，"}]},
        {"dataframe_split": {"columns": ["prompt"], "data": [["The quick"]]}},
        {"inputs": {"prompt": ["The", "举头"]}},
        {"instances": [{"prompt": "low"}]},
    ]
    return {**formats[i % len(formats)], "params": params}


def test_bad_requests_are_refused_by_name_while_valid_ones_are_answered(served):
    """Issue #38's acceptance: each bad request and 20 valid ones at once, beside one that would
    generate for minutes; every bad one gets a 4xx naming its parameter at once, the long one a 504
    naming request_seconds, no answer holds a stack trace, and the server stays up."""
    server, base = served
    requests = [*BAD.values(), *(valid(i) for i in range(20)), LONG]
    with ThreadPoolExecutor(len(requests)) as pool:
        answers = list(pool.map(lambda body: post(base, body), requests))
    for param, (status, text, seconds) in zip(BAD, answers[: len(BAD)], strict=True):
        assert 400 <= status < 500 and param in json.loads(text)["message"], (param, status, text)
        assert seconds < LIMITS["request_seconds"], (param, seconds)
    for status, text, _ in answers[len(BAD) : -1]:
        assert status == 200, text
        assert all(isinstance(row["text"], str) for row in json.loads(text)["predictions"])
    status, text, seconds = answers[-1]
    assert status == 504 and "request_seconds" in text, text
    assert seconds < LIMITS["request_seconds"] + 2
    for _, text, _ in answers:
        assert "Traceback" not in text and "stack_trace" not in text and 'File "' not in text, text
    assert urllib.request.urlopen(f"{base}/ping", timeout=5).status == 200
    assert server.poll() is None


def test_the_work_of_a_request_stops_when_its_client_goes(served):
    server, base = served
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
    connection.request("POST", "/invocations", json.dumps(LONG), {"Content-Type": "application/json"})
    time.sleep(1.0)
    busy = cpu_seconds(server.pid)
    time.sleep(1.0)
    assert cpu_seconds(server.pid) - busy > 0.2  # it is generating
    connection.close()  # the client goes
    time.sleep(0.5)
    idle = cpu_seconds(server.pid)
    time.sleep(1.5)
    assert cpu_seconds(server.pid) - idle < 0.15, "the request's work went on after its client left"
    assert urllib.request.urlopen(f"{base}/ping", timeout=5).status == 200


def test_sigterm_stops_the_server_within_seconds_during_a_long_request(exports, tmp_path):
    server, base = start_server(exports["lm"], project(tmp_path))  # its own: this test stops it
    try:
        with ThreadPoolExecutor(1) as pool:
            long = pool.submit(post, base, LONG)
            time.sleep(1.5)
            assert not long.done()
            start = time.monotonic()
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=5)
            assert time.monotonic() - start < 5
            status, text, _ = long.result(timeout=5)
    finally:
        if server.poll() is None:
            server.kill()
    assert status == 503 and "stopping" in text and "Traceback" not in text, (status, text)
    assert "Traceback" not in (tmp_path / "serve.log").read_text()  # no request ended in an error


def test_the_limits_come_from_params_yaml_else_from_conf(tmp_path, monkeypatch):
    """One source of the defaults: SERVE_DEFAULTS is conf/config.yaml's `serve` section."""
    assert SERVE_DEFAULTS == yaml.safe_load((REPO / "conf" / "config.yaml").read_text())["serve"]
    monkeypatch.chdir(tmp_path)
    assert serve_limits().max_new_tokens == SERVE_DEFAULTS["max_new_tokens"]  # no params.yaml
    project(tmp_path, max_rows=3)
    assert serve_limits().max_rows == 3
    project(tmp_path, max_rows=0, request_seconds="soon")
    with pytest.raises(ValueError, match=r"serve.max_rows: 0 is below the minimum 1[\s\S]*serve.request_seconds"):
        serve_limits()


def test_the_python_api_keeps_the_limits(exports, tmp_path, monkeypatch):
    """A registered model loaded with MLflow (the pyfunc from code, as register logs it) refuses what
    `llmpipe serve` refuses, and stops after serve.request_seconds of the current project."""
    import mlflow

    from llmpipe.registry.model_registry import PACKAGE_DIR, pyfunc_for
    from llmpipe.registry.serving import MODEL_DIR_ARTIFACT

    code, signature, example = pyfunc_for(exports["lm"])
    saved = tmp_path / "pyfunc"
    mlflow.pyfunc.save_model(
        saved,
        python_model=str(code),
        artifacts={MODEL_DIR_ARTIFACT: str(exports["lm"])},
        signature=signature,
        input_example=example,
        code_paths=[str(PACKAGE_DIR)],
        pip_requirements=["torch", "tokenizers", "safetensors", "pandas"],  # as register: nothing to infer
    )
    monkeypatch.chdir(project(tmp_path / "project", request_seconds=0.5))
    model = mlflow.pyfunc.load_model(str(saved))
    out = model.predict(pd.DataFrame({"prompt": ["The"]}), params={"max_new_tokens": 4, "temperature": 0.0})
    assert isinstance(out["text"][0], str)
    for param, params in [("max_new_tokens", {"max_new_tokens": 10**9}), ("temperature", {"temperature": -1.0})]:
        with pytest.raises(BadRequest, match=param):
            model.predict(pd.DataFrame({"prompt": ["The"]}), params=params)
    with pytest.raises(BadRequest, match="prompt: row 0 is empty"):
        model.predict(pd.DataFrame({"prompt": [""]}))
    start = time.monotonic()
    with pytest.raises(TimeLimit, match="request_seconds"):
        model.predict(pd.DataFrame({"prompt": ["ab ab"]}), params={"max_new_tokens": 1_000_000, "temperature": 0.0})
    assert time.monotonic() - start < 3


def test_classifiers_and_mask_fillers_check_their_texts(exports):
    classifier, filler = load_export(exports["cls"], Serve(**LIMITS)), load_export(exports["mlm"], Serve(**LIMITS))
    labels = classifier.predict(None, pd.DataFrame({"text": ["The fox", "明月"]}))["label"]
    assert len(labels) == 2 and set(labels) <= {"en", "zh"}
    assert len(filler.predict(None, pd.DataFrame({"text": ["The <|mask|> fox"]}))["text"][0]) > 0
    for model in (classifier, filler):
        with pytest.raises(BadRequest, match="text: row 1 is empty"):
            model.predict(None, pd.DataFrame({"text": ["The fox", ""]}))
        with pytest.raises(BadRequest, match=r"text: 9 rows, more than serve.max_rows \(8\)"):
            model.predict(None, pd.DataFrame({"text": ["The fox"] * 9}))
        with pytest.raises(BadRequest, match="max_prompt_chars"):
            model.predict(None, pd.DataFrame({"text": ["x" * 201]}))
        with pytest.raises(BadRequest, match="temperature: unknown parameter"):
            model.predict(None, pd.DataFrame({"text": ["The fox"]}), params={"temperature": 0})


def test_llmpipe_generate_keeps_the_limits(exports, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(project(tmp_path, request_seconds=0.5))
    lm = str(exports["lm"])
    for args, named in [
        ([lm, ""], "prompt: is empty"),
        ([lm, "The", "--max-new-tokens", "1000000000"], "max_new_tokens: 1000000000 must be from 1"),
        ([lm, "The", "--temperature", "-1"], "temperature: -1.0 must be 0"),
        ([lm, "The", "--top-p", "0"], "top_p"),
        ([lm, "x" * 201], "prompt: has 201 characters"),
    ]:
        assert cli.main(["generate", *args]) == 2
        assert named in capsys.readouterr().err
    start = time.monotonic()
    assert cli.main(["generate", lm, "ab ab", "--max-new-tokens", "1000000", "--temperature", "0"]) == 2
    assert "request_seconds" in capsys.readouterr().err and time.monotonic() - start < 5
    assert cli.main(["generate", lm, "The", "--max-new-tokens", "3"]) == 0
    controls = ["--repetition-penalty", "1.3", "--no-repeat-ngram-size", "2", "--stop", "\n", "--stop", "."]
    assert cli.main(["generate", lm, "The", "--max-new-tokens", "12", "--temperature", "0", *controls]) == 0
    assert cli.main(["generate", lm, "The", "--repetition-penalty", "0"]) == 2
    assert "repetition_penalty: 0.0 must be above 0" in capsys.readouterr().err


def test_the_token_loop_stops_when_cancelled_and_refuses_a_prompt_of_no_tokens(exports):
    model = load_export(exports["lm"], Serve(**SERVE_DEFAULTS))
    stop = Stop(60)
    tokens = stream_tokens(model.net, [1, 2, 3], 1_000_000, temperature=0, stop=stop)
    next(tokens)
    stop.cancel()
    with pytest.raises(Cancelled):
        next(tokens)
    with pytest.raises(BadRequest, match="prompt"):  # not `cannot reshape tensor of 0 elements`
        generate_text(model.net, model.tokenizer, "", max_new_tokens=5)
