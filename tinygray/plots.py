"""Every figure the pipeline draws: the size/accuracy frontier, the confusion matrix, training curves.

Figures are drawn on matplotlib.figure.Figure objects (Agg when saved as PNG) rather than through
pyplot, so no global backend is switched and no window or open figure is left behind.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from tinygray.atomic import atomic_output
from tinygray.frontier import pareto_front

# Fixed styles for the pipeline's kinds, so a kind looks the same in every report; others follow.
KIND_ORDER = ("teacher", "scratch", "distilled", "pruned", "int8")
MARKERS = ("s", "o", "D", "v", "^", "P", "X", "*", "h", "<")


def frontier(rows: list[dict], path_png: Path | str, *, title: str, label_front_only: bool = False) -> Figure:
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


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, class_names: list[str],
                          path_png: Path | str) -> None:
    """Counts of true class (rows) against predicted class; every class gets a row and a column,
    even one that is never predicted."""
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig = Figure(figsize=(size, size), layout="constrained")
    ConfusionMatrixDisplay.from_predictions(labels, predictions, labels=np.arange(len(class_names)),
                                            display_labels=class_names, cmap="Blues", colorbar=False,
                                            ax=fig.subplots())
    _save_png(fig, path_png)


def history(rows: list[dict], path_png: Path | str, *, title: str) -> None:
    """Accuracy and loss per epoch, training and validation, a grey line where a new phase begins."""
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    for ax, metric in zip(fig.subplots(1, 2), ("accuracy", "loss")):
        for key, style in ((metric, "-"), (f"val_{metric}", "--")):
            points = [(row["epoch"], row[key]) for row in rows if key in row]
            if points:
                ax.plot(*zip(*points), style, label=key)
        for row, previous in zip(rows[1:], rows):
            if row["phase"] != previous["phase"]:
                ax.axvline(row["epoch"] - 0.5, color="grey", linewidth=0.8)  # a new training phase begins
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(f"{title}: {metric}")
        ax.legend()
        ax.grid(alpha=0.3)
    _save_png(fig, path_png, dpi=100)


def _save_png(fig: Figure, path_png: Path | str, dpi: int = 150) -> None:
    with atomic_output(path_png) as staging:
        fig.savefig(staging, format="png", dpi=dpi)
