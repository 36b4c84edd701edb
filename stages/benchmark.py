"""Stage 7: every variant on the test split, measured the same way, in one table."""
import tempfile
from pathlib import Path

import numpy as np

from tinygray import benchmarking, data, models, quantization
from tinygray.atomic import atomic_output
from tinygray.params import stage_params
from tinygray.tracking import stage_run

PREPARED, REPORT = "data/prepared", "reports/benchmark.md"
# Each Keras model, followed by its TFLite conversions when the quantize stage made any.
KERAS_MODELS = {"teacher": True, "student": False, "pruned": True}
TEACHER, SHIPPED = "teacher", "pruned_int8"

params = stage_params("benchmark")
with stage_run("benchmark", params) as run:
    test_images, test_labels = data.read_split(PREPARED, "test")
    test_images = np.asarray(test_images)

    def measure(name, format, logits, counts, path, timed_path):
        times = quantization.TFLiteModel(timed_path, num_threads=params["num_threads"]).latency_ms(
            test_images[0], warmup_runs=params["warmup_runs"], timed_runs=params["timed_runs"])
        return {"name": name, "format": format, **benchmarking.classification_metrics(logits, test_labels),
                "params": counts[0], "nonzero_params": counts[1], **benchmarking.file_sizes(path),
                **benchmarking.latency_summary(times)}

    variants = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, quantized in KERAS_MODELS.items():
            path = f"models/{name}.keras"
            model = models.load_model(path)
            counts = models.count_params(model)
            # Keras rows are timed as their float32 TFLite conversion: the same interpreter for every row.
            float_tflite = Path(tmp) / f"{name}.tflite"
            float_tflite.write_bytes(quantization.convert(model, "float32"))
            logits = model.predict(test_images, batch_size=256, verbose=0)
            variants.append(measure(name, "keras", logits, counts, path, float_tflite))
            for mode in quantization.MODES if quantized else ():
                tflite = Path("models/tflite") / name / f"{name}_{mode}.tflite"
                logits = quantization.TFLiteModel(tflite).predict(test_images)
                variants.append(measure(tflite.stem, "tflite", logits, counts, tflite, tflite))
    benchmarking.add_ratios(variants, TEACHER)

    by_name = {v["name"]: v for v in variants}
    headline_keys = ("accuracy", "size_bytes", "latency_ms_p50", "size_ratio", "speedup", "accuracy_delta")
    metrics = {
        "teacher": TEACHER, "shipped": SHIPPED, "num_threads": params["num_threads"],
        "headline": {role: {k: by_name[name][k] for k in headline_keys}
                     for role, name in (("teacher", TEACHER), ("shipped", SHIPPED))},
        "variants": variants,
    }
    with atomic_output(REPORT) as staging:
        shipped, teacher = by_name[SHIPPED], by_name[TEACHER]
        staging.write_text(
            "# Benchmark\n\n"
            f"Test split: {len(test_labels)} images. Latency: batch 1, {params['num_threads']} thread(s), "
            f"{params['warmup_runs']} warm-up then {params['timed_runs']} timed runs through the LiteRT interpreter "
            f"(Keras rows as their float32 TFLite conversion), on {benchmarking.machine_description()}.\n\n"
            f"{benchmarking.markdown_table(variants)}\n\n"
            f"The shipped model `{SHIPPED}` is {shipped['size_ratio']:.0f}× smaller and {shipped['speedup']:.1f}× "
            f"faster than the teacher, at {100 * shipped['accuracy_delta']:+.2f} points of test accuracy "
            f"({100 * shipped['accuracy']:.2f}% vs {100 * teacher['accuracy']:.2f}%).\n"
        )
    run.finish(metrics, artifacts=[REPORT])
