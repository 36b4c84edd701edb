"""The tinygray modules each stage imports, and dvc.yaml's deps rewritten to list exactly them.

    python scripts/stage_deps.py     # rewrite the tinygray/... lines of every stage's deps in dvc.yaml

tests/test_dvc_yaml.py uses the same functions to fail when dvc.yaml and the code disagree.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Modules that do not shape any stage's outputs, only how a run is checked and recorded: editing them must
# not retrain models. Everything else a stage imports, directly or through other modules, is a dependency.
PLUMBING = {"tinygray/__init__.py", "tinygray/params.py", "tinygray/tracking.py", "tinygray/metrics.py",
            "tinygray/atomic.py"}


def tinygray_imports(path: Path) -> set[str]:
    """The tinygray modules one file imports (as paths relative to the repository)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tinygray":
            if node.module == "tinygray":  # from tinygray import data, models
                found |= {f"tinygray/{alias.name}.py" for alias in node.names}
            else:
                found.add(node.module.replace(".", "/") + ".py")
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
            if module not in PLUMBING:
                todo.append(module)
    return seen


def sync(dvc_yaml: Path = REPO / "dvc.yaml") -> None:
    """Replace the tinygray/*.py deps of each stage with closure(its script) - PLUMBING, in sorted order,
    right after the stage's own script; every other line of dvc.yaml is kept as it is."""
    out = []
    for line in dvc_yaml.read_text().splitlines(keepends=True):
        if re.match(r"\s+- tinygray/\S+\.py\s*$", line):
            continue
        out.append(line)
        script = re.match(r"(\s+)- (stages/\w+\.py)\s*$", line)
        if script:
            out += [f"{script.group(1)}- {module}\n" for module in sorted(closure(script.group(2)) - PLUMBING)]
    dvc_yaml.write_text("".join(out))


if __name__ == "__main__":
    sync()
    print("dvc.yaml: deps rewritten from the code")
