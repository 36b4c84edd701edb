"""Beyond one machine, with the servers started here: an MLflow tracking server on a PostgreSQL cluster (the
registry included, artifacts on a shared store), and a DVC remote over SSH. Each server is started by the test
in a temporary directory and stopped after it; a test is skipped, saying why, only when its server cannot run."""
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from stage_helpers import REPO, free_ports, make_folder, run

from tinygray.pipeline import store as tracking_store

POSTGRES_BIN = [Path("/usr/lib/postgresql/15/bin"), Path("/usr/local/bin")]


def postgres_tool(name: str) -> str | None:
    found = next((str(d / name) for d in POSTGRES_BIN if (d / name).is_file()), None)
    return found or shutil.which(name)


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    """A PostgreSQL cluster of its own on 127.0.0.1 (run as the postgres user when the tests run as root:
    PostgreSQL refuses to run as root)."""
    initdb, pg_ctl = postgres_tool("initdb"), postgres_tool("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    import tempfile

    root = Path(tempfile.mkdtemp(prefix="tinygray-postgres-"))  # not under pytest's 0700 folders: postgres reads it
    data, port = root / "data", free_ports(1)[0]
    as_user = []
    if os.geteuid() == 0:
        if not shutil.which("runuser"):
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run([*as_user, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"], check=True,
                   capture_output=True)
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        subprocess.run([*as_user, postgres_tool("createdb") or "createdb", "-h", "127.0.0.1", "-p", str(port), "-U",
                        "postgres", "mlflow"], check=True, capture_output=True)
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "fast", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_mlflow(postgres, tmp_path_factory):
    """An MLflow server with its runs and registry in PostgreSQL and its artifacts on a shared folder."""
    root = tmp_path_factory.mktemp("mlflow-pg")
    with tracking_store.local_server(postgres, root, "--artifacts-destination", str(root / "shared-artifacts"),
                               "--serve-artifacts", timeout=180,
                               env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}) as uri:
        yield uri, root / "shared-artifacts"


STAGE = """
import sys, numpy as np
from pathlib import Path
from tinygray.compress import tflite
from tinygray.models.cnn import build_cnn
from tinygray.pipeline.tracking import stage_run
from tinygray.registry import register_shipped_model
with stage_run("benchmark", {"shipped": "tiny_int8"}) as run:
    model = build_cnn((8, 8, 1), 3, [4])
    Path("tiny_int8.tflite").write_bytes(tflite.convert(model, "float32"))
    Path("contract.json").write_text("{}")
    run.log_history("seed_42", {"val_accuracy": [0.5, 0.75]})
    run.finish({"accuracy": 0.75})
    register_shipped_model("tiny_int8.tflite", "contract.json", {"name": "tiny_int8", "accuracy": 0.75,
        "accuracy_ci_low": 0.7, "accuracy_ci_high": 0.8, "size_bytes": 10, "latency_ms_p50": 0.01},
        input_example=np.zeros((1, 8, 8, 1), np.uint8))
"""


def test_the_pipeline_logs_to_an_mlflow_server_on_postgresql(postgres_mlflow, postgres, tmp_path):
    """A stage's run, its per-epoch curve, its artifacts and the registered model, through the real tracking
    code, end up in PostgreSQL and on the shared artifact store."""
    import psycopg2
    from mlflow import MlflowClient

    uri, shared = postgres_mlflow
    (tmp_path / "stage.py").write_text(STAGE)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PIPELINE_RUN_ID": "pg-1", "MLFLOW_DISABLE_TELEMETRY": "true"}
    result = subprocess.run([sys.executable, "stage.py"], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    client = MlflowClient(tracking_uri=uri)
    [stage] = client.search_runs([client.get_experiment_by_name("tinygray").experiment_id], "tags.stage = 'benchmark'")
    assert stage.info.status == "FINISHED" and len(client.get_metric_history(stage.info.run_id, "seed_42/val_accuracy")) == 2
    [version] = client.search_model_versions("name = 'tinygray-shipped'")
    assert version.run_id == stage.info.run_id and version.tags["name"] == "tiny_int8"
    assert list(shared.rglob("tiny_int8.tflite"))  # the artifacts went to the shared store, not next to the stage
    with psycopg2.connect(postgres.replace("+psycopg2", "")) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs WHERE status = 'FINISHED'")
        assert cursor.fetchone()[0] >= 2  # the stage and its parent, in PostgreSQL itself
        cursor.execute("SELECT count(*) FROM registered_models WHERE name = 'tinygray-shipped'")
        assert cursor.fetchone()[0] == 1


@pytest.fixture
def sftp_server(tmp_path):
    """An SSH/SFTP server on 127.0.0.1 (asyncssh, which DVC's own SSH remote is built on), with a key made here."""
    import asyncio
    import threading

    import asyncssh

    host_key, user_key = asyncssh.generate_private_key("ssh-ed25519"), asyncssh.generate_private_key("ssh-ed25519")
    user_key.write_private_key(tmp_path / "id_ed25519")
    (tmp_path / "id_ed25519").chmod(0o600)
    authorized = asyncssh.import_authorized_keys(user_key.export_public_key().decode())
    port, ready, loop = free_ports(1)[0], threading.Event(), asyncio.new_event_loop()

    def serve():
        asyncio.set_event_loop(loop)

        async def start():
            return await asyncssh.listen("127.0.0.1", port, server_host_keys=[host_key], authorized_client_keys=authorized,
                                         sftp_factory=True, allow_scp=True)

        server = loop.run_until_complete(start())
        ready.set()
        loop.run_forever()
        server.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    yield port, tmp_path / "id_ed25519"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)


def test_dvc_pushes_and_pulls_the_images_and_stage_outputs_over_ssh(sftp_server, tmp_path):
    """A DVC remote that is not a local folder: `dvc push` over SSH, every local copy and the cache deleted,
    `dvc pull` back, byte for byte, for the image folder and a stage's output."""
    port, key = sftp_server
    root = tmp_path / "project"
    make_folder(root / "data" / "raw", {"cat": 4, "dog": 4})
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "HOME": str(tmp_path)}
    run(["git", "init", "-q"], root, env)
    run(["dvc", "init", "-q"], root, env)
    (root / "stage.py").write_text("from pathlib import Path\nPath('out').mkdir(exist_ok=True)\n"
                                   "Path('out/sizes.txt').write_text(str(sorted(p.stat().st_size for p in "
                                   "Path('data/raw').rglob('*.png'))))\n")
    run(["dvc", "add", "-q", "data/raw"], root, env)
    run(["dvc", "stage", "add", "-q", "-n", "sizes", "-d", "data/raw", "-d", "stage.py", "-o", "out",
         f"{sys.executable} stage.py"], root, env)
    run(["dvc", "repro", "-q"], root, env)
    remote = tmp_path / "remote"
    run(["dvc", "remote", "add", "-d", "ssh", f"ssh://{os.environ.get('USER', 'root')}@127.0.0.1:{port}{remote}"],
        root, env)
    run(["dvc", "remote", "modify", "ssh", "keyfile", str(key)], root, env)
    before = {p.relative_to(root): p.read_bytes() for p in [*(root / "data" / "raw").rglob("*.png"), root / "out" / "sizes.txt"]}
    run(["dvc", "push", "-q"], root, env)
    assert len(list(remote.rglob("*"))) > len(before)  # on the other side of SSH
    for gone in (root / "data" / "raw", root / "out", root / ".dvc" / "cache"):
        shutil.rmtree(gone)
    run(["dvc", "pull", "-q"], root, env)
    assert {path: (root / path).read_bytes() for path in before} == before
    assert "sizes" not in run(["dvc", "status"], root, env)  # everything is as the lock says


def test_results_logged_to_postgres_keep_numbers_exact(postgres_mlflow):
    """Metric values survive the round trip through the server and PostgreSQL unchanged (a float, not text)."""
    from mlflow import MlflowClient

    uri, _ = postgres_mlflow
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(f"roundtrip-{time.time_ns()}")
    run_id = client.create_run(experiment).info.run_id
    value = float(np.float32(0.8765432))
    client.log_metric(run_id, "accuracy", value)
    assert client.get_run(run_id).data.metrics["accuracy"] == value
