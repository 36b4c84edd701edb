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
# is a dependency. The packages' __init__.py files hold docstrings only (tinygray/__init__.py also quiets
# TensorFlow's log), so they are left out too.
PLUMBING_PACKAGE = "tinygray/pipeline/"
# The one plumbing module that does shape outputs: the variant names, which models are quantized and into which
# modes, the closed lists the parameters take. A stage that imports it, directly or through a domain module,
# lists it among its deps, so that renaming a variant reruns the stages that write it.
CHOICES = "tinygray/pipeline/choices.py"


def is_plumbing(module: str) -> bool:
    if module == CHOICES:
        return False
    return module.startswith(PLUMBING_PACKAGE) or re.fullmatch(r"tinygray/(\w+/)*__init__\.py", module) is not None


def tinygray_imports(path: Path) -> set[str]:
    """The tinygray modules one file imports (as paths relative to the repository)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "tinygray":
            package = node.module.replace(".", "/")
            for alias in node.names:  # from tinygray.models import cnn; from tinygray.models.cnn import build_cnn
                submodule, subpackage = f"{package}/{alias.name}.py", f"{package}/{alias.name}/__init__.py"
                found.add(submodule if (REPO / submodule).is_file() else
                          subpackage if (REPO / subpackage).is_file() else _module_file(package))
        elif isinstance(node, ast.Import):  # import tinygray.compress.qat
            found |= {_module_file(alias.name.replace(".", "/")) for alias in node.names
                      if alias.name.startswith("tinygray.")}
    return {module for module in found if (REPO / module).is_file()}


def _module_file(dotted_path: str) -> str:
    """tinygray/models/cnn -> tinygray/models/cnn.py; a package (tinygray/models) -> its __init__.py."""
    return f"{dotted_path}/__init__.py" if (REPO / dotted_path).is_dir() else f"{dotted_path}.py"


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
