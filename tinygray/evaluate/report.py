"""The benchmark report: the table, the seed statistics, what each compression step costs, paired tests,
and conclusions computed from the numbers, so the text can never claim more than the data supports."""
from __future__ import annotations

from tinygray.data.augment import views_warning
from tinygray.data.duplicates import leakage_warning
from tinygray.evaluate.stats import significant
from tinygray.pipeline.choices import CONTROLS

TABLE_COLUMNS = (  # (title, alignment, cell of a variant)
    ("variant", "---", lambda v: v["name"]),
    ("format", "---", lambda v: v["format"]),
    ("test acc. %", "---:", lambda v: f"{100 * v['accuracy']:.2f}"),
    ("95% CI", "---:", lambda v: f"{100 * v['accuracy_ci_low']:.1f}–{100 * v['accuracy_ci_high']:.1f}"),
    ("macro F1", "---:", lambda v: f"{v['macro_f1']:.4f}"),
    ("fidelity %", "---:", lambda v: f"{100 * v['fidelity']:.2f}"),
    ("params", "---:", lambda v: f"{v['params']:,}"),
    ("non-zero", "---:", lambda v: f"{v['nonzero_params']:,}"),
    ("bytes", "---:", lambda v: f"{v['size_bytes']:,}"),
    ("gzip bytes", "---:", lambda v: f"{v['gzip_bytes']:,}"),
    ("p50 ms", "---:", lambda v: f"{v['latency_ms_p50']:.3f}"),
    ("p90 ms", "---:", lambda v: f"{v['latency_ms_p90']:.3f}"),
    ("× smaller", "---:", lambda v: f"{v['size_ratio']:.1f}"),
    ("× faster", "---:", lambda v: f"{v['speedup']:.1f}"),
    ("Δ acc. pts", "---:", lambda v: f"{100 * v['accuracy_delta']:+.2f}"),
)


def markdown_table(variants: list[dict]) -> str:
    lines = ["| " + " | ".join(title for title, _, _ in TABLE_COLUMNS) + " |",
             "|" + "|".join(align for _, align, _ in TABLE_COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell(v) for _, _, cell in TABLE_COLUMNS) + " |" for v in variants]
    return "\n".join(lines)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def gain_sentence(a: str, b: str, delta: float, test: dict, note: str = "") -> str:
    """'a vs b: +0.4 points (p = 0.62, McNemar): not a significant difference.'"""
    verdict = ("a significant " + ("gain" if delta > 0 else "loss")) if significant(test["p_value"]) \
        else "not a significant difference"
    return (f"`{a}` vs `{b}`{note}: {100 * delta:+.1f} points on the same test images "
            f"({test['b10']} right only by `{a}`, {test['b01']} only by `{b}`; McNemar p = {test['p_value']:.3g}): "
            f"{verdict}.")


def seed_sentence(distilled: dict, scratch: dict, paired: dict) -> str:
    """Distillation against its control over the seeds: a claim about the spread needs two seeds or more."""
    gain = distilled["accuracy_mean"] - scratch["accuracy_mean"]
    text = (f"Distillation over {plural(distilled['num_seeds'], 'seed')}: {100 * distilled['accuracy_mean']:.2f} ± "
            f"{100 * distilled['accuracy_std']:.2f}% against {100 * scratch['accuracy_mean']:.2f} ± "
            f"{100 * scratch['accuracy_std']:.2f}% for the same student trained on labels alone: {100 * gain:+.2f} points")
    if min(distilled["num_seeds"], scratch["num_seeds"]) < 2:
        return text + "; one seed has no spread to compare it with."
    spread = max(distilled["accuracy_std"], scratch["accuracy_std"])
    verdict = "a significant" if significant(paired["p_value"]) else "not a significant"
    return (text + ", " + ("larger than" if abs(gain) > spread else "within") + " the seed-to-seed spread; "
            f"paired over seeds (t-test, same seed on both sides) p = {paired['p_value']:.3g}: {verdict} difference.")


def fastest_clause(by_name: dict, shipped: str, teacher: str) -> str:
    """When a student's file is faster than the shipped one in every timing round, the headline names it:
    which file is fastest depends on the CPU (int8 kernels gain most where the CPU has int8 dot-product
    instructions), and a speed-up quoted for the shipped file alone would hide that."""
    s = by_name[shipped]
    students = [v for v in by_name.values() if v["format"] == "tflite" and v["model"] != teacher
                and v["model"] not in CONTROLS.values() and v.get("kind") != "scratch"]
    fastest = min(students, key=lambda v: v["latency_ms_p50"], default=s)
    if fastest is s or fastest["latency_ms_round_high"] >= s["latency_ms_round_low"]:
        return ""
    return (f"; the fastest file on this CPU is `{fastest['name']}`, not the shipped one: {fastest['speedup']:.0f}× "
            f"faster than the teacher ({fastest['latency_ms_p50']:.3g} against {s['latency_ms_p50']:.3g} ms, in every "
            f"timing round), at {100 * fastest['accuracy']:.1f}% and {fastest['size_bytes']:,} bytes")


def choice_sentences(shipped: str, teacher: str, choice: dict) -> list[str]:
    """Why this file ships (benchmark.shipped and the validation accuracies it was chosen on), and which file to
    take for each size budget (benchmark.best_within_budgets); the test split chose nothing."""
    drop = 100 * choice["max_accuracy_drop"]
    if choice["rule"] == "auto":
        why = (f"Shipped: `{shipped}`, the smallest file whose validation accuracy ({100 * choice['shipped_val_accuracy']:.1f}%) "
               f"is within {drop:.1f} points of the teacher's float file ({100 * choice['teacher_val_accuracy']:.1f}%; "
               "benchmark.shipped: auto, benchmark.max_accuracy_drop)")
        if shipped.startswith(f"{teacher}_"):
            why += "; no student file is that close, so the teacher itself ships"
    else:
        why = f"Shipped: `{shipped}`, named by benchmark.shipped"
    budgets = "; ".join(f"{label}: `{name}`" if name else f"{label}: no file fits"
                        for label, name in choice["budgets"].items())
    return [why + ".", f"The most accurate file on validation within each size budget: {budgets}."]


def conclusions(by_name: dict, shipped: str, teacher: str, seeds: dict, comparisons: dict,
                teacher_views: dict | None = None, duplicates: dict | None = None, choice: dict | None = None) -> list[str]:
    s, t = by_name[shipped], by_name[teacher]
    distilled, scratch = seeds["distilled"], seeds["scratch"]
    spread = (f" ({s['speedup_low']:.0f}–{s['speedup_high']:.0f}× across the timing rounds"
              + ("; the rounds disagree on whether it is faster at all" if s["speedup_low"] < 1 else "") + ")")
    lines = [
        f"The shipped model `{shipped}` is {s['size_ratio']:.0f}× smaller ({s['size_bytes']:,} vs "
        f"{t['size_bytes']:,} bytes) and {s['speedup']:.0f}× faster at batch 1 than the teacher{spread}, at "
        f"{100 * s['accuracy_delta']:+.1f} points of test accuracy ({100 * s['accuracy']:.1f}% vs "
        f"{100 * t['accuracy']:.1f}%){fastest_clause(by_name, shipped, teacher)}.",
        gain_sentence(shipped, teacher, s["accuracy_delta"], comparisons["shipped_vs_teacher"]),
        seed_sentence(distilled, scratch, comparisons["distilled_vs_scratch_seeds"]),
        gain_sentence("student", "scratch", by_name["student"]["accuracy"] - by_name["scratch"]["accuracy"],
                      comparisons["student_vs_scratch"],
                      note=f" (seeds {distilled['selected_seed']} and {scratch['selected_seed']}, each selected on validation)"),
        f"Fidelity: the distilled students agree with the teacher on {100 * distilled['fidelity_mean']:.1f}% of the "
        f"test images, the scratch controls on {100 * scratch['fidelity_mean']:.1f}% (means over seeds).",
        *(choice_sentences(shipped, teacher, choice) if choice else []),
    ]
    if "shipped_vs_control" in comparisons:
        control = comparisons["shipped_vs_control"]["against"]
        lines.append(gain_sentence(shipped, control, s["accuracy"] - by_name[control]["accuracy"],
                                   comparisons["shipped_vs_control"],
                                   note=" (distillation where it ships: the scratch control through the same pruning "
                                        "and conversion)"))
    if "qat_vs_ptq" in comparisons:
        ptq = comparisons["qat_vs_ptq"]["against"]
        lines.append(gain_sentence("qat_int8", ptq, by_name["qat_int8"]["accuracy"] - by_name[ptq]["accuracy"],
                                   comparisons["qat_vs_ptq"], note=" (quantization-aware against post-training int8)"))
    for warning in (views_warning(teacher_views or {}), leakage_warning(duplicates or {})):
        if warning:
            lines.append(warning)
    failed = [name for name, row in by_name.items() if row.get("gate_passed") is False]
    if failed:
        lines.append("Failed their int8 gate (a real loss against float32 on validation, larger than "
                     f"quantize.max_int8_accuracy_drop): {', '.join(f'`{name}`' for name in failed)}.")
    for row in by_name.values():
        float_row = by_name.get(f"{row['model']}_float32")
        if row["format"] == "tflite" and float_row and row is not float_row \
                and row["latency_ms_round_low"] > float_row["latency_ms_round_high"]:  # in every round, not by chance
            lines.append(f"`{row['name']}` is slower than `{float_row['name']}` ({row['latency_ms_p50']:.3g} vs "
                         f"{float_row['latency_ms_p50']:.3g} ms at batch 1, in every timing round): a quantization "
                         "mode is not automatically faster on this CPU.")
    return lines


# a family's controls as the report's table names them (layout.FAMILY_CONTROLS)
CONTROL_TITLES = {"random": "random weights, labels alone", "labels": "teacher's weights, labels alone",
                  "no_unlabeled": "distilled without the unlabelled images"}


def families_section(by_name: dict, teacher: str, comparisons: dict) -> str:
    """The student families of the frontier (train_family@<name>), smallest first: each int8 file against the
    teacher's float file and against each control the family has, on the same test images (McNemar)."""
    tested = comparisons.get("families") or {}
    if not tested:
        return ""
    t = by_name[teacher]
    controls = [c for c in CONTROL_TITLES if any(f"vs_{c}" in test for test in tested.values())]
    rows = []
    for name in sorted(tested, key=lambda n: by_name[n]["size_bytes"]):
        v, test = by_name[name], tested[name]
        cells = [f"{100 * by_name[name.removesuffix('_int8') + f'_{c}_int8']['accuracy']:.2f} | {test[f'vs_{c}']['p_value']:.3g}"
                 if f"vs_{c}" in test else "– | –" for c in controls]
        rows.append(f"| {name} | {v['params']:,} | {v['size_bytes']:,} | {100 * v['accuracy']:.2f} "
                    f"({100 * v['accuracy_ci_low']:.1f}–{100 * v['accuracy_ci_high']:.1f}) | "
                    f"{100 * (v['accuracy'] - t['accuracy']):+.2f} | {test['vs_teacher']['p_value']:.3g} |"
                    + "".join(f" {cell} |" for cell in cells))
    header = ("| family file | params | bytes | test acc. % (95% CI) | Δ vs teacher, pts | McNemar p vs teacher |"
              + "".join(f" {CONTROL_TITLES[c]} % | p |" for c in controls)
              + "\n|---|---:|---:|---:|---:|---:|" + "---:|---:|" * len(controls))
    return ("## Student families\n\nEach family of params.yaml's `families`, cut from the teacher by depth and pruned "
            "by width, distilled with one seed and converted to int8, against the teacher's float file and against "
            "each of its controls (the same network trained the same way but for one thing, converted alike), with "
            "McNemar's test on the same test images.\n\n" + header + "\n" + "\n".join(rows) + "\n\n")


def render(*, variants: list[dict], shipped: str, teacher: str, seeds: dict, comparisons: dict,
           compression_steps: list[dict], test_description: str, latency_protocol: str, machine: str,
           teacher_views: dict | None = None, layer_errors: dict | None = None,
           duplicates: dict | None = None, choice: dict | None = None) -> str:
    by_name = {v["name"]: v for v in variants}
    layer_errors = layer_errors or {}
    seed_rows = "\n".join(
        f"| {kind} | {s['num_seeds']} | {s['selected_seed']} | {100 * s['accuracy_mean']:.2f} ± "
        f"{100 * s['accuracy_std']:.2f} | " + ", ".join(f"{100 * a:.2f}" for a in s["accuracies"].values())
        + f" | {100 * s['fidelity_mean']:.2f} |" for kind, s in seeds.items())
    step_rows = "\n".join(
        f"| {step['before']} → {step['after']} | {100 * step['accuracy_delta']:+.2f} | {step['b01']} | {step['b10']} | "
        f"{step['p_value']:.3g} |" for step in compression_steps)
    threads = sorted({n for v in variants for n in v.get("latency_by_threads", {})})
    thread_table = ""
    if threads:
        thread_table = ("\n\nLatency with more threads (p50 ms): \n\n| variant | " + " | ".join(f"{n} threads" for n in threads)
                        + " |\n|---|" + "---:|" * len(threads) + "\n" + "\n".join(
                            f"| {v['name']} | " + " | ".join(f"{v['latency_by_threads'][n]['latency_ms_p50']:.3f}"
                                                               for n in threads) + " |" for v in variants))
    return (
        "# Benchmark\n\n"
        f"Test split: {test_description}. Accuracy with its 95% Wilson interval; fidelity is top-1 agreement with "
        f"`{teacher}`. Latency: {latency_protocol}, on {machine}. Keras rows are timed as their float32 TFLite "
        f"file. Ratios are against `{teacher}`.\n\n"
        f"{markdown_table(variants)}{thread_table}\n\n"
        "## Seeds\n\nTest accuracy of every seed of the distilled student and of its scratch control "
        "(same architecture, seeds and epoch budget, labels only). Each stage selected one seed on the validation "
        "split alone; that one goes on (`student` and `scratch` above).\n\n"
        "| student | seeds | selected | accuracy % (mean ± std) | per seed | fidelity % (mean) |\n"
        "|---|---:|---:|---:|---|---:|\n"
        f"{seed_rows}\n\n"
        + families_section(by_name, teacher, comparisons) +
        "## Compression steps\n\nWhat each step costs on the same test images; McNemar's test counts the images "
        "only one side gets right.\n\n"
        "| step | Δ acc. pts | right only before | right only after | McNemar p |\n|---|---:|---:|---:|---:|\n"
        f"{step_rows}\n\n"
        "## Quantization error by layer\n\nEach int8 file against the float32 file of the same network (for `qat_int8`: "
        "its network in plain float), on 64 validation images: the layer that adds the most quantization noise "
        "(noise-to-signal energy, averaged over its output channels) and the SNR of its output.\n\n"
        "| variant | worst layer | op | noise added | SNR dB there | SNR dB at the logits |\n|---|---|---|---:|---:|---:|\n"
        + "\n".join(f"| {v['name']} | {v['worst_layer']['layer']} | {v['worst_layer']['name'].split(':')[1]} | "
                    f"{v['worst_layer']['noise_added']:.4f} | {v['worst_layer']['snr_db']:.1f} | "
                    f"{layer_errors[v['name']][-1]['snr_db']:.1f} |" for v in variants if "worst_layer" in v)
        + "\n\n"
        "## Conclusions\n\n" + "\n".join(f"- {line}" for line in conclusions(by_name, shipped, teacher, seeds, comparisons, teacher_views,
                                                                          duplicates, choice))
        + "\n\n## Plots\n\n![size against accuracy](frontier.png)\n\n"
        f"![confusion matrix of {shipped}](confusion_matrix.png)\n"
    )
