"""The size/accuracy trade-off: which variants are worth shipping (plots.frontier draws it)."""
from __future__ import annotations


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
