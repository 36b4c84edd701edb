"""dvc.yaml says what each stage depends on; these tests derive it from the code, so that an edit to a module
a stage imports can never leave a stale cached result that `dvc repro` would not rebuild."""
import importlib.util
from pathlib import Path

import yaml
from stage_helpers import dvc_stages

from tinygray.pipeline import choices

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("stage_deps", REPO / "scripts" / "stage_deps.py")
stage_deps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(stage_deps)
closure, is_plumbing = stage_deps.closure, stage_deps.is_plumbing
def declared_deps(stage: dict) -> set[str]:
    return {str(dep) for dep in stage.get("deps", [])}


def test_every_module_a_stage_imports_is_a_dependency_of_it():
    stages = dvc_stages()
    missing = {}
    for name, stage in stages.items():
        script = stage["cmd"].split()[1]
        needed = {module for module in closure(script) if not is_plumbing(module)}
        absent = sorted(needed - declared_deps(stage))
        if absent:
            missing[name] = absent
        assert script in declared_deps(stage), f"{name}: its own script {script} is not a dependency"
    assert missing == {}, (f"modules imported by a stage but missing from its deps in dvc.yaml: {missing}; "
                           "`python scripts/stage_deps.py` rewrites them from the code")


def test_no_dependency_is_a_module_the_stage_does_not_import():
    """The other way round: a listed module the stage never imports reruns it for nothing."""
    stages = dvc_stages()
    extra = {name: sorted(dep for dep in declared_deps(stage) if dep.startswith("tinygray/")
                          and dep not in closure(stage["cmd"].split()[1]))
             for name, stage in stages.items()}
    assert {name: deps for name, deps in extra.items() if deps} == {}


def test_the_quantize_matrix_lists_the_models_the_benchmark_expects_quantized():
    stage = dvc_stages()["quantize"]
    assert stage["matrix"]["model"] == choices.quantized_models()


def test_the_closure_follows_imports_through_other_modules(tmp_path):
    assert "tinygray/models/torch_checkpoint.py" in closure("stages/train_teacher.py")  # via teacher -> backbones


def test_git_tracks_only_what_dvc_lock_records_in_uncached_output_folders():
    """A file committed into a stage's uncached output folder (reports/) makes `dvc status` call the stage
    changed, and the next `dvc repro` deletes it with the folder: committed references live outside."""
    import subprocess

    lock = yaml.safe_load((REPO / "dvc.lock").read_text())
    for stage in lock["stages"].values():
        for out in stage.get("outs", []):
            if out.get("nfiles") is None or (REPO / out["path"]).is_file():
                continue
            tracked = subprocess.run(["git", "ls-files", out["path"]], cwd=REPO, capture_output=True, text=True,
                                     check=True).stdout.split()
            if tracked:  # an uncached folder git keeps
                assert len(tracked) == out["nfiles"], (out["path"], tracked)


def test_the_scratch_control_reruns_on_every_student_parameter_it_shares():
    """train_scratch reads train_student's section but lists its keys one by one (the distillation-only ones
    must not rerun it): a key missing here once left a 56-px scratch control beside a 112-px student."""
    from tinygray.train.student import DISTILLATION_ONLY

    stage = dvc_stages()["train_scratch"]
    listed = {str(p).split()[0].removeprefix("train_student.") for p in stage["params"] if str(p).startswith("train_student.")}
    shared = set(yaml.safe_load((REPO / "params.yaml").read_text())["train_student"]) - set(DISTILLATION_ONLY)
    assert listed == shared


def _params_read(script: Path) -> set[str]:
    """Every parameter a stage script reads: `params.section.key` on a name bound to `load_params()` (or on the
    call itself), `name.key` on a name bound to `params.section`, `params.seed`; a section used whole (passed
    on, unpacked, `params.run_params("section")`) is listed as `section`."""
    import ast

    from tinygray.pipeline.params import SECTIONS

    tree = ast.parse(script.read_text())
    parent = {id(child): node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}

    def is_root(node) -> bool:  # the whole Params object
        return (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_params") or (
            isinstance(node, ast.Name) and node.id in roots)

    def section_of(node) -> str | None:
        if isinstance(node, ast.Attribute) and node.attr in SECTIONS and is_root(node.value):
            return node.attr
        return sections.get(node.id) if isinstance(node, ast.Name) else None

    assigns = [(node.targets[0].id, node.value) for node in ast.walk(tree)
               if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)]
    roots = {name for name, value in assigns if isinstance(value, ast.Call)
             and getattr(value.func, "id", None) == "load_params"}
    sections = {}
    sections.update({name: section_of(value) for name, value in assigns if section_of(value)})
    bound = {id(value) for _, value in assigns}
    read = set()
    for node in ast.walk(tree):
        up = parent.get(id(node))
        if isinstance(node, ast.Attribute) and is_root(node.value) and node.attr == "seed":
            read.add("seed")
        elif (isinstance(node, ast.Attribute) and node.attr == "run_params" and is_root(node.value)
              and isinstance(up, ast.Call) and up.args and isinstance(up.args[0], ast.Constant)):
            read.update({up.args[0].value, "seed"})
        elif section_of(node) and not (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)):
            if isinstance(up, ast.Attribute) and up.value is node:
                if up.attr == "values" and isinstance(parent.get(id(up)), ast.Call):
                    call = parent[id(up)]
                    keys = [a.value for a in call.args if isinstance(a, ast.Constant)]
                    read.update({f"{section_of(node)}.{k}" for k in keys} or {section_of(node)})
                else:
                    read.add(f"{section_of(node)}.{up.attr}")
            elif id(node) not in bound:
                read.add(section_of(node))
    return read


def test_every_stage_reruns_on_every_parameter_its_script_reads():
    """A stage whose script reads a parameter that dvc.yaml does not list is not rerun when it changes: the
    prune stage once trained on the students' backend without listing train_student.backend."""
    stages = dvc_stages()
    for name, stage in stages.items():
        script = REPO / "stages" / f"{name}.py"
        if not script.exists():
            continue
        listed = {str(p).split()[0] for p in stage.get("params", [])}
        for key in _params_read(script):
            section = key.split(".")[0]
            # a section used whole may list only the keys that shape the outputs (the teacher: not augment.views)
            assert key in listed or section in listed or (key == section and any(
                p.startswith(section + ".") for p in listed)), (name, key)


def test_the_committed_stage_times_list_every_stage_of_the_default_run():
    """README's and docs/results.md's time of the default run is a file a reader can check: metrics/stage_times.md,
    written by scripts/stage_times.py after the reference `dvc repro`."""
    import re
    import sys

    sys.path.insert(0, str(REPO / "scripts"))
    from stage_times import stage_names

    table = (REPO / "metrics" / "stage_times.md").read_text()
    listed = re.findall(r"^\| ([\w@]+) \| [\d,]+ \|", table, flags=re.M)
    assert listed == [name for name in stage_names()]
    assert re.search(r"^\| \*\*total\*\* \| \*\*[\d,]+\*\* \|", table, flags=re.M)
