"""The MLflow UI in a real browser, as a new user meets it: headless Chromium (driven by Playwright)
starts at the home page of `mlflow server` on the tiny pipeline's store, opens the llmpipe
experiment by clicking it, and finds the stage runs; then a run's page with its metrics. Skipped
where Debian's chromium is missing (`make setup` installs it).

MLflow 3.10 and later open an experiment on the view of the browser's workflow switch ("GenAI" or
"Model training", GenAI until a user picks the other; remembered in the browser), whatever the
experiment's kind tag says. The README tells a user to pick "Model training" once; this test does
what the README says, and checks that the choice holds on the next visit."""

import json
import re
import shutil
import urllib.request

import pytest

from llmpipe.registry import tracking

from .conftest import REPO, mlflow_on_loopback

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / "test-artifacts"  # screenshots, kept for a person to look at (gitignored)
STAGES = ("ingest", "clean", "tokenize", "pretrain", "finetune/topics", "evaluate", "register")
# As the machine's own probe starts Chromium here: no connection anywhere but to the page under test.
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make setup installs it)")


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


@pytest.fixture
def mlflow_ui(tiny_project):
    root, _, _ = tiny_project
    server = ["server", "--backend-store-uri", tracking.tracking_uri(root), "--host", "127.0.0.1"]
    with mlflow_on_loopback(server, "/health", root) as base:
        yield base


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


def test_the_experiment_is_tagged_as_model_training(mlflow_ui):
    experiment = get_json(f"{mlflow_ui}/api/2.0/mlflow/experiments/get-by-name?experiment_name={tracking.EXPERIMENT}")
    tags = {tag["key"]: tag["value"] for tag in experiment["experiment"]["tags"]}
    assert tags[tracking.KIND_TAG] == tracking.KIND


def test_from_the_home_page_a_user_clicks_through_to_the_stage_runs_and_a_runs_metrics(mlflow_ui, browser):
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{mlflow_ui}/")
    page.get_by_text("Model training", exact=True).first.click()  # the README's one-time step
    page.get_by_role("link", name=tracking.EXPERIMENT, exact=True).first.click()
    for stage in STAGES:
        expect(page.get_by_text(stage, exact=True).first).to_be_visible()
    assert "/runs" in page.url, page.url
    page.screenshot(path=ARTIFACTS / "mlflow-runs.png")

    page.get_by_text("pretrain", exact=True).first.click()  # the run's own page
    expect(page.get_by_text("pretrain/val_bpb").first).to_be_visible()
    page.screenshot(path=ARTIFACTS / "mlflow-run.png")

    again = context.new_page()  # the next visit: the browser remembers the choice
    again.set_default_timeout(60_000)
    again.goto(f"{mlflow_ui}/")
    again.get_by_role("link", name=tracking.EXPERIMENT, exact=True).first.click()
    expect(again.get_by_text("pretrain", exact=True).first).to_be_visible()
    assert "/runs" in again.url, again.url
    assert (ARTIFACTS / "mlflow-runs.png").stat().st_size > 10_000


def test_llmpipe_ui_serves_the_store_and_its_address_opens_on_the_runs(tiny_project, browser, tmp_path):
    """`llmpipe ui` prints an address that opens on the runs, in a browser that never chose a view.
    Telemetry is off: the UI's home page shows MLflow's note on telemetry (text built into the UI,
    shown until dismissed), but the server tells the UI that its telemetry is disabled and drops
    any records, and the page requests nothing from anywhere but the server."""
    from playwright.sync_api import expect

    root, _, _ = tiny_project
    printed = tmp_path / "ui.log"
    with mlflow_on_loopback(["ui", "--host", "127.0.0.1"], "/health", root, program="llmpipe", stdout=printed) as base:
        address = re.search(r"the runs: (http://\S+)", printed.read_text()).group(1)
        assert address.startswith(f"{base}/#/experiments/"), address
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.set_default_timeout(60_000)
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(address)
        for stage in STAGES:
            expect(page.get_by_text(stage, exact=True).first).to_be_visible()
        page.goto(f"{base}/")  # the home page, where MLflow's UI shows its note on telemetry
        expect(page.get_by_text("Information about UI telemetry").first).to_be_visible()
        elsewhere = [url for url in requested if not url.startswith((base, "data:", "blob:"))]
        assert not elsewhere, elsewhere  # the page itself reaches nothing but the server

        # What the UI's telemetry asks the server: off, and records sent anyway are dropped.
        assert get_json(f"{base}/ajax-api/3.0/mlflow/ui-telemetry")["disable_ui_telemetry"] is True
        record = {"event_name": "x", "timestamp_ns": 0, "params": {}, "installation_id": "x", "session_id": "x"}
        post = urllib.request.Request(
            f"{base}/ajax-api/3.0/mlflow/ui-telemetry",
            data=json.dumps({"records": [record]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(post, timeout=10) as answer:
            assert json.loads(answer.read())["status"] == "disabled"
