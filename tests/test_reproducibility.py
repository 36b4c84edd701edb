"""Reproducible means identical: the same inputs give the same bytes, and a killed preprocess leaves
nothing DVC would take for finished."""
import json
import os
import signal
import subprocess
import time

from stage_helpers import REPO, folder_project, run, run_stage, stage_env, stages_run


def snapshot(root):
    """Every prepared file's bytes and the metrics file."""
    prepared = root / "data" / "prepared"
    files = {p.relative_to(prepared).as_posix(): p.read_bytes() for p in sorted(prepared.rglob("*")) if p.is_file()}
    return files, (root / "metrics" / "preprocess.json").read_text()


def test_dvc_repro_force_twice_gives_identical_bytes_and_metrics(tmp_path):
    root, env = folder_project(tmp_path, {"cat": 12, "dog": 15})
    assert stages_run(run(["dvc", "repro", "-f", "preprocess"], root, env)) == ["preprocess"]
    first, lock = snapshot(root), (root / "dvc.lock").read_text()
    assert stages_run(run(["dvc", "repro", "-f", "preprocess"], root, env)) == ["preprocess"]
    assert snapshot(root) == first and (root / "dvc.lock").read_text() == lock
    assert sorted(first[0]) == ["classes.json", *(f"{s}/{f}" for s in ["test", "train", "val"]
                                                  for f in ["images.npy", "labels.npy"])]


def test_builtin_tiny_preprocess_twice_gives_identical_bytes(tmp_path):
    outputs = []
    for name in ["a", "b"]:
        root = tmp_path / name
        root.mkdir()
        (root / "params.yaml").write_text((REPO / "tests" / "tiny_params.yaml").read_text())
        code, output = run_stage(root, stage_env(root))
        assert code == 0, output[-3000:]
        outputs.append(snapshot(root))
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0][1])["num_classes"] == 10


def test_killed_preprocess_leaves_nothing_finished_and_next_repro_recovers(tmp_path):
    root, env = folder_project(tmp_path, {"cat": 1500, "dog": 1500}, size=96)
    repro = subprocess.Popen(["dvc", "repro", "preprocess"], cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not list((root / "data").glob(".tmp-*-prepared/decoded.npy")):  # streaming has started
        assert repro.poll() is None and time.monotonic() < deadline, repro.stdout.read().decode()[-3000:]
        time.sleep(0.01)
    time.sleep(0.3)
    os.killpg(repro.pid, signal.SIGKILL)  # dvc and the stage, mid-stream
    repro.wait()
    assert list((root / "data").glob(".tmp-*-prepared"))  # killed half-way: only the staging copy exists
    assert not (root / "data" / "prepared").exists()
    assert not (root / "metrics" / "preprocess.json").exists()
    assert "preprocess" in run(["dvc", "status", "preprocess"], root, env)  # DVC knows it is not done
    output = run(["dvc", "repro", "preprocess"], root, env)
    assert stages_run(output) == ["preprocess"]
    assert not list((root / "data").glob(".tmp-*"))  # the killed run's staging was cleaned up
    metrics = json.loads((root / "metrics" / "preprocess.json").read_text())
    assert sum(metrics["num_images"].values()) == 3000
    assert stages_run(run(["dvc", "repro", "preprocess"], root, env)) == []
