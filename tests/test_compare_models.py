"""scripts/compare_models.py: two models on the same prepared test images, with McNemar's test."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np

from tinygray.data import prepared
from tinygray.models.cnn import build_cnn
from tinygray.models.files import load_model, save_model

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compare_models", REPO / "scripts" / "compare_models.py")
compare_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compare_models)


def prepared_noise(folder):
    """40 random 8x8 images of 3 classes as every split of a prepared folder; returns (images, labels)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (40, 8, 8, 1)).astype(np.uint8)
    labels = rng.integers(0, 3, 40)
    prepared.write_prepared(folder, {split: (images, labels) for split in ("train", "val", "test")}, ["a", "b", "c"])
    return images, labels


def test_two_models_are_scored_on_the_same_test_images(tmp_path):
    import keras

    images, labels = prepared_noise(tmp_path / "prepared")
    paths = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        paths.append(tmp_path / f"m{seed}.keras")
        save_model(build_cnn((8, 8, 1), 3, [4]), paths[-1])
    result = compare_models.compare(paths, tmp_path / "prepared")
    right = [load_model(p).predict(images, verbose=0).argmax(1) == labels for p in paths]
    assert result["test_images"] == 40
    assert result["models"][str(paths[0])]["accuracy"] == round(float(right[0].mean()), 4)
    low, high = result["models"][str(paths[1])]["interval_95"]
    assert low <= right[1].mean() <= high
    assert (result["mcnemar"]["b01"], result["mcnemar"]["b10"]) == (int(np.sum(~right[0] & right[1])),
                                                                    int(np.sum(right[0] & ~right[1])))
    missing = subprocess.run([sys.executable, str(REPO / "scripts" / "compare_models.py"), str(paths[0]),
                              str(tmp_path / "nope.keras")], capture_output=True, text=True)
    assert missing.returncode == 2 and "nope.keras: no such model file" in missing.stderr


def test_a_tflite_file_is_scored_as_the_litert_interpreter_runs_it(tmp_path):
    """The shipped file of one run against another's (issue 40's old-against-new check) is a .tflite file."""
    import keras

    from tinygray.compress import tflite

    images, labels = prepared_noise(tmp_path / "prepared")
    keras.utils.set_random_seed(1)
    model = build_cnn((8, 8, 1), 3, [4])
    save_model(model, tmp_path / "m.keras")
    (tmp_path / "m.tflite").write_bytes(tflite.convert(model, "float32"))
    result = compare_models.compare([tmp_path / "m.keras", tmp_path / "m.tflite"], tmp_path / "prepared")
    keras_accuracy = float(np.mean(model.predict(images, verbose=0).argmax(1) == labels))
    assert result["models"][str(tmp_path / "m.tflite")]["accuracy"] == round(keras_accuracy, 4)
    assert (result["mcnemar"]["b01"], result["mcnemar"]["b10"]) == (0, 0)  # float32: the same answers


def test_two_runs_are_judged_by_seed_spread_interval_and_mcnemar(tmp_path):
    """scripts/compare_runs.py, the old-against-new check of a change of defaults: the same files in both runs
    agree on every image, so every McNemar p is 1, the means are within one seed std and the shipped file
    lies inside its own interval; a new mean further off than the old std is flagged."""
    import json

    import keras

    from tinygray.compress import tflite

    spec = importlib.util.spec_from_file_location("compare_runs", REPO / "scripts" / "compare_runs.py")
    sys.path.insert(0, str(REPO / "scripts"))
    compare_runs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_runs)
    prepared_noise(tmp_path / "prepared")
    keras.utils.set_random_seed(1)
    model = build_cnn((8, 8, 1), 3, [4])
    for run, distilled_mean in (("old", 0.5), ("new", 0.6)):
        for folder in ("student", "scratch"):
            save_model(model, tmp_path / run / "models" / folder / "seed_42.keras")
        (tmp_path / run / "models" / "tflite" / "student").mkdir(parents=True)
        (tmp_path / run / "models" / "tflite" / "student" / "student_float32.tflite").write_bytes(
            tflite.convert(model, "float32"))
        seeds = {kind: {"accuracy_mean": mean, "accuracy_std": 0.05, "accuracies": {"42": mean}}
                 for kind, mean in (("distilled", distilled_mean), ("scratch", 0.5))}
        (tmp_path / run / "metrics").mkdir()
        (tmp_path / run / "metrics" / "benchmark.json").write_text(json.dumps({"shipped": "student_float32", "seeds": seeds}))
    result = compare_runs.compare(tmp_path / "old", tmp_path / "new", tmp_path / "prepared")
    assert result["scratch"]["new_mean_within_one_old_std"] and not result["distilled"]["new_mean_within_one_old_std"]
    assert result["distilled"]["mcnemar_by_seed"]["42"]["p_value"] == 1.0
    assert result["shipped"]["new_inside_old_interval"] and result["shipped"]["mcnemar"]["p_value"] == 1.0
    assert result["shipped"]["old"]["file"] == "student_float32.tflite"
