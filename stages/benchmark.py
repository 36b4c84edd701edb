"""Stage 7: every variant on the test split, measured the same way: one table, seed statistics, paired
tests, the size/accuracy frontier, and the shipped model registered in MLflow."""
import json
import tempfile
from pathlib import Path

import numpy as np

from tinygray import benchmarking, data, frontier, models, quantization, report, stats, student, tracking
from tinygray.atomic import atomic_output
from tinygray.params import stage_params
from tinygray.tracking import stage_run

PREPARED, REPORT_DIR, FRONTIER_DATA = "data/prepared", Path("reports"), "metrics/plots/frontier.json"
# Keras models in table order, and whether the quantize stage converted them to TFLite.
KERAS_MODELS = {"teacher": True, "student": False, "scratch": False, "pruned": True, "pruned_filters": True}
TEACHER = "teacher"

params = stage_params("benchmark")
student_seeds = student.seeds(stage_params("train_student"))
with stage_run("benchmark", params) as run:
    test_images, test_labels = data.read_split(PREPARED, "test")
    test_images = np.asarray(test_images)

    def speed(tflite_path):
        """Headline latency at the first thread count; the others under latency_by_threads."""
        results = {}
        for threads in params["num_threads"]:
            times = quantization.TFLiteModel(tflite_path, num_threads=threads).latency_ms(
                test_images[0], warmup_runs=params["warmup_runs"], timed_runs=params["timed_runs"])
            results[str(threads)] = benchmarking.latency_summary(times)
        first, *others = params["num_threads"]
        return {**results[str(first)], "latency_by_threads": {str(n): results[str(n)] for n in others}}

    def keras_path(name):
        return student.checkpoint(f"models/{name}", student_seeds[0]) if name in ("student", "scratch") \
            else Path(f"models/{name}.keras")

    variants, predictions, paths = [], {}, {}

    def add(name, format, logits, counts, path, timed_path):
        predictions[name], paths[name] = logits.argmax(axis=1), path
        variants.append({"name": name, "format": format, **benchmarking.classification_metrics(logits, test_labels),
                         "params": counts[0], "nonzero_params": counts[1], **benchmarking.file_sizes(path),
                         **speed(timed_path)})

    with tempfile.TemporaryDirectory() as tmp:
        for name, quantized in KERAS_MODELS.items():
            model = models.load_model(keras_path(name))
            counts = models.count_params(model)
            # Keras rows are timed as a plain float32 conversion of the same network, made here alike for
            # every model: the quantize stage's float32 files of pruned models use the sparse encoding.
            float_tflite = Path(tmp) / f"{name}.tflite"
            float_tflite.write_bytes(quantization.convert(model, "float32"))
            add(name, "keras", model.predict(test_images, batch_size=256, verbose=0), counts, keras_path(name),
                float_tflite)
            for mode in quantization.MODES if quantized else ():
                tflite = Path("models/tflite") / name / f"{name}_{mode}.tflite"
                add(tflite.stem, "tflite", quantization.TFLiteModel(tflite).predict(test_images), counts, tflite, tflite)
    benchmarking.add_ratios(variants, TEACHER)
    by_name = {v["name"]: v for v in variants}
    shipped = params["shipped"]
    if by_name.get(shipped, {}).get("format") != "tflite":
        raise SystemExit(f"params.yaml: 'benchmark.shipped' is {shipped!r}, not one of the TFLite variants "
                         f"{sorted(n for n, v in by_name.items() if v['format'] == 'tflite')}")

    seeds = {}
    for kind, directory in (("distilled", "models/student"), ("scratch", "models/scratch")):
        accuracies = {str(seed): benchmarking.classification_metrics(
            models.load_model(student.checkpoint(directory, seed)).predict(test_images, batch_size=256, verbose=0),
            test_labels)["accuracy"] for seed in student_seeds}
        mean, std = stats.mean_std(list(accuracies.values()))
        seeds[kind] = {"num_seeds": len(accuracies), "accuracy_mean": round(mean, 4), "accuracy_std": round(std, 4),
                       "accuracies": accuracies}
    correct = {name: predicted == test_labels for name, predicted in predictions.items()}
    comparisons = {"shipped_vs_teacher": stats.mcnemar(correct[shipped], correct[TEACHER]),
                   "student_vs_scratch": stats.mcnemar(correct["student"], correct["scratch"])}

    rows = [{**v, "kind": report.variant_kind(v["name"])} for v in variants]
    with atomic_output(REPORT_DIR) as staging:
        staging.mkdir()
        frontier.plot_frontier(rows, staging / "frontier.png", title="Size against test accuracy (Pareto front marked)")
        frontier.plot_confusion_matrix(test_labels, predictions[shipped], data.read_class_names(PREPARED),
                                       staging / "confusion_matrix.png")
        (staging / "benchmark.md").write_text(report.render(
            variants=variants, shipped=shipped, teacher=TEACHER, seeds=seeds, comparisons=comparisons,
            num_test_images=len(test_labels), machine=benchmarking.machine_description(),
            latency_protocol=f"batch 1, {params['warmup_runs']} warm-up then {params['timed_runs']} timed runs "
                             f"through the LiteRT interpreter, {params['num_threads'][0]} thread(s)"))
    with atomic_output(FRONTIER_DATA) as staging:
        staging.write_text(json.dumps(frontier.frontier_plot_data(rows), indent=1) + "\n")

    headline_keys = ("accuracy", "size_bytes", "latency_ms_p50", "size_ratio", "speedup", "accuracy_delta")
    run.finish({
        "teacher": TEACHER, "shipped": shipped, "num_threads": params["num_threads"][0],
        "headline": {role: {k: by_name[name][k] for k in headline_keys}
                     for role, name in (("teacher", TEACHER), ("shipped", shipped))},
        "distillation_gain": round(seeds["distilled"]["accuracy_mean"] - seeds["scratch"]["accuracy_mean"], 4),
        "seeds": seeds,
        "comparisons": comparisons,
        "variants": variants,
    }, artifacts=[REPORT_DIR / "benchmark.md", REPORT_DIR / "frontier.png", REPORT_DIR / "confusion_matrix.png"])
    tracking.register_shipped_model(paths[shipped], by_name[shipped])
