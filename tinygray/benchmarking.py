"""Measuring every variant the same way, and the table that compares them."""
from __future__ import annotations

import gzip
import os
import platform
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

TABLE_COLUMNS = (
    ("name", "variant", str),
    ("format", "format", str),
    ("accuracy", "test acc. %", lambda v: f"{100 * v:.2f}"),
    ("macro_f1", "macro F1", lambda v: f"{v:.4f}"),
    ("params", "params", lambda v: f"{v:,}"),
    ("nonzero_params", "non-zero", lambda v: f"{v:,}"),
    ("size_bytes", "bytes", lambda v: f"{v:,}"),
    ("gzip_bytes", "gzip bytes", lambda v: f"{v:,}"),
    ("latency_ms_p50", "p50 ms", lambda v: f"{v:.3f}"),
    ("latency_ms_p90", "p90 ms", lambda v: f"{v:.3f}"),
    ("size_ratio", "× smaller", lambda v: f"{v:.1f}"),
    ("speedup", "× faster", lambda v: f"{v:.1f}"),
    ("accuracy_delta", "Δ acc. pts", lambda v: f"{100 * v:+.2f}"),
)


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predictions = np.asarray(logits).argmax(axis=1)
    return {
        "accuracy": round(float(np.mean(predictions == labels)), 4),
        "macro_f1": round(float(f1_score(labels, predictions, average="macro")), 4),
    }


def file_sizes(path: Path | str) -> dict[str, int]:
    content = Path(path).read_bytes()
    return {"size_bytes": len(content), "gzip_bytes": len(gzip.compress(content, compresslevel=9))}


def latency_summary(times_ms: np.ndarray) -> dict[str, float]:
    return {"latency_ms_p50": round(float(np.percentile(times_ms, 50)), 4),
            "latency_ms_p90": round(float(np.percentile(times_ms, 90)), 4)}


def add_ratios(variants: list[dict], teacher: str) -> None:
    """Each variant against the teacher: how much smaller, how much faster, how many points lost."""
    ref = next(v for v in variants if v["name"] == teacher)
    for variant in variants:
        variant["size_ratio"] = round(ref["size_bytes"] / variant["size_bytes"], 2)
        variant["speedup"] = round(ref["latency_ms_p50"] / variant["latency_ms_p50"], 2)
        variant["accuracy_delta"] = round(variant["accuracy"] - ref["accuracy"], 4)


def markdown_table(variants: list[dict]) -> str:
    header = "| " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |"
    rule = "|" + "|".join("---" if key in ("name", "format") else "---:" for key, _, _ in TABLE_COLUMNS) + "|"
    rows = ["| " + " | ".join(fmt(v[key]) for key, _, fmt in TABLE_COLUMNS) + " |" for v in variants]
    return "\n".join([header, rule, *rows])


def machine_description() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
