from tinygray import report


def row(name, fmt, accuracy, size, latency, **extra):
    return {"name": name, "format": fmt, "accuracy": accuracy, "accuracy_ci_low": accuracy - 0.01,
            "accuracy_ci_high": min(1.0, accuracy + 0.01), "macro_f1": accuracy, "params": 10, "nonzero_params": 10,
            "size_bytes": size, "gzip_bytes": size, "latency_ms_p50": latency, "latency_ms_p90": latency,
            "size_ratio": 1000 / size, "speedup": 1.0 / latency, "accuracy_delta": accuracy - 0.99, **extra}


VARIANTS = [row("teacher", "keras", 0.99, 1000, 1.0), row("student", "keras", 0.98, 50, 0.1),
            row("scratch", "keras", 0.97, 50, 0.1), row("pruned_float32", "tflite", 0.98, 20, 0.02),
            row("pruned_int8", "tflite", 0.98, 10, 0.05)]
SEEDS = {"distilled": {"num_seeds": 3, "accuracy_mean": 0.98, "accuracy_std": 0.002, "accuracies": {"1": 0.98}},
         "scratch": {"num_seeds": 3, "accuracy_mean": 0.97, "accuracy_std": 0.003, "accuracies": {"1": 0.97}}}
COMPARISONS = {"shipped_vs_teacher": {"b01": 6, "b10": 1, "p_value": 0.125},
               "student_vs_scratch": {"b01": 0, "b10": 12, "p_value": 0.0005}}


def test_variant_kinds():
    assert [report.variant_kind(n) for n in ["teacher", "teacher_int8", "student", "scratch", "pruned_filters",
                                             "pruned_float16"]] == ["teacher", "int8", "distilled", "scratch",
                                                                    "pruned", "pruned"]


def test_conclusions_only_claim_what_the_tests_support():
    lines = report.conclusions({v["name"]: v for v in VARIANTS}, "pruned_int8", "teacher", SEEDS, COMPARISONS)
    assert lines[0].startswith("The shipped model `pruned_int8` is 100× smaller")
    assert "not a significant difference" in lines[1]
    assert "+1.00 points, larger than the seed-to-seed spread" in lines[2]
    assert "a significant gain" in lines[3] and "(first seed of each)" in lines[3]
    # int8 at 0.05 ms against float32 at 0.02 ms is reported, not hidden
    assert any("`pruned_int8` is slower than `pruned_float32`" in line for line in lines)


def test_render_has_every_section():
    text = report.render(variants=VARIANTS, shipped="pruned_int8", teacher="teacher", seeds=SEEDS,
                         comparisons=COMPARISONS, num_test_images=500, latency_protocol="batch 1", machine="test box")
    for part in ["| pruned_int8 | tflite |", "## Seeds", "| distilled | 3 | 98.00 ± 0.20 |", "## Conclusions",
                 "frontier.png", "confusion_matrix.png", "test box"]:
        assert part in text
