"""train_teacher.distribute: tf.distribute strategies, and a real two-worker MultiWorkerMirroredStrategy run of
the teacher stage: two processes on 127.0.0.1, each in its own copy of the workspace (as on two machines)."""
import json
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml

from stage_helpers import REPO, free_ports, make_folder, run_stage, stage_env, write_params

from tinygray.train import distribute


def cluster(index: int, ports=(1111, 2222), kind: str = "worker", chief: bool = False) -> str:
    spec = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    if chief:
        spec["chief"] = ["127.0.0.1:3333"]
    return json.dumps({"cluster": spec, "task": {"type": kind, "index": index}})


def test_multi_worker_without_tf_config_says_what_to_set(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(distribute.ClusterConfigError, match=r"needs the TF_CONFIG environment variable .* it is not set"):
        distribute.cluster_config()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1"]}}')
    with pytest.raises(distribute.ClusterConfigError, match=r"needs 'cluster' .* and 'task'"):
        distribute.cluster_config()
    monkeypatch.setenv("TF_CONFIG", cluster(2))
    with pytest.raises(distribute.ClusterConfigError, match=r"task index 2 is outside the 2 'worker' addresses"):
        distribute.cluster_config()


def test_only_the_chief_writes_outputs(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", cluster(1))
    assert distribute.is_chief("none") and distribute.is_chief("mirrored")  # TF_CONFIG matters to multi_worker only
    assert not distribute.is_chief("multi_worker")
    monkeypatch.setenv("TF_CONFIG", cluster(0))
    assert distribute.is_chief("multi_worker")
    monkeypatch.setenv("TF_CONFIG", cluster(0, chief=True))  # with a chief task, worker 0 is an ordinary worker
    assert not distribute.is_chief("multi_worker")
    monkeypatch.setenv("TF_CONFIG", cluster(0, kind="chief", chief=True))
    assert distribute.is_chief("multi_worker") and distribute.task_name() == "chief:0"


def test_an_unknown_strategy_is_refused_by_the_params_check(tmp_path):
    from tinygray.pipeline.params import ParamsError, load_params

    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["train_teacher"]["distribute"] = "horovod"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"'train_teacher.distribute' must be one of \['none', 'mirrored', 'multi_worker'\]"):
        load_params(tmp_path / "params.yaml")


def test_mirrored_strategy_trains_inside_its_scope_on_this_machine():
    """Several GPUs are not here: on a CPU MirroredStrategy has one replica; the stage's code path is the same."""
    import keras

    from tinygray.train import loop
    from tinygray.models.cnn import build_cnn

    chosen = distribute.strategy("mirrored")
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (64, 8, 8, 1)).astype(np.uint8)
    labels = (images.mean(axis=(1, 2, 3)) > 127).astype(np.int64)
    with chosen.scope():
        model = build_cnn((8, 8, 1), 2, [4], name="mirrored")
        metrics, _ = loop.fit(model, (images, labels), (images[:16], labels[:16]),
                              loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                              metric=loop.accuracy_metric(), epochs=1, batch_size=32, learning_rate=0.01, seed=0)
    assert metrics["epochs"] == 1
    assert distribute.describe(chosen, "mirrored") == {"strategy": "MirroredStrategy", "replicas": 1, "workers": 1}


def test_two_workers_train_the_teacher_in_step_and_only_the_chief_saves_it(tmp_path):
    """Both processes take part (each prints the same weights hash: the gradients were all-reduced across them;
    without that their different halves of every batch would give different weights), the chief writes the
    model, the metrics and the one MLflow run, and the worker's workspace gets no output at all."""
    chief, worker = tmp_path / "chief", tmp_path / "worker"
    chief.mkdir()
    env = stage_env(tmp_path)  # one MLflow store for both, as a shared tracking server would be
    make_folder(chief / "data" / "raw", {"dark": 40, "bright": 40}, size=16)
    write_params(chief)
    params = yaml.safe_load((chief / "params.yaml").read_text())
    params["train_teacher"].update({"backbone": "cnn", "input_size": 16, "epochs": 3, "patience": 3, "batch_size": 16,
                                    "distribute": "multi_worker"})
    (chief / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    code, output = run_stage(chief, env)
    assert code == 0, output
    shutil.copytree(chief, worker)  # the second machine: same code, params and prepared data

    addresses = [f"127.0.0.1:{port}" for port in free_ports(2)]
    processes, logs = [], []
    start = time.perf_counter()
    for index, root in enumerate([chief, worker]):
        tf_config = json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})
        log = (tmp_path / f"worker{index}.log").open("w")
        logs.append(log)
        processes.append(subprocess.Popen([sys.executable, str(REPO / "stages" / "train_teacher.py")], cwd=root,
                                          env={**env, "TF_CONFIG": tf_config}, stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [process.wait(timeout=240) for process in processes]
    finally:
        for process in processes:
            process.kill()
        for log in logs:
            log.close()
    seconds = time.perf_counter() - start
    outputs = [(tmp_path / f"worker{index}.log").read_text() for index in range(2)]
    assert codes == [0, 0], "\n\n".join(output[-3000:] for output in outputs)

    saved = re.search(r"train_teacher: worker:0 saved models/teacher.keras, weights (\w+)", outputs[0])
    trained = re.search(r"train_teacher: worker:1 trained (\d+) epochs in step with the chief, weights (\w+)", outputs[1])
    assert saved and trained, outputs[1][-3000:]
    assert trained.group(2) == saved.group(1), "the workers ended with different weights"
    metrics = json.loads((chief / "metrics" / "train_teacher.json").read_text())
    assert metrics["distribute"] == {"strategy": "MultiWorkerMirroredStrategy", "replicas": 2, "workers": 2}
    assert int(trained.group(1)) == metrics["epochs"]
    assert (chief / "models" / "teacher.keras").is_file()
    assert not (worker / "models" / "teacher.keras").exists() and not (worker / "metrics" / "train_teacher.json").exists()

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    runs = [run for experiment in client.search_experiments()
            for run in client.search_runs([experiment.experiment_id], "tags.stage = 'train_teacher'")]
    assert len(runs) == 1 and runs[0].data.params["distribute"] == "multi_worker"
    print(f"two-worker teacher: {seconds:.1f} s wall for both processes")
