"""The headline of every DVC experiment in one table that fits a terminal: `python -m tinygray.experiments`.

`dvc exp show` lists every parameter and metric (about 370 columns here), so at 160 columns
it shows `… … …`; this reads its `--json` output and prints one row per commit or experiment with what a
person compares: the parameters that differ from the first row's, the shipped model's test accuracy, its loss
against the teacher, its size, and the distilled students against their scratch controls.
Experiments still queued or running have no results yet and say so.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from tinygray.pipeline import layout
from tinygray.pipeline.params import flatten_params

HEADLINE = str(layout.HEADLINE)  # its key in `dvc exp show --json`
HEADER = ("experiment", "state", "changed params", "shipped %", "Δ pts", "KB", "distilled %", "scratch %")


def short(rev: str) -> str:
    return rev[:7] if len(rev) == 40 else rev  # a commit hash, or "workspace"


def entries(show: list[dict]) -> Iterator[tuple[str, str, dict]]:
    """(name, state, data) for each baseline commit of `dvc exp show --json`, then its experiments."""
    for baseline in show:
        yield baseline.get("name") or short(baseline["rev"]), "baseline", baseline.get("data") or {}
        for exp_range in baseline.get("experiments") or []:
            for state in exp_range["revs"]:
                executor = exp_range.get("executor") or {}
                status = {"success": "done", None: "done"}.get(executor.get("state"), executor.get("state"))
                yield (exp_range.get("name") or state.get("name") or short(state["rev"]), status,
                       state.get("data") or {})


def params_of(data: dict) -> dict[str, Any]:
    return flatten_params(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})


def mean_pct(found: dict | None) -> str:
    if not found:
        return "-"
    spread = f" ± {100 * found['std']:.2f}" if found.get("std") else ""  # one seed: std 0, no spread
    return f"{100 * found['mean']:.2f}{spread}"


def rows(show: list[dict]) -> list[tuple[str, ...]]:
    listed = list(entries(show))
    reference = params_of(listed[0][2]) if listed else {}
    table = []
    for name, state, data in listed:
        params = params_of(data)
        changed = ", ".join(f"{key}={params[key]}" for key in sorted(params)
                            if key in reference and params[key] != reference[key]) or "-"
        headline = ((data.get("metrics") or {}).get(HEADLINE) or {}).get("data")
        if not headline or state in ("queued", "running"):
            table.append((name, state, changed, *["-"] * 5))
            continue
        shipped = headline["shipped"]
        table.append((name, state, changed, f"{100 * shipped['accuracy']:.2f}",
                      f"{100 * (shipped['accuracy'] - headline['teacher']):+.2f}", f"{shipped['kb']:.1f}",
                      mean_pct(headline.get("distilled")), mean_pct(headline.get("scratch"))))
    return table


def format_table(table: list[tuple[str, ...]]) -> str:
    widths = [max(len(row[i]) for row in [HEADER, *table]) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [HEADER, *table]]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--all-commits", action="store_true", help="every commit, not only the workspace and HEAD")
    args = parser.parse_args(argv)
    command = ["dvc", "exp", "show", "--json", *(["--all-commits"] if args.all_commits else [])]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stderr.strip()}")
    print(format_table(rows(json.loads(done.stdout))))


if __name__ == "__main__":
    main()
