"""Measuring every variant the same way: accuracy, agreement with the teacher, size and latency on the
test split, per-seed results of the students and their controls, and the paired tests between them."""
from __future__ import annotations

import gzip
import json
import os
import platform
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import f1_score

from tinygray import litert
from tinygray.compress import qat, tflite  # qat: registers the layers qat.keras holds
from tinygray.data import prepared
from tinygray.evaluate import stats
from tinygray.models.files import count_params, load_model
from tinygray.pipeline import layout, progress
from tinygray.pipeline.layout import FAMILY_CONTROLS
from tinygray.pipeline.choices import CONTROLS, KERAS_MODELS, MODES, TEACHER, control_of, quantized_models, shippable

if TYPE_CHECKING:
    from tinygray.pipeline.params import Benchmark as BenchmarkParams

# Every seed trained by the students' stage and by their control, and the metrics file in which each
# stage recorded the seed it selected.
SEED_DIRS = {"distilled": (layout.seeds("student"), layout.stage_metrics("train_student")),
             "scratch": (layout.seeds("scratch"), layout.stage_metrics("train_scratch"))}


def qat_source() -> str:
    """The model quantization-aware training started from, as the qat stage recorded it."""
    return json.loads(layout.stage_metrics("qat").read_text())["source"]


def int8_gate(name: str) -> dict:
    """The int8 gate of a model, as its quantize stage recorded it."""
    return json.loads(layout.stage_metrics(f"quantize@{name}").read_text())["int8_gate"]


def family_variants(families: list[str]) -> list[dict]:
    """Every int8 file of the student families (train_family@<name>) as its stage recorded it on validation:
    the family's own (kind family) and its controls' (kind control: layout.FAMILY_CONTROLS)."""
    return [variant for name in families
            for variant in json.loads((layout.family_dir(name) / layout.FAMILY_VALIDATION).read_text())["variants"]]


def validation_results(families: list[str] = ()) -> dict[str, dict]:
    """Every shippable TFLite file's validation accuracy and size, as the stages that wrote it recorded them
    (quantize@<model>, qat, train_family@<name>), and whether it passed its int8 gate: what benchmark.shipped:
    auto chooses from. A family's control is a control, never shipped. The test split plays no part
    in the choice."""
    results, candidates = {}, set(shippable())
    for name in quantized_models():
        recorded = json.loads(layout.stage_metrics(f"quantize@{name}").read_text())
        for variant in recorded["variants"]:
            if variant["name"] in candidates:
                gate = recorded["int8_gate"]["passed"] if variant["name"].endswith("_int8") else True
                results[variant["name"]] = {"val_accuracy": variant["val_accuracy"],
                                            "size_bytes": variant["size_bytes"], "gate_passed": gate}
    qat_file = layout.tflite("qat", "int8")
    results[qat_file.stem] = {"val_accuracy": json.loads(layout.stage_metrics("qat").read_text())["tflite_val_accuracy"],
                              "size_bytes": qat_file.stat().st_size, "gate_passed": True}
    for variant in family_variants(families):
        if variant["kind"] == "family":
            results[variant["name"]] = {key: variant[key] for key in ("val_accuracy", "size_bytes", "gate_passed")}
    return results


def choose_shipped(candidates: dict[str, dict], max_accuracy_drop: float) -> str:
    """benchmark.shipped: auto. The smallest file (ties: the more accurate, then by name) whose validation accuracy
    is at most `max_accuracy_drop` below the teacher's float32 file's and that passed its int8 gate. The
    teacher's own file always qualifies, so there is always an answer."""
    reference = candidates[f"{TEACHER}_float32"]["val_accuracy"]
    eligible = [name for name, c in candidates.items()
                if c["gate_passed"] and c["val_accuracy"] >= reference - max_accuracy_drop - 1e-9]
    return min(eligible, key=lambda name: (candidates[name]["size_bytes"], -candidates[name]["val_accuracy"], name))


# Budgets the report answers in one sentence each: a desktop-class app, a phone app, a microcontroller.
SIZE_BUDGETS = {"10 MB": 10_000_000, "1 MB": 1_000_000, "100 KB": 100_000}


def best_within_budgets(candidates: dict[str, dict]) -> dict[str, str | None]:
    """For each SIZE_BUDGETS entry, the most accurate file on validation that fits (ties: the smaller), or None."""
    best = {}
    for label, limit in SIZE_BUDGETS.items():
        fitting = [name for name, c in candidates.items() if c["gate_passed"] and c["size_bytes"] <= limit]
        best[label] = min(fitting, key=lambda n: (-candidates[n]["val_accuracy"], candidates[n]["size_bytes"], n)) \
            if fitting else None
    return best


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predictions = np.asarray(logits).argmax(axis=1)
    low, high = stats.wilson_interval(int(np.sum(predictions == labels)), len(labels))
    return {
        "accuracy": round(float(np.mean(predictions == labels)), 4),
        "accuracy_ci_low": round(low, 4),
        "accuracy_ci_high": round(high, 4),
        "macro_f1": round(float(f1_score(labels, predictions, average="macro")), 4),
    }


def fidelity(predictions: np.ndarray, teacher_predictions: np.ndarray) -> float:
    """Top-1 agreement with the teacher (Stanton et al. 2021): how much of the teacher's function a
    student kept, which accuracy alone does not tell (a student can be right where the teacher errs)."""
    return round(float(np.mean(np.asarray(predictions) == np.asarray(teacher_predictions))), 4)


def file_sizes(path: Path | str) -> dict[str, int]:
    content = Path(path).read_bytes()
    return {"size_bytes": len(content), "gzip_bytes": len(gzip.compress(content, compresslevel=9, mtime=0))}


def latency_summary(times_ms: np.ndarray) -> dict[str, float]:
    return {"latency_ms_p50": round(float(np.percentile(times_ms, 50)), 4),
            "latency_ms_p90": round(float(np.percentile(times_ms, 90)), 4)}


def add_ratios(variants: list[dict], teacher: str) -> None:
    """Each variant against the teacher: how much smaller, how much faster, how many points lost."""
    ref = next(v for v in variants if v["name"] == teacher)
    for variant in variants:
        variant["size_ratio"] = round(ref["size_bytes"] / variant["size_bytes"], 2)
        variant["speedup"] = round(ref["latency_ms_p50"] / variant["latency_ms_p50"], 2)
        if "latency_ms_round_low" in variant:  # the speed-up's range over the timing rounds
            variant["speedup_low"] = round(ref["latency_ms_round_low"] / variant["latency_ms_round_high"], 2)
            variant["speedup_high"] = round(ref["latency_ms_round_high"] / variant["latency_ms_round_low"], 2)
        variant["accuracy_delta"] = round(variant["accuracy"] - ref["accuracy"], 4)


# x86 instructions XNNPACK's int8 kernels use, best first: whether int8 beats float32 on a CPU depends on them
# (with AVX2 alone, the tiny students' int8 files were twice as slow as their float32 ones; docs/results.md).
INT8_DOT_PRODUCT_FLAGS = ("avx512_vnni", "avx_vnni", "avx512bw", "avx2")


def machine_description(cpuinfo: Path | str = "/proc/cpuinfo") -> str:
    """The CPU the latencies were taken on: its model and the best int8 instructions it has, where the OS
    says (Linux), else the architecture."""
    name, flags = platform.processor() or platform.machine(), set()
    if Path(cpuinfo).is_file():
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    if flags:  # x86 (ARM lists "Features" instead)
        best = next((flag for flag in INT8_DOT_PRODUCT_FLAGS if flag in flags), None)
        if best is None:
            best = f"no {INT8_DOT_PRODUCT_FLAGS[-1]}"
        elif "vnni" not in best:
            best += ", no VNNI"
        name += f" ({best})"
    return f"{name}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


@dataclass
class Benchmark:
    """Everything one benchmark run measured. `predictions` holds each variant's predicted class for every
    test image, `files` the file each variant was measured from."""
    variants: list[dict] = field(default_factory=list)
    predictions: dict[str, np.ndarray] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    seeds: dict[str, dict] = field(default_factory=dict)
    layer_errors: dict[str, list[dict]] = field(default_factory=dict)

    def by_name(self) -> dict[str, dict]:
        return {v["name"]: v for v in self.variants}

    def correct(self, labels: np.ndarray) -> dict[str, np.ndarray]:
        return {name: predicted == labels for name, predicted in self.predictions.items()}


def measure(test_images: np.ndarray, test_labels: np.ndarray, params: BenchmarkParams,
            families: list[str] = ()) -> Benchmark:
    """Every Keras model and TFLite conversion on the test split (accuracy, fidelity, size), each student
    family's int8 file (and its control's), their latency at each of params.num_threads in interleaved rounds
    (interleaved_latency), then every seed of the students and controls; ratios against the teacher."""
    result, timed = Benchmark(), {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (kind, modes) in progress.steps(KERAS_MODELS.items(), "benchmark: scoring", unit="model",
                                                  total=len(KERAS_MODELS)):
            model = load_model(layout.model(name))
            counts = count_params(model)
            # A Keras row is timed as the float32 .tflite of the same network: the quantize stage's where there
            # is one, else (the scratch control) a conversion made here.
            if "float32" in modes:
                timed[name] = layout.tflite(name, "float32")
            else:
                timed[name] = Path(tmp) / f"{name}.tflite"
                timed[name].write_bytes(tflite.convert(model, "float32"))
            logits = model.predict(test_images, batch_size=256, verbose=0)
            _add(result, {"name": name, "format": "keras", "model": name, "kind": kind}, logits, test_labels,
                 counts, layout.model(name))
            for mode in modes:
                tflite_file = layout.tflite(name, mode)
                gate = {"gate_passed": int8_gate(name)["passed"]} if mode == "int8" and modes == MODES else {}
                _add(result, {"name": tflite_file.stem, "format": "tflite", "model": name,
                              "kind": "int8" if mode == "int8" and name not in CONTROLS.values() else kind, **gate},
                     litert.TFLiteModel(tflite_file).predict(test_images), test_labels, counts, tflite_file)
                timed[tflite_file.stem] = tflite_file
        for variant in family_variants(families):
            tflite_file = layout.family_tflite(variant["name"])
            gate = {"gate_passed": variant["gate_passed"]} if "gate_passed" in variant else {}
            _add(result, {"name": variant["name"], "format": "tflite", "model": variant["model"], "kind": variant["kind"],
                          **gate}, litert.TFLiteModel(tflite_file).predict(test_images), test_labels,
                 (variant["params"], variant["params"]), tflite_file)
            timed[variant["name"]] = tflite_file
        latencies = interleaved_latency(timed, test_images[0], params)
        result.layer_errors = int8_layer_errors(result, Path(tmp))
    for variant in result.variants:
        variant.update(latencies[variant["name"]])
    add_ratios(result.variants, TEACHER)
    teacher_predictions = result.predictions[TEACHER]
    for variant in result.variants:
        variant["fidelity"] = fidelity(result.predictions[variant["name"]], teacher_predictions)
    result.seeds = {kind: seed_results(directory, stage_metrics, test_images, test_labels, teacher_predictions)
                    for kind, (directory, stage_metrics) in SEED_DIRS.items()}
    return result


def _add(result: Benchmark, identity: dict, logits: np.ndarray, labels: np.ndarray, counts: tuple[int, int],
         path: Path) -> None:
    result.predictions[identity["name"]], result.files[identity["name"]] = logits.argmax(axis=1), path
    result.variants.append({**identity, **classification_metrics(logits, labels), "params": counts[0],
                            "nonzero_params": counts[1], **file_sizes(path)})


LAYER_ERROR_IMAGES = 64  # validation images the per-layer quantization error is measured on


def int8_layer_errors(result: Benchmark, tmp: Path) -> dict[str, list[dict]]:
    """tflite.layer_errors of every int8 file against the float32 file of the same network, on the
    first LAYER_ERROR_IMAGES validation images; each int8 variant also gets its worst layer. The float
    counterpart of qat_int8 is the quantization-aware network in plain float (qat.strip)."""
    images = np.asarray(prepared.read_split(layout.PREPARED, "val")[0][:LAYER_ERROR_IMAGES])
    errors = {}
    for variant in result.variants:
        if variant["format"] != "tflite" or not variant["name"].endswith("_int8"):
            continue
        reference = layout.tflite(variant["model"], "float32")
        if variant["kind"] in ("family", "control"):
            family_model = layout.family_dir(variant["model"]) / f"{variant['model']}.keras"
            if not family_model.is_file():  # a family's control keeps only its int8 file
                continue
            reference = tmp / f"{variant['model']}_float32.tflite"
            reference.write_bytes(tflite.convert(load_model(family_model), "float32"))
        elif not reference.is_file():  # qat: no float32 file of its own
            reference = tmp / f"{variant['model']}_plain_float32.tflite"
            reference.write_bytes(tflite.convert(qat.strip(load_model(layout.model(variant["model"]))),
                                                 "float32"))
        errors[variant["name"]] = tflite.layer_errors(reference, result.files[variant["name"]], images)
        variant["worst_layer"] = tflite.worst_layer(errors[variant["name"]])
    return errors


def interleaved_latency(files: dict[str, Path], sample: np.ndarray, params: BenchmarkParams) -> dict[str, dict]:
    """Batch-1 latency of every file on one test image, at every thread count, measured in params.rounds
    rounds that each time every file in turn (ABCABC..., not AAABBBCCC), so a burst of load on a shared
    machine lands on all variants alike instead of on one. Per file: p50 and p90 over all timed runs and
    the lowest and highest per-round median (latency_ms_round_low/high) at the headline thread count, the
    other thread counts under latency_by_threads. Files timed twice (a Keras row and its float32 file) are
    timed once."""
    rounds = params.rounds
    per_round = max(1, params.timed_runs // rounds)
    unique = sorted(set(files.values()))
    summaries = {}
    for threads in params.num_threads:
        models_ = {path: litert.TFLiteModel(path, num_threads=threads) for path in unique}
        for model in models_.values():
            model.latency_ms(sample, warmup_runs=params.warmup_runs, timed_runs=1)
        times = {path: [] for path in unique}
        for _ in progress.steps(range(rounds), f"benchmark: latency at {threads} thread(s)", unit="round"):
            for path, model in models_.items():
                times[path].append(model.latency_ms(sample, warmup_runs=0, timed_runs=per_round))
        summaries[threads] = {path: {**latency_summary(np.concatenate(runs)),
                                     "latency_ms_round_low": round(float(min(np.median(r) for r in runs)), 4),
                                     "latency_ms_round_high": round(float(max(np.median(r) for r in runs)), 4)}
                              for path, runs in times.items()}
    first, *others = params.num_threads
    return {name: {**summaries[first][path],
                   "latency_by_threads": {str(n): {k: summaries[n][path][k] for k in ("latency_ms_p50", "latency_ms_p90")}
                                          for n in others}}
            for name, path in files.items()}


def seed_results(model_dir: Path | str, stage_metrics: Path | str, images: np.ndarray, labels: np.ndarray,
                 teacher_predictions: np.ndarray) -> dict:
    """Test accuracy and fidelity of every seed a student stage trained (model_dir/seed_<s>.keras), and the
    seed the stage selected on validation, as it recorded it in its metrics file (read, not worked out again)."""
    accuracies, fidelities = {}, {}
    for path in sorted(Path(model_dir).glob("seed_*.keras"), key=lambda p: int(p.stem.removeprefix("seed_"))):
        predicted = load_model(path).predict(images, batch_size=256, verbose=0).argmax(axis=1)
        seed = path.stem.removeprefix("seed_")
        accuracies[seed] = round(float(np.mean(predicted == labels)), 4)
        fidelities[seed] = fidelity(predicted, teacher_predictions)
    mean, std = stats.mean_std(list(accuracies.values()))
    return {"num_seeds": len(accuracies), "selected_seed": json.loads(Path(stage_metrics).read_text())["selected_seed"],
            "accuracy_mean": round(mean, 4), "accuracy_std": round(std, 4), "accuracies": accuracies, "fidelity_mean": round(float(np.mean(list(fidelities.values()))), 4),
            "fidelities": fidelities}


def compression_steps(result: Benchmark, labels: np.ndarray) -> list[dict]:
    """What each compression step costs on the same test images: the distilled student -> each pruning,
    and each Keras model -> its int8 file, with McNemar's test of the step."""
    correct, by_name = result.correct(labels), result.by_name()
    pairs = [("student", "pruned"), ("student", "pruned_filters"), (qat_source(), "qat"), ("scratch", "pruned_scratch")]
    pairs += [(name, f"{name}_int8") for name in KERAS_MODELS if f"{name}_int8" in by_name]
    return [{"name": f"{before}_to_{after}", "before": before, "after": after,
             "accuracy_delta": round(by_name[after]["accuracy"] - by_name[before]["accuracy"], 4),
             **stats.mcnemar(correct[after], correct[before])} for before, after in pairs]


def comparisons(result: Benchmark, labels: np.ndarray, shipped: str) -> dict:
    """The paired tests the report's conclusions rest on. `shipped_vs_control`: the shipped file against
    its scratch control's file of the same compression (choices.control_of), where it has one."""
    correct = result.correct(labels)
    distilled, scratch = (result.seeds[kind]["accuracies"] for kind in ("distilled", "scratch"))
    control = control_of(shipped)
    shipped_vs_control = {"shipped_vs_control": {"against": control, **stats.mcnemar(correct[shipped], correct[control])}} \
        if control in correct else {}
    families = {variant["name"]: {"vs_teacher": stats.mcnemar(correct[variant["name"]], correct[TEACHER]),
                                  **{f"vs_{control}": stats.mcnemar(correct[variant["name"]], correct[against])
                                     for control in FAMILY_CONTROLS
                                     if (against := f"{layout.family_control(variant['model'], control)}_int8") in correct}}
                for variant in result.variants if variant["kind"] == "family"}
    return {"shipped_vs_teacher": stats.mcnemar(correct[shipped], correct[TEACHER]), **shipped_vs_control,
            **({"families": families} if families else {}),
            "qat_vs_ptq": {"against": f"{qat_source()}_int8",
                           **stats.mcnemar(correct["qat_int8"], correct[f"{qat_source()}_int8"])},
            "student_vs_scratch": stats.mcnemar(correct["student"], correct["scratch"]),
            "distilled_vs_scratch_seeds": stats.paired_seeds([distilled[s] for s in distilled if s in scratch],
                                                             [scratch[s] for s in distilled if s in scratch])}


def headline_figures(metrics: dict) -> dict:
    """metrics/headline.json from the benchmark's metrics: the teacher's and the shipped file's test accuracy,
    the shipped file's size, the distilled students against their scratch controls and the paired p-value, in
    one narrow row of `dvc metrics show` (every stage's full metrics, 270 keys, made it 5,400 characters wide)."""
    headline, seeds = metrics["headline"], metrics["seeds"]
    return {
        "teacher": headline["teacher"]["accuracy"],
        "shipped": {"accuracy": headline["shipped"]["accuracy"],
                    "kb": round(headline["shipped"]["size_bytes"] / 1024, 1)},
        **{kind: {"mean": seeds[kind]["accuracy_mean"], "std": seeds[kind]["accuracy_std"]}
           for kind in ("distilled", "scratch")},
        "p_value": (metrics["comparisons"].get("distilled_vs_scratch_seeds") or {}).get("p_value"),
    }
