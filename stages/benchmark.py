"""Stage 7: every variant on the test split, measured the same way, in one table."""
import tempfile
from pathlib import Path

import numpy as np

from tinygray import benchmarking, data, models, quantization
from tinygray.atomic import atomic_output
from tinygray.params import stage_params
from tinygray.tracking import stage_run

PREPARED, REPORT = "data/prepared", "reports/benchmark.md"
KERAS_VARIANTS = {"teacher": "models/teacher.keras", "student": "models/student.keras", "pruned": "models/pruned.keras"}
TFLITE_DIR, PRUNED_FROM = Path("models/tflite"), "pruned"
TEACHER, SHIPPED = "teacher", "pruned_int8"

params = stage_params("benchmark")
with stage_run("benchmark", params) as run:
    test_images, test_labels = data.read_split(PREPARED, "test")
    test_images = np.asarray(test_images)

    def speed(tflite_path):
        times = quantization.TFLiteModel(tflite_path, num_threads=params["num_threads"]).latency_ms(
            test_images[0], warmup_runs=params["warmup_runs"], timed_runs=params["timed_runs"])
        return benchmarking.latency_summary(times)

    variants, counts = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in KERAS_VARIANTS.items():
            model = models.load_model(path)
            counts[name] = models.count_params(model)
            # Keras rows are timed as their float32 TFLite conversion: the same interpreter for every row.
            float_tflite = Path(tmp) / f"{name}.tflite"
            float_tflite.write_bytes(quantization.convert(model, "float32"))
            variants.append({
                "name": name, "format": "keras",
                **benchmarking.classification_metrics(model.predict(test_images, batch_size=256, verbose=0), test_labels),
                "params": counts[name][0], "nonzero_params": counts[name][1],
                **benchmarking.file_sizes(path), **speed(float_tflite),
            })
    for mode in quantization.MODES:
        path = TFLITE_DIR / f"pruned_{mode}.tflite"
        variants.append({
            "name": path.stem, "format": "tflite",
            **benchmarking.classification_metrics(quantization.TFLiteModel(path).predict(test_images), test_labels),
            "params": counts[PRUNED_FROM][0], "nonzero_params": counts[PRUNED_FROM][1],
            **benchmarking.file_sizes(path), **speed(path),
        })
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
