"""scripts/out_of_fold_targets.py: the folds its teachers leave out."""
import importlib.util
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("out_of_fold_targets", REPO / "scripts" / "out_of_fold_targets.py")
out_of_fold_targets = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(out_of_fold_targets)


def test_folds_split_every_class_evenly_and_the_same_way_twice():
    labels = np.repeat([0, 1, 2], [10, 7, 4])
    fold = out_of_fold_targets.stratified_folds(labels, 2, seed=5)
    for label, size in ((0, 10), (1, 7), (2, 4)):
        counts = np.bincount(fold[labels == label], minlength=2)
        assert counts.sum() == size and abs(counts[0] - counts[1]) <= 1
    np.testing.assert_array_equal(fold, out_of_fold_targets.stratified_folds(labels, 2, seed=5))
    assert not np.array_equal(fold, out_of_fold_targets.stratified_folds(labels, 2, seed=6))
