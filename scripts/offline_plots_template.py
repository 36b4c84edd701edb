"""An HTML template for `dvc plots show` that needs no network: `make plots` writes it, then uses it.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so offline its charts stay blank with no
error. vl-convert (the Vega project's own converter, a pinned dependency) bundles the three libraries into
one script; this writes a page with that script inline and DVC's `{plot_divs}` placeholder, and without
`{scripts}`, where DVC would put its CDN tags.

    python scripts/offline_plots_template.py [PATH]    # default .dvc/tmp/offline_plots.html
"""
from __future__ import annotations

import sys
from pathlib import Path

import vl_convert

from tinygray.pipeline.atomic import atomic_output

DEFAULT = Path(".dvc/tmp/offline_plots.html")


def template() -> str:
    bundle = vl_convert.javascript_bundle()  # assigns vegaEmbed, vegaLite and vega to window
    return ("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>tinygray: DVC plots</title>\n"
            f"<script>\n{bundle}\n</script>\n<style>table {{ border-spacing: 15px; }}</style>\n</head>\n"
            "<body>\n{plot_divs}\n</body>\n</html>\n")


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    with atomic_output(path) as staging:
        staging.write_text(template())
    print(f"{path}: offline template for dvc plots show ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
