"""What each stage pays before its first work: a fresh process importing the stage script (not running it).

For every stages/*.py: the median wall time of `--runs` fresh processes that load the script as a module
(its imports run, its main() does not), and the heavy libraries that loading pulled in. Issue 49's target:
2 s or less for the stages that need no TensorFlow. Prints a Markdown table.

    .venv/bin/python benchmarks/stage_start.py [--runs 3]

Not a test: a timing, for docs/results.md ('Where the time goes').
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "jax", "mlflow", "pandas", "sklearn", "scipy", "matplotlib")
PROBE = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("stage", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps([name for name in %r if name in sys.modules]))
""" % (HEAVY,)


def start(stage: Path) -> tuple[float, list[str]]:
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, str(stage)], cwd=REPO, capture_output=True, text=True, check=True)
    return time.perf_counter() - began, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print("| stage | start, s (median of %d) | heavy imports |" % args.runs)
    print("|---|---:|---|")
    for stage in sorted((REPO / "stages").glob("*.py")):
        timings = [start(stage) for _ in range(args.runs)]
        print(f"| {stage.stem} | {statistics.median(t for t, _ in timings):.2f} | {', '.join(timings[-1][1])} |", flush=True)


if __name__ == "__main__":
    main()
