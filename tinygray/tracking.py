"""One MLflow run per stage, tied to the pipeline execution it belongs to.

Each stage is a separate process, so runs of one `dvc repro` / `dvc exp run` are grouped by a shared
`pipeline_run` tag derived from the DVC process that launched them (or PIPELINE_RUN_ID when set).
"""
from __future__ import annotations

import os
import socket
import subprocess
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tinygray.metrics import flatten, write_metrics

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
DEFAULT_EXPERIMENT = "tinygray"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the SQLite store of the *original* repository: queued DVC
    experiments run in a throw-away copy under .dvc/tmp/exps and point DVC_ROOT back at the repo."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def pipeline_run_id() -> str:
    """The same id for every stage that one DVC invocation runs, and a fresh one for the next."""
    if os.environ.get("PIPELINE_RUN_ID"):
        return os.environ["PIPELINE_RUN_ID"]
    import psutil

    exp = os.environ.get("DVC_EXP_NAME")
    for process in psutil.Process().parents():
        try:
            args = process.cmdline()
        except (psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if any(Path(arg).name == "dvc" for arg in args[:2]) or args[1:3] == ["-m", "dvc"]:
            ident = f"{socket.gethostname()}-{process.pid}-{int(process.create_time())}"
            return f"{exp}-{ident}" if exp else ident
    return exp or f"manual-{uuid.uuid4().hex[:12]}"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


class StageRun:
    """What a stage reports: its metrics file (validated against the schema) and MLflow, in one call."""

    def __init__(self, stage: str, run):
        self.stage = stage
        self.run = run

    def finish(self, metrics: dict[str, Any], artifacts: list[Path | str] = ()) -> None:
        import mlflow

        path = write_metrics(self.stage, metrics)
        mlflow.log_metrics(flatten(metrics))
        for artifact in [path, *artifacts]:
            mlflow.log_artifact(str(artifact))


@contextmanager
def stage_run(stage: str, params: dict[str, Any]) -> Iterator[StageRun]:
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT))
    tags = {"stage": stage, "pipeline_run": pipeline_run_id(), "git_commit": git_commit() or "unknown"}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        mlflow.log_params(flatten_params(params))
        yield StageRun(stage, run)


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(flatten_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
