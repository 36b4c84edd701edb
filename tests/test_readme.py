"""The README quotes the committed reference results; this keeps the two from drifting apart."""
import json
from pathlib import Path

from tinygray.benchmarking import markdown_table

REPO = Path(__file__).resolve().parents[1]


def test_readme_table_is_the_committed_benchmark():
    readme = (REPO / "README.md").read_text()
    block = readme.split("<!-- results:start -->")[1].split("<!-- results:end -->")[0]
    variants = json.loads((REPO / "metrics" / "benchmark.json").read_text())["variants"]
    assert markdown_table(variants) in block
