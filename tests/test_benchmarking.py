import numpy as np
import pytest

from tinygray.evaluate import benchmark, report
from tinygray.pipeline import choices


def test_classification_metrics():
    logits = np.eye(3)[[0, 1, 2, 2]]
    result = benchmark.classification_metrics(logits, np.array([0, 1, 2, 1]))
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
    benchmark.add_ratios(variants, "teacher")
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
    sizes = benchmark.file_sizes(path)
    assert sizes["size_bytes"] == 10000 and sizes["gzip_bytes"] < 100


def test_fidelity_is_agreement_with_the_teacher_right_or_wrong():
    teacher = np.array([0, 1, 2, 2])
    assert benchmark.fidelity(np.array([0, 1, 2, 1]), teacher) == 0.75
    assert benchmark.fidelity(teacher, teacher) == 1.0


def test_shippable_variants_are_the_tflite_files_of_the_quantized_models():
    shippable = choices.shippable()
    assert "pruned_int8" in shippable and "student_int8" in shippable and "teacher_float16" in shippable
    assert "scratch_int8" not in shippable and "student" not in shippable
    assert not any("pruned_scratch" in name for name in shippable)  # a control is measured, never shipped


def test_each_distilled_file_has_the_control_of_the_same_compression():
    assert choices.control_of("student") == "scratch"
    assert choices.control_of("pruned_int8") == "pruned_scratch_int8"
    assert choices.control_of("pruned_float16") == "pruned_scratch_float16"
    assert choices.control_of("student_int8") is None  # the unpruned scratch control is never converted
    assert [choices.control_of(v) for v in ("pruned_filters_int8", "qat_int8", "teacher_int8")] == [None] * 3


def test_the_machine_line_says_which_int8_instructions_the_cpu_has(tmp_path):
    """Whether int8 beats float32 depends on them: the report must say which the latencies were taken with."""
    from tinygray.evaluate.benchmark import machine_description

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n\n"
                       "processor\t: 1\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert machine_description(cpuinfo).startswith("AMD EPYC (avx2, no VNNI), ")
    cpuinfo.write_text("model name\t: Xeon\nflags\t\t: avx2 avx512bw avx512_vnni\n")
    assert machine_description(cpuinfo).startswith("Xeon (avx512_vnni), ")
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd asimddp\n")  # ARM: no x86 flags to name
    assert "(" not in machine_description(cpuinfo).split(",")[0]


def candidates(**rows):
    """name=(validation accuracy, bytes[, gate passed]) as benchmark.validation_results gives them."""
    return {name: {"val_accuracy": row[0], "size_bytes": row[1], "gate_passed": row[2] if len(row) > 2 else True}
            for name, row in rows.items()}


def test_auto_ships_the_smallest_file_within_the_accuracy_budget_on_validation():
    files = candidates(teacher_float32=(0.90, 14_000_000), teacher_int8=(0.89, 4_000_000),
                       student_int8=(0.886, 110_000), pruned_int8=(0.88, 60_000), qat_int8=(0.70, 40_000))
    assert benchmark.choose_shipped(files, 0.015) == "student_int8"  # pruned_int8 is 2 points down
    assert benchmark.choose_shipped(files, 0.025) == "pruned_int8"
    assert benchmark.choose_shipped(files, 0.5) == "qat_int8"


def test_auto_skips_a_file_that_failed_its_int8_gate_and_falls_back_to_the_teacher():
    files = candidates(teacher_float32=(0.90, 14_000_000), teacher_float16=(0.90, 7_000_000),
                       student_int8=(0.90, 110_000, False), pruned_int8=(0.80, 60_000))
    assert benchmark.choose_shipped(files, 0.015) == "teacher_float16"
    assert benchmark.choose_shipped(files, 0.0) == "teacher_float16"


def test_each_size_budget_gets_the_most_accurate_file_that_fits():
    files = candidates(teacher_float32=(0.90, 14_000_000), teacher_int8=(0.89, 4_000_000),
                       student_float32=(0.88, 230_000), student_int8=(0.886, 110_000), pruned_int8=(0.85, 60_000))
    assert benchmark.best_within_budgets(files) == {"10 MB": "teacher_int8", "1 MB": "student_int8",
                                                       "100 KB": "pruned_int8"}
    assert benchmark.best_within_budgets(candidates(teacher_float32=(0.9, 14_000_000)))["100 KB"] is None


def test_the_report_says_why_the_file_ships_and_what_each_budget_gets():
    choice = {"rule": "auto", "max_accuracy_drop": 0.015, "teacher_val_accuracy": 0.9, "shipped_val_accuracy": 0.9,
              "budgets": {"10 MB": "teacher_int8", "1 MB": None, "100 KB": None}}
    why, budgets = report.choice_sentences("teacher_int8", "teacher", choice)
    assert "smallest file whose validation accuracy (90.0%) is within 1.5 points" in why
    assert "the teacher itself ships" in why
    assert budgets == ("The most accurate file on validation within each size budget: 10 MB: `teacher_int8`; "
                       "1 MB: no file fits; 100 KB: no file fits.")
