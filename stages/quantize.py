"""Stage 6: TFLite conversions (float32, dynamic range, float16, int8) of one model, `teacher` or
`pruned`; refuses an int8 model that lost too much validation accuracy or collapsed to one output."""
import sys

import numpy as np

from tinygray import data, models, quantization
from tinygray.atomic import atomic_output
from tinygray.params import stage_params
from tinygray.tracking import stage_run

PREPARED = "data/prepared"
model_name = sys.argv[1] if len(sys.argv) == 2 else sys.exit("usage: python stages/quantize.py teacher|pruned")
SOURCE, OUT = f"models/{model_name}.keras", f"models/tflite/{model_name}"

params = stage_params("quantize")
with stage_run(f"quantize@{model_name}", params) as run:
    model = models.load_model(SOURCE)
    train_images, _ = data.read_split(PREPARED, "train")
    val_images, val_labels = data.read_split(PREPARED, "val")
    representative = quantization.representative_dataset(train_images, params["representative_samples"], params["seed"])
    variants, val_accuracy = [], {}
    with atomic_output(OUT) as staging:
        staging.mkdir()
        for mode in quantization.MODES:
            path = staging / f"{model_name}_{mode}.tflite"
            path.write_bytes(quantization.convert(model, mode, representative=representative, sparse=True))
            logits = quantization.TFLiteModel(path).predict(val_images)
            if np.ptp(logits, axis=0).max() == 0:
                sys.exit(f"quantize: {path.name} gives the same output for every validation image; "
                         "the conversion is broken (check the representative data)")
            val_accuracy[mode] = round(float(np.mean(logits.argmax(1) == val_labels)), 4)
            variants.append({"name": path.stem, "format": "tflite", "val_accuracy": val_accuracy[mode],
                             "size_bytes": path.stat().st_size})
        drop = val_accuracy["float32"] - val_accuracy["int8"]
        if drop > params["max_int8_accuracy_drop"]:
            sys.exit(f"quantize: {model_name} int8 validation accuracy {val_accuracy['int8']:.4f} is {drop:.4f} below "
                     f"float32 {val_accuracy['float32']:.4f}, more than quantize.max_int8_accuracy_drop="
                     f"{params['max_int8_accuracy_drop']}; no TFLite files were written")
    run.finish({"variants": variants, "int8_accuracy_drop": round(drop, 4)})
