"""The shipped model in MLflow's model registry: the .tflite the benchmark picked and its contract file,
logged as a pyfunc model under one registered name with the alias `shipped` on its newest version, so "the
model to put on the phone" is one click away in the UI, `models:/tinygray-shipped@shipped` loads and serves
it, and its test metrics sit on the version's tags.

The wrapper loads nothing heavier than the file needs: this module imports mlflow and numpy, and the model
itself tinygray.litert (numpy and ai-edge-litert), which are exactly its pip requirements."""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np

REGISTERED_MODEL = "tinygray-shipped"
ALIAS = "shipped"
# what the wrapper imports when MLflow loads it, pinned to this environment's versions
REQUIREMENTS = ("ai-edge-litert", "numpy")


class TFLiteClassifier(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: logits of the registered .tflite for (N, H, W, 1) raw 8-bit pixels, run by the
    LiteRT interpreter exactly as `python -m tinygray.predict` runs the file."""

    def load_context(self, context):
        from tinygray.litert import TFLiteModel

        self.model = TFLiteModel(context.artifacts["tflite"])

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        return self.model.predict(np.asarray(model_input))


def register_shipped_model(tflite_path: Path | str, contract_path: Path | str, variant: dict[str, Any],
                           input_example: np.ndarray) -> str:
    """Log the shipped .tflite and its contract file (how to call it) as artifacts of the active run, under
    shipped/, and, unless the version the alias points at holds the same file, as a new version of
    REGISTERED_MODEL with a signature inferred from `input_example` (raw uint8 images), which then takes the
    alias. Returns the version the alias points at."""
    from tinygray.litert import TFLiteModel
    from tinygray.predict import contract_for

    digest = hashlib.sha256(Path(tflite_path).read_bytes()).hexdigest()
    client = mlflow.MlflowClient()
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / Path(tflite_path).name
        shutil.copyfile(tflite_path, model_file)
        shutil.copyfile(contract_path, contract_for(model_file))  # beside the model, where predict looks
        mlflow.log_artifacts(tmp, artifact_path="shipped")
        current = _aliased_version(client)
        if current is not None and current.tags.get("sha256") == digest:
            print(f"benchmark: {REGISTERED_MODEL}@{ALIAS} (version {current.version}) already holds this file; "
                  "no new version", flush=True)
            return str(current.version)
        example = np.asarray(input_example, dtype=np.uint8)
        signature = mlflow.models.infer_signature(example, TFLiteModel(model_file).predict(example))
        info = mlflow.pyfunc.log_model(
            name="shipped_model", python_model=TFLiteClassifier(),
            artifacts={"tflite": str(model_file), "contract": str(contract_for(model_file))},
            code_paths=[str(Path(__file__).parent)], signature=signature, input_example=example,
            pip_requirements=[f"{name}=={metadata.version(name)}" for name in REQUIREMENTS],
            registered_model_name=REGISTERED_MODEL)
    version = str(info.registered_model_version)
    for key in ("name", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "size_bytes", "latency_ms_p50"):
        client.set_model_version_tag(REGISTERED_MODEL, version, key, str(variant[key]))
    client.set_model_version_tag(REGISTERED_MODEL, version, "sha256", digest)
    client.set_registered_model_alias(REGISTERED_MODEL, ALIAS, version)
    return version


def _aliased_version(client):
    """The version the alias points at, or None (no model or no alias yet)."""
    try:
        return client.get_model_version_by_alias(REGISTERED_MODEL, ALIAS)
    except mlflow.exceptions.MlflowException:
        return None
