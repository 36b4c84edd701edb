"""Per-epoch curves of a training as files: a CSV that `dvc plots` reads and the same curves as a PNG
(DVC's HTML plots need a CDN), both logged to MLflow by the stage."""
from __future__ import annotations

import csv
from pathlib import Path

from matplotlib.figure import Figure

from tinygray.pipeline.atomic import atomic_output


def write_history(path: Path | str, *histories: dict, title: str | None = None) -> None:
    """Per-epoch curves of one or more consecutive fit() calls as one CSV (a DVC plot), epochs numbered
    on from phase to phase, and the same curves as a PNG beside it (DVC's HTML plots need a CDN)."""
    rows = []
    for phase, history in enumerate(histories):
        keys = sorted(history)
        for values in zip(*(history[k] for k in keys)):
            rows.append({"epoch": len(rows) + 1, "phase": phase, **dict(zip(keys, values))})
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_output(path) as staging, staging.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows)
    draw_history(rows, history_files(path)[1], title=title or Path(path).stem)


def history_files(path: Path | str) -> list[Path]:
    """The files write_history(path, ...) writes, for logging to MLflow."""
    return [Path(path), Path(path).with_suffix(".png")]


def draw_history(rows: list[dict], path_png: Path | str, *, title: str) -> None:
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
    save_png(fig, path_png, dpi=100)


def save_png(fig: Figure, path_png: Path | str, dpi: int = 150) -> None:
    """The figure as a PNG file, written all or nothing (the benchmark's figures use it too)."""
    with atomic_output(path_png) as staging:
        fig.savefig(staging, format="png", dpi=dpi)
