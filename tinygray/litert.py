"""A .tflite file run through the LiteRT interpreter, as on a phone: numpy and ai-edge-litert only, so that
`python -m tinygray.predict model.tflite` and the registered MLflow model load no TensorFlow, Keras or scipy."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


class TFLiteModel:
    """A .tflite model run through the LiteRT interpreter, the runtime a phone uses."""

    def __init__(self, path: Path | str, num_threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: TFLite model not found")
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = None

    def _quantize_input(self, images: np.ndarray) -> np.ndarray:
        dtype = self.input["dtype"]
        scale, zero_point = self.input["quantization"]
        x = np.asarray(images, dtype=np.float32)
        if np.issubdtype(dtype, np.integer) and scale:
            info = np.iinfo(dtype)
            x = np.clip(np.rint(x / scale + zero_point), info.min, info.max)
        return x.astype(dtype)

    def _dequantize_output(self, raw: np.ndarray) -> np.ndarray:
        scale, zero_point = self.output["quantization"]
        if np.issubdtype(raw.dtype, np.integer) and scale:
            return (raw.astype(np.float32) - zero_point) * scale
        return raw.astype(np.float32)

    def _resize(self, batch: int) -> None:
        if self._batch != batch:
            self.interpreter.resize_tensor_input(self.input["index"], [batch, *self.input["shape"][1:]])
            self.interpreter.allocate_tensors()
            self._batch = batch

    def predict(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Logits (dequantized) for (N, H, W, 1) raw-pixel images."""
        outputs = []
        for start in range(0, len(images), batch_size):
            chunk = self._quantize_input(images[start : start + batch_size])
            self._resize(len(chunk))
            self.interpreter.set_tensor(self.input["index"], chunk)
            self.interpreter.invoke()
            outputs.append(self._dequantize_output(self.interpreter.get_tensor(self.output["index"])))
        return np.concatenate(outputs)

    def latency_ms(self, image: np.ndarray, *, warmup_runs: int, timed_runs: int) -> np.ndarray:
        """Per-invoke wall times at batch 1 (input set once, so only inference is timed)."""
        self._resize(1)
        self.interpreter.set_tensor(self.input["index"], self._quantize_input(image[np.newaxis]))
        for _ in range(warmup_runs):
            self.interpreter.invoke()
        times = np.empty(timed_runs)
        for i in range(timed_runs):
            start = time.perf_counter_ns()
            self.interpreter.invoke()
            times[i] = (time.perf_counter_ns() - start) / 1e6
        return times
