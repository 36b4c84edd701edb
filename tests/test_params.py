from pathlib import Path

import pytest
import yaml

from tinygray.pipeline.params import SECTIONS, ParamsError, load_params, uncached_outputs

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path, change):
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    change(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_the_committed_params_are_valid_and_typed():
    params = load_params(REPO / "params.yaml")
    assert set(SECTIONS) == set(yaml.safe_load((REPO / "params.yaml").read_text())) - {"seed"}
    assert isinstance(params.train_student.temperature, float) and isinstance(params.augment.max_rotation, int)
    assert params.run_params("quantize")["seed"] == params.seed


@pytest.mark.parametrize("change, message", [
    (lambda p: p["train_student"].update(temperature=-1), "train_student.temperature"),
    (lambda p: p["prune"].update(sparsities=[0.5, 1.0]), "prune.sparsities"),
    (lambda p: p["prune"].update(filter_fractions=[]), "prune.filter_fractions"),
    (lambda p: p["prune"].update(filter_fractions=[0]), "prune.filter_fractions"),  # a "pruned" file, nothing removed
    (lambda p: p["prune"].update(sparsities=[0.0, 0.5]), "prune.sparsities"),
    (lambda p: p["preprocess"].update(image_size=0), "preprocess.image_size"),
    (lambda p: p["preprocess"].update(image_size=1000), "preprocess.image_size"),  # more than the models can use
    (lambda p: p["train_student"].update(temprature=8), "train_student.temprature"),
    (lambda p: p["train_student"].pop("alpha"), "train_student.alpha"),
    (lambda p: p["train_student"].update(widths=[]), "train_student.widths"),
    (lambda p: p["preprocess"].update(dataset="imagenet"), "preprocess.dataset"),
    (lambda p: p["prune"].update(ramp_epochs=99), "prune.ramp_epochs"),
    (lambda p: p["train_teacher"].update(epochs=True), "train_teacher.epochs"),
    (lambda p: p["sweep"].update(num_seeds=0), "sweep.num_seeds"),
    (lambda p: p["preprocess"].update(test_dir="data/test"), "preprocess.test_dir"),  # not a folder dataset
    (lambda p: p["train_student"].update(widths=[0, 4]), "train_student.widths"),
    (lambda p: p["train_teacher"].update(cnn_widths=[0]), "train_teacher.cnn_widths"),
    (lambda p: p["sweep"].update(student_widths=[[4, 0]]), "sweep.student_widths"),
    (lambda p: p["benchmark"].update(shipped="pruned_int4"), "benchmark.shipped"),
    (lambda p: p["benchmark"].update(max_accuracy_drop=1), "benchmark.max_accuracy_drop"),
    (lambda p: p["benchmark"].update(max_accuracy_drop=-0.01), "benchmark.max_accuracy_drop"),
    (lambda p: p["train_student"].update(teacher_blocks=0), "train_student.teacher_blocks"),
    (lambda p: p["train_student"].update(input_size=12), "train_student.input_size"),  # 28 px: does not divide
    (lambda p: p["train_student"].update(input_size=56), "train_student.input_size"),  # larger than the image
    (lambda p: p["train_teacher"].update(input_size="big"), "train_teacher.input_size"),
    (lambda p: p["train_teacher"].update(input_size=4), "train_teacher.input_size"),
    (lambda p: p["preprocess"].update(group_pattern="person("), "preprocess.group_pattern"),  # not a regex
    (lambda p: p["preprocess"].update(group_pattern="^(p\\d+)"), "preprocess.group_pattern"),  # not a folder dataset
])
def test_bad_values_name_the_parameter(tmp_path, change, message):
    path = write(tmp_path, change)
    with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
        load_params(path)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5])
def test_a_seed_numpy_or_scikit_learn_would_refuse_is_refused_by_name(tmp_path, seed):
    """seed: 4294967296 once passed, then failed inside scikit-learn's split ("random_state ... must be an int in
    the range [0, 4294967295]") and NumPy, neither naming `seed`."""
    path = write(tmp_path, lambda p: p.update(seed=seed))
    with pytest.raises(ParamsError, match="parameter 'seed'"):
        load_params(path)


def test_a_missing_seed_is_refused_like_any_missing_key(tmp_path):
    """A missing `seed:` once became 0 in silence, while every other key was required."""
    path = write(tmp_path, lambda p: p.pop("seed"))
    with pytest.raises(ParamsError, match="missing parameter 'seed'"):
        load_params(path)


def test_unknown_section_is_reported(tmp_path):
    path = write(tmp_path, lambda p: p.update(train_studnet={}))
    with pytest.raises(ParamsError, match="train_studnet"):
        load_params(path)


def test_a_bad_value_in_any_section_stops_every_stage_before_it_starts(tmp_path):
    """benchmark.shipped is read by the last stage only, but a typo in it stops the first one."""
    path = write(tmp_path, lambda p: p["benchmark"].update(shipped="pruned_int4"))
    with pytest.raises(ParamsError, match=r"'benchmark.shipped' must be 'auto' or name one of the TFLite variants .*'pruned_int8'"):
        load_params(path)


def test_a_refusal_inside_a_dvc_stage_says_how_to_get_the_removed_outputs_back(tmp_path, monkeypatch):
    """DVC deletes a stage's outputs before running it, so `dvc exp run -S train_student.alpha=2` once refused
    clearly but left the student's outputs gone without a word on `dvc checkout`."""
    path = write(tmp_path, lambda p: p["train_student"].update(alpha=2))
    monkeypatch.delenv("DVC_STAGE", raising=False)
    with pytest.raises(ParamsError) as by_hand:
        load_params(path)
    assert "dvc checkout" not in str(by_hand.value)
    monkeypatch.setenv("DVC_STAGE", "train_student")
    monkeypatch.chdir(REPO)  # the stage's dvc.yaml
    with pytest.raises(ParamsError, match=r"train_student\.alpha.*DVC removed stage train_student's outputs before "
                                          r"starting it.*`dvc checkout train_student`") as under_dvc:
        load_params(path)
    # `dvc checkout` alone once was the advice: it left the metrics DVC does not cache deleted
    assert ("`git checkout -- metrics/train_student.json metrics/history/student.csv metrics/history/student.png`"
            in str(under_dvc.value))


def test_the_uncached_outputs_of_a_matrix_stage_are_named_with_its_item():
    assert uncached_outputs("quantize@student", REPO / "dvc.yaml") == ["metrics/quantize@student.json"]
    assert uncached_outputs("no_such_stage", REPO / "dvc.yaml") == []
