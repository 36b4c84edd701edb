"""The registered model as its users take it: `models:/tinygray-shipped@shipped` loads in an environment
without TensorFlow, Keras or scipy, serves over HTTP with `mlflow models serve`, and answers as
`python -m tinygray.predict` does; registering the same file again adds no version."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinygray import litert

REGISTER = """
import sys, numpy as np
from pathlib import Path
from tinygray.compress import tflite
from tinygray.models.cnn import build_cnn
from tinygray.pipeline.tracking import stage_run
from tinygray.registry import register_shipped_model
from tinygray.train.loop import seed_everything
seed_everything(int(sys.argv[1]))
with stage_run("benchmark", {"shipped": "tiny"}) as run:
    model = build_cnn((8, 8, 1), 3, [4])
    Path("tiny.tflite").write_bytes(tflite.convert(model, "float32"))
    Path("contract.json").write_text("{}")
    run.finish({"accuracy": 0.75})
    print(register_shipped_model("tiny.tflite", "contract.json", {"name": "tiny", "accuracy": 0.75,
        "accuracy_ci_low": 0.7, "accuracy_ci_high": 0.8, "size_bytes": 10, "latency_ms_p50": 0.01},
        input_example=np.full((1, 8, 8, 1), 128, np.uint8)))
"""

# A fresh interpreter in which TensorFlow, Keras, JAX and scipy cannot be imported, as on a serving host
# that installed only the model's own requirements.
LOAD_WITHOUT_HEAVY_LIBRARIES = """
import importlib.abc, sys
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] in {"tensorflow", "keras", "jax", "scipy"}:
            raise ImportError(f"{name} is not installed here")
sys.meta_path.insert(0, Refuse())
import mlflow, numpy as np
model = mlflow.pyfunc.load_model("models:/tinygray-shipped@shipped")
np.save(sys.argv[2], model.predict(np.load(sys.argv[1])))
print(sorted(m for m in ("tensorflow", "keras", "jax", "scipy") if m in sys.modules))
"""


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    """One registration shared by the tests of this file (each took 10 s to make its own); the one test that
    registers more versions runs last."""
    tmp_path = tmp_path_factory.mktemp("registry")
    (tmp_path / "register.py").write_text(REGISTER)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/mlflow.db", "PIPELINE_RUN_ID": "reg-1",
           "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "register.py", "0"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    images = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1), dtype=np.uint8)
    return tmp_path, env, images, litert.TFLiteModel(tmp_path / "tiny.tflite").predict(images)


def test_the_registered_model_loads_and_answers_without_tensorflow_keras_or_scipy(registered):
    tmp_path, env, images, expected = registered
    np.save(tmp_path / "images.npy", images)
    done = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_HEAVY_LIBRARIES, "images.npy", "logits.npy"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), expected, rtol=1e-5, atol=1e-5)


def test_the_registered_model_has_a_signature_an_example_exact_requirements_and_the_alias(registered):
    import mlflow
    from mlflow.models import get_model_info

    tmp_path, env, _, _ = registered
    uri = "models:/tinygray-shipped@shipped"
    mlflow.set_tracking_uri(env["MLFLOW_TRACKING_URI"])
    try:
        info = get_model_info(uri)
        assert info.signature.inputs.to_dict()[0]["tensor-spec"] == {"dtype": "uint8", "shape": (-1, 8, 8, 1)}
        assert info.saved_input_example_info is not None
        requirements = Path(mlflow.artifacts.download_artifacts(f"{uri}/requirements.txt", dst_path=str(tmp_path / "r")))
        names = {line.split("==")[0] for line in requirements.read_text().split() if line}
        assert names == {"mlflow", "ai-edge-litert", "numpy"}
        client = mlflow.MlflowClient()
        assert str(client.get_model_version_by_alias("tinygray-shipped", "shipped").version) == "1"
    finally:
        mlflow.set_tracking_uri(None)


def test_mlflow_serves_the_registered_model_and_answers_as_predict_does(registered):
    tmp_path, env, images, expected = registered
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mlflow_cli = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen([str(mlflow_cli), "models", "serve", "-m", "models:/tinygray-shipped@shipped",
                               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env={**env, "PATH": f"{mlflow_cli.parent}{os.pathsep}{env['PATH']}"})  # its uvicorn
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, server.stderr.read()[-3000:] if server.poll() else "no answer"
                time.sleep(0.5)
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations",
                                         data=json.dumps({"inputs": images.tolist()}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            served = np.array(json.loads(answer.read())["predictions"])
    finally:
        server.terminate()
        server.wait(30)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)
    Image.fromarray(images[0, ..., 0]).save(tmp_path / "first.png")
    (tmp_path / "classes.json").write_text('["a", "b", "c"]')
    done = subprocess.run([sys.executable, "-m", "tinygray.predict", "tiny.tflite", "first.png", "--csv",
                           "--classes", "classes.json"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split(",")[1] == "abc"[int(served[0].argmax())]


def test_the_same_file_adds_no_version_and_a_new_file_moves_the_alias(registered):
    from mlflow import MlflowClient

    tmp_path, env, _, _ = registered
    versions = []
    for seed in ("0", "1"):  # seed 0: the same weights, the same file; seed 1: another file
        done = subprocess.run([sys.executable, "register.py", seed], cwd=tmp_path, env={**env, "PIPELINE_RUN_ID": seed},
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        versions.append(done.stdout.strip().splitlines()[-1])
    assert versions == ["1", "2"]
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    assert len(client.search_model_versions("name = 'tinygray-shipped'")) == 2
    assert str(client.get_model_version_by_alias("tinygray-shipped", "shipped").version) == "2"
