"""One MLflow run per stage, nested under one parent run per pipeline execution.

Each stage is a separate process, so the runs of one `dvc repro` / `dvc exp run` find their parent by a
shared `pipeline_run` tag derived from the DVC process that launched them (or PIPELINE_RUN_ID when set).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from tinygray.pipeline.metrics import flatten, write_metrics
from tinygray.pipeline.params import flatten_params

from tinygray.pipeline import invocation
from tinygray.pipeline.store import (TrackingServerError, check_tracking_server, create_sqlite_store_once, store_problem,
                                    store_wait_seconds, tracking_uri)

import mlflow  # noqa: E402  (after store, which sets MLflow's environment)
from mlflow.entities import Metric  # noqa: E402

DEFAULT_EXPERIMENT = "tinygray"


class StageRun:
    """What a stage reports: its metrics file (validated against the schema) and MLflow, in one call."""

    def __init__(self, stage: str, run, parent_id: str | None = None):
        self.stage = stage
        self.run = run
        self.parent_id = parent_id

    def finish(self, metrics: dict[str, Any], artifacts: list[Path | str] = ()) -> None:
        seconds = time.time() - self.run.info.start_time / 1000
        mlflow.set_tag("device", device())
        path = write_metrics(self.stage, metrics, stage_seconds=seconds)
        mlflow.log_metrics({_metric_name(key): value for key, value in flatten({**metrics, "stage_seconds": seconds}).items()})
        for artifact in [path, *artifacts]:
            mlflow.log_artifact(str(artifact))
        print(f"{self.stage}: done in {seconds:.0f} s; {summary(metrics)}", flush=True)

    def log_on_parent(self, metrics: dict[str, float]) -> None:
        """Figures of the whole execution (the benchmark's headline, each variant's accuracy, size and latency)
        on its parent run too, where a person comparing executions looks first."""
        if self.parent_id:
            timestamp = int(time.time() * 1000)
            _log_batches(self.parent_id, [Metric(_metric_name(key), float(value), timestamp, 0)
                                          for key, value in metrics.items()])

    def log_epoch(self, curve: str, step: int, values: dict[str, float]) -> None:
        """One epoch of a training, sent while it runs (loop.fit's log_epoch), so the MLflow UI draws the
        curves of a ten-minute teacher as it trains: `<curve>/val_accuracy` at step = epoch."""
        timestamp = int(time.time() * 1000)
        _log_batches(self.run.info.run_id, [Metric(_metric_name(f"{curve}/{key}"), float(value), timestamp, step)
                                            for key, value in values.items()])

    def log_history(self, prefix: str, history: dict[str, list[float]], first_step: int = 1) -> None:
        """Per-epoch curves as MLflow metric histories (one entry per epoch, step = epoch), so the UI draws
        them and compares runs: `<prefix>/val_accuracy` and so on."""
        timestamp = int(time.time() * 1000)
        _log_batches(self.run.info.run_id, [Metric(_metric_name(f"{prefix}/{key}"), float(value), timestamp, step)
                                            for key, values in history.items()
                                            for step, value in enumerate(values, start=first_step)])


MLFLOW_BATCH_LIMIT = 1000  # metrics per log_batch call that MLflow accepts


def _log_batches(run_id: str, entries: list) -> None:
    client = mlflow.MlflowClient()
    for start in range(0, len(entries), MLFLOW_BATCH_LIMIT):
        client.log_batch(run_id, metrics=entries[start:start + MLFLOW_BATCH_LIMIT])


SUMMARY_KEYS = ("val_accuracy", "val_accuracy_mean", "selected_seed", "augmented_view_accuracy", "int8_accuracy_drop",
                "target_sparsity", "views", "num_images")


def summary(metrics: dict[str, Any]) -> str:
    """The stage's result in one line: its headline figures where it has them, else its top-level numbers."""
    if "headline" in metrics:
        shipped, teacher = metrics["headline"]["shipped"], metrics["headline"]["teacher"]
        return (f"shipped {metrics['shipped']} {100 * shipped['accuracy']:.2f}% test accuracy against the teacher's "
                f"{100 * teacher['accuracy']:.2f}%, {shipped['size_ratio']:.0f}x smaller, {shipped['speedup']:.0f}x faster")
    picked = {key: metrics[key] for key in SUMMARY_KEYS if key in metrics}
    return ", ".join(f"{key} {value}" for key, value in picked.items()) or "no headline figures"


class StageKilled(BaseException):
    """SIGTERM, or the dvc process that started this stage is gone: stop, and record the run as KILLED."""


class ServerGone(StageKilled):
    """The http tracking server stopped answering mid-stage: stop now, with one line, rather than train on and
    fail minutes later inside MLflow's retries with a chained traceback (nothing can be logged any more)."""


# Experiment tag MLflow 3's UI reads to open an experiment on its training runs, not its GenAI traces view.
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")


@contextmanager
def stage_run(stage: str, params: dict[str, Any]) -> Iterator[StageRun]:
    """One MLflow run for the stage, nested under one parent run per pipeline execution, ended FINISHED,
    FAILED or KILLED whatever happens: SIGTERM and the death of the launching `dvc` process end it KILLED
    (the stage then stops rather than go on writing outputs DVC no longer tracks), and runs left RUNNING by
    a kill -9 are closed as KILLED by the next stage that starts on this host."""
    check_tracking_server(tracking_uri(), float(os.environ.get("TINYGRAY_TRACKING_TIMEOUT", 5)))
    check_metrics_writable(stage)
    try:
        run, parent, client = _start(stage)
    except Exception as error:  # noqa: BLE001 - only the store's own problems get our sentence
        problem = store_problem(error, tracking_uri())
        if problem is None:
            raise
        print(f"{stage}: stopped before any work: {problem}; nothing was written", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    status, store_down = "FAILED", False
    try:
        with _killable():
            mlflow.log_params(flatten_params(params))
            yield StageRun(stage, run, parent)
        status = "FINISHED"
    except KeyboardInterrupt:  # Ctrl-C: dvc passes SIGINT to its stage
        status = "KILLED"
        raise
    except ServerGone:
        print(f"{stage}: stopped: the MLflow tracking server {tracking_uri()} stopped answering, so nothing more could "
              f"be logged; no output was written. Its runs ({run.info.run_id} and parent {parent}) stay RUNNING in that "
              "server's store until the next stage that reaches it closes them.", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except StageKilled:
        status = "KILLED"
        print(f"{stage}: stopped (SIGTERM, or its dvc process is gone); MLflow run {run.info.run_id} KILLED",
              file=sys.stderr, flush=True)
        raise SystemExit(143) from None
    except Exception as error:
        from tinygray.pipeline.params import removed_outputs_hint

        problem = store_problem(error, tracking_uri())
        if problem is None:
            if os.environ.get("DVC_STAGE"):  # every refusal under DVC gives the same advice about what it removed
                print(f"{stage}: failed{removed_outputs_hint()}", file=sys.stderr, flush=True)
            raise
        store_down = True
        print(f"{stage}: stopped: {problem}. Recording its MLflow run {run.info.run_id} and its parent FAILED once the "
              f"store is free (waiting up to {store_wait_seconds():g} s more) ...", file=sys.stderr, flush=True)
        record = ("recorded FAILED" if _record_failed(client, parent) else
                  "left RUNNING: the store stayed locked; the next stage that reaches it ends them KILLED")
        print(f"{stage}: its MLflow run {run.info.run_id} and the parent {parent}: {record}"
              f"{removed_outputs_hint() or ''}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    finally:
        if not _server_gone.is_set() and not store_down:
            mlflow.end_run(status)
            ran = client.get_run(parent).data.tags.get("stages_run", "")
            client.set_tag(parent, "stages_run", ", ".join([*filter(None, ran.split(", ")), stage]))
            client.set_terminated(parent, status)


def _record_failed(client, parent: str) -> bool:
    """End the active stage run and its parent FAILED (each write waits for the store as every write does). MLflow's
    exit hook would otherwise end the run FINISHED, with no metrics, once the store is free: a stage that failed
    would look like a success in the UI. end_run forgets the run before it writes, so that hook never writes it
    after this. False when the store stayed locked (the runs stay RUNNING)."""
    try:
        mlflow.end_run("FAILED")
        client.set_terminated(parent, "FAILED")
        return True
    except Exception as error:  # noqa: BLE001 - the store's own problem again; anything else is a bug
        if store_problem(error, tracking_uri()) is None:
            raise
        return False


def _start(stage: str) -> tuple:
    """The stage's MLflow run, started under its execution's parent run: (run, parent id, client)."""
    create_sqlite_store_once(tracking_uri())
    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.set_experiment(os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT))
    client = mlflow.MlflowClient()
    if experiment.tags.get(EXPERIMENT_KIND[0]) != EXPERIMENT_KIND[1]:
        client.set_experiment_tag(experiment.experiment_id, *EXPERIMENT_KIND)
    close_stale_runs(client, experiment.experiment_id)
    pipeline = invocation.pipeline_run_id()
    parent = parent_run(client, experiment.experiment_id, pipeline)
    tags = {"stage": stage, "pipeline_run": pipeline, "git_commit": invocation.git_commit() or "unknown", **invocation.process_tags()}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return mlflow.start_run(run_name=stage, tags=tags, parent_run_id=parent), parent, client


def device() -> str:
    """What the stage computed on: the GPUs TensorFlow found, else CPU; "none" for a stage that never loaded
    TensorFlow (preprocess, views)."""
    if "tensorflow" not in sys.modules:
        return "none"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return ", ".join(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus) \
        if gpus else f"CPU ({os.cpu_count()} cores)"


def check_metrics_writable(stage: str) -> None:
    """Fail before any work when the stage's metrics file cannot be written: otherwise its outputs would be
    replaced and its metrics left from an earlier run, half an update."""
    from tinygray.pipeline.metrics import METRICS_DIR

    target = METRICS_DIR / f"{stage}.json"
    try:
        METRICS_DIR.mkdir(parents=True, exist_ok=True)
        probe = METRICS_DIR / f".tmp-{os.getpid()}-probe"
        probe.write_text("")
        probe.unlink()
    except OSError as error:
        from tinygray.pipeline.params import removed_outputs_hint

        raise PermissionError(f"{target}: the metrics folder {METRICS_DIR} is not writable ({error}); nothing was run"
                              f"{removed_outputs_hint() or ', so no output was replaced'}") from None


def close_stale_runs(client, experiment_id: str) -> list[str]:
    """Runs of this experiment still RUNNING on this host whose process is gone (kill -9 leaves them so)
    are ended KILLED, and their parents with them. Returns their ids."""
    import psutil

    stale = []
    for run in client.search_runs([experiment_id], filter_string=f"attributes.status = 'RUNNING' and "
                                                                 f"tags.host = '{socket.gethostname()}'"):
        pid, started = run.data.tags.get("pid"), run.data.tags.get("pid_started")
        try:
            alive = pid is not None and invocation.process_started(psutil.Process(int(pid))) == started
        except (psutil.NoSuchProcess, ValueError):
            alive = False
        if not alive:
            client.set_terminated(run.info.run_id, "KILLED")
            stale.append(run.info.run_id)
            parent = run.data.tags.get("mlflow.parentRunId")
            if parent:
                client.set_terminated(parent, "KILLED")
    return stale


def parent_run(client, experiment_id: str, pipeline: str) -> str:
    """The parent run of this pipeline execution, created by its first stage and named so a person can tell
    executions apart (the DVC experiment's name, or commit and time); every stage nests its run under it."""
    found = client.search_runs([experiment_id], filter_string=f"tags.pipeline_run = '{pipeline}' and "
                                                              "tags.kind = 'pipeline'", max_results=1)
    if found:
        client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    commit = (invocation.git_commit() or "no-git")[:7]
    name = os.environ.get("DVC_EXP_NAME") or f"{commit} {time.strftime('%Y-%m-%d %H:%M')}"
    tags = {"kind": "pipeline", "pipeline_run": pipeline, "git_commit": commit,
            "mlflow.runName": name, **invocation.process_tags()}
    if os.environ.get("DVC_EXP_NAME"):
        tags["dvc_exp_name"] = os.environ["DVC_EXP_NAME"]
    return client.create_run(experiment_id, run_name=name, tags=tags).info.run_id


# Seconds between health checks of an http tracking server during a stage, and failed checks in a row that stop it.
SERVER_CHECK_SECONDS, SERVER_CHECK_FAILURES = 10.0, 2
_server_gone = threading.Event()


@contextmanager
def _killable():
    """SIGTERM and the death of the launching dvc process raise StageKilled in the main thread; an http tracking
    server that stops answering (SERVER_CHECK_FAILURES checks in a row) raises ServerGone."""
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):
        raise ServerGone() if _server_gone.is_set() else StageKilled()

    signal.signal(signal.SIGTERM, on_sigterm)
    stop = threading.Event()
    _server_gone.clear()
    launcher = invocation.dvc_process()
    if launcher is None and os.environ.get("DVC_STAGE"):
        raise StageKilled()  # DVC sets DVC_STAGE for the stages it starts: this one's dvc died before it got here
    if launcher is not None:
        def watch():
            while not stop.wait(1.0):
                if not launcher.is_running():
                    os.kill(os.getpid(), signal.SIGTERM)
                    return

        threading.Thread(target=watch, name="dvc-watchdog", daemon=True).start()
    uri = tracking_uri()
    if uri.lower().startswith(("http://", "https://")):
        def watch_server():
            failures = 0
            while not stop.wait(float(os.environ.get("TINYGRAY_SERVER_CHECK_SECONDS", SERVER_CHECK_SECONDS))):
                try:
                    check_tracking_server(uri, timeout=5.0)
                    failures = 0
                except TrackingServerError:
                    failures += 1
                    if failures >= SERVER_CHECK_FAILURES:
                        _server_gone.set()
                        os.kill(os.getpid(), signal.SIGTERM)
                        return

        threading.Thread(target=watch_server, name="tracking-server-watchdog", daemon=True).start()
    try:
        yield
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, previous)


def _metric_name(name: str) -> str:
    """MLflow accepts letters, digits and `_-. :/` in metric names; class names come from folder names."""
    return re.sub(r"[^\w\-. :/]", "_", name).lstrip("/")


def close_stale() -> list[str]:
    """close_stale_runs for this project's experiment, outside any stage: `dvc repro` that restores a killed
    stage from DVC's run cache starts no stage, so nothing else would end the killed run and its parent.
    `make repro` and `make ui` call it (python -m tinygray.pipeline.tracking close-stale)."""
    check_tracking_server(tracking_uri())
    create_sqlite_store_once(tracking_uri())
    client = mlflow.MlflowClient(tracking_uri=tracking_uri())
    experiment = client.get_experiment_by_name(os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT))
    return close_stale_runs(client, experiment.experiment_id) if experiment else []


if __name__ == "__main__":
    if sys.argv[1:] != ["close-stale"]:
        sys.exit("usage: python -m tinygray.pipeline.tracking close-stale")
    closed = close_stale()
    print(f"MLflow: {len(closed)} run(s) left RUNNING by a killed stage ended KILLED" if closed else
          "MLflow: no run left RUNNING by a killed stage", flush=True)
