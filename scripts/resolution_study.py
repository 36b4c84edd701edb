"""What each stage costs at each image size: the real `dvc repro` in a throw-away clone per size.

    python scripts/resolution_study.py OUT.jsonl --sizes 28 64 128 256 [key=value ...] [--quick]
    python scripts/resolution_study.py OUT.jsonl --table     # the README's tables from those lines

Each size runs the whole pipeline in its own clone of HEAD (under a temporary folder, deleted afterwards)
with `preprocess.image_size` set to it, the teacher's input size left at `auto` (the size clamped to
64..224) and the given params.yaml overrides (`preprocess.dataset=fashion_mnist`, ...). One JSON line per
size goes to OUT: every stage's wall time, peak memory and seconds per epoch (metrics/timing/), the
students' shapes, and the benchmark's headline accuracies, sizes and latencies. `--quick` cuts every
training to one or two epochs and one seed: the per-epoch times then say what the defaults would cost,
without paying for them. This is how the README's resolution table was measured.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
QUICK = {"train_teacher.frozen_epochs": 1, "train_teacher.epochs": 1, "train_student.epochs": 2,
         "train_student.num_seeds": 1, "prune.epochs": 2, "prune.ramp_epochs": 1, "prune.sparsities": [0.5],
         "prune.filter_fractions": [0.25], "qat.epochs": 1, "benchmark.timed_runs": 100, "benchmark.rounds": 2}


def set_param(params: dict, dotted: str, value) -> None:
    section, _, key = dotted.rpartition(".")
    target = params
    for part in filter(None, section.split(".")):
        if part not in target:
            raise SystemExit(f"{dotted}: no section {part!r} in params.yaml")
        target = target[part]
    if key not in target:
        raise SystemExit(f"{dotted}: no parameter {key!r} in params.yaml")
    target[key] = value


def run_size(size: int, overrides: dict, root: Path) -> dict:
    clone = root / f"size_{size}"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    params = yaml.safe_load((clone / "params.yaml").read_text())
    for dotted, value in {**overrides, "preprocess.image_size": size}.items():
        set_param(params, dotted, value)
    (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(clone)}
    env.pop("MLFLOW_TRACKING_URI", None)  # each clone logs into its own mlflow.db
    started = time.time()
    done = subprocess.run(["dvc", "repro"], cwd=clone, env=env, capture_output=True, text=True, check=False)
    (root / f"size_{size}.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"dvc repro at {size} px failed; the last lines:\n{done.stderr[-3000:]}")
    timing = {path.stem: json.loads(path.read_text()) for path in (clone / "metrics" / "timing").glob("*.json")}
    benchmark = json.loads((clone / "metrics" / "benchmark.json").read_text())
    student = json.loads((clone / "metrics" / "train_student.json").read_text())
    teacher = json.loads((clone / "metrics" / "train_teacher.json").read_text())
    variants = {v["name"]: {k: v.get(k) for k in ("accuracy", "params", "size_bytes", "latency_ms_p50")}
                for v in benchmark["variants"]}
    return {"image_size": size, "overrides": overrides, "repro_seconds": round(time.time() - started, 1),
            "teacher_params": teacher.get("params"), "timing": timing, "variants": variants,
            "seeds": benchmark.get("seeds"), "shipped": benchmark["shipped"],
            "student_params": student.get("params")}


STAGES = ("preprocess", "train_teacher", "views", "soft_targets", "train_student", "train_scratch", "prune", "qat",
          "quantize@teacher", "quantize@student", "quantize@pruned", "quantize@pruned_filters", "benchmark")


def tables(lines: list[dict]) -> str:
    """Per-stage seconds (peak MiB) per size, then the student's shape and cost per size."""
    sizes = [line["image_size"] for line in lines]
    head = "| stage | " + " | ".join(f"{size} px" for size in sizes) + " |\n|---|" + "---:|" * len(sizes)
    rows = []
    for stage in STAGES:
        cells = []
        for line in lines:
            timing = line["timing"].get(stage, {})
            cells.append(f"{timing.get('stage_seconds', 0):,.0f} s ({timing.get('peak_rss_mb', 0):,} MiB)")
        rows.append(f"| {stage} | " + " | ".join(cells) + " |")
    overhead = [line["repro_seconds"] - sum(t.get("stage_seconds", 0) for t in line["timing"].values())
                for line in lines]
    rows.append("| start-up (TensorFlow imports, DVC) | " + " | ".join(f"{o:,.0f} s" for o in overhead) + " |")
    rows.append("| **`dvc repro`** | " + " | ".join(f"**{line['repro_seconds']:,.0f} s**" for line in lines) + " |")
    epochs = ["| seconds per epoch: teacher fine-tuning, student, scratch | " + " | ".join(
        f"{line['timing']['train_teacher'].get('phases', {}).get('finetune', {}).get('seconds_per_epoch', 0):.1f}, "
        f"{line['timing']['train_student'].get('seconds_per_epoch', 0):.1f}, "
        f"{line['timing']['train_scratch'].get('seconds_per_epoch', 0):.1f}" for line in lines) + " |"]
    student = ["| size | student params | int8 bytes | int8 p50 ms | teacher p50 ms | × faster |", "|---:|---:|---:|---:|---:|---:|"]
    for line in lines:
        int8, teacher = line["variants"]["student_int8"], line["variants"]["teacher"]
        student.append(f"| {line['image_size']} px | {int8['params']:,} | {int8['size_bytes']:,} | "
                       f"{int8['latency_ms_p50']:.3f} | {teacher['latency_ms_p50']:.3f} | "
                       f"{teacher['latency_ms_p50'] / int8['latency_ms_p50']:.0f} |")
    return "\n".join([head, *rows, *epochs, "", *student])


def parse_overrides(texts: list[str]) -> dict:
    overrides = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep:
            raise SystemExit(f"{text!r}: expected section.key=value")
        overrides[key] = yaml.safe_load(value)
    return overrides


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--sizes", type=int, nargs="+", default=[28, 64, 128, 256])
    parser.add_argument("--quick", action="store_true", help="one or two epochs per training, one seed")
    parser.add_argument("--table", action="store_true", help="print the tables of OUT's lines and stop")
    args = parser.parse_intermixed_args()
    if args.table:
        print(tables([json.loads(line) for line in args.out.read_text().splitlines() if line.strip()]))
        return
    overrides = {**(QUICK if args.quick else {}), **parse_overrides(args.overrides)}
    with tempfile.TemporaryDirectory(prefix="resolution_") as tmp:
        for size in args.sizes:
            result = run_size(size, overrides, Path(tmp))
            with args.out.open("a") as out:
                out.write(json.dumps(result) + "\n")
            print(f"{size} px: dvc repro {result['repro_seconds']:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
