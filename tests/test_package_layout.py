"""The package's shape: the plumbing (tinygray/pipeline/) imports nothing from the domain subpackages, so that
editing how a stage is run and recorded never drags in what it computes, and the top level of tinygray/ keeps
only what a user runs or loads."""
import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PIPELINE = REPO / "tinygray" / "pipeline"
USER_FACING = {"__init__", "predict", "experiments", "registry", "litert"}


def domain_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import of a tinygray module outside tinygray.pipeline, at any depth (inside
    functions and `if TYPE_CHECKING:` blocks too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "tinygray":  # from tinygray import litert
                found += [(node.lineno, f"tinygray.{alias.name}") for alias in node.names if alias.name != "pipeline"]
            elif node.module.startswith("tinygray.") and not _in_pipeline(node.module):
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names
                      if alias.name.startswith("tinygray.") and not _in_pipeline(alias.name)]
    return found


def _in_pipeline(module: str) -> bool:
    return module == "tinygray.pipeline" or module.startswith("tinygray.pipeline.")


def test_the_plumbing_imports_nothing_from_the_domain():
    found = {f"tinygray/pipeline/{path.name}": [f"line {line}: {module}" for line, module in
                                               domain_imports(path.read_text())]
             for path in sorted(PIPELINE.glob("*.py"))}
    assert {module: hits for module, hits in found.items() if hits} == {}, (
        "tinygray/pipeline/ must not import the domain; a closed list of names the schema needs goes in "
        "tinygray/pipeline/choices.py and the domain imports it from there")


def test_the_check_finds_a_domain_import_wherever_it_is():
    source = ('"""A plumbing module."""\nfrom tinygray.pipeline import layout\nfrom tinygray.pipeline.choices import MODES\n'
              "import tinygray.pipeline.atomic\n\n\ndef draw():\n    from tinygray.evaluate import plots\n"
              "    import tinygray.compress.qat\n    from tinygray import litert\n")
    assert domain_imports(source) == [(8, "tinygray.evaluate"), (9, "tinygray.compress.qat"), (10, "tinygray.litert")]


def test_only_what_a_user_runs_or_loads_stays_at_the_top_level():
    top = {path.stem for path in (REPO / "tinygray").glob("*.py")}
    assert top - USER_FACING == set(), "domain modules belong in a subpackage (docs/reference.md, Where things live)"


def test_every_subpackage_init_is_a_docstring_only():
    """scripts/stage_deps.py leaves the packages' __init__.py files out of the stage deps: they must hold no code."""
    for init in (REPO / "tinygray").glob("*/__init__.py"):
        body = ast.parse(init.read_text()).body
        assert len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant), init
