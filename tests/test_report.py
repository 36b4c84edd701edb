from tinygray.evaluate import report
from tinygray.data.augment import views_warning


def row(name, fmt, accuracy, size, latency, model=None, **extra):
    return {"name": name, "format": fmt, "model": model or name, "accuracy": accuracy,
            "accuracy_ci_low": accuracy - 0.01, "accuracy_ci_high": min(1.0, accuracy + 0.01), "macro_f1": accuracy,
            "fidelity": 0.97, "params": 10, "nonzero_params": 10, "size_bytes": size, "gzip_bytes": size,
            "latency_ms_p50": latency, "latency_ms_p90": latency, "latency_ms_round_low": 0.9 * latency,
            "latency_ms_round_high": 1.1 * latency, "size_ratio": 1000 / size, "speedup": 1.0 / latency,
            "speedup_low": 0.9 / (1.1 * latency), "speedup_high": 1.1 / (0.9 * latency), "accuracy_delta": accuracy - 0.99,
            **extra}


VARIANTS = [row("teacher", "keras", 0.99, 1000, 1.0), row("student", "keras", 0.98, 50, 0.1),
            row("scratch", "keras", 0.97, 50, 0.1), row("pruned", "keras", 0.98, 50, 0.02),
            row("pruned_float32", "tflite", 0.98, 20, 0.02, model="pruned"),
            row("pruned_int8", "tflite", 0.98, 10, 0.05, model="pruned")]


def seeds(num_seeds, mean, std, fidelity):
    return {"num_seeds": num_seeds, "selected_seed": 43, "accuracy_mean": mean, "accuracy_std": std,
            "accuracies": {"42": mean, "43": mean}, "fidelity_mean": fidelity, "fidelities": {"42": fidelity}}


SEEDS = {"distilled": seeds(3, 0.98, 0.002, 0.985), "scratch": seeds(3, 0.97, 0.003, 0.972)}
COMPARISONS = {"shipped_vs_teacher": {"b01": 6, "b10": 1, "p_value": 0.125},
               "student_vs_scratch": {"b01": 0, "b10": 12, "p_value": 0.0005},
               "distilled_vs_scratch_seeds": {"num_seeds": 3, "mean_difference": 0.01, "p_value": 0.01}}
STEPS = [{"name": "student_to_pruned", "before": "student", "after": "pruned", "accuracy_delta": 0.0, "b01": 2,
          "b10": 2, "p_value": 1.0}]


def test_conclusions_only_claim_what_the_tests_support():
    lines = report.conclusions({v["name"]: v for v in VARIANTS}, "pruned_int8", "teacher", SEEDS, COMPARISONS)
    assert lines[0].startswith("The shipped model `pruned_int8` is 100× smaller")
    assert "faster at batch 1 than the teacher (16–24× across the timing rounds)" in lines[0]
    # the headline names the file that is faster than the shipped one in every round, and its accuracy
    assert lines[0].endswith("the fastest file on this CPU is `pruned_float32`, not the shipped one: 50× faster "
                             "than the teacher (0.02 against 0.05 ms, in every timing round), at 98.0% and 20 bytes.")
    assert "not a significant difference" in lines[1]
    assert "Distillation over 3 seeds" in lines[2]
    assert "+1.00 points, larger than the seed-to-seed spread" in lines[2] and "p = 0.01: a significant" in lines[2]
    assert "a significant gain" in lines[3] and "(seeds 43 and 43, each selected on validation)" in lines[3]
    assert "98.5% of the test images, the scratch controls on 97.2%" in lines[4]
    # int8 at 0.05 ms against float32 at 0.02 ms in every round is reported, not hidden
    assert any("`pruned_int8` is slower than `pruned_float32`" in line for line in lines)
    close = {**{v["name"]: v for v in VARIANTS}, "pruned_int8": row("pruned_int8", "tflite", 0.98, 10, 0.021, model="pruned")}
    close_lines = report.conclusions(close, "pruned_int8", "teacher", SEEDS, COMPARISONS)
    assert not any("slower" in line for line in close_lines) and "fastest" not in close_lines[0]


def test_the_shipped_file_is_set_against_its_scratch_control_of_the_same_compression():
    """Pruning fine-tunes the distilled student further; the control pruned the same way is what the
    shipped file's distillation claim is measured against."""
    by_name = {v["name"]: v for v in VARIANTS} | {"pruned_scratch_int8": row("pruned_scratch_int8", "tflite", 0.95, 10, 0.05,
                                                                               model="pruned_scratch")}
    comparisons = {**COMPARISONS, "shipped_vs_control": {"against": "pruned_scratch_int8", "b01": 3, "b10": 30,
                                                          "p_value": 1e-6}}
    lines = report.conclusions(by_name, "pruned_int8", "teacher", SEEDS, comparisons)
    assert ("`pruned_int8` vs `pruned_scratch_int8` (distillation where it ships: the scratch control through the same "
            "pruning and conversion): +3.0 points on the same test images (30 right only by `pruned_int8`, 3 only by "
            "`pruned_scratch_int8`; McNemar p = 1e-06): a significant gain.") in lines
    # a control is never the fastest file the headline points at
    by_name["pruned_scratch_int8"]["latency_ms_p50"] = by_name["pruned_scratch_int8"]["latency_ms_round_high"] = 0.001
    assert "pruned_scratch" not in report.conclusions(by_name, "pruned_int8", "teacher", SEEDS, comparisons)[0]


def test_one_seed_makes_no_claim_about_the_spread():
    one = {"distilled": seeds(1, 0.85, 0.0, 0.9), "scratch": seeds(1, 0.88, 0.0, 0.8)}
    paired = {**COMPARISONS, "distilled_vs_scratch_seeds": {"num_seeds": 1, "mean_difference": -0.03, "p_value": None}}
    line = report.conclusions({v["name"]: v for v in VARIANTS}, "pruned_int8", "teacher", one, paired)[2]
    assert line.startswith("Distillation over 1 seed:") and "-3.00 points; one seed has no spread" in line
    assert "spread;" not in line and "larger than" not in line


def test_render_has_every_section():
    text = report.render(variants=VARIANTS, shipped="pruned_int8", teacher="teacher", seeds=SEEDS,
                         comparisons=COMPARISONS, compression_steps=STEPS,
                         test_description="10,000 images (official test set)", latency_protocol="batch 1",
                         machine="test box")
    for part in ["| pruned_int8 | tflite |", "## Seeds", "| distilled | 3 | 43 | 98.00 ± 0.20 |", "## Conclusions",
                 "## Compression steps", "| student → pruned | +0.00 | 2 | 2 | 1 |",
                 "frontier.png", "confusion_matrix.png", "test box", "10,000 images (official test set)"]:
        assert part in text


def test_views_that_change_the_images_are_warned_about():
    assert views_warning({"val_accuracy": 0.972, "augmented_view_accuracy": 0.967}) is None  # digits
    warning = views_warning({"val_accuracy": 0.89, "augmented_view_accuracy": 0.8475})  # Fashion, digit views
    assert "84.8% of its augmented training views" in warning and "89.0% of the validation images" in warning
    assert views_warning({"val_accuracy": 0.9, "augmented_view_accuracy": None}) is None  # views: 1
    lines = report.conclusions({v["name"]: v for v in VARIANTS}, "pruned_int8", "teacher", SEEDS, COMPARISONS,
                               {"val_accuracy": 0.89, "augmented_view_accuracy": 0.8475})
    assert any(line.startswith("Warning: the teacher labels 84.8%") for line in lines)


def test_a_test_split_holding_copies_of_training_images_is_warned_about():
    by_name = {v["name"]: v for v in VARIANTS}
    clean = {"policy": "drop", "leaking": {"val": 0, "test": 0}}
    assert not any("near-duplicate" in line for line in report.conclusions(by_name, "pruned_int8", "teacher", SEEDS,
                                                                            COMPARISONS, duplicates=clean))
    leaky = {"policy": "report", "leaking": {"val": 2, "test": 3}}
    lines = report.conclusions(by_name, "pruned_int8", "teacher", SEEDS, COMPARISONS, duplicates=leaky)
    assert any(line.startswith("Warning: 3 test image(s) near-duplicate training images (preprocess.duplicates: report")
               for line in lines)


def test_the_families_table_lists_each_family_smallest_first_against_the_teacher_and_its_control():
    from tinygray.evaluate.report import families_section

    def row(name, accuracy, size, params):
        return {"name": name, "accuracy": accuracy, "accuracy_ci_low": accuracy - 0.02, "accuracy_ci_high": accuracy + 0.02,
                "size_bytes": size, "params": params}

    by_name = {v["name"]: v for v in [row("teacher", 0.95, 13_000_000, 3_400_000), row("half_int8", 0.94, 1_000_000, 922_000),
                                      row("cut8_int8", 0.93, 290_000, 262_000), row("cut8_random_int8", 0.85, 290_000, 262_000)]}
    test = {"b01": 3, "b10": 9, "p_value": 0.146}
    comparisons = {"families": {"half_int8": {"vs_teacher": test},
                                "cut8_int8": {"vs_teacher": {**test, "p_value": 0.02}, "vs_random": {**test, "p_value": 0.001}}}}
    section = families_section(by_name, "teacher", comparisons)
    rows = [line for line in section.splitlines() if line.startswith("| ") and "_int8" in line]
    assert [r.split(" | ")[0] for r in rows] == ["| cut8_int8", "| half_int8"]
    assert rows[0].endswith("| -2.00 | 0.02 | 85.00 | 0.001 |") and rows[1].endswith("| -1.00 | 0.146 | – | – |")
    assert families_section(by_name, "teacher", {}) == ""  # no families: no section (the default run's report)
