import numpy as np
import pytest

from tinygray import benchmarking, report


def test_classification_metrics():
    logits = np.eye(3)[[0, 1, 2, 2]]
    result = benchmarking.classification_metrics(logits, np.array([0, 1, 2, 1]))
    assert result["accuracy"] == 0.75
    assert result["accuracy_ci_low"] < 0.75 < result["accuracy_ci_high"]
    assert result["macro_f1"] == pytest.approx(np.mean([1.0, 2 / 3, 2 / 3]), abs=1e-4)


def test_ratios_and_table():
    variants = [
        {"name": "teacher", "format": "keras", "accuracy": 0.99, "accuracy_ci_low": 0.97, "accuracy_ci_high": 0.995,
         "macro_f1": 0.99, "params": 1000, "nonzero_params": 1000, "size_bytes": 8000, "gzip_bytes": 7000,
         "latency_ms_p50": 2.0, "latency_ms_p90": 2.5},
        {"name": "tiny_int8", "format": "tflite", "accuracy": 0.98, "accuracy_ci_low": 0.96, "accuracy_ci_high": 0.99,
         "macro_f1": 0.98, "params": 10, "nonzero_params": 5, "size_bytes": 100, "gzip_bytes": 90,
         "latency_ms_p50": 0.1, "latency_ms_p90": 0.2},
    ]
    benchmarking.add_ratios(variants, "teacher")
    assert variants[1]["size_ratio"] == 80.0 and variants[1]["speedup"] == 20.0
    assert variants[1]["accuracy_delta"] == pytest.approx(-0.01)
    variants[0]["fidelity"], variants[1]["fidelity"] = 1.0, 0.97
    table = report.markdown_table(variants).splitlines()
    assert len(table) == 4
    assert table[3].startswith("| tiny_int8 | tflite | 98.00 | 96.0–99.0 | 0.9800 | 97.00 |")
    assert table[3].endswith("| 80.0 | 20.0 | -1.00 |")


def test_file_sizes(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"\0" * 10000)
    sizes = benchmarking.file_sizes(path)
    assert sizes["size_bytes"] == 10000 and sizes["gzip_bytes"] < 100


def test_fidelity_is_agreement_with_the_teacher_right_or_wrong():
    teacher = np.array([0, 1, 2, 2])
    assert benchmarking.fidelity(np.array([0, 1, 2, 1]), teacher) == 0.75
    assert benchmarking.fidelity(teacher, teacher) == 1.0


def test_shippable_variants_are_the_tflite_files_of_the_quantized_models():
    from tinygray import variants

    shippable = variants.shippable()
    assert "pruned_int8" in shippable and "student_int8" in shippable and "teacher_float16" in shippable
    assert "scratch_int8" not in shippable and "student" not in shippable
