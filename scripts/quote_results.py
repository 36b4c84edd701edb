"""Copy the committed benchmark reports into docs/results.md's results blocks, after `make repro`.

Each block between `<!-- NAME:start -->` and `<!-- NAME:end -->` is the body of one report (its title dropped,
headings two levels down, images pointed at the report's folder, the confusion matrix left to the report):
`results` is the default run's reports/benchmark.md, `fashion_mnist` the Fashion-MNIST reference in
references/fashion_mnist/. tests/test_readme.py fails when a block and its benchmark.json disagree.

    python scripts/quote_results.py            # every block whose report exists
"""
from __future__ import annotations

import re
from pathlib import Path

from tinygray.pipeline import layout

BLOCKS = {
    "results": (layout.REPORTS / "benchmark.md",
                "Produced by `make repro` (`dvc repro`) with the default `params.yaml`, copied from the committed\n"
                "`reports/benchmark.md` by `python scripts/quote_results.py` (`metrics/benchmark.json` holds the "
                "same\nnumbers; `dvc metrics show` prints the headline of them).\n"),
    "fashion_mnist": (Path("references/fashion_mnist/benchmark.md"),
                      "Copied from the committed `references/fashion_mnist/benchmark.md` (numbers in its "
                      "`benchmark.json`,\nthe run's parameters in its `params.yaml`) by `python "
                      "scripts/quote_results.py`.\n"),
}
START, END = "<!-- results:start -->", "<!-- results:end -->"  # the default block's markers


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def results_block(report: str, name: str = "results", folder: str = "reports", intro: str | None = None) -> str:
    start, end = markers(name)
    body = report.split("\n", 1)[1].strip("\n")  # drop the "# Benchmark" title
    body = re.sub(r"\n!\[confusion matrix[^\n]*\n?", "\n", body)
    body = re.sub(r"^## Plots\n+", "", body, flags=re.MULTILINE)
    body = re.sub(r"^## ", "#### ", body, flags=re.MULTILINE)  # under docs/results.md's "## Reference results"
    body = body.replace("](frontier.png)", f"]({folder}/frontier.png)")
    return f"{start}\n{BLOCKS[name][1] if intro is None else intro}\n{body.strip()}\n{end}"


RESULTS = Path("docs/results.md")


def main(readme: Path = RESULTS) -> None:
    text = readme.read_text()
    for name, (report, _) in BLOCKS.items():
        start, end = markers(name)
        if not report.is_file():
            continue
        if text.count(start) != 1 or text.count(end) != 1:
            raise SystemExit(f"{readme}: expected one {start} ... {end} block for {report}")
        before, rest = text.split(start)
        folder = Path("..", report.parent) if readme.parent.name == "docs" else report.parent  # relative to the page
        text = before + results_block(report.read_text(), name, folder.as_posix()) + rest.split(end)[1]
        print(f"{readme}: {name} block rewritten from {report}")
    readme.write_text(text)


if __name__ == "__main__":
    main()
