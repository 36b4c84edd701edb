"""The benchmark's figures: the size/accuracy frontier and the confusion matrix (training curves: the plumbing's
tinygray/pipeline/history.py, so that training stages do not depend on this module).

Figures are drawn on matplotlib.figure.Figure objects (Agg when saved as PNG) rather than through
pyplot, so no global backend is switched and no window or open figure is left behind.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from tinygray.evaluate.frontier import pareto_front
from tinygray.pipeline.history import save_png

# Fixed styles for the pipeline's kinds, so a kind looks the same in every report; others follow.
KIND_ORDER = ("teacher", "scratch", "distilled", "pruned", "int8")
MARKERS = ("s", "o", "D", "v", "^", "P", "X", "*", "h", "<")


def frontier(rows: list[dict], path_png: Path | str, *, title: str, always_label: tuple[str, ...] = (),
             shipped: str | None = None) -> Figure:
    """Accuracy (%) against file size (bytes, log scale), one marker and colour per kind, Wilson
    intervals as error bars where the rows have them, and the Pareto front as a staircase: for any
    size budget, the best accuracy reachable is the front's step to its left. Only the front and
    `always_label` (the teacher, the shipped model) are named, each label placed where it overlaps no
    earlier one: the other points are told apart by the legend's kinds and listed in the report's table.
    Scratch markers are drawn hollow and larger, so one at a distilled student's size and accuracy (same
    architecture, often the same accuracy) stays visible around it. The `shipped` file gets a star."""
    front = pareto_front(rows)
    labelled = [row for row in rows if row in front or row["name"] in always_label]
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax = fig.subplots()
    for kind, (marker, color) in _kind_styles([row["kind"] for row in rows]).items():
        group = [row for row in rows if row["kind"] == kind]
        hollow = {"markerfacecolor": "none", "markersize": 12, "markeredgewidth": 1.5} if kind in ("scratch", "control") else {}
        ax.errorbar([row["size_bytes"] for row in group], [100 * row["accuracy"] for row in group],
                    yerr=_error_bars(group), fmt=marker, color=color, capsize=3,
                    **({"markersize": 7} | hollow), label=kind)
    if front:
        sizes = [row["size_bytes"] for row in front]
        accuracies = [100 * row["accuracy"] for row in front]
        ax.step(sizes, accuracies, where="post", color="black", linewidth=1, alpha=0.6, label="Pareto front")
        ax.scatter(sizes, accuracies, s=180, facecolors="none", edgecolors="black", linewidths=1.2, zorder=3)
    chosen = [row for row in rows if row["name"] == shipped]
    if chosen:
        ax.scatter([chosen[0]["size_bytes"]], [100 * chosen[0]["accuracy"]], marker="*", s=320, color="gold",
                   edgecolors="black", linewidths=1, zorder=4, label=f"shipped: {shipped}")
    ax.set_xscale("log")
    ax.set_xlabel("model file size (bytes, log scale)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    _place_labels(fig, ax, labelled)
    save_png(fig, path_png)
    return fig


def _place_labels(fig: Figure, ax, rows: list[dict]) -> None:
    """Names beside their points, each at the first of a few offsets whose box stays inside the axes and meets
    no placed label.
    The layout is computed first and then frozen, so the boxes compared are where the labels end up."""
    FigureCanvasAgg(fig)
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    placed = []
    offsets = [(6, 6), (6, -14), (-6, 6), (-6, -14), (6, 18), (6, -26), (-6, 18), (-6, -26)]
    for row in sorted(rows, key=lambda r: (r["size_bytes"], -r["accuracy"])):
        for dx, dy in offsets:
            text = ax.annotate(row["name"], (row["size_bytes"], 100 * row["accuracy"]), xytext=(dx, dy),
                               textcoords="offset points", fontsize=8, ha="left" if dx > 0 else "right")
            box = text.get_window_extent(renderer).expanded(1.05, 1.1)
            inside = ax.bbox.x0 <= box.x0 and box.x1 <= ax.bbox.x1 and ax.bbox.y0 <= box.y0 and box.y1 <= ax.bbox.y1
            if inside and not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            text.remove()
        else:  # every offset taken: keep the first, overlapping, rather than drop the name
            text = ax.annotate(row["name"], (row["size_bytes"], 100 * row["accuracy"]), xytext=offsets[0],
                               textcoords="offset points", fontsize=8)
            placed.append(text.get_window_extent(renderer))


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
                     path_png: Path | str, *, title: str) -> None:
    """Counts of true class (rows) against predicted class; every class gets a row and a column,
    even one that is never predicted."""
    size = max(4.0, 0.5 * len(class_names) + 2)
    fig = Figure(figsize=(size, size), layout="constrained")
    ConfusionMatrixDisplay.from_predictions(labels, predictions, labels=np.arange(len(class_names)),
                                            display_labels=class_names, cmap="Blues", colorbar=False,
                                            ax=fig.subplots())
    fig.axes[0].set_title(title)
    save_png(fig, path_png)
