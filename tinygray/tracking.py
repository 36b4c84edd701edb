"""One MLflow run per stage, tied to the pipeline execution it belongs to.

Each stage is a separate process, so runs of one `dvc repro` / `dvc exp run` are grouped by a shared
`pipeline_run` tag derived from the DVC process that launched them (or PIPELINE_RUN_ID when set).
"""
from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tinygray.metrics import flatten, write_metrics

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow is imported
# A tracking server that stops answering mid-run fails the stage in minutes, not MLflow's default
# 7 retries with exponential backoff of 120 s requests each.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
import mlflow  # noqa: E402
import mlflow.pyfunc  # noqa: E402

DEFAULT_EXPERIMENT = "tinygray"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the SQLite store of the *original* repository: queued DVC
    experiments run in a throw-away copy under .dvc/tmp/exps and point DVC_ROOT back at the repo."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


class TrackingServerError(RuntimeError):
    """The MLflow tracking server does not answer; the message says which and what to do."""


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """For an http(s) tracking URI, GET its /health once with a short timeout, so a stage whose server is
    down or unreachable says so in seconds before doing any work, instead of retrying for minutes later.
    Any HTTP answer counts as alive (auth and proxies are MLflow's business); file and database stores
    are not checked."""
    if not uri.lower().startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError:
        return
    except (OSError, http.client.HTTPException, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise TrackingServerError(
            f"MLflow tracking server {uri} did not answer within {timeout:g} s ({reason}); start it "
            "(`make ui` serves http://127.0.0.1:5000) or unset MLFLOW_TRACKING_URI to log to mlflow.db") from None


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
        path = write_metrics(self.stage, metrics)
        mlflow.log_metrics({_metric_name(key): value for key, value in flatten(metrics).items()})
        for artifact in [path, *artifacts]:
            mlflow.log_artifact(str(artifact))


@contextmanager
def stage_run(stage: str, params: dict[str, Any]) -> Iterator[StageRun]:
    check_tracking_server(tracking_uri(), float(os.environ.get("TINYGRAY_TRACKING_TIMEOUT", 5)))
    mlflow.set_tracking_uri(tracking_uri())
    mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT))
    tags = {"stage": stage, "pipeline_run": pipeline_run_id(), "git_commit": git_commit() or "unknown"}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    with mlflow.start_run(run_name=stage, tags=tags) as run:
        mlflow.log_params(flatten_params(params))
        yield StageRun(stage, run)


def _metric_name(name: str) -> str:
    """MLflow accepts letters, digits and `_-. :/` in metric names; class names come from folder names."""
    return re.sub(r"[^\w\-. :/]", "_", name).lstrip("/")


def flatten_params(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in params.items():
        if isinstance(value, dict):
            flat.update(flatten_params(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


REGISTERED_MODEL = "tinygray-shipped"


class TFLiteClassifier(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: logits of the registered .tflite for (N, H, W, 1) raw-pixel images."""

    def load_context(self, context):
        from tinygray.quantization import TFLiteModel

        self.model = TFLiteModel(context.artifacts["tflite"])

    def predict(self, context, model_input, params=None):
        return self.model.predict(model_input)


def register_shipped_model(tflite_path: Path | str, variant: dict[str, Any]) -> None:
    """Log the shipped .tflite as an MLflow model of the active run and register it, so "the model to put
    on the phone" is one click away in the UI, its test metrics on the version's tags."""
    import tinygray

    info = mlflow.pyfunc.log_model(
        name="shipped_model", python_model=TFLiteClassifier(), artifacts={"tflite": str(tflite_path)},
        code_paths=[str(Path(tinygray.__file__).parent)],
        pip_requirements=["ai-edge-litert==2.3.0", "numpy"],  # explicit: inferring them costs ~10 s
        registered_model_name=REGISTERED_MODEL)
    client = mlflow.MlflowClient()
    version = info.registered_model_version
    for key in ("name", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "size_bytes", "latency_ms_p50"):
        client.set_model_version_tag(REGISTERED_MODEL, version, key, str(variant[key]))
