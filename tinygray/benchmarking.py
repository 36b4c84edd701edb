"""Measuring every variant the same way, and the table that compares them."""
from __future__ import annotations

import gzip
import os
import platform
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

TABLE_COLUMNS = (  # (title, alignment, cell of a variant)
    ("variant", "---", lambda v: v["name"]),
    ("format", "---", lambda v: v["format"]),
    ("test acc. %", "---:", lambda v: f"{100 * v['accuracy']:.2f}"),
    ("95% CI", "---:", lambda v: f"{100 * v['accuracy_ci_low']:.1f}–{100 * v['accuracy_ci_high']:.1f}"),
    ("macro F1", "---:", lambda v: f"{v['macro_f1']:.4f}"),
    ("params", "---:", lambda v: f"{v['params']:,}"),
    ("non-zero", "---:", lambda v: f"{v['nonzero_params']:,}"),
    ("bytes", "---:", lambda v: f"{v['size_bytes']:,}"),
    ("gzip bytes", "---:", lambda v: f"{v['gzip_bytes']:,}"),
    ("p50 ms", "---:", lambda v: f"{v['latency_ms_p50']:.3f}"),
    ("p90 ms", "---:", lambda v: f"{v['latency_ms_p90']:.3f}"),
    ("× smaller", "---:", lambda v: f"{v['size_ratio']:.1f}"),
    ("× faster", "---:", lambda v: f"{v['speedup']:.1f}"),
    ("Δ acc. pts", "---:", lambda v: f"{100 * v['accuracy_delta']:+.2f}"),
)


def wilson_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """95% interval for an accuracy: a 500-image test split cannot tell 98.8% from 98.0%, and the
    report should say so. Wilson's interval stays inside [0, 1] near 100%, unlike the normal one."""
    if total == 0:
        return 0.0, 1.0
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predictions = np.asarray(logits).argmax(axis=1)
    low, high = wilson_interval(int(np.sum(predictions == labels)), len(labels))
    return {
        "accuracy": round(float(np.mean(predictions == labels)), 4),
        "accuracy_ci_low": round(low, 4),
        "accuracy_ci_high": round(high, 4),
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
    lines = ["| " + " | ".join(title for title, _, _ in TABLE_COLUMNS) + " |",
             "|" + "|".join(align for _, align, _ in TABLE_COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell(v) for _, _, cell in TABLE_COLUMNS) + " |" for v in variants]
    return "\n".join(lines)


def machine_description() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
