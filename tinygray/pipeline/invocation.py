"""Which pipeline execution a stage belongs to. Each stage is a separate process, so the stages of one
`dvc repro` / `dvc exp run` recognise each other by the DVC process that launched them (or PIPELINE_RUN_ID
when set), and each run records the git commit it ran at."""
from __future__ import annotations

import os
import socket
import subprocess
import uuid
from pathlib import Path


def dvc_process():
    """The `dvc` process this stage runs under (repro, exp run, a queue worker), or None when run by hand."""
    import psutil

    for process in psutil.Process().parents():
        try:
            args = process.cmdline()
        except (psutil.AccessDenied, psutil.ZombieProcess, psutil.NoSuchProcess):
            continue
        if any(Path(arg).name == "dvc" for arg in args[:2]) or args[1:3] == ["-m", "dvc"]:
            return process
    return None


def process_started(process) -> str:
    """When `process` started, as a stable identity next to its pid. On Linux the kernel's start time in clock
    ticks since boot (/proc/<pid>/stat, field 22): psutil's create_time() adds it to a boot time derived from
    the wall clock, so a clock adjustment during a run moved it (one `dvc repro` once logged four parent runs,
    and a live run can look stale). Elsewhere create_time() to the second."""
    try:
        stat = Path(f"/proc/{process.pid}/stat").read_text()
        return "ticks-" + stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return str(int(process.create_time()))


def pipeline_run_id() -> str:
    """The same id for every stage that one DVC invocation runs, and a fresh one for the next."""
    if os.environ.get("PIPELINE_RUN_ID"):
        return os.environ["PIPELINE_RUN_ID"]
    exp, process = os.environ.get("DVC_EXP_NAME"), dvc_process()
    if process is not None:
        ident = f"{socket.gethostname()}-{process.pid}-{process_started(process)}"
        return f"{exp}-{ident}" if exp else ident
    return exp or f"manual-{uuid.uuid4().hex[:12]}"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None


def process_tags() -> dict[str, str]:
    """Who runs this stage, so that a later stage can tell a run left RUNNING by a killed process."""
    import psutil

    me = psutil.Process()
    return {"host": socket.gethostname(), "pid": str(me.pid), "pid_started": process_started(me)}
