import json

import pytest

from tinygray.pipeline import metrics


def test_write_metrics_adds_stage_and_validates(tmp_path):
    path = metrics.write_metrics("train_student", {"val_accuracy": 0.97, "epochs": 12}, tmp_path)
    assert json.loads(path.read_text()) == {"stage": "train_student", "val_accuracy": 0.97, "epochs": 12}


@pytest.mark.parametrize("bad, message", [
    ({"val_acc": 0.9}, "val_acc"),
    ({"variants": [{"name": "x", "acc": 1.0}]}, r"variants\[0\].acc"),
    ({"headline": {"shipped": {"size": 3}}}, "headline.shipped.size"),
    ({"accuracy": float("nan")}, "finite"),
    ({"layer_sparsity": {"conv": float("inf")}}, "layer_sparsity.conv"),
])
def test_schema_rejects_unknown_keys_and_non_finite_numbers(tmp_path, bad, message):
    with pytest.raises(metrics.MetricsError, match=message):
        metrics.write_metrics("benchmark", bad, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_flatten_names_variants_by_name():
    flat = metrics.flatten({"stage": "benchmark", "headline": {"shipped": {"accuracy": 0.9}},
                            "variants": [{"name": "pruned_int8", "format": "tflite", "size_bytes": 10}]})
    assert flat == {"headline.shipped.accuracy": 0.9, "variants.pruned_int8.size_bytes": 10.0}
    trials = metrics.flatten({"trials": [{"level": 0.5, "within_budget": False}, {"level": 0.25}]})
    assert trials == {"trials.0.level": 0.5, "trials.1.level": 0.25}  # unnamed items by position; bools left out


def test_committed_metrics_files_follow_the_schema():
    from pathlib import Path

    from tinygray.pipeline import layout

    files = sorted(Path(__file__).resolve().parents[1].joinpath("metrics").glob("*.json"))
    for path in (p for p in files if p.name != layout.HEADLINE.name):  # the benchmark's summary of its own metrics
        content = json.loads(path.read_text())
        assert content["stage"] == path.stem
        metrics.validate(content, str(path))


def test_clocks_go_to_the_timing_file_and_the_tracked_file_stays_the_same(tmp_path):
    first = {"val_accuracy": 0.9, "train_seconds": 12.5, "seeds": {"42": {"val_accuracy": 0.9, "seconds_per_epoch": 0.4}}}
    second = {**first, "train_seconds": 99.0, "seeds": {"42": {"val_accuracy": 0.9, "seconds_per_epoch": 3.1}}}
    path = metrics.write_metrics("train_student", first, tmp_path, stage_seconds=30.0)
    tracked = path.read_text()
    assert "seconds" not in tracked and json.loads(tracked)["seeds"] == {"42": {"val_accuracy": 0.9}}
    timing = json.loads((tmp_path / "timing" / "train_student.json").read_text())
    peak = timing.pop("peak_rss_mb")  # this test process's: more than the interpreter alone, less than the machine
    assert 20 < peak < 24 * 1024
    assert timing == {"stage_seconds": 30.0, "train_seconds": 12.5, "seeds": {"42": {"seconds_per_epoch": 0.4}}}
    metrics.write_metrics("train_student", second, tmp_path, stage_seconds=31.0)
    assert path.read_text() == tracked  # another run, other clocks: the same bytes
