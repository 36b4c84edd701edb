"""The benchmark report: the table, the seed statistics, paired tests, and conclusions computed from
the numbers, so the text can never claim more than the data supports."""
from __future__ import annotations

from tinygray.benchmarking import markdown_table
from tinygray.stats import significant


def variant_kind(name: str) -> str:
    """Frontier category of a variant, from its name."""
    if name.endswith("_int8"):
        return "int8"
    for prefix, kind in (("teacher", "teacher"), ("scratch", "scratch"), ("student", "distilled"),
                         ("pruned", "pruned")):
        if name.startswith(prefix):
            return kind
    return name


def gain_sentence(a: str, b: str, delta: float, test: dict, note: str = "") -> str:
    """'a vs b: +0.4 points (p = 0.62, McNemar): not a significant difference.'"""
    verdict = ("a significant " + ("gain" if delta > 0 else "loss")) if significant(test["p_value"]) \
        else "not a significant difference"
    return (f"`{a}` vs `{b}`{note}: {100 * delta:+.1f} points on the same test images "
            f"({test['b10']} right only by `{a}`, {test['b01']} only by `{b}`; McNemar p = {test['p_value']:.3g}): "
            f"{verdict}.")


def conclusions(by_name: dict, shipped: str, teacher: str, seeds: dict, comparisons: dict) -> list[str]:
    s, t = by_name[shipped], by_name[teacher]
    lines = [
        f"The shipped model `{shipped}` is {s['size_ratio']:.0f}× smaller ({s['size_bytes']:,} vs "
        f"{t['size_bytes']:,} bytes) and {s['speedup']:.0f}× faster at batch 1 than the teacher, at "
        f"{100 * s['accuracy_delta']:+.1f} points of test accuracy ({100 * s['accuracy']:.1f}% vs "
        f"{100 * t['accuracy']:.1f}%).",
        gain_sentence(shipped, teacher, s["accuracy_delta"], comparisons["shipped_vs_teacher"]),
    ]
    distilled, scratch = seeds["distilled"], seeds["scratch"]
    gain = distilled["accuracy_mean"] - scratch["accuracy_mean"]
    spread = max(distilled["accuracy_std"], scratch["accuracy_std"])
    lines.append(
        f"Distillation over {distilled['num_seeds']} seeds: {100 * distilled['accuracy_mean']:.2f} ± "
        f"{100 * distilled['accuracy_std']:.2f}% against {100 * scratch['accuracy_mean']:.2f} ± "
        f"{100 * scratch['accuracy_std']:.2f}% for the same student trained on labels alone: "
        f"{100 * gain:+.2f} points, " + ("larger than" if abs(gain) > spread else "within")
        + " the seed-to-seed spread.")
    lines.append(gain_sentence("student", "scratch", by_name["student"]["accuracy"] - by_name["scratch"]["accuracy"],
                               comparisons["student_vs_scratch"], note=" (first seed of each)"))
    for row in by_name.values():
        for mode in ("dynamic_range", "float16", "int8"):
            float_row = by_name.get(row["name"].removesuffix(f"_{mode}") + "_float32")
            if row["name"].endswith(f"_{mode}") and float_row and row["latency_ms_p50"] > 1.05 * float_row["latency_ms_p50"]:
                lines.append(f"`{row['name']}` is slower than `{float_row['name']}` ({row['latency_ms_p50']:.3g} vs "
                             f"{float_row['latency_ms_p50']:.3g} ms at batch 1): a quantization mode is not "
                             "automatically faster on this CPU.")
    return lines


def render(*, variants: list[dict], shipped: str, teacher: str, seeds: dict, comparisons: dict,
           num_test_images: int, latency_protocol: str, machine: str) -> str:
    by_name = {v["name"]: v for v in variants}
    seed_rows = "\n".join(
        f"| {kind} | {s['num_seeds']} | {100 * s['accuracy_mean']:.2f} ± {100 * s['accuracy_std']:.2f} | "
        + ", ".join(f"{100 * a:.1f}" for a in s["accuracies"].values()) + " |"
        for kind, s in seeds.items())
    threads = sorted({n for v in variants for n in v.get("latency_by_threads", {})})
    thread_table = ""
    if threads:
        thread_table = ("\n\nLatency with more threads (p50 ms): \n\n| variant | " + " | ".join(f"{n} threads" for n in threads)
                        + " |\n|---|" + "---:|" * len(threads) + "\n" + "\n".join(
                            f"| {v['name']} | " + " | ".join(f"{v['latency_by_threads'][n]['latency_ms_p50']:.3f}"
                                                               for n in threads) + " |" for v in variants))
    return (
        "# Benchmark\n\n"
        f"Test split: {num_test_images} images. Accuracy with its 95% Wilson interval. Latency: {latency_protocol}, "
        f"on {machine}. Keras rows are timed as their float32 TFLite conversion. Ratios are against `{teacher}`.\n\n"
        f"{markdown_table(variants)}{thread_table}\n\n"
        "## Seeds\n\nTest accuracy of every seed of the distilled student and of its scratch control "
        "(same architecture, seeds and epoch budget, labels only); model selection used the validation split only.\n\n"
        "| student | seeds | accuracy % (mean ± std) | per seed |\n|---|---:|---:|---|\n"
        f"{seed_rows}\n\n"
        "## Conclusions\n\n" + "\n".join(f"- {line}" for line in conclusions(by_name, shipped, teacher, seeds, comparisons))
        + "\n\n## Plots\n\n![size against accuracy](frontier.png)\n\n"
        f"![confusion matrix of {shipped}](confusion_matrix.png)\n"
    )
