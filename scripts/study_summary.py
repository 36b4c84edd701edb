"""Students of a study (scripts/distillation_study.py's JSON lines) set against each other: each group's test
accuracy over seeds, and for each pair asked for, the paired t-test over their shared seeds and McNemar's test on
each shared seed (the images only one of the two gets right).

    python scripts/study_summary.py RESULTS.jsonl NAME:KIND NAME:KIND ... [--pairs 1:0,1:2,3:1] [--json OUT]

Groups are numbered in the order given; each pair a:b tests group a against group b (b01: images only b gets right).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from tinygray.evaluate import stats


def load(results: Path, group: str, num_images: int) -> dict[int, np.ndarray]:
    """seed -> which test images the students of NAME:KIND got right (the last line for a seed wins)."""
    name, _, kind = group.partition(":")
    seeds = {}
    for line in results.read_text().splitlines():
        row = json.loads(line)
        if row["name"] == name and row["kind"] == kind:
            seeds[row["seed"]] = np.unpackbits(np.frombuffer(bytes.fromhex(row["correct"]), np.uint8))[:num_images] == 1
    if not seeds:
        raise SystemExit(f"{results}: no student named {name!r} of kind {kind!r}")
    return seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("groups", nargs="+", help="NAME:KIND, as distillation_study.py wrote them")
    parser.add_argument("--pairs", default="", help="comma-separated a:b group numbers (0-based)")
    parser.add_argument("--test-images", type=int, required=True, help="how many test images the students saw")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    groups = [load(args.results, group, args.test_images) for group in args.groups]
    summary = {"groups": [], "pairs": []}
    for label, seeds in zip(args.groups, groups):
        accuracies = {seed: float(correct.mean()) for seed, correct in sorted(seeds.items())}
        mean, std = stats.mean_std(list(accuracies.values()))
        summary["groups"].append({"group": label, "accuracy_mean": round(mean, 4), "accuracy_std": round(std, 4),
                                  "accuracies": {str(s): round(a, 4) for s, a in accuracies.items()}})
        print(f"{label}: {100 * mean:.2f} ± {100 * std:.2f} over seeds {sorted(seeds)}")
    for pair in filter(None, args.pairs.split(",")):
        a, b = (int(i) for i in pair.split(":"))
        shared = sorted(set(groups[a]) & set(groups[b]))
        paired = stats.paired_seeds([float(groups[a][s].mean()) for s in shared], [float(groups[b][s].mean()) for s in shared])
        per_seed = {str(s): stats.mcnemar(groups[a][s], groups[b][s]) for s in shared}
        summary["pairs"].append({"a": args.groups[a], "b": args.groups[b], "paired_over_seeds": paired,
                                 "mcnemar_per_seed": per_seed})
        print(f"{args.groups[a]} vs {args.groups[b]}: paired over seeds {shared}: {paired}; McNemar per seed: "
              + "; ".join(f"{s}: {m['b10']}/{m['b01']}, p = {m['p_value']:.3g}" for s, m in per_seed.items()))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
