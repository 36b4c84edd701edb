"""The MLflow store every stage logs to: where it is (tracking_uri), creating a SQLite store's tables once
under a file lock, riding out another writer that holds a SQLite store and saying so when it holds it too long
(store_problem), checking that a tracking server answers, and starting a local server as `make ui` does (for
the tests and scripts/mlflow_screenshots.py)."""
from __future__ import annotations

import http.client
import logging
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

# SQLite allows one writer at a time, and a second `dvc exp` worker, `mlflow ui` or a backup tool can hold
# mlflow.db for a minute. MLflow waits 20 s for it (its PRAGMA busy_timeout) and then fails the write: a
# finished training was once thrown away for a store held 60 s. Every SQLite session waits this long instead.
STORE_WAIT_SECONDS = 300.0


def store_wait_seconds() -> float:
    """TINYGRAY_STORE_WAIT_SECONDS, or STORE_WAIT_SECONDS: how long a write waits for another writer."""
    return float(os.environ.get("TINYGRAY_STORE_WAIT_SECONDS", STORE_WAIT_SECONDS))


def _wait_longer_for_other_writers() -> None:
    """Our busy timeout on every SQLite connection from its first statement (a SQLAlchemy pool event: MLflow's
    first connection, its schema check, used to run with SQLite's default 5 s, so a store held a few seconds as a
    stage started stopped it), and again after MLflow sets its own on each session (an event on every engine)."""
    import sqlite3

    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import Pool

    @event.listens_for(Pool, "connect")
    def busy_timeout_from_the_start(dbapi_connection, connection_record):
        if isinstance(dbapi_connection, sqlite3.Connection):
            dbapi_connection.execute(f"PRAGMA busy_timeout = {int(store_wait_seconds() * 1000)}")

    @event.listens_for(Engine, "after_cursor_execute")
    def longer_busy_timeout(conn, cursor, statement, parameters, context, executemany):
        if conn.dialect.name == "sqlite" and statement.lstrip().lower().startswith("pragma busy_timeout"):
            cursor.execute(f"PRAGMA busy_timeout = {int(store_wait_seconds() * 1000)}")


_wait_longer_for_other_writers()
# MLflow logs every SQLAlchemy error with its traceback before raising it again: store_problem turns the ones
# about the store into one sentence, and the rest keep their traceback when they reach the stage.
logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)


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
    from filelock import FileLock

    path = sqlite_path(uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(path.with_name(path.name + ".lock")):
        mlflow.MlflowClient(tracking_uri=uri).search_experiments()  # creates the tables, or finds them made


def sqlite_path(uri: str) -> Path | None:
    """The file of a sqlite:/// tracking URI; None for other stores."""
    return Path(uri[len("sqlite:///"):].partition("?")[0]) if uri.startswith("sqlite:///") else None


def store_problem(error: BaseException, uri: str) -> str | None:
    """One sentence for an MLflow store that cannot be written: held by another writer for longer than
    store_wait_seconds() (naming the processes that have it open), read-only, or on a full disk; None for
    any other error. MLflow wraps SQLite's error in SQLAlchemy's in its own, so the whole chain is read."""
    seen, reasons = set(), []
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        reasons.append(str(error).lower())
        error = error.__cause__ or error.__context__
    text = " ".join(reasons)
    path = sqlite_path(uri) or uri
    if "database is locked" in text:
        holders = _processes_holding(path) if isinstance(path, Path) else []
        held_by = f" (open in: {'; '.join(holders)})" if holders else ""
        return (f"the MLflow store {path} stayed locked by another writer for {store_wait_seconds():g} s{held_by}. "
                "SQLite takes one writer at a time: close `mlflow ui` or the other `dvc exp` worker, or raise "
                "TINYGRAY_STORE_WAIT_SECONDS, then run again")
    if "disk is full" in text or "no space left" in text:
        return f"the MLflow store {path} could not be written: its disk is full"
    if "readonly database" in text or "read-only" in text:
        return f"the MLflow store {path} is read-only to this process"
    return None


def _processes_holding(path: Path) -> list[str]:
    """'pid 123: mlflow ui ...' for every other process with the store file open (psutil; those it may see)."""
    import psutil

    target, found = str(path.resolve()), []
    for process in psutil.process_iter(["pid", "cmdline"]):
        if process.pid == os.getpid():
            continue
        try:
            if any(item.path.startswith(target) for item in process.open_files()):
                found.append(f"pid {process.pid}: {' '.join(process.info['cmdline'] or [])[:80]}")
        except (psutil.Error, OSError):
            continue
    return found


class TrackingServerError(RuntimeError):
    """The MLflow tracking server does not answer; the message says which and what to do."""


def check_tracking_server(uri: str, timeout: float = 5.0) -> None:
    """For an http(s) tracking URI, GET its /health once with a short timeout, so a stage whose server is
    down or unreachable says so in seconds before doing any work, instead of retrying for minutes later.
    An answer below 500 counts as alive (auth and proxies are MLflow's business); a 5xx (a proxy with no server
    behind it, a server not ready: 503) does not, since every write would then fail through MLflow's retries.
    File and database stores are not checked."""
    if not uri.lower().startswith(("http://", "https://")):
        return
    try:
        urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout).close()
    except urllib.error.HTTPError as error:
        if error.code < 500:
            return
        raise TrackingServerError(
            f"MLflow tracking server {uri} answered {error.code} ({error.reason}) to /health: it cannot take the "
            "stage's records; start it again (`make ui` serves http://127.0.0.1:5000) or unset MLFLOW_TRACKING_URI "
            "to log to mlflow.db") from None
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
