"""The one metrics schema: every stage writes metrics/<stage>.json with keys from SCHEMA, so the same
quantity has the same name everywhere and `dvc metrics diff` lines up across stages and experiments.

Accuracies are fractions in [0, 1]; sizes are bytes; latencies milliseconds at batch 1.
"""
from __future__ import annotations

import json
import sys
import math
from pathlib import Path
from typing import Any

from tinygray.pipeline import layout
from tinygray.pipeline.atomic import atomic_output
from tinygray.pipeline.params import flatten_params

METRICS_DIR = layout.METRICS

SCHEMA: dict[str, str] = {
    # identity
    "stage": "name of the stage that wrote the file",
    "name": "variant name, e.g. teacher, student, pruned_int8",
    "format": "keras or tflite",
    "model": "the Keras model a variant is, or was converted from (teacher, student, scratch, pruned, ...)",
    "kind": "the variant's role on the frontier plot: teacher, distilled, scratch, pruned or int8",
    "teacher": "name of the reference variant",
    "shipped": "name of the deployable variant",
    "shipped_choice": "how benchmark.shipped chose it: {rule, max_accuracy_drop, teacher_val_accuracy, "
                      "shipped_val_accuracy, budgets: {10 MB: the most accurate file on validation that fits, ...}}",
    "unlabeled": "preprocess.unlabeled_dir: {found, unreadable, near_duplicates_of_val_or_test, kept, skipped_files}",
    # data
    "num_classes": "number of classes",
    "image_size": "side of the square grayscale images, pixels",
    "resize": "how non-square images were made square: squash, crop or pad",
    "num_images": "images per split: {train, val, test}",
    "class_counts": "images per class per split: {split: {class: count}}",
    "views": "augmented views per training image (view 0 is the image itself)",
    "num_groups": "groups (preprocess.group_pattern) per split: {train, val, test}; no group spans two splits",
    "test_source": "where the test split came from: split off, official test set, or held-out folder",
    "duplicates": "near-duplicate images (preprocess.duplicates): {policy, pairs, groups, images_in_groups, "
                  "label_conflicts, dropped: {pool, test_dir: {class: count}}, leaking: {val, test}: images of "
                  "the split that near-duplicate a training image}; the pairs in metrics/preprocess_duplicates.csv",
    "skipped_files": "unreadable files skipped by preprocess (on_bad_file: skip): {path: reason}",
    "ignored_entries": "hidden entries ('.' names) and loose files in the image folders, not read: {path: why}",
    # quality
    "accuracy": "top-1 accuracy on the test split",
    "accuracy_ci_low": "lower end of the 95% Wilson interval of accuracy",
    "accuracy_ci_high": "upper end of the 95% Wilson interval of accuracy",
    "val_accuracy": "top-1 accuracy on the validation split",
    "train_accuracy": "top-1 accuracy on the training split (the plain images)",
    "augmented_view_accuracy": "top-1 accuracy on the augmented views of the training images (views 1..)",
    "soft_target_top_probability": "the teacher's mean top probability at the distillation temperature over the stored "
                                   "training views: how peaked the soft targets are",
    "soft_target_true_class_probability": "the teacher's mean probability of the true class at the distillation "
                                          "temperature; 1 minus it is what plain KD weights the other classes by",
    "fidelity": "top-1 agreement with the teacher on the test split (Stanton et al. 2021)",
    "fidelity_mean": "mean of fidelity over the seeds of a student stage",
    "fidelities": "fidelity per seed: {seed: fraction}",
    "accuracies": "test accuracy per seed: {seed: fraction}",
    "accuracy_mean": "mean of accuracy over seeds",
    "accuracy_std": "sample standard deviation of accuracy over seeds",
    "selected_seed": "the seed with the best validation accuracy, the one that goes on (pruned, quantized, shipped)",
    "compression_steps": "list of {name, before, after, accuracy_delta, b01, b10, p_value}: what each compression step costs",
    "val_accuracy_mean": "mean of val_accuracy over the seeds of a stage",
    "val_accuracy_std": "sample standard deviation of val_accuracy over the seeds",
    "seeds": "per-seed metrics: {seed: {...}}, or per-seed summaries in the benchmark",
    "assistants": "teacher-assistant chain: {assistant name: {val_accuracy, params}}",
    "structured": "filter (structured) pruning: metrics of the rebuilt smaller model",
    "val_loss": "loss on the validation split (the stage's own loss)",
    "macro_f1": "macro-averaged F1 on the test split",
    "source": "the model quantization-aware training started from (qat.source)",
    "tflite_val_accuracy": "validation accuracy of the converted int8 .tflite",
    "ranges": "activation ranges of quantization-aware training: {layer: {calibrated_min, calibrated_max, min, max}}",
    "layer_errors": "per int8 file, each layer's output against the float32 file's: [{name, layer, snr_db, noise_added}]",
    "worst_layer": "the layer of an int8 file that adds the most quantization noise: {name, layer, snr_db, noise_added}",
    "int8_accuracy_drop": "float32 minus int8 validation accuracy of the quantized model",
    "int8_gate": "int8 against float32 on validation: {accuracy_delta, b01, b10, p_value, passed}; failed only when the "
                 "loss exceeds quantize.max_int8_accuracy_drop and McNemar's test calls it real",
    "gate_passed": "an int8 variant's quantize gate (int8_gate.passed of its quantize stage)",
    "accuracy_delta": "variant minus teacher test accuracy",
    # training
    "epochs": "epochs trained",
    "best_epoch": "epoch whose weights were kept (best validation accuracy)",
    "train_seconds": "wall time of training",
    "seconds_per_epoch": "train_seconds / epochs",
    "stage_seconds": "wall time of the whole stage (metrics/timing/<stage>.json only)",
    "peak_rss_mb": "the stage process's peak resident memory in MiB (metrics/timing/<stage>.json only)",
    "distribute": "how the teacher trained (train_teacher.distribute): {strategy, replicas, workers}",
    "phases": "training metrics per phase of a two-phase fine-tuning: {frozen|finetune|train: {...}}",
    # size
    "params": "parameters, trainable or not",
    "nonzero_params": "parameters that are not exactly zero",
    "sparsity": "fraction of prunable weights that are zero",
    "target_sparsity": "the sparsity magnitude pruning aimed at: the most compressed level within the budget "
                       "(prune_scratch: the level the prune stage kept)",
    "filter_fraction": "fraction of each convolution's filters removed: the most within the budget",
    "student_val_accuracy": "validation accuracy of the unpruned student, the reference of prune.max_val_drop",
    "within_budget": "whether the kept pruning level stayed within prune.max_val_drop (else the least compressed level)",
    "trials": "pruning levels tried, most compressed first: [{level, val_accuracy, within_budget}]",
    "layer_sparsity": "sparsity per prunable layer: {layer: fraction}",
    "size_bytes": "file size (Keras files saved without optimizer state)",
    "gzip_bytes": "file size after gzip -9",
    "size_ratio": "teacher size_bytes / variant size_bytes",
    # speed
    "latency_ms_p50": "median batch-1 latency through the LiteRT interpreter",
    "latency_ms_p90": "90th percentile of the same",
    "speedup": "teacher latency_ms_p50 / variant latency_ms_p50",
    "latency_ms_round_low": "lowest of the per-round median latencies (benchmark.rounds interleaved rounds)",
    "latency_ms_round_high": "highest of the per-round median latencies",
    "speedup_low": "teacher's lowest round median / variant's highest: the speed-up at its least favourable",
    "speedup_high": "teacher's highest round median / variant's lowest",
    "num_threads": "interpreter threads used for the headline latency",
    "latency_by_threads": "latency at the other thread counts: {threads: {latency_ms_p50, latency_ms_p90}}",
    "distillation_gain": "mean test accuracy of the distilled students minus that of their scratch controls",
    "comparisons": "paired McNemar tests on the test images: {pair: {b01, b10, p_value}}",
    # collections
    "family": "a student family of the frontier (train_family@<name>): {blocks, width, input_size, controls}",
    "controls": "a family's controls, the same network trained but for one thing: {random|labels|no_unlabeled: "
                "{val_accuracy, val_loss, epochs, best_epoch}}",
    "families": "the benchmark's student families: {name: {params, size_bytes, val_accuracy, accuracy, ...}}",
    "variants": "list of per-variant objects, keys from this schema",
    "headline": "{teacher: {...}, shipped: {...}}: the comparison `dvc exp show` lists as columns",
}


class MetricsError(ValueError):
    pass


def validate(metrics: dict[str, Any], where: str = "metrics") -> None:
    """Every key is in SCHEMA (inside `variants` and `headline` too) and every number is finite."""
    for key, value in metrics.items():
        path = f"{where}.{key}"
        if key not in SCHEMA:
            raise MetricsError(f"{path}: not in the metrics schema (tinygray/pipeline/metrics.py SCHEMA)")
        if key == "variants":
            for i, item in enumerate(value):
                validate(item, f"{path}[{i}]")
        elif key == "headline":
            for role, item in value.items():
                validate(item, f"{path}.{role}")
        else:
            _check_finite(value, path)


def _check_finite(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{path}.{key}")
    elif isinstance(value, float) and not math.isfinite(value):
        raise MetricsError(f"{path}: not a finite number: {value}")


# Wall-clock readings differ on every run. They go to metrics/timing/<stage>.json (git-ignored, not a DVC
# output) and to MLflow, so that rerunning unchanged code and params leaves every tracked metrics file, and the
# dvc.lock entry that hashes it, as it was. (The benchmark's latencies are results and stay in benchmark.json.)
CLOCK_KEYS = ("train_seconds", "seconds_per_epoch")
TIMING_DIR = "timing"


def split_clocks(metrics: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(metrics without the CLOCK_KEYS at any depth, the clock readings alone in the same nesting)."""
    kept, clocks = {}, {}
    for key, value in metrics.items():
        if key in CLOCK_KEYS:
            clocks[key] = value
        elif isinstance(value, dict):
            kept[key], inner = split_clocks(value)
            if inner:
                clocks[key] = inner
        else:
            kept[key] = value
    return kept, clocks


def write_metrics(stage: str, metrics: dict[str, Any], metrics_dir: Path | str = METRICS_DIR,
                  stage_seconds: float | None = None) -> Path:
    """metrics/<stage>.json (validated, clocks left out) and metrics/timing/<stage>.json (the clocks, the
    stage's wall time and its peak memory so far, peak_rss_mb). Returns the path of the first."""
    metrics = {"stage": stage, **metrics}
    validate(metrics, stage)
    kept, clocks = split_clocks(metrics)
    path = Path(metrics_dir) / f"{stage}.json"
    with atomic_output(path) as staging:
        staging.write_text(json.dumps(kept, indent=2) + "\n")
    with atomic_output(Path(metrics_dir) / TIMING_DIR / f"{stage}.json") as staging:
        timing = {**({"stage_seconds": round(stage_seconds, 1)} if stage_seconds is not None else {}),
                  "peak_rss_mb": round(peak_rss_mb()), **clocks}
        staging.write_text(json.dumps(timing, indent=2) + "\n")
    return path


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB: getrusage's ru_maxrss is KiB on Linux and bytes on macOS;
    Windows has no `resource` module, and psutil reports its peak working set there."""
    try:
        import resource
    except ImportError:
        import psutil

        info = psutil.Process().memory_info()
        return getattr(info, "peak_wset", info.rss) / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric leaves as dotted keys, the way `dvc metrics show` and MLflow display them: the parameters'
    dotted names (flatten_params), each list of objects first made an object keyed by its items' names."""
    return {key: float(value) for key, value in flatten_params(_lists_by_name(metrics), prefix).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def _lists_by_name(value: Any) -> Any:
    """[{"name": "student", "accuracy": 0.9}] -> {"student": {"accuracy": 0.9}} (an item without a name: its
    position), at any depth."""
    if isinstance(value, dict):
        return {key: _lists_by_name(item) for key, item in value.items()}
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return {str(item.get("name", position)): _lists_by_name({k: v for k, v in item.items() if k != "name"})
                for position, item in enumerate(value)}
    return value