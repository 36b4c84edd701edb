"""The README quotes the committed reference results; this keeps the two from drifting apart."""
import importlib.util
import json
from pathlib import Path

from tinygray.benchmarking import markdown_table

REPO = Path(__file__).resolve().parents[1]


def test_readme_table_is_the_committed_benchmark():
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    variants = json.loads((REPO / "metrics" / "benchmark.json").read_text())["variants"]
    assert markdown_table(variants) in block


def test_readme_results_block_is_the_report_body_a_level_down():
    spec = importlib.util.spec_from_file_location("readme_results", REPO / "scripts" / "readme_results.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    report = ("# Benchmark\n\nintro\n\n## Seeds\n\ntable\n\n## Plots\n\n![size against accuracy](frontier.png)\n\n"
              "![confusion matrix of pruned_int8](confusion_matrix.png)\n")
    block = script.results_block(report)
    assert block.startswith(script.START) and block.endswith(script.END)
    assert "# Benchmark" not in block and "Plots" not in block and "confusion" not in block
    assert "#### Seeds" in block and "](reports/frontier.png)" in block and "intro" in block
