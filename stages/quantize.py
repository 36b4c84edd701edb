"""Stage 6: TFLite conversions (float32, dynamic range, float16, int8) of one model (quantize@<model> in
dvc.yaml), each with its contract beside it (<file>.contract.json: classes, input, scales; tinygray.predict). The int8 file is judged against the float32 one on the validation split: it fails its gate when
it loses more than quantize.max_int8_accuracy_drop *and* McNemar's test says the loss is real, so two images
of an 80-image split cannot fail it. A failed gate is recorded, not fatal: the benchmark reports it, and
stops only if the failed file is the shipped one. A conversion that gives one output for every image is
broken and stops the stage."""
import sys

import numpy as np

from tinygray import litert, predict
from tinygray.compress import tflite
from tinygray.data import prepared
from tinygray.models.files import load_model
from tinygray.pipeline import layout, progress
from tinygray.pipeline.atomic import atomic_output
from tinygray.pipeline.params import load_params
from tinygray.pipeline.tracking import stage_run
from tinygray.pipeline.choices import MODES

PREPARED = layout.PREPARED


def main(model_name: str) -> None:
    source, out = layout.model(model_name), layout.tflite_dir(model_name)
    params = load_params()
    quantize = params.quantize
    resize = params.preprocess.resize  # for the contract beside each file
    with stage_run(f"quantize@{model_name}", params.run_params("quantize")) as run:
        model = load_model(source)
        train_images, _ = prepared.read_split(PREPARED, "train")
        val_images, val_labels = prepared.read_split(PREPARED, "val")
        representative = tflite.representative_dataset(train_images, quantize.representative_samples,
                                                       params.seed)
        variants, correct = [], {}
        with atomic_output(out) as staging:
            staging.mkdir()
            for mode in progress.steps(MODES, f"quantize@{model_name}: converting", unit="file"):
                path = staging / f"{model_name}_{mode}.tflite"
                path.write_bytes(tflite.convert(model, mode, representative=representative, sparse=True))
                logits = litert.TFLiteModel(path).predict(val_images)
                if np.ptp(logits, axis=0).max() == 0:
                    sys.exit(f"quantize: {path.name} gives the same output for every validation image; "
                             "the conversion is broken (check the representative data)")
                correct[mode] = logits.argmax(1) == val_labels
                # what it takes to use the file alone: classes, input, int8 scales, how images were made
                predict.write_contract(path, predict.contract_for(path), prepared.read_class_names(PREPARED),
                                       predict.preprocessing(val_images.shape[1], resize))
                variants.append({"name": path.stem, "format": "tflite", "val_accuracy": round(float(correct[mode].mean()), 4),
                                 "size_bytes": path.stat().st_size})
        gate = tflite.int8_gate(correct["int8"], correct["float32"], quantize.max_int8_accuracy_drop)
        if not gate["passed"]:
            print(f"quantize: {model_name}_int8 FAILED its gate: validation accuracy {gate['accuracy_delta']:+.4f} "
                  f"against float32 (McNemar p = {gate['p_value']:.3g}); the benchmark reports it", flush=True)
        run.finish({"variants": variants, "int8_accuracy_drop": round(-gate["accuracy_delta"], 4) + 0.0, "int8_gate": gate})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) == 2 else sys.exit("usage: python stages/quantize.py MODEL (teacher, student, ...)"))
