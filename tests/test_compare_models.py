"""scripts/compare_models.py: two models on the same prepared test images, with McNemar's test."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

from tinygray import models, prepared

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compare_models", REPO / "scripts" / "compare_models.py")
compare_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_models)


def test_two_models_are_scored_on_the_same_test_images(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 8, 8, 1)).astype(np.uint8)
    labels = rng.integers(0, 3, 40)
    prepared.write_prepared(tmp_path / "prepared", {split: (images, labels) for split in ("train", "val", "test")},
                            ["a", "b", "c"])
    paths = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        paths.append(tmp_path / f"m{seed}.keras")
        models.save_model(models.build_cnn((8, 8, 1), 3, [4]), paths[-1])
    result = compare_models.compare(paths, tmp_path / "prepared")
    right = [models.load_model(p).predict(images, verbose=0).argmax(1) == labels for p in paths]
    assert result["test_images"] == 40
    assert result["models"][str(paths[0])]["accuracy"] == round(float(right[0].mean()), 4)
    low, high = result["models"][str(paths[1])]["interval_95"]
    assert low <= right[1].mean() <= high
    assert (result["mcnemar"]["b01"], result["mcnemar"]["b10"]) == (int(np.sum(~right[0] & right[1])),
                                                                    int(np.sum(right[0] & ~right[1])))
    missing = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_models.py"), str(paths[0]),
                              str(tmp_path / "nope.keras")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.keras: no such model file" in missing.stderr
