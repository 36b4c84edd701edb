"""The size/accuracy trade-off: which variants are worth shipping, and the plots that show it.

Figures are drawn on matplotlib.figure.Figure objects (Agg when saved as PNG) rather than through
pyplot, so no global backend is switched and no window or open figure is left behind.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from tinygray.atomic import atomic_output

# Fixed styles for the pipeline's kinds, so a kind looks the same in every report; others follow.
KIND_ORDER = ("teacher", "scratch", "distilled", "pruned", "int8")
MARKERS = ("s", "o", "D", "v", "^", "P", "X", "*", "h", "<")


def pareto_front(rows: list[dict], size_key: str = "size_bytes", accuracy_key: str = "accuracy") -> list[dict]:
    """Rows no other row beats: none is at least as small and at least as accurate while strictly
    better in one. Exact ties are all kept. Sorted by size, smallest first."""
    front = [row for row in rows if not _dominated(row, rows, size_key, accuracy_key)]
    return sorted(front, key=lambda row: row[size_key])


def _dominated(row: dict, rows: list[dict], size_key: str, accuracy_key: str) -> bool:
    size, acc = row[size_key], row[accuracy_key]
    return any(other[size_key] <= size and other[accuracy_key] >= acc
               and (other[size_key] < size or other[accuracy_key] > acc) for other in rows)


def frontier_plot_data(rows: list[dict]) -> list[dict]:
    """Flat records for a DVC plot (JSON or CSV), each marked whether it is on the Pareto front."""
    front = {id(row) for row in pareto_front(rows)}
    return [{"name": row["name"], "kind": row["kind"], "size_bytes": row["size_bytes"],
             "accuracy": row["accuracy"], "on_front": id(row) in front} for row in rows]


def plot_frontier(rows: list[dict], path_png: Path | str, *, title: str, label_front_only: bool = False) -> Figure:
    """Accuracy (%) against file size (bytes, log scale), one marker and colour per kind, Wilson
    intervals as error bars where the rows have them, and the Pareto front as a staircase: for any
    size budget, the best accuracy reachable is the front's step to its left. A sweep of many runs has
    too many points to name them all: `label_front_only` names just the front."""
    front = pareto_front(rows)
    labelled = [row["name"] for row in (front if label_front_only else rows)]
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    for kind, (marker, color) in _kind_styles([row["kind"] for row in rows]).items():
        group = [row for row in rows if row["kind"] == kind]
        sizes = [row["size_bytes"] for row in group]
        accuracies = np.array([100 * row["accuracy"] for row in group])
        ax.errorbar(sizes, accuracies, yerr=_error_bars(group), fmt=marker, color=color, capsize=3,
                    markersize=7, label=kind)
        for row, size, acc in zip(group, sizes, accuracies):
            if row["name"] in labelled:
                ax.annotate(row["name"], (size, acc), xytext=(5, 5), textcoords="offset points", fontsize=8)
    if front:
        sizes = [row["size_bytes"] for row in front]
        accuracies = [100 * row["accuracy"] for row in front]
        ax.step(sizes, accuracies, where="post", color="black", linewidth=1, alpha=0.6, label="Pareto front")
        ax.scatter(sizes, accuracies, s=180, facecolors="none", edgecolors="black", linewidths=1.2, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("model file size (bytes, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _save_png(fig, path_png)
    return fig


def _kind_styles(kinds: list[str]) -> dict[str, tuple[str, str]]:
    order = list(KIND_ORDER) + [kind for kind in dict.fromkeys(kinds) if kind not in KIND_ORDER]
    return {kind: (MARKERS[i % len(MARKERS)], f"C{i % 10}") for i, kind in enumerate(order) if kind in kinds}


def _error_bars(rows: list[dict]) -> np.ndarray | None:
    """(2, N) distances below and above each accuracy in points; 0 for rows without an interval."""
    if not any("accuracy_ci_low" in row and "accuracy_ci_high" in row for row in rows):
        return None
    bars = [(row["accuracy"] - row.get("accuracy_ci_low", row["accuracy"]),
             row.get("accuracy_ci_high", row["accuracy"]) - row["accuracy"]) for row in rows]
    return 100 * np.array(bars).T


def plot_confusion_matrix(labels: np.ndarray, predictions: np.ndarray, class_names: list[str],
                          path_png: Path | str) -> None:
    """Counts of true class (rows) against predicted class; every class gets a row and a column,
    even one that is never predicted."""
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig = Figure(figsize=(size, size), layout="constrained")
    ConfusionMatrixDisplay.from_predictions(labels, predictions, labels=np.arange(len(class_names)),
                                            display_labels=class_names, cmap="Blues", colorbar=False,
                                            ax=fig.subplots())
    _save_png(fig, path_png)


def _save_png(fig: Figure, path_png: Path | str) -> None:
    with atomic_output(path_png) as staging:
        fig.savefig(staging, format="png", dpi=150)
