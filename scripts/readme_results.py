"""Copy the committed benchmark report into README.md's results block, after `make repro`.

The block between `<!-- results:start -->` and `<!-- results:end -->` is the body of reports/benchmark.md
(its title dropped, headings a level down, the frontier image pointed into reports/, the confusion
matrix left to the report); tests/test_readme.py fails when README and metrics/benchmark.json disagree.
"""
from __future__ import annotations

import re
from pathlib import Path

START, END = "<!-- results:start -->", "<!-- results:end -->"
INTRO = ("Produced by `make repro` (`dvc repro`) with the default `params.yaml`, copied from the committed\n"
         "`reports/benchmark.md` by `python scripts/readme_results.py` (`metrics/benchmark.json` holds the same\n"
         "numbers; `dvc metrics show` prints them).\n")


def results_block(report: str) -> str:
    body = report.split("\n", 1)[1].strip("\n")  # drop the "# Benchmark" title
    body = re.sub(r"\n!\[confusion matrix[^\n]*\n?", "\n", body)
    body = re.sub(r"^## Plots\n+", "", body, flags=re.MULTILINE)
    body = re.sub(r"^## ", "#### ", body, flags=re.MULTILINE)  # the README's results section is a level up
    body = body.replace("](frontier.png)", "](reports/frontier.png)")
    return f"{START}\n{INTRO}\n{body.strip()}\n{END}"


def main(readme: Path = Path("README.md"), report: Path = Path("reports/benchmark.md")) -> None:
    text = readme.read_text()
    if text.count(START) != 1 or text.count(END) != 1:
        raise SystemExit(f"{readme}: expected one {START} ... {END} block")
    before, rest = text.split(START)
    after = rest.split(END)[1]
    readme.write_text(before + results_block(report.read_text()) + after)
    print(f"{readme}: results block rewritten from {report}")


if __name__ == "__main__":
    main()
