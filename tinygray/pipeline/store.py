"""The MLflow store every stage logs to: where it is (tracking_uri), creating a SQLite store's tables once
under a file lock, checking that a tracking server answers, and starting a local server as `make ui` does
(for the tests and scripts/mlflow_screenshots.py)."""
from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # before mlflow is imported
# A tracking server that stops answering mid-run fails the stage in minutes, not MLflow's default
# 7 retries with exponential backoff of 120 s requests each.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
# "View run ... at: http://..." after every run end: two lines per stage in every log, for links the UI has
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
import mlflow  # noqa: E402


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the SQLite store of the *original* repository: queued DVC
    experiments run in a throw-away copy under .dvc/tmp/exps and point DVC_ROOT back at the repo."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    root = Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()
    return f"sqlite:///{root / 'mlflow.db'}"


def create_sqlite_store_once(uri: str) -> None:
    """Open a SQLite store under an exclusive file lock, creating its tables if they are missing. Two stages
    starting at once on a new mlflow.db (`dvc queue start -j 2`, or DVC running independent stages) both ran
    MLflow's schema migrations and one failed ("Online migration expected to match one row ... 0 found"); the
    second now waits for the first and finds the tables made. Always under the lock: a file that exists may be
    one whose migrations are still running. Other URIs are left alone."""
    if not uri.startswith("sqlite:///"):
        return
    path = Path(uri[len("sqlite:///"):])
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        mlflow.MlflowClient(tracking_uri=uri).search_experiments()  # creates the tables, or finds them made


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


@contextmanager
def local_server(backend_uri: str, workdir: Path | str, *options: str, timeout: float = 120,
                 env: dict[str, str] | None = None) -> Iterator[str]:
    """An MLflow server for `backend_uri` on a free port of 127.0.0.1, as `make ui` serves it, with its log
    in workdir/server.log: yields its URL once /health answers, and stops it afterwards. The one way the
    tests' servers and scripts/mlflow_screenshots.py start MLflow."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url, log_path = f"http://127.0.0.1:{port}", Path(workdir) / "server.log"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", backend_uri, *options,
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=workdir, env={**(env or os.environ), "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    urllib.request.urlopen(f"{url}/health", timeout=2).close()
                    break
                except OSError:
                    if server.poll() is not None or time.time() > deadline:
                        raise TrackingServerError(f"the MLflow server for {backend_uri} did not start within "
                                                  f"{timeout:g} s; its log ends:\n{log_path.read_text()[-3000:]}")
                    time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            server.wait(30)
