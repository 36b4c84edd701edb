"""Per-epoch curves of a training as files: a CSV that `dvc plots` reads and the same curves as a PNG
(DVC's HTML plots need a CDN), both logged to MLflow by the stage."""
from __future__ import annotations

import csv
from pathlib import Path

from tinygray.evaluate import plots
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
    plots.history(rows, history_files(path)[1], title=title or Path(path).stem)


def history_files(path: Path | str) -> list[Path]:
    """The files write_history(path, ...) writes, for logging to MLflow."""
    return [Path(path), Path(path).with_suffix(".png")]
