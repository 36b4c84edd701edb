"""Where the time and memory of the last run went: each stage's wall time and peak memory, from metrics/timing/.

    python scripts/stage_times.py        # after `make repro` (or any `dvc repro`)

Stages DVC did not run in the last repro keep the time of the run that made their outputs.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from tinygray.pipeline import layout
from tinygray.pipeline.metrics import TIMING_DIR

TIMING = layout.METRICS / TIMING_DIR


def stage_names() -> list[str]:
    """dvc.yaml's stages in file order, a matrix expanded as DVC names it (quantize@teacher, ...), and the
    foreach over params.yaml's families likewise (train_family@<name>; none by default)."""
    names = []
    families = (yaml.safe_load(Path("params.yaml").read_text()) or {}).get("families") or {}
    for name, stage in yaml.safe_load(Path("dvc.yaml").read_text())["stages"].items():
        matrix = stage.get("matrix")
        if "foreach" in stage:
            names += [f"{name}@{key}" for key in families]
        else:
            names += [f"{name}@{item}" for item in matrix["model"]] if matrix else [name]
    return names


def table() -> str:
    rows, total = [], 0.0
    for name in stage_names():
        path = TIMING / f"{name}.json"
        if path.is_file():
            timing = json.loads(path.read_text())
            seconds = timing.get("stage_seconds")
            if seconds is not None:
                peak = timing.get("peak_rss_mb")
                rows.append(f"| {name} | {seconds:,.0f} | {'-' if peak is None else f'{peak:,}'} |")
                total += seconds
    return "\n".join(["| stage | seconds | peak MiB |", "|---|---:|---:|", *rows,
                      f"| **total** | **{total:,.0f}** | |"])


if __name__ == "__main__":
    print(table())
