"""The shipped model in MLflow's model registry: the .tflite the benchmark picked and its contract file,
logged as a pyfunc model under one registered name, so "the model to put on the phone" is one click away
in the UI with its test metrics on the version's tags."""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import mlflow.pyfunc
import numpy as np

import tinygray
from tinygray.predict import contract_for

REGISTERED_MODEL = "tinygray-shipped"


class TFLiteClassifier(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc wrapper: logits of the registered .tflite for (N, H, W, 1) raw-pixel images."""

    def load_context(self, context):
        from tinygray.quantization import TFLiteModel

        self.model = TFLiteModel(context.artifacts["tflite"])

    def predict(self, context, model_input: np.ndarray, params: dict | None = None) -> np.ndarray:
        return self.model.predict(model_input)


def register_shipped_model(tflite_path: Path | str, contract_path: Path | str, variant: dict[str, Any]) -> None:
    """Log the shipped .tflite and its contract file (how to call it) as artifacts of the active run, under
    shipped/, and as an MLflow model registered as REGISTERED_MODEL, so "the model to put on the phone" is one
    click away in the UI with its test metrics on the version's tags."""
    with tempfile.TemporaryDirectory() as tmp:
        model_file = Path(tmp) / Path(tflite_path).name
        shutil.copyfile(tflite_path, model_file)
        shutil.copyfile(contract_path, contract_for(model_file))  # beside the model, where predict looks
        mlflow.log_artifacts(tmp, artifact_path="shipped")
        info = mlflow.pyfunc.log_model(
            name="shipped_model", python_model=TFLiteClassifier(),
            artifacts={"tflite": str(model_file), "contract": str(contract_for(model_file))},
            code_paths=[str(Path(tinygray.__file__).parent)],
            pip_requirements=["ai-edge-litert==2.3.0", "numpy"],  # explicit: inferring them costs ~10 s
            registered_model_name=REGISTERED_MODEL)
    client = mlflow.MlflowClient()
    version = info.registered_model_version
    for key in ("name", "accuracy", "accuracy_ci_low", "accuracy_ci_high", "size_bytes", "latency_ms_p50"):
        client.set_model_version_tag(REGISTERED_MODEL, version, key, str(variant[key]))
