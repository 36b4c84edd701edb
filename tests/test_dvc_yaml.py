"""dvc.yaml says what each stage depends on; these tests derive it from the code, so that an edit to a module
a stage imports can never leave a stale cached result that `dvc repro` would not rebuild."""
import ast
from pathlib import Path

import yaml

from tinygray import variants

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


def declared_deps(stage: dict) -> set[str]:
    return {str(dep) for dep in stage.get("deps", [])}


def test_every_module_a_stage_imports_is_a_dependency_of_it():
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    missing = {}
    for name, stage in stages.items():
        script = stage["cmd"].split()[1]
        needed = closure(script) - PLUMBING
        absent = sorted(needed - declared_deps(stage))
        if absent:
            missing[name] = absent
        assert script in declared_deps(stage), f"{name}: its own script {script} is not a dependency"
    assert missing == {}, f"modules imported by a stage but missing from its deps in dvc.yaml: {missing}"


def test_no_dependency_is_a_module_the_stage_does_not_import():
    """The other way round: a listed module the stage never imports reruns it for nothing."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    extra = {name: sorted(dep for dep in declared_deps(stage) if dep.startswith("tinygray/")
                          and dep not in closure(stage["cmd"].split()[1]))
             for name, stage in stages.items()}
    assert {name: deps for name, deps in extra.items() if deps} == {}


def test_the_quantize_matrix_lists_the_models_the_benchmark_expects_quantized():
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["quantize"]
    assert stage["matrix"]["model"] == variants.quantized_models()


def test_the_closure_follows_imports_through_other_modules(tmp_path):
    assert "tinygray/torch_checkpoint.py" in closure("stages/train_teacher.py")  # via teacher -> backbones
