"""docs/results.md quotes the committed reference results; this keeps the two from drifting apart."""
import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from tinygray.evaluate.report import markdown_table

REPO = Path(__file__).resolve().parents[1]


def committed(path: str) -> str:
    """The file as committed at HEAD, not as the last local `make repro` rewrote it (its latencies change
    on every run); the working copy only where there is no git history (an unpacked release)."""
    shown = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=REPO, capture_output=True, text=True)
    return shown.stdout if shown.returncode == 0 else (REPO / path).read_text()


@pytest.mark.parametrize("block, benchmark", [("results", "metrics/benchmark.json"),
                                              ("fashion_mnist", "references/fashion_mnist/benchmark.json")])
def test_readme_table_is_the_committed_benchmark(block, benchmark):
    readme = committed("docs/results.md")
    quoted = readme.split(f"<!-- {block}:start -->")[1].split(f"<!-- {block}:end -->")[0]
    variants = json.loads(committed(benchmark))["variants"]
    assert markdown_table(variants) in quoted


def test_readme_results_block_is_the_report_body_a_level_down():
    spec = importlib.util.spec_from_file_location("quote_results", REPO / "scripts" / "quote_results.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    report = ("# Benchmark\n\nintro\n\n## Seeds\n\ntable\n\n## Plots\n\n![size against accuracy](frontier.png)\n\n"
              "![confusion matrix of pruned_int8](confusion_matrix.png)\n")
    block = script.results_block(report)
    assert block.startswith(script.START) and block.endswith(script.END)
    assert "# Benchmark" not in block and "Plots" not in block and "confusion" not in block
    assert "#### Seeds" in block and "](reports/frontier.png)" in block and "intro" in block
