"""Screenshots of the MLflow UI in a real browser, after `make repro`: what a user sees first.

Starts the MLflow server on the repository's store (tinygray.pipeline.store.local_server: as `make ui` does, on a
free port), asks the store for the pages worth seeing (the experiment's runs with each pipeline execution's stages nested under it, the
student's per-epoch curves, the registered model's version, the shipped model's contract file) and takes
each with headless Chromium (Debian package `chromium`) driven by Playwright (`pip install playwright`;
no browser download, the system's Chromium is used), into docs/screenshots/ by default:

    .venv/bin/python scripts/mlflow_screenshots.py [--out DIR] [--store sqlite:///mlflow.db]

The UI's sidebar is put in its "Model training" mode (`workflowType=machine_learning`) and its assistant
panel kept closed, as a user would, so the page itself fills the picture.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from mlflow import MlflowClient

from tinygray.pipeline import store
from tinygray.pipeline.tracking import DEFAULT_EXPERIMENT as EXPERIMENT
from tinygray.registry import REGISTERED_MODEL


def pages(client: MlflowClient) -> dict[str, str]:
    """File name -> UI route (MLflow 3's hash routes)."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        sys.exit(f"no experiment {EXPERIMENT!r} in the store: run `make repro` first")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    by_stage = {}
    for run in runs:  # the newest run of each stage
        by_stage.setdefault(run.data.tags.get("stage", "parent"), run)
    missing = {"train_student", "benchmark"} - set(by_stage)
    if missing:
        sys.exit(f"no run of {', '.join(sorted(missing))} in the store: run `make repro` first")
    base = f"#/experiments/{experiment.experiment_id}"
    student, benchmark = by_stage["train_student"].info.run_id, by_stage["benchmark"].info.run_id
    found = {"1-runs.png": f"{base}/runs",
             "2-student-curves.png": f"{base}/runs/{student}/model-metrics",
             "3-shipped-artifacts.png": f"{base}/runs/{benchmark}/artifacts"}
    versions = client.search_model_versions(f"name = '{REGISTERED_MODEL}'")
    if versions:
        newest = max(versions, key=lambda v: int(v.version))
        found["4-registered-model.png"] = f"#/models/{REGISTERED_MODEL}/versions/{newest.version}"
    return found


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    sys.exit("no Chromium found: `apt-get install chromium` (Debian) or put chromium on PATH")


CLOSED_ASSISTANT = """localStorage.setItem("mlflow.assistant.fab.autoOpenedOnFirstLoad_v1", "true");
localStorage.setItem("mlflow.assistant.panelOpen_v1", "false");"""


def take_screenshots(browser_path: str, url: str, routes: dict[str, str], out: Path) -> None:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sys.exit("Playwright is not installed: `.venv/bin/pip install playwright` (it uses the system's Chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_path, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.add_init_script(CLOSED_ASSISTANT)
        for name, route in routes.items():
            fragment = route.partition("#")[2]
            page.goto(f"{url}/#{fragment}?workflowType=machine_learning")  # hash routes read their own query
            page.wait_for_timeout(8000)  # the UI polls, so the network never goes idle
            if name.startswith("1-"):  # unfold the newest execution: its stages nested under it
                page.locator("button[data-component-id*='runnamecellrenderer']").first.click()
                page.wait_for_timeout(2000)
            if name.startswith("3-"):  # open the contract file in the artifact browser
                for text in ("shipped", ".contract.json"):
                    found = page.get_by_text(text).first
                    if not found.count():
                        sys.exit(f"no {text!r} among the benchmark run's artifacts: a run of older code?")
                    found.click()
                    page.wait_for_timeout(2000)
            page.screenshot(path=out / name)
            print(f"{out / name}: {url}/#{fragment}")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", default=f"sqlite:///{Path('mlflow.db').resolve()}")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    browser = chromium()
    with tempfile.TemporaryDirectory() as workdir, store.local_server(args.store, workdir) as url:
        args.out.mkdir(parents=True, exist_ok=True)
        take_screenshots(browser, url, pages(MlflowClient(tracking_uri=url)), args.out)

if __name__ == "__main__":
    main()
