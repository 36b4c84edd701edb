"""Every path a stage reads or writes is named once, in tinygray/pipeline/layout.py: dvc.yaml's data paths are
layout's, and no stage, module or script spells one out again."""
import ast
import re
from pathlib import Path

import yaml
from stage_helpers import dvc_stages

from tinygray.pipeline import choices, layout

REPO = Path(__file__).resolve().parents[1]
PATH_LITERAL = re.compile(r"(data|models|metrics|reports)/[\w@./-]+")


def dvc_paths() -> dict[str, set[str]]:
    """The data paths of each dvc.yaml stage (deps, outs, metrics, plots), code and ${param} paths left out."""
    stages = dvc_stages()
    found = {}
    for name, stage in stages.items():
        entries = [e if isinstance(e, str) else next(iter(e)) for key in ("deps", "outs", "metrics", "plots")
                   for e in stage.get(key, [])]
        found[name] = {e for e in entries if not e.startswith(("stages/", "tinygray/", "${preprocess."))}
    return found


def layout_paths(stage_names) -> set[str]:
    """What layout names, for the pipeline's models and stages (${item.model} and ${qat.source} included)."""
    names = [*choices.KERAS_MODELS, "${item.model}", "${qat.source}"]
    paths = {layout.PREPARED, layout.UNLABELED, layout.VIEWS, layout.SOFT_TARGETS, layout.DUPLICATES, layout.FRONTIER_DATA,
             layout.REPORTS, layout.HEADLINE}
    paths |= {p for n in names for p in (layout.model(n), layout.seeds(n), layout.tflite_dir(n))}
    paths |= {str(layout.FAMILIES), str(layout.family_dir("${key}"))}
    paths |= {layout.stage_metrics(s) for s in [*stage_names, "quantize@${item.model}", "train_family@${key}",
                                                *(f"quantize@{m}" for m in choices.quantized_models())]}
    return {str(p) for p in paths}


def test_every_data_path_in_dvc_yaml_is_named_by_layout():
    per_stage = dvc_paths()
    known = layout_paths(per_stage)
    unknown = {name: sorted(p for p in paths if p not in known and Path(p).parent != layout.HISTORY)
               for name, paths in per_stage.items()}
    assert {name: paths for name, paths in unknown.items() if paths} == {}
    # and the other way: layout's fixed paths are all used by some stage
    used = set().union(*per_stage.values())
    assert {str(p) for p in (layout.PREPARED, layout.UNLABELED, layout.VIEWS, layout.SOFT_TARGETS, layout.DUPLICATES,
                             layout.FRONTIER_DATA, layout.REPORTS, layout.HEADLINE)} <= used


def path_literals(path: Path) -> list[tuple[int, str]]:
    """String constants that are a pipeline path and nothing else (prose that mentions one is fine)."""
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and PATH_LITERAL.fullmatch(node.value)]


def test_no_code_spells_out_a_pipeline_path():
    files = [*REPO.glob("stages/*.py"), *REPO.glob("tinygray/**/*.py"), *REPO.glob("scripts/*.py")]
    found = {str(f.relative_to(REPO)): path_literals(f) for f in files if f.name != "layout.py"}
    assert {f: hits for f, hits in found.items() if hits} == {}


def test_the_check_finds_a_spelled_out_path(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text('"""Reads data/prepared (prose is fine)."""\nPREPARED = "data/prepared"\nMODEL = "models/x.keras"\n')
    assert path_literals(script) == [(2, "data/prepared"), (3, "models/x.keras")]
