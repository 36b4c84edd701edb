"""Size/accuracy frontier over student widths and cuts of the teacher, as queued DVC experiments.

    python scripts/frontier_sweep.py queue       # one queued `dvc exp run` per entry of sweep.student_widths and
                                                 # of sweep.teacher_blocks
    dvc queue start && dvc queue status          # run them (each in a temporary copy; MLflow logs to ./mlflow.db)
    python scripts/frontier_sweep.py summarise   # every variant of every experiment -> metrics/plots/sweep_frontier.*

`dvc exp show --json` drops lists, so the per-variant rows are read from each experiment's committed
metrics/plots/frontier.json (`git show <experiment>:metrics/plots/frontier.json`).
"""
from __future__ import annotations

import argparse
import json
import subprocess

from tinygray.evaluate import frontier, plots
from tinygray.pipeline.atomic import atomic_output
from tinygray.pipeline import layout
from tinygray.pipeline.params import load_params

OUT_PNG, OUT_DATA = layout.FRONTIER_DATA.with_name("sweep_frontier.png"), layout.FRONTIER_DATA.with_name("sweep_frontier.json")


def experiment_name(widths: list[int]) -> str:
    return "widths-" + "-".join(map(str, widths))


def queue() -> None:
    sweep = load_params().sweep
    students = [(experiment_name(widths), ["-S", f"train_student.widths={json.dumps(widths)}",
                                           "-S", "train_student.teacher_blocks=null"]) for widths in sweep.student_widths]
    students += [(f"blocks-{blocks}", ["-S", f"train_student.teacher_blocks={blocks}"]) for blocks in sweep.teacher_blocks]
    for name, overrides in students:
        subprocess.run(["dvc", "exp", "run", "--queue", "-n", name, *overrides,
                        "-S", f"train_student.num_seeds={sweep.num_seeds}"], check=True)


def experiments() -> dict[str, str]:
    """Experiment name -> git revision, for every finished experiment of the current baseline. `dvc exp show`
    also lists queued and running ones, whose revision holds the baseline's own results: only the names
    `dvc exp list` knows have run."""
    finished = set(_dvc("exp", "list", "--name-only").split())
    shown = json.loads(_dvc("exp", "show", "--json"))
    return {exp["name"]: exp["revs"][0]["rev"] for baseline in shown for exp in (baseline.get("experiments") or [])
            if exp.get("name") in finished and exp["revs"][0].get("rev")}


def _dvc(*args: str) -> str:
    return subprocess.run(["dvc", *args], check=True, capture_output=True, text=True).stdout


def summarise() -> list[dict]:
    rows = []
    for name, rev in sorted(experiments().items()):
        shown = subprocess.run(["git", "show", f"{rev}:metrics/plots/frontier.json"], capture_output=True, text=True)
        if shown.returncode != 0:
            continue  # a failed or still-running experiment
        rows += [{**row, "name": f"{name}/{row['name']}"} for row in json.loads(shown.stdout)]
    if not rows:
        raise SystemExit("no finished experiment with metrics/plots/frontier.json; run `dvc queue start` first")
    plots.frontier(rows, OUT_PNG, title="Student widths sweep: size against test accuracy")
    with atomic_output(OUT_DATA) as staging:
        staging.write_text(json.dumps(frontier.frontier_plot_data(rows), indent=1) + "\n")
    return frontier.pareto_front(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["queue", "summarise"])
    if parser.parse_args().command == "queue":
        queue()
    else:
        for row in summarise():
            print(f"{row['name']:45s} {row['size_bytes']:>12,} bytes  {100 * row['accuracy']:.2f}%")
        print(f"wrote {OUT_PNG} and {OUT_DATA}")
