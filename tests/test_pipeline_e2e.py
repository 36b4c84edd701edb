"""The real pipeline, end to end: `dvc repro` on tiny parameters in a temporary copy of the repo,
tracked by a real MLflow server on 127.0.0.1, then an experiment with a changed student parameter."""
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from stage_helpers import run

from tinygray.pipeline import store as tracking_store

REPO = Path(__file__).resolve().parents[1]
QUANTIZED = ["teacher", "student", "pruned", "pruned_filters", "pruned_scratch"]
STAGES = ["preprocess", "views", "train_teacher", "soft_targets", "train_student", "train_scratch", "prune", "prune_scratch", "qat",
          *(f"quantize@{model}" for model in QUANTIZED), "benchmark"]
# what a change to the quantization-aware training's parameters reruns: nothing upstream, no other student,
# no other conversion (DVC's params per stage; the student's own downstream is checked by the forced rerun)
DOWNSTREAM_OF_QAT = ["qat", "benchmark"]
MODES = ["float32", "dynamic_range", "float16", "int8"]

pytestmark = pytest.mark.e2e


def stages_run(output):
    """The stages DVC ran, in pipeline order (DVC may run independent ones in another order)."""
    return [s for s in STAGES if f"Running stage '{s}'" in output]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    bin_dir = str(Path(sys.executable).parent)
    environment = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
                   "MLFLOW_DISABLE_TELEMETRY": "true"}
    environment.pop("PIPELINE_RUN_ID", None)
    environment.pop("MLFLOW_TRACKING_URI", None)
    return environment


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory, env):
    root = tmp_path_factory.mktemp("mlflow")
    with tracking_store.local_server(f"sqlite:///{root}/mlflow.db", root, env=env) as uri:
        yield uri


@pytest.fixture(scope="module")
def project(tmp_path_factory, env, mlflow_server):
    """A git + DVC copy of the repo with the tiny parameters, after one full `dvc repro`."""
    root = tmp_path_factory.mktemp("project")
    for name in ["dvc.yaml", ".gitignore", "stages", "tinygray"]:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    (root / ".dvc").mkdir()
    for name in ["config", ".gitignore"]:
        shutil.copy(REPO / ".dvc" / name, root / ".dvc" / name)
    shutil.copy(REPO / "tests" / "tiny_params.yaml", root / "params.yaml")
    (root / "models" / "families").mkdir(parents=True)  # committed (empty): the benchmark reads every family in it
    shutil.copy(REPO / "models" / "families" / ".gitkeep", root / "models" / "families" / ".gitkeep")
    (root / "metrics" / "plots").mkdir(parents=True)
    for name in ["sweep_frontier.json", "sweep_frontier.png"]:  # committed, not made by a stage: a clone has them
        shutil.copy(REPO / "metrics" / "plots" / name, root / "metrics" / "plots" / name)
    # the stages import the copy's tinygray, as a clone's would, not the package this test was started from
    env = {**env, "MLFLOW_TRACKING_URI": mlflow_server, "PYTHONPATH": str(root)}
    run(["git", "init", "-q"], root, env)
    run(["git", "config", "user.name", "test"], root, env)  # `dvc exp run` commits
    run(["git", "config", "user.email", "test@example.com"], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "tiny pipeline"], root, env)
    output = run(["dvc", "repro"], root, env, timeout=900)
    return root, env, output


def test_repro_runs_every_stage_and_writes_every_output(project):
    root, _, output = project
    assert stages_run(output) == STAGES
    declared = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    for stage in declared.values():
        for entry in stage.get("outs", []) + stage.get("metrics", []) + stage.get("plots", []):
            path = entry if isinstance(entry, str) else next(iter(entry))
            for model in QUANTIZED:
                resolved = root / path.replace("${item.model}", model)
                assert resolved.exists(), f"declared output missing: {resolved}"
    for model in QUANTIZED:
        assert sorted(p.name for p in (root / "models" / "tflite" / model).iterdir()) == sorted(
            name for m in MODES for name in (f"{model}_{m}.tflite", f"{model}_{m}.tflite.contract.json"))
    import numpy as np

    train_logits = np.load(root / "data" / "soft_targets" / "train_logits.npy")
    assert train_logits.shape[0] == 2 and train_logits.shape[2] == 10  # the teacher's logits for both views


def test_metrics_follow_the_schema_and_benchmark_lists_every_variant(project):
    root, _, _ = project
    from tinygray.pipeline.metrics import validate

    for stage in STAGES:
        content = json.loads((root / "metrics" / f"{stage}.json").read_text())
        assert content["stage"] == stage
        validate(content, stage)
    benchmark = json.loads((root / "metrics" / "benchmark.json").read_text())
    assert benchmark["teacher"] == "teacher" and benchmark["shipped"] == "pruned_int8"
    names = [v["name"] for v in benchmark["variants"]]
    assert names == ["teacher", *(f"teacher_{m}" for m in MODES), "student", *(f"student_{m}" for m in MODES),
                     "scratch", "pruned",
                     *(f"pruned_{m}" for m in MODES), "pruned_filters", *(f"pruned_filters_{m}" for m in MODES),
                     "qat", "qat_int8", "pruned_scratch", *(f"pruned_scratch_{m}" for m in MODES)]
    required = {"name", "format", "model", "kind", "accuracy", "macro_f1", "fidelity", "params", "nonzero_params",
                "size_bytes", "gzip_bytes", "latency_ms_p50", "latency_ms_p90"}
    for variant in benchmark["variants"]:
        assert required <= set(variant)
        assert variant["latency_ms_p50"] > 0 and 0 <= variant["accuracy"] <= 1
    by_name = {v["name"]: v for v in benchmark["variants"]}
    assert by_name["pruned"]["nonzero_params"] < by_name["pruned"]["params"]
    assert by_name["pruned_filters"]["params"] < by_name["student"]["params"]  # filters really removed
    # the scratch control was pruned to the very sparsity the shipped student got
    assert by_name["pruned_scratch"]["nonzero_params"] == by_name["pruned"]["nonzero_params"]
    assert json.loads((root / "metrics" / "prune_scratch.json").read_text())["target_sparsity"] == \
        json.loads((root / "metrics" / "prune.json").read_text())["target_sparsity"]
    assert set(by_name["pruned_int8"]["latency_by_threads"]) == {"2"}
    assert benchmark["seeds"]["distilled"]["num_seeds"] == 2 and len(benchmark["seeds"]["scratch"]["accuracies"]) == 2
    assert by_name["teacher"]["fidelity"] == 1.0
    # the seed each student stage selected on validation is the model that went on, and the benchmark says so
    for kind, stage in (("distilled", "train_student"), ("scratch", "train_scratch")):
        selected = json.loads((root / "metrics" / f"{stage}.json").read_text())["selected_seed"]
        assert benchmark["seeds"][kind]["selected_seed"] == selected
        folder = "student" if kind == "distilled" else "scratch"
        assert (root / "models" / f"{folder}.keras").read_bytes() == \
            (root / "models" / folder / f"seed_{selected}.keras").read_bytes()
    assert set(benchmark["comparisons"]) == {"shipped_vs_teacher", "student_vs_scratch", "distilled_vs_scratch_seeds",
                                             "qat_vs_ptq", "shipped_vs_control"}
    assert benchmark["comparisons"]["shipped_vs_control"]["against"] == "pruned_scratch_int8"
    assert [step["name"] for step in benchmark["compression_steps"]] == [
        "student_to_pruned", "student_to_pruned_filters", "pruned_to_qat", "scratch_to_pruned_scratch",
        "teacher_to_teacher_int8", "student_to_student_int8", "pruned_to_pruned_int8",
        "pruned_filters_to_pruned_filters_int8", "qat_to_qat_int8", "pruned_scratch_to_pruned_scratch_int8"]
    assert 0 <= json.loads((root / "metrics" / "soft_targets.json").read_text())["augmented_view_accuracy"] <= 1
    student_metrics = json.loads((root / "metrics" / "train_student.json").read_text())
    assert list(student_metrics["assistants"]) == ["assistant_16x16"]  # the teacher-assistant chain ran
    report = (root / "reports" / "benchmark.md").read_text()
    assert "| pruned_int8 | tflite |" in report and "## Conclusions" in report
    for png in ["frontier.png", "confusion_matrix.png"]:
        assert (root / "reports" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    frontier = json.loads((root / "metrics" / "plots" / "frontier.json").read_text())
    assert {row["name"] for row in frontier} == set(by_name) and any(row["on_front"] for row in frontier)


def test_predict_gives_the_benchmark_accuracy_on_the_test_images_as_files(project, tmp_path):
    """The shipped .tflite on the test split written out as PNG files, through `python -m tinygray.predict`:
    the same preprocessing as the pipeline, so the same accuracy as the benchmark measured. Run from another
    folder: the model's contract beside it gives the class names and the resizing, with nothing to warn about."""
    import csv
    import io

    import numpy as np
    from PIL import Image

    root, env, _ = project
    images = np.load(root / "data" / "prepared" / "test" / "images.npy")
    labels = np.load(root / "data" / "prepared" / "test" / "labels.npy")
    names = json.loads((root / "data" / "prepared" / "classes.json").read_text())
    for i, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image[..., 0]).save(tmp_path / f"{i:05d}_{names[label]}.png")
    model = root / "models" / "tflite" / "pruned" / "pruned_int8.tflite"
    result = subprocess.run([sys.executable, "-m", "tinygray.predict", str(model), str(tmp_path), "--csv"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    output = result.stdout
    assert "warning" not in result.stderr, result.stderr
    rows = list(csv.DictReader(io.StringIO(output)))
    accuracy = np.mean([row["class"] == Path(row["path"]).stem.split("_", 1)[1] for row in rows])
    benchmark = {v["name"]: v for v in json.loads((root / "metrics" / "benchmark.json").read_text())["variants"]}
    assert len(rows) == len(labels) and round(float(accuracy), 4) == benchmark["pruned_int8"]["accuracy"]


def test_make_plots_page_needs_no_network(project, tmp_path):
    """`make plots`: DVC's page with Vega inline (DVC's own loads it from a CDN and is blank offline)."""
    root, env, _ = project
    template = tmp_path / "offline.html"
    run([sys.executable, str(REPO / "scripts" / "offline_plots_template.py"), str(template)], root, env)
    run(["dvc", "plots", "show", "--html-template", str(template), "-o", str(tmp_path / "plots")], root, env)
    page = (tmp_path / "plots" / "index.html").read_text()
    assert "cdn.jsdelivr" not in page and not re.search(r"<script[^>]+src=[\"']https?:", page)
    assert page.count("vegaEmbed('#") >= 6 and "window.vegaEmbed" in page.replace(" ", "")  # every curve
    assert page.count("<img") >= 6  # the history PNGs beside them


def test_second_repro_runs_nothing(project):
    root, env, _ = project
    output = run(["dvc", "repro"], root, env)
    assert stages_run(output) == []


def test_mlflow_received_one_run_per_stage_with_a_shared_tag(project, mlflow_server):
    from mlflow import MlflowClient

    root, env, _ = project
    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("tinygray")
    everything = client.search_runs([experiment.experiment_id])
    runs = [r for r in everything if "stage" in r.data.tags]
    [parent] = [r for r in everything if r.data.tags.get("kind") == "pipeline"]  # one parent for the execution
    assert sorted(r.data.tags["stage"] for r in runs) == sorted(STAGES)
    assert len({r.data.tags["pipeline_run"] for r in everything}) == 1
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert parent.info.status == "FINISHED" and sorted(parent.data.tags["stages_run"].split(", ")) == sorted(STAGES)
    head = run(["git", "rev-parse", "HEAD"], root, env).strip()
    assert {r.data.tags["git_commit"] for r in runs} == {head}
    assert all(r.info.status == "FINISHED" for r in runs)
    views = yaml.safe_load((root / "params.yaml").read_text())["augment"]["views"]
    for stage in ("soft_targets", "train_student", "train_scratch", "prune"):  # one name for the views everywhere
        assert next(r for r in runs if r.data.tags["stage"] == stage).data.params["augment_views"] == str(views)
    benchmark = next(r for r in runs if r.data.tags["stage"] == "benchmark")
    assert "headline.shipped.accuracy" in benchmark.data.metrics
    assert benchmark.data.params["shipped"] == "pruned_int8"
    shipped = {f.path for f in client.list_artifacts(benchmark.info.run_id, "shipped")}
    assert shipped == {"shipped/pruned_int8.tflite", "shipped/pruned_int8.tflite.contract.json"}
    versions = client.search_model_versions("name = 'tinygray-shipped'")
    assert [v.run_id for v in versions] == [benchmark.info.run_id]
    assert versions[0].tags["name"] == "pruned_int8" and float(versions[0].tags["size_bytes"]) > 0


def test_dvc_metrics_and_plots_read_as_dvc_users_read_them(project):
    """`dvc metrics show` was one row 5,400 characters wide (every key of every stage's metrics, and a CSV parsed
    as YAML into one cell); the frontier was drawn as a line through unrelated variants; the training curves
    had validation accuracy only."""
    root, env, _ = project

    def dvc_json(*args):
        done = subprocess.run(["dvc", *args, "--json"], cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout)

    table = run(["dvc", "metrics", "show", "metrics/headline.json"], root, env)
    assert "metrics/headline.json" in table and max(map(len, table.splitlines())) <= 160, table
    [(revision, shown)] = dvc_json("metrics", "show").items()
    headline = shown["data"]["metrics/headline.json"]["data"]

    def leaves(node):
        return [leaf for value in node.values() for leaf in (leaves(value) if isinstance(value, dict) else [value])]

    assert len(leaves(headline)) == 8 and all(isinstance(v, (int, float)) or v is None for v in leaves(headline))
    assert all("error" not in entry for entry in shown["data"].values())
    plots = dvc_json("plots", "show")["data"]
    assert not dvc_json("plots", "show").get("errors")
    curve = plots["dvc.yaml::metrics/history/student.csv"][0]["content"]["data"]["values"]  # the top-level plot
    assert {row["field"] for row in curve} == {"accuracy", "val_accuracy"}
    assert all(0 <= float(row["dvc_inferred_y_value"]) <= 1 for row in curve)
    frontier = plots["metrics/plots/frontier.json"][0]["content"]
    assert frontier["mark"]["type"] == "point"  # the scatter template
    assert all(isinstance(row["size_bytes"], int) and isinstance(row["accuracy"], float) for row in frontier["data"]["values"])


def test_experiment_with_new_qat_epochs_reruns_only_qat_and_the_benchmark(project, mlflow_server):
    """`dvc exp run -S`: only the stages that read the changed parameter and their downstream rerun, the
    experiment's stages nest under one MLflow parent named after it, and `dvc exp show` has the parameter and the
    headline. (A parameter of the QAT stage, two stages; the student's temperature reran eight. Which parameters each
    stage reads is checked against its script in test_dvc_yaml.py.)"""
    from mlflow import MlflowClient

    root, env, _ = project
    output = run(["dvc", "exp", "run", "-n", "longer-qat", "-S", "qat.epochs=3"], root, env)
    assert stages_run(output) == DOWNSTREAM_OF_QAT
    table = run(["dvc", "exp", "show", "--csv"], root, env)
    header = table.splitlines()[0]
    assert "shipped.accuracy" in header and "shipped.kb" in header
    assert "qat.epochs" in header

    client = MlflowClient(tracking_uri=mlflow_server)
    experiment = client.get_experiment_by_name("tinygray")
    runs = client.search_runs([experiment.experiment_id],
                              filter_string="tags.dvc_exp_name = 'longer-qat' and tags.stage != ''")
    assert sorted(r.data.tags["stage"] for r in runs) == sorted(DOWNSTREAM_OF_QAT)
    [parent] = client.search_runs([experiment.experiment_id], filter_string="tags.dvc_exp_name = 'longer-qat' and "
                                                                           "tags.kind = 'pipeline'")
    assert parent.info.run_name == "longer-qat" and {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    assert len({r.data.tags["pipeline_run"] for r in runs}) == 1
    qat = next(r for r in runs if r.data.tags["stage"] == "qat")
    assert qat.data.params["epochs"] == "3"


def test_queued_sweep_logs_to_the_original_store_and_summarises_a_frontier(project):
    """Queued experiments run in a throw-away copy under .dvc/tmp/exps; with no MLFLOW_TRACKING_URI they
    must log into the repository's own mlflow.db (found through DVC_ROOT), not into the copy. Two run at once
    (`dvc queue start -j 2`): both write that SQLite file and the DVC cache concurrently, and both must land."""
    from mlflow import MlflowClient

    root, env, _ = project
    env = {key: value for key, value in env.items() if key != "MLFLOW_TRACKING_URI"}
    script = str(REPO / "scripts" / "frontier_sweep.py")
    # the baseline's frontier committed, as in the real repository: a queued experiment's revision holds it
    # until the experiment has run (no dvc.lock, so the queued run below still runs and logs its benchmark)
    run(["git", "add", "metrics/plots/frontier.json"], root, env)
    run(["git", "commit", "-qm", "baseline frontier"], root, env)
    run([sys.executable, script, "queue"], root, env)
    not_run_yet = subprocess.run([sys.executable, script, "summarise"], cwd=root, env=env, capture_output=True,
                                 text=True)
    assert not_run_yet.returncode != 0 and "no finished experiment" in not_run_yet.stderr
    # a second point beside the sweep's, changing the benchmark only, so the two queued runs overlap in time
    run(["dvc", "exp", "run", "--queue", "-n", "timed-12", "-S", "benchmark.timed_runs=12"], root, env)
    run(["dvc", "queue", "start", "-j", "2"], root, env)
    deadline = time.time() + 600
    while True:
        status = run(["dvc", "queue", "status"], root, env)
        if not any(word in status for word in ("Queued", "Running")):
            break
        assert time.time() < deadline, status
        time.sleep(5)
    assert "Success" in status and "Failed" not in status, status

    output = run([sys.executable, script, "summarise"], root, env)
    assert "widths-8-16/" in output
    rows = json.loads((root / "metrics" / "plots" / "sweep_frontier.json").read_text())
    assert {row["name"].split("/")[0] for row in rows} >= {"widths-8-16"}
    assert (root / "metrics" / "plots" / "sweep_frontier.png").read_bytes()[:4] == b"\x89PNG"
    table = run([sys.executable, "-m", "tinygray.experiments"], root, env)  # the README's terminal table
    assert any(line.startswith("widths-8-16") and " done " in line for line in table.splitlines()), table

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tinygray").experiment_id],
                              filter_string="tags.dvc_exp_name = 'widths-8-16'")
    # the sweep point equals the current widths, so DVC's run cache restores the trained stages and only
    # the benchmark (outputs kept in git, not in the run cache) runs, and logs, in the temporary copy
    assert "benchmark" in {r.data.tags.get("stage") for r in runs}
    parallel = client.search_runs([client.get_experiment_by_name("tinygray").experiment_id],
                                  filter_string="tags.dvc_exp_name = 'timed-12' and tags.stage = 'benchmark'")
    assert [r.info.status for r in parallel] == ["FINISHED"] and parallel[0].data.params["timed_runs"] == "12"
    from tinygray.experiments import entries

    states = {name: state for name, state, _ in entries(json.loads(run(["dvc", "exp", "show", "--json"], root, env)))}
    assert states.get("widths-8-16") == states.get("timed-12") == "done", states


def test_forced_rerun_gives_identical_bytes_and_leaves_nothing_stale(project):
    """Same data, params and seeds: forcing the students' training and the pruning again reproduces their
    metrics and every model file byte for byte (seeds everywhere, TF op determinism, seeded batch order,
    .keras save times fixed), so DVC finds every later stage still up to date (before, identical weights got a
    new hash and `dvc repro -f -s prune` left the quantize stages and the benchmark stale). Preprocess is
    covered byte for byte in test_reproducibility.py. Runs last: it rewrites outputs."""
    root, env, _ = project

    def record():
        lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
        hashes = {f"{stage}:{out['path']}": out["md5"] for stage, entry in lock.items() for out in entry.get("outs", [])}
        return hashes, {name: (root / "metrics" / f"{name}.json").read_text() for name in ("train_student", "prune")}

    before = record()
    for stage in ("train_student", "prune"):
        assert stages_run(run(["dvc", "repro", "-f", "-s", stage], root, env, timeout=900)) == [stage]
    assert record() == before
    assert "up to date" in run(["dvc", "status"], root, env)


def test_a_student_cut_from_the_teacher_learns_unlabelled_images_and_auto_ships_from_validation(project):
    """train_student.teacher_blocks, preprocess.unlabeled_dir, families and benchmark.shipped: auto through the
    real pipeline: the unlabelled folder loses its copies of test images before the teacher labels it, the views
    and soft targets cover the rest, the student and its control are the teacher's first blocks (inherited and
    random), they prune by expanded channels and train quantization-aware, two families (a depth cut, and a
    shallower cut at half width beside its three controls) each run as their own stage, and the
    benchmark ships the file validation chose among all of them. Runs after the forced rerun: it changes the
    project's parameters and dvc.yaml."""
    root, env, _ = project
    import numpy as np
    from PIL import Image

    train, test = (np.load(root / "data" / "prepared" / split / "images.npy") for split in ("train", "test"))
    folder = root / "unlabeled" / "batch1"
    folder.mkdir(parents=True)
    for index, image in enumerate(train[:30]):
        Image.fromarray(image[..., 0]).save(folder / f"scan{index}.png")
    for index, image in enumerate(test[:4]):  # leaked copies of test images
        Image.fromarray(image[..., 0]).save(root / "unlabeled" / f"copy{index}.png")
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["preprocess"]["unlabeled_dir"] = "unlabeled"
    params["train_student"].update(teacher_blocks=2, backend="tensorflow", assistants=[])
    params["benchmark"]["shipped"] = "auto"
    params["families"] = {"cut4": {"blocks": 4, "width": 1},
                          "narrow": {"blocks": 3, "width": 0.5, "controls": ["random", "labels", "no_unlabeled"]}}
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc_yaml = (root / "dvc.yaml").read_text()
    (root / "dvc.yaml").write_text(dvc_yaml.replace("# - ${preprocess.unlabeled_dir}", "- ${preprocess.unlabeled_dir}"))
    output = run(["dvc", "repro"], root, env, timeout=900)
    # the teacher never reads the unlabelled images (data/unlabeled, apart from data/prepared): it does not rerun
    assert stages_run(output) == [s for s in STAGES if s not in ("train_teacher", "quantize@teacher")]
    assert "Running stage 'train_family@cut4'" in output and "Running stage 'train_family@narrow'" in output

    def metrics(stage):
        return json.loads((root / "metrics" / f"{stage}.json").read_text())

    found = metrics("preprocess")["unlabeled"]
    assert found["found"] == 34 and found["near_duplicates_of_val_or_test"] >= 4 and found["kept"] <= 30
    assert metrics("views")["num_images"]["unlabeled"] == found["kept"]
    student = metrics("train_student")
    assert student["params"] == metrics("train_scratch")["params"] < 10_000  # stem and two blocks, a new head
    assert metrics("prune")["structured"]["params"] < student["params"]
    benchmark = metrics("benchmark")
    choice = benchmark["shipped_choice"]
    assert choice["rule"] == "auto" and choice["shipped_val_accuracy"] >= choice["teacher_val_accuracy"] - 0.015 - 1e-9
    assert benchmark["shipped"] in {v["name"] for v in benchmark["variants"] if v["format"] == "tflite"}
    report = (root / "reports" / "benchmark.md").read_text()
    assert f"Shipped: `{benchmark['shipped']}`" in report
    # the families: their files on the frontier beside the pipeline's, each against the teacher, one against its control
    variants = {v["name"]: v for v in benchmark["variants"]}
    controls = [f"narrow_{control}_int8" for control in ("random", "labels", "no_unlabeled")]
    assert {"cut4_int8", "narrow_int8", *controls} <= set(variants)
    assert variants["cut4_int8"]["kind"] == "family" and {variants[c]["kind"] for c in controls} == {"control"}
    assert set(metrics("train_family@narrow")["controls"]) == {"random", "labels", "no_unlabeled"}
    assert {variants[c]["params"] for c in controls} == {variants["narrow_int8"]["params"]}
    assert variants["narrow_int8"]["params"] < variants["cut4_int8"]["params"]
    assert set(benchmark["comparisons"]["families"]) == {"cut4_int8", "narrow_int8"}
    assert {"vs_teacher", "vs_random", "vs_labels", "vs_no_unlabeled"} == set(benchmark["comparisons"]["families"]["narrow_int8"])
    assert benchmark["shipped"] not in controls
    assert "## Student families" in report and "| narrow_int8 |" in report
    # a change to one family reruns that family and the benchmark, nothing else
    params["families"]["cut4"]["width"] = 0.75
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    output = run(["dvc", "repro"], root, env, timeout=900)
    assert re.findall(r"Running stage '([\w@]+)'", output) == ["train_family@cut4", "benchmark"]
