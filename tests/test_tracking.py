import os
from pathlib import Path

from tinygray.pipeline import invocation
from tinygray.pipeline import store as tracking_store

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_default_store_is_sqlite_in_the_original_repo(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking_store.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_tracking_uri_env_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_store.tracking_uri() == "http://127.0.0.1:5999"


def test_pipeline_run_id_env_wins_and_is_stable(monkeypatch):
    monkeypatch.setenv("PIPELINE_RUN_ID", "abc")
    assert invocation.pipeline_run_id() == "abc"
    monkeypatch.delenv("PIPELINE_RUN_ID")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert invocation.pipeline_run_id().startswith("manual-")  # pytest has no dvc ancestor


def test_an_execution_keeps_one_id_when_the_wall_clock_moves(monkeypatch):
    """psutil's create_time() is boot time (from the wall clock) plus the kernel's start ticks: a clock
    adjustment during one `dvc repro -f` once gave its stages four parent runs. The id must not move with it."""
    import psutil

    clock = iter(range(1_000_000, 1_000_100))
    monkeypatch.setattr(psutil.Process, "create_time", lambda self: float(next(clock)))
    monkeypatch.setattr(invocation, "dvc_process", lambda: psutil.Process())
    monkeypatch.delenv("PIPELINE_RUN_ID", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    first = invocation.pipeline_run_id()
    assert invocation.pipeline_run_id() == first and str(os.getpid()) in first
    assert invocation.process_tags()["pid_started"] == invocation.process_tags()["pid_started"]


# --- the MLflow record of killed, orphaned and nested stages, through real processes and a real store ---

import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

FAKE_STAGE = """
import sys, time
from tinygray.pipeline.tracking import stage_run
with stage_run(sys.argv[1], {"x": 1}) as run:
    print("started", flush=True)
    time.sleep(float(sys.argv[2]))
    run.finish({"val_accuracy": 0.5})
"""


@pytest.fixture
def store(tmp_path):
    (tmp_path / "stage.py").write_text(FAKE_STAGE)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "PIPELINE_RUN_ID": "exec-1",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    return tmp_path, env


def start(tmp_path, env, stage, seconds, launcher=None):
    command = [sys.executable, str(tmp_path / "stage.py"), stage, str(seconds)]
    process = subprocess.Popen([*(launcher or []), *command], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "started" or launcher, process.stderr.read()
    return process


def runs(tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("tinygray")
    return {r.data.tags.get("stage", "parent"): r for r in client.search_runs([experiment.experiment_id])}, experiment


def test_stages_of_one_execution_nest_under_one_parent(store):
    tmp_path, env = store
    for stage in ("first", "second"):
        assert start(tmp_path, env, stage, 0).wait(60) == 0
    found, experiment = runs(tmp_path)
    parent = found["parent"]
    assert parent.data.tags["kind"] == "pipeline" and parent.info.status == "FINISHED"
    assert parent.data.tags["stages_run"] == "first, second"
    assert {found[s].data.tags["mlflow.parentRunId"] for s in ("first", "second")} == {parent.info.run_id}
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # a training experiment


def test_sigterm_ends_the_run_killed(store):
    tmp_path, env = store
    process = start(tmp_path, env, "slow", 60)
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 143
    found, _ = runs(tmp_path)
    assert found["slow"].info.status == "KILLED" and found["parent"].info.status == "KILLED"


def test_a_run_left_running_by_kill_9_is_closed_by_the_next_stage(store):
    tmp_path, env = store
    process = start(tmp_path, env, "killed", 60)
    process.kill()
    process.wait(30)
    assert runs(tmp_path)[0]["killed"].info.status == "RUNNING"  # nothing could run in the killed process
    assert start(tmp_path, {**env, "PIPELINE_RUN_ID": "exec-2"}, "next", 0).wait(60) == 0
    found, _ = runs(tmp_path)
    assert found["killed"].info.status == "KILLED" and found["next"].info.status == "FINISHED"


def test_close_stale_ends_a_killed_run_when_no_stage_follows(store):
    """kill -9 of train_student, then `dvc repro` restored it from the run cache: no stage started, so the killed
    run and its parent stayed RUNNING. `make repro` and `make ui` end them (python -m tinygray.pipeline.tracking close-stale)."""
    tmp_path, env = store
    process = start(tmp_path, env, "killed", 60)
    process.kill()
    process.wait(30)
    result = subprocess.run([sys.executable, "-m", "tinygray.pipeline.tracking", "close-stale"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "2 run(s) left RUNNING by a killed stage ended KILLED" in result.stdout, result.stderr
    found, _ = runs(tmp_path)
    assert found["killed"].info.status == "KILLED" and found["parent"].info.status == "KILLED"
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert makefile.count("\tpython -m tinygray.pipeline.tracking close-stale\n") == 2  # in repro and ui


def test_a_stage_stops_at_once_with_one_line_when_its_tracking_server_dies(store):
    """Server killed at epoch 3: training once went on, then failed 88 s later with a chained traceback ending in
    `.../runs/log-batch failed`, outputs half written. Now the stage's watchdog sees the server gone and stops it."""
    import psutil

    tmp_path, env = store
    with tracking_store.local_server(f"sqlite:///{tmp_path}/server.db", tmp_path, env=env) as uri:
        stage_env = {**env, "MLFLOW_TRACKING_URI": uri, "TINYGRAY_SERVER_CHECK_SECONDS": "1"}
        process = start(tmp_path, stage_env, "training", 300)
        port = uri.rsplit(":", 1)[1]
        servers = [p for p in psutil.Process().children(recursive=True)
                   if any(port in arg for arg in p.cmdline()) and p.pid != process.pid]
        assert servers
        for server in servers:
            for child in server.children(recursive=True):
                child.kill()
            server.kill()
        started = time.time()
        code = process.wait(60)
        stderr = process.stderr.read()
    assert code == 1 and time.time() - started < 30
    assert f"training: stopped: the MLflow tracking server {uri} stopped answering" in stderr
    assert "Traceback" not in stderr, stderr[-3000:]


def test_a_stage_whose_dvc_process_dies_stops_instead_of_running_on_as_an_orphan(store):
    """Killing only `dvc` used to leave its stage running, writing outputs DVC no longer tracked."""
    tmp_path, env = store
    fake_dvc = tmp_path / "dvc"  # what invocation.dvc_process recognises: a process whose program is named dvc
    fake_dvc.write_text("import subprocess, sys, time\n"
                        "subprocess.Popen(sys.argv[1:])\n"
                        "time.sleep(600)\n")
    launcher = subprocess.Popen([sys.executable, str(fake_dvc), sys.executable, str(tmp_path / "stage.py"),
                                 "orphan", "600"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    # the stage inherits the launcher's stdout; waiting for its line (not polling the store, which would
    # create the database while the stage creates it too) means its run exists
    assert launcher.stdout.readline().strip() == "started", "the stage never started"
    assert "orphan" in runs(tmp_path)[0]
    launcher.kill()
    launcher.wait(10)
    deadline = time.time() + 30
    while runs(tmp_path)[0]["orphan"].info.status == "RUNNING":
        assert time.time() < deadline, "the orphaned stage kept running"
        time.sleep(0.5)
    assert runs(tmp_path)[0]["orphan"].info.status == "KILLED"


def test_a_stage_whose_dvc_process_died_before_it_started_stops_at_once(store):
    """DVC sets DVC_STAGE for its stages; killed while the stage was still importing TensorFlow, dvc is no
    longer among its parents when it starts, and the stage used to run on as if started by hand."""
    tmp_path, env = store
    done = subprocess.run([sys.executable, str(tmp_path / "stage.py"), "late", "600"], cwd=tmp_path,
                          env={**env, "DVC_STAGE": "late"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 143 and "started" not in done.stdout, done.stderr
    assert runs(tmp_path)[0]["late"].info.status == "KILLED"


HISTORY_STAGE = """
import sys
from tinygray.pipeline.tracking import stage_run
with stage_run("history", {}) as run:
    print("started", flush=True)
    run.log_history("seed_42", {"val_accuracy": [0.5, 0.7, 0.9], "loss": [2.0, 1.0, 0.5]})
    run.log_on_parent({"headline.shipped.accuracy": 0.9})
    run.finish({"val_accuracy": 0.9})
"""


def test_per_epoch_curves_have_one_entry_per_epoch_and_the_parent_gets_the_headline(store):
    from mlflow import MlflowClient

    tmp_path, env = store
    (tmp_path / "stage.py").write_text(HISTORY_STAGE)
    result = subprocess.run([sys.executable, str(tmp_path / "stage.py")], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "history: done in" in result.stdout and "val_accuracy 0.9" in result.stdout  # one line of the result
    found, _ = runs(tmp_path)
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    curve = client.get_metric_history(found["history"].info.run_id, "seed_42/val_accuracy")
    assert [(m.step, m.value) for m in sorted(curve, key=lambda m: m.step)] == [(1, 0.5), (2, 0.7), (3, 0.9)]
    assert found["parent"].data.metrics["headline.shipped.accuracy"] == 0.9


class HeldStore:
    """Another writer (a second `dvc exp` worker, `mlflow ui`, a backup tool) holding the SQLite store."""

    def __init__(self, path):
        import sqlite3

        self.connection = sqlite3.connect(path, isolation_level=None)

    def __enter__(self):
        self.connection.execute("BEGIN EXCLUSIVE")
        return self

    def __exit__(self, *exc):
        self.connection.execute("ROLLBACK")
        self.connection.close()


def test_a_stage_waits_for_another_writer_to_let_go_of_the_store(store):
    """mlflow.db held 60 s by another writer: train_student finished both trainings, then failed on MLflow's 20 s
    busy timeout with 452 lines of tracebacks, the training thrown away. Writes now wait (TINYGRAY_STORE_WAIT_SECONDS)."""
    tmp_path, env = store
    process = start(tmp_path, {**env, "TINYGRAY_STORE_WAIT_SECONDS": "60"}, "patient", 1)
    with HeldStore(tmp_path / "mlflow.db"):
        time.sleep(25)  # longer than MLflow's own 20 s
    assert process.wait(60) == 0, process.stderr.read()[-3000:]
    assert runs(tmp_path)[0]["patient"].info.status == "FINISHED"


def test_a_store_held_too_long_stops_the_stage_with_one_line_naming_it_and_its_holder(store):
    tmp_path, env = store
    process = start(tmp_path, {**env, "TINYGRAY_STORE_WAIT_SECONDS": "2"}, "impatient", 1)
    with HeldStore(tmp_path / "mlflow.db"):
        code = process.wait(60)
        stderr = process.stderr.read()
    assert code == 1
    assert f"impatient: stopped: the MLflow store {tmp_path / 'mlflow.db'} stayed locked by another writer for 2 s" in stderr
    assert f"open in: pid {os.getpid()}" in stderr and "Traceback" not in stderr, stderr[-3000:]


def test_a_store_held_as_the_stage_starts_is_waited_for_from_the_first_connection(store):
    """Held for 20 s as the stage starts (its first connection checks MLflow's schema): SQLite's default 5 s wait
    stopped the stage, with a sentence claiming 300 s (issue 48, item 3). The wait now holds from the first
    connection."""
    tmp_path, env = store
    assert start(tmp_path, env, "first", 0).wait(60) == 0  # the store exists
    with HeldStore(tmp_path / "mlflow.db"):
        process = subprocess.Popen([sys.executable, str(tmp_path / "stage.py"), "early", "0"], cwd=tmp_path,
                                   env={**env, "TINYGRAY_STORE_WAIT_SECONDS": "60"}, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        time.sleep(20)  # the stage's imports take a few seconds: it meets the lock with more than 5 s of it left
    assert process.wait(60) == 0, process.stderr.read()[-3000:]
    assert runs(tmp_path)[0]["early"].info.status == "FINISHED"


def test_a_stage_stopped_by_a_held_store_is_recorded_failed_not_finished(store):
    """Held longer than the wait mid-stage, then let go: MLflow's exit hook used to end the run FINISHED with no
    metrics once the store was free, while the message said RUNNING (issue 48, item 4)."""
    tmp_path, env = store
    process = start(tmp_path, {**env, "TINYGRAY_STORE_WAIT_SECONDS": "3"}, "locked_out", 1)
    with HeldStore(tmp_path / "mlflow.db"):
        time.sleep(6)  # the stage's finish waits 3 s and stops; its FAILED record waits for the store
    assert process.wait(60) == 1
    stderr = process.stderr.read()
    assert "recorded FAILED" in stderr and "Traceback" not in stderr, stderr[-3000:]
    found, _ = runs(tmp_path)
    assert found["locked_out"].info.status == "FAILED" and found["parent"].info.status == "FAILED"
    assert "val_accuracy" not in found["locked_out"].data.metrics


def test_a_store_locked_at_the_start_stops_the_stage_before_any_work(store):
    tmp_path, env = store
    assert start(tmp_path, env, "first", 0).wait(60) == 0  # the store exists
    with HeldStore(tmp_path / "mlflow.db"):
        done = subprocess.run([sys.executable, str(tmp_path / "stage.py"), "late", "0"], cwd=tmp_path, timeout=120,
                              env={**env, "TINYGRAY_STORE_WAIT_SECONDS": "2"}, capture_output=True, text=True)
    assert done.returncode == 1 and "started" not in done.stdout
    assert "late: stopped before any work: the MLflow store" in done.stderr and "Traceback" not in done.stderr, done.stderr


LIVE_STAGE = """
import sys, time
from tinygray.pipeline.tracking import stage_run
with stage_run("live", {"x": 1}) as run:
    run.log_epoch("seed_42", 1, {"val_accuracy": 0.5})
    print("started", flush=True)
    time.sleep(60)
    run.finish({"val_accuracy": 0.5})
"""


def test_an_epoch_logged_during_a_stage_is_in_mlflow_before_the_stage_ends(store):
    tmp_path, env = store
    (tmp_path / "stage.py").write_text(LIVE_STAGE)
    process = start(tmp_path, env, "live", 60)
    try:
        found, _ = runs(tmp_path)
        assert found["live"].info.status == "RUNNING"
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
        [entry] = client.get_metric_history(found["live"].info.run_id, "seed_42/val_accuracy")
        assert (entry.step, entry.value) == (1, 0.5)
    finally:
        process.terminate()
        process.wait(30)


def test_a_new_sqlite_store_is_created_by_one_stage_at_a_time(tmp_path):
    """Two queued experiments (`dvc queue start -j 2`) starting on a missing mlflow.db both ran MLflow's
    migrations and one failed; a stage now creates the store under a file lock, and waits while another holds it."""
    from filelock import FileLock

    store = tmp_path / "mlflow.db"
    code = f"from tinygray.pipeline import store; store.create_sqlite_store_once('sqlite:///{store}')"
    with FileLock(tmp_path / "mlflow.db.lock"):  # another stage is creating the store
        waiting = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(8)  # long enough to import mlflow and reach the lock
        assert waiting.poll() is None and not store.exists()
    assert waiting.wait(timeout=60) == 0
    from mlflow import MlflowClient

    assert [e.name for e in MlflowClient(tracking_uri=f"sqlite:///{store}").search_experiments()] == ["Default"]
