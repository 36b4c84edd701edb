"""The tinygray modules each stage imports, and dvc.yaml's deps rewritten to list exactly them.

    python scripts/stage_deps.py     # rewrite the tinygray/... lines of every stage's deps in dvc.yaml

tests/test_dvc_yaml.py uses the same functions to fail when dvc.yaml and the code disagree.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Modules that do not shape any stage's outputs, only how a run is checked and recorded (tinygray/pipeline/):
# editing them must not retrain models. Everything else a stage imports, directly or through other modules,
# is a dependency.
PLUMBING_PACKAGE = "tinygray/pipeline/"


def is_plumbing(module: str) -> bool:
    return module.startswith(PLUMBING_PACKAGE) or module == "tinygray/__init__.py"


def tinygray_imports(path: Path) -> set[str]:
    """The tinygray modules one file imports (as paths relative to the repository)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tinygray":
            package = node.module.replace(".", "/")
            for alias in node.names:  # from tinygray import models; from tinygray.pipeline import layout
                submodule = f"{package}/{alias.name}.py"
                found.add(submodule if (REPO / submodule).is_file() else f"{package}.py")
        elif isinstance(node, ast.Import):
            found |= {alias.name.replace(".", "/") + ".py" for alias in node.names if alias.name.startswith("tinygray.")}
    return {module for module in found if (REPO / module).is_file()}


def closure(script: str) -> set[str]:
    """Every tinygray module the script imports, directly or through other modules (not through plumbing:
    what tracking imports to log a model does not shape an output)."""
    seen, todo = set(), [script]
    while todo:
        for module in tinygray_imports(REPO / todo.pop()) - seen:
            seen.add(module)
            if not is_plumbing(module):
                todo.append(module)
    return seen


def sync(dvc_yaml: Path = REPO / "dvc.yaml") -> None:
    """Replace the tinygray/*.py deps of each stage with closure(its script) less the plumbing, in sorted order,
    right after the stage's own script; every other line of dvc.yaml is kept as it is."""
    out = []
    for line in dvc_yaml.read_text().splitlines(keepends=True):
        if re.match(r"\s+- tinygray/\S+\.py\s*$", line):
            continue
        out.append(line)
        script = re.match(r"(\s+)- (stages/\w+\.py)\s*$", line)
        if script:
            out += [f"{script.group(1)}- {module}\n" for module in sorted(closure(script.group(2)))
                    if not is_plumbing(module)]
    dvc_yaml.write_text("".join(out))


if __name__ == "__main__":
    sync()
    print("dvc.yaml: deps rewritten from the code")
