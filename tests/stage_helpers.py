"""Shared by the own-data, bad-input, reproducibility and DVC-remote tests (no tests here): tiny image
folders, a params.yaml, the real preprocess stage as a subprocess, and a git + DVC project around it."""
import functools
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
STAGE = REPO / "stages" / "preprocess.py"


def free_ports(count: int) -> list[int]:
    """`count` distinct ports of 127.0.0.1 that nothing listens on (all bound at once, so none repeats)."""
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def make_folder(root, counts, size=16, seed=0):
    """root/<class>/<i>.png, 16x16 gray noise brightened per class; returns root."""
    rng = np.random.default_rng(seed)
    for label, (name, count) in enumerate(counts.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 128, (size, size)) + 100 * label
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name / f"{i:05d}.png")
    return root


def write_params(root, **preprocess):
    """The tiny parameters with a folder dataset in data/raw, changed by `preprocess`."""
    params = yaml.safe_load((REPO / "tests" / "tiny_params.yaml").read_text())
    params["preprocess"].update({"dataset": "folder", "image_dir": "data/raw", "max_per_class": None, **preprocess})
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@functools.cache
def _empty_mlflow_db():
    """An initialised MLflow SQLite store, made once: creating its tables costs ~5 s per fresh file."""
    from mlflow import MlflowClient

    path = Path(tempfile.mkdtemp(prefix="tinygray-mlflow-")) / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def stage_env(tmp_path):
    """Environment for a stage subprocess logging to a fresh copy of an initialised tmp_path/mlflow.db."""
    shutil.copy(_empty_mlflow_db(), tmp_path / "mlflow.db")
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PIPELINE_RUN_ID": "test",
            "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "MLFLOW_DISABLE_TELEMETRY": "true"}


def run_stage(root, env, timeout=120):
    """`python stages/preprocess.py` with cwd `root`: (returncode, stdout + stderr)."""
    result = subprocess.run([sys.executable, str(STAGE)], cwd=root, env=env, capture_output=True, text=True,
                            timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def run(cmd, cwd, env, timeout=300):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{output[-4000:]}"
    return output


def dvc_project(root, env):
    """A git + DVC project holding the repo's preprocess stage, with the image folder as a dependency
    (the line README's 'Your own data' uncomments) and data/raw added to DVC; committed."""
    for name in ["stages", "tinygray"]:
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / ".gitignore", root / ".gitignore")
    (root / ".dvc").mkdir()
    for name in ["config", ".gitignore"]:
        shutil.copy(REPO / ".dvc" / name, root / ".dvc" / name)
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["preprocess"]
    stage["deps"].append("${preprocess.image_dir}")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"preprocess": stage}}, sort_keys=False))
    run(["git", "init", "-q"], root, env)
    run(["git", "config", "user.name", "test"], root, env)
    run(["git", "config", "user.email", "test@example.com"], root, env)
    run(["dvc", "add", "-q", "data/raw"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "own data"], root, env)
    return root


def stages_run(output):
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]


def folder_project(tmp_path, counts, size=16):
    """The README's own-data flow, ready to run: images in data/raw, folder params, a committed git + DVC
    project, and the environment its stages run in. Returns (root, env)."""
    root = tmp_path / "project"
    make_folder(root / "data" / "raw", counts, size=size)
    write_params(root)
    env = stage_env(tmp_path)
    return dvc_project(root, env), env


def dvc_stages(dvc_yaml: Path | None = None) -> dict[str, dict]:
    """dvc.yaml's stage definitions by name, a `foreach` stage as its `do` body (train_family: one per family)."""
    stages = yaml.safe_load(((dvc_yaml or Path(__file__).resolve().parents[1] / "dvc.yaml")).read_text())["stages"]
    return {name: stage.get("do", stage) for name, stage in stages.items()}
