"""Stage 7: every variant on the test split, measured the same way: one table, seed statistics, what each
compression step costs, paired tests, the size/accuracy frontier, and the shipped model registered in MLflow."""
import json

import numpy as np

from tinygray import predict, registry
from tinygray.data import prepared
from tinygray.evaluate import frontier, plots, report
from tinygray.evaluate.benchmark import (best_within_budgets, choose_shipped, comparisons, compression_steps,
                                        headline_figures, machine_description, measure, validation_results)
from tinygray.train import loop
from tinygray.pipeline import layout
from tinygray.pipeline.atomic import atomic_output
from tinygray.pipeline.choices import AUTO, TEACHER
from tinygray.pipeline.params import load_params
from tinygray.pipeline.tracking import stage_run

PREPARED, REPORT_DIR, FRONTIER_DATA = layout.PREPARED, layout.REPORTS, layout.FRONTIER_DATA
CONTRACT = "contract.json"  # how to call the shipped .tflite: classes, input, int8 scales (tinygray.predict)
HEADLINE_KEYS = ("accuracy", "size_bytes", "latency_ms_p50", "size_ratio", "speedup", "accuracy_delta", "fidelity")


def main() -> None:
    params = load_params()
    benchmark = params.benchmark
    families = list(params.families)
    candidates = validation_results(families)
    shipped = choose_shipped(candidates, benchmark.max_accuracy_drop) if benchmark.shipped == AUTO \
        else benchmark.shipped
    with stage_run("benchmark", benchmark.values()) as run:
        test_images, test_labels = prepared.read_split(PREPARED, "test")
        test_images = np.asarray(test_images)
        result = measure(test_images, test_labels, benchmark, families)
        by_name = result.by_name()
        compared = comparisons(result, test_labels, shipped)
        choice = {"rule": benchmark.shipped, "max_accuracy_drop": benchmark.max_accuracy_drop,
                  "teacher_val_accuracy": candidates[f"{TEACHER}_float32"]["val_accuracy"],
                  "shipped_val_accuracy": candidates[shipped]["val_accuracy"],
                  "budgets": best_within_budgets(candidates)}
        steps = compression_steps(result, test_labels)
        preprocess_metrics = json.loads(layout.stage_metrics("preprocess").read_text())
        test_source = preprocess_metrics["test_source"]
        with atomic_output(REPORT_DIR) as staging:
            staging.mkdir()
            plots.frontier(result.variants, staging / "frontier.png", title="Size against test accuracy (Pareto front marked)",
                           always_label=(shipped, "teacher"), shipped=shipped)
            plots.confusion_matrix(test_labels, result.predictions[shipped], prepared.read_class_names(PREPARED),
                                   staging / "confusion_matrix.png",
                                   title=f"{shipped} (shipped) on the test split: true against predicted")
            predict.write_contract(result.files[shipped], staging / CONTRACT, prepared.read_class_names(PREPARED),
                                   predict.preprocessing(test_images.shape[1], preprocess_metrics["resize"]))
            (staging / "benchmark.md").write_text(report.render(
                variants=result.variants, shipped=shipped, teacher=TEACHER, seeds=result.seeds, comparisons=compared,
                compression_steps=steps, choice=choice, test_description=f"{len(test_labels):,} images ({test_source})",
                teacher_views=json.loads(layout.stage_metrics("soft_targets").read_text()), layer_errors=result.layer_errors,
                duplicates=preprocess_metrics.get("duplicates"),
                machine=machine_description(),
                latency_protocol=f"batch 1 through the LiteRT interpreter, {benchmark.warmup_runs} warm-up then "
                                 f"{benchmark.timed_runs} timed runs in {benchmark.rounds} rounds that take every "
                                 f"variant in turn, {benchmark.num_threads[0]} thread(s); p50 over all runs"))
        with atomic_output(FRONTIER_DATA) as staging:
            staging.write_text(json.dumps(frontier.frontier_plot_data(result.variants), indent=1) + "\n")
        distilled, scratch = result.seeds["distilled"], result.seeds["scratch"]
        metrics = {
            "teacher": TEACHER, "shipped": shipped, "shipped_choice": choice, "num_threads": benchmark.num_threads[0],
            "headline": {role: {k: by_name[name][k] for k in HEADLINE_KEYS}
                         for role, name in (("teacher", TEACHER), ("shipped", shipped))},
            "distillation_gain": round(distilled["accuracy_mean"] - scratch["accuracy_mean"], 4),
            "seeds": result.seeds,
            "comparisons": compared,
            "compression_steps": steps,
            "layer_errors": result.layer_errors,
            "variants": result.variants,
        }
        with atomic_output(layout.HEADLINE) as staging:
            staging.write_text(json.dumps(headline_figures(metrics), indent=2) + "\n")
        run.finish(metrics, artifacts=[layout.HEADLINE, REPORT_DIR / "benchmark.md", REPORT_DIR / "frontier.png",
                                       REPORT_DIR / "confusion_matrix.png", REPORT_DIR / CONTRACT])
        run.log_on_parent({**{f"headline.{role}.{key}": value for role in ("teacher", "shipped")
                                for key, value in metrics["headline"][role].items()},
                             **{f"{v['name']}/{key}": v[key] for v in result.variants
                                for key in ("accuracy", "fidelity", "size_bytes", "latency_ms_p50")}})
        loop.require_above_chance(f"benchmark: the shipped variant {shipped}", by_name[shipped]["accuracy"],
                                  test_labels, split="test", hint="Not registering it; see reports/benchmark.md.")
        if not by_name[shipped].get("gate_passed", True):
            raise SystemExit(f"benchmark: the shipped variant {shipped} failed its int8 gate (metrics/quantize@"
                             f"{by_name[shipped]['model']}.json, int8_gate); not registering it. Ship another "
                             "variant (benchmark.shipped) or relax quantize.max_int8_accuracy_drop; see reports/benchmark.md")
        registry.register_shipped_model(result.files[shipped], REPORT_DIR / CONTRACT, by_name[shipped],
                                        input_example=test_images[:1])


if __name__ == "__main__":
    main()
