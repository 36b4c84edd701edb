"""Your own image folder through the real preprocess stage and DVC; the streaming batches and the
checkpoint check later stages use."""
import json
import os

import numpy as np
import pytest
import yaml

from stage_helpers import (REPO, folder_project, make_folder, run, run_stage, stage_env, stages_run,
                           write_params)
from tinygray.data import prepared, preprocess
from tinygray.train import loop
from tinygray.data.folders import DataError, load_grayscale


def test_stage_prepares_a_folder_like_the_reader_decodes_it(tmp_path):
    raw = make_folder(tmp_path / "data" / "raw", {"cat": 12, "dog": 14, "eel": 40})
    write_params(tmp_path, max_per_class=20)
    code, output = run_stage(tmp_path, stage_env(tmp_path))
    assert code == 0, output[-3000:]
    prepared_dir = tmp_path / "data" / "prepared"
    assert prepared.read_class_names(prepared_dir) == ["cat", "dog", "eel"]
    metrics = json.loads((tmp_path / "metrics" / "preprocess.json").read_text())
    assert metrics["num_classes"] == 3 and metrics["image_size"] == 16 and metrics["skipped_files"] == {}
    assert sum(metrics["num_images"].values()) == 12 + 14 + 20  # eel capped by max_per_class
    # every prepared image is one file of its class, decoded exactly as load_grayscale does
    decoded = {name: [load_grayscale(p, 16) for p in sorted((raw / name).iterdir())] for name in ["cat", "dog", "eel"]}
    for split in prepared.SPLITS:
        images, labels = prepared.read_split(prepared_dir, split)
        assert isinstance(images, np.memmap) and images.shape[1:] == (16, 16, 1)
        assert metrics["num_images"][split] == len(labels)
        for image, label in zip(images, labels):
            name = ["cat", "dog", "eel"][label]
            assert any(np.array_equal(image[..., 0], d) for d in decoded[name])
    assert sorted(os.listdir(tmp_path / "data")) == ["prepared", "raw", "unlabeled"]  # no staging left


def test_prepare_folder_matches_an_in_memory_reference(tmp_path):
    raw = make_folder(tmp_path / "raw", {"a": 10, "b": 11})
    labels, names, skipped, _, _ = preprocess.prepare_folder(raw, tmp_path / "out", image_size=8, val_fraction=0.1,
                                                             test_fraction=0.1, seed=3, progress=False)
    paths = sorted(raw.glob("*/*.png"))
    all_images = np.stack([load_grayscale(p, 8) for p in paths])[..., None]
    all_labels = np.array([0] * 10 + [1] * 11)
    for split, idx in preprocess.stratified_split(all_labels, 0.1, 0.1, seed=3).items():
        images, split_labels = prepared.read_split(tmp_path / "out", split)
        np.testing.assert_array_equal(images, all_images[idx])
        np.testing.assert_array_equal(split_labels, all_labels[idx])
        np.testing.assert_array_equal(labels[split], all_labels[idx])
    assert names == ["a", "b"] and skipped == {}


def test_stale_staging_of_a_killed_run_is_removed(tmp_path):
    raw = make_folder(tmp_path / "raw", {"a": 10, "b": 10})
    dead, alive = tmp_path / ".tmp-999999999-out", tmp_path / f".tmp-{os.getppid()}-out"
    for staging in (dead, alive):
        staging.mkdir()
    preprocess.prepare_folder(raw, tmp_path / "out", image_size=8, val_fraction=0.1, test_fraction=0.1, seed=0,
                              progress=False)
    assert not dead.exists() and alive.exists()


def test_folder_dependency_guard(tmp_path):
    dvc_yaml = tmp_path / "dvc.yaml"
    preprocess.require_folder_dependency("data/raw", dvc_yaml=dvc_yaml)  # no DVC project: nothing to check
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["preprocess"]
    dvc_yaml.write_text(yaml.safe_dump({"stages": {"preprocess": stage}}))
    with pytest.raises(DataError, match="does not depend on the image folder 'data/raw'"):
        preprocess.require_folder_dependency("data/raw", dvc_yaml=dvc_yaml)
    for dep in ["${preprocess.image_dir}", "data/raw/", "./data/raw"]:
        dvc_yaml.write_text(yaml.safe_dump({"stages": {"preprocess": {**stage, "deps": stage["deps"] + [dep]}}}))
        preprocess.require_folder_dependency("data/raw", dvc_yaml=dvc_yaml)


def test_keras_fits_from_memmapped_batches_and_checkpoint_check(tmp_path, digits):
    import keras

    images, labels = digits
    prepared.write_prepared(tmp_path / "prepared", {"train": (images[:200], labels[:200])}, [str(c) for c in range(10)])
    train_images, train_labels = prepared.read_split(tmp_path / "prepared", "train")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Rescaling(1 / 255), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(loop.Batches(train_images, train_labels, 32), epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2 and np.isfinite(history.history["loss"]).all()
    prepared.check_num_classes(model, tmp_path / "prepared", "models/x.keras")
    binary = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    with pytest.raises(DataError, match=r"models/x.keras: model has 2 outputs but .* has 10 classes"):
        prepared.check_num_classes(binary, tmp_path / "prepared", "models/x.keras")
    wrong_size = keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(DataError, match=r"models/x.keras: model expects images of shape \(16, 16, 1\)"):
        prepared.check_num_classes(wrong_size, tmp_path / "prepared", "models/x.keras")


def test_class_names_become_valid_mlflow_metric_names():
    from tinygray.pipeline.tracking import _metric_name

    assert _metric_name("class_counts.train.c++ (v2)") == "class_counts.train.c__ _v2_"
    assert _metric_name("class_counts.train.été") == "class_counts.train.été"


def test_dvc_reruns_preprocess_and_what_follows_only_when_an_image_changes(tmp_path):
    """The README flow: images in data/raw, `dvc add`, dataset folder, the folder line in deps, `dvc repro`."""
    root, env = folder_project(tmp_path, {"cat": 10, "dog": 10})
    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text())
    dvc_yaml["stages"]["after"] = {"cmd": "python -c \"open('after.txt', 'w').write('ok')\"",
                                   "deps": ["data/prepared"], "outs": ["after.txt"]}
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc_yaml))
    assert stages_run(run(["dvc", "repro"], root, env)) == ["preprocess", "after"]
    assert stages_run(run(["dvc", "repro"], root, env)) == []  # nothing changed: nothing runs
    make_folder(root / "data" / "raw", {"cat": 1}, seed=7)  # a new cat/00000.png
    output = run(["dvc", "repro"], root, env)
    assert stages_run(output) == ["preprocess", "after"], output
    assert "data/raw.dvc" in run(["git", "status", "--short"], root, env)  # the new version of the folder
    assert stages_run(run(["dvc", "repro"], root, env)) == []


def test_builtin_dataset_runs_on_a_fresh_clone_without_data_raw(tmp_path):
    """The shipped dvc.yaml and params.yaml (mnist) need no data/raw."""
    root = tmp_path / "clone"
    env = stage_env(tmp_path)
    (root / ".dvc").mkdir(parents=True)
    for name in ["stages", "tinygray", "dvc.yaml", "params.yaml", ".gitignore", ".dvc/config", ".dvc/.gitignore"]:
        run(["cp", "-r", str(REPO / name), str(root / name)], tmp_path, env)
    run(["git", "init", "-q"], root, env)
    assert not (root / "data" / "raw").exists()
    output = run(["dvc", "repro", "preprocess"], root, env)
    assert stages_run(output) == ["preprocess"]
    assert prepared.read_class_names(root / "data" / "prepared") == [str(c) for c in range(10)]


def test_held_out_test_dir_is_the_test_split_and_nothing_else(tmp_path):
    """preprocess.test_dir: its images are exactly the test split, never trained on or used for selection."""
    raw = make_folder(tmp_path / "data" / "raw", {"cat": 12, "dog": 14}, seed=1)
    held_out = make_folder(tmp_path / "data" / "test", {"cat": 3, "dog": 4}, seed=2)
    write_params(tmp_path, test_dir="data/test", max_per_class=10)
    code, output = run_stage(tmp_path, stage_env(tmp_path))
    assert code == 0, output[-3000:]
    prepared_dir = tmp_path / "data" / "prepared"
    metrics = json.loads((tmp_path / "metrics" / "preprocess.json").read_text())
    assert metrics["test_source"] == "held-out folder"
    assert metrics["num_images"] == {"train": 18, "val": 2, "test": 7}  # test_fraction unused, cap on raw only

    def decoded(folder):
        return {load_grayscale(p, 16).tobytes(): ["cat", "dog"].index(p.parent.name) for p in sorted(folder.glob("*/*"))}

    test_images, test_labels = prepared.read_split(prepared_dir, "test")
    assert {image.tobytes(): int(label) for image, label in zip(test_images, test_labels)} == decoded(held_out)
    training_pool = decoded(raw)
    for split in ("train", "val"):
        images, labels = prepared.read_split(prepared_dir, split)
        assert all(training_pool[image.tobytes()] == label for image, label in zip(images, labels))


def test_test_dir_must_match_classes_not_overlap_and_be_a_dvc_dependency(tmp_path):
    make_folder(tmp_path / "data" / "raw", {"cat": 12, "dog": 14})
    make_folder(tmp_path / "data" / "test", {"cat": 3, "eel": 2})
    with pytest.raises(DataError, match=r"data/test: class folders \['cat', 'eel'\] differ"):
        preprocess.prepare_folder(tmp_path / "data" / "raw", tmp_path / "out", image_size=8, val_fraction=0.1,
                                  test_fraction=0.1, seed=0, test_dir=tmp_path / "data" / "test", progress=False)
    with pytest.raises(DataError, match="overlap"):
        preprocess.prepare_folder(tmp_path / "data", tmp_path / "out", image_size=8, val_fraction=0.1,
                                  test_fraction=0.1, seed=0, test_dir=tmp_path / "data" / "test", progress=False)
    assert not (tmp_path / "out").exists()
    dvc_yaml = tmp_path / "dvc.yaml"
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["preprocess"]
    dvc_yaml.write_text(yaml.safe_dump({"stages": {"preprocess": {**stage, "deps": stage["deps"] + ["${preprocess.image_dir}"]}}}))
    with pytest.raises(DataError, match=r"add `- \$\{preprocess.test_dir\}`"):
        preprocess.require_folder_dependency("data/test", dvc_yaml=dvc_yaml, param="test_dir")
    preprocess.require_folder_dependency("data/raw", dvc_yaml=dvc_yaml)


def test_images_of_one_group_never_land_in_two_splits(tmp_path):
    """person<N>_<class>_<i>.png: several images per patient; with group_pattern each patient's images stay in
    one split, through the real stage, and the group counts are in the metrics."""
    from PIL import Image

    rng = np.random.default_rng(0)
    raw = tmp_path / "data" / "raw"
    for label, name in enumerate(["normal", "pneumonia"]):
        (raw / name).mkdir(parents=True)
        for person in range(30):
            for i in range(3):
                pixels = np.clip(rng.integers(0, 128, (16, 16)) + 100 * label, 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(raw / name / f"person{label * 100 + person}_{name}_{i}.png")
    write_params(tmp_path, group_pattern=r"^(person\d+)_")
    code, output = run_stage(tmp_path, stage_env(tmp_path))
    assert code == 0, output[-3000:]
    metrics = json.loads((tmp_path / "metrics" / "preprocess.json").read_text())
    assert sum(metrics["num_groups"].values()) == 60 and all(n >= 2 for n in metrics["num_groups"].values())
    # which person each prepared image came from: the images are noise, so each is unique
    person_of = {np.asarray(Image.open(p)).tobytes(): p.name.split("_")[0] for p in raw.glob("*/*.png")}
    people = {split: {person_of[image[..., 0].tobytes()] for image in prepared.read_split(tmp_path / "data" / "prepared",
                                                                                      split)[0]}
              for split in prepared.SPLITS}
    assert not (people["train"] & people["val"]) and not (people["train"] & people["test"])\
        and not (people["val"] & people["test"])
    assert {split: len(p) for split, p in people.items()} == metrics["num_groups"]


def test_group_pattern_must_match_every_file_and_leave_enough_groups(tmp_path):
    raw = make_folder(tmp_path / "raw", {"a": 12, "b": 12})
    with pytest.raises(DataError, match=r"00000.png: preprocess.group_pattern '\^person' does not match"):
        preprocess.prepare_folder(raw, tmp_path / "out", image_size=8, val_fraction=0.1, test_fraction=0.1, seed=0,
                                  group_pattern="^person", progress=False)
    with pytest.raises(DataError, match="groups are too few to hold out"):
        preprocess.prepare_folder(raw, tmp_path / "out", image_size=8, val_fraction=0.1, test_fraction=0.1, seed=0,
                                  group_pattern=r"^000[01]", progress=False)  # two groups (0000x and 0001x) for 24 files
    assert not (tmp_path / "out").exists()


def test_hidden_folders_and_loose_files_are_named_in_the_log_and_metrics(tmp_path):
    """A `.rejected` class folder, a .DS_Store and a loose README were once dropped without a word (36 files read,
    12 dropped): the stage still ignores them, and says which."""
    raw = make_folder(tmp_path / "data" / "raw", {"cat": 10, "dog": 10, ".rejected": 6})
    (raw / "cat" / ".DS_Store").write_bytes(b"\0\1")
    (raw / "README.txt").write_text("scans from site A\n")
    write_params(tmp_path)
    code, output = run_stage(tmp_path, stage_env(tmp_path))
    assert code == 0, output[-3000:]
    assert "ignoring 3 entries" in output and "data/raw/.rejected" in output
    metrics = json.loads((tmp_path / "metrics" / "preprocess.json").read_text())
    assert set(metrics["ignored_entries"]) == {"data/raw/.rejected", "data/raw/README.txt", "data/raw/cat/.DS_Store"}
    assert sum(metrics["num_images"].values()) == 20 and metrics["num_classes"] == 2


def test_a_disk_too_full_for_the_prepared_images_is_refused_before_writing(tmp_path, monkeypatch):
    """A 20 MB tmpfs under data/ at image_size 256 once killed preprocess with SIGBUS (a memory-mapped write),
    no message, and a staging folder left filling the disk. Free space is checked against the known size first."""
    import shutil
    from collections import namedtuple

    from tinygray.pipeline.atomic import NotEnoughSpace

    raw = make_folder(tmp_path / "raw", {"a": 12, "b": 12})
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2**30, 2**30 - 100_000, 100_000))
    with pytest.raises(NotEnoughSpace, match=r"out: 24 images at 256x256 px needs about 3\.0 MiB .* 0\.1 MiB free"):
        preprocess.prepare_folder(raw, tmp_path / "out", image_size=256, val_fraction=0.1, test_fraction=0.1, seed=0,
                                  progress=False)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".tmp-*"))
    preprocess.prepare_folder(raw, tmp_path / "out", image_size=32, val_fraction=0.1, test_fraction=0.1, seed=0,
                              progress=False)  # 48 KiB fits


def test_a_group_pattern_that_puts_a_whole_class_in_one_group_is_refused(tmp_path):
    """Every cat file in group catA, every other file its own group: the run once exited 0 with no cat in train
    and all 12 in test (39% of the data instead of 10%)."""
    raw = make_folder(tmp_path / "raw", {"cat": 12, "dog": 12, "eel": 12})
    for path in sorted(raw.glob("*/*.png")):
        group = "catA" if path.parent.name == "cat" else f"{path.parent.name}{path.stem}"
        path.rename(path.with_name(f"{group}_{path.name}"))
    with pytest.raises(DataError, match=r"group_pattern .*class 'cat' has no image in the .* split.*12 images fall in "
                                        r"1 group\(s\) \('catA'\)"):
        preprocess.prepare_folder(raw, tmp_path / "out", image_size=8, val_fraction=0.1, test_fraction=0.1, seed=0,
                                  group_pattern=r"^([a-z]+[A-Z0-9]+)_", progress=False)
    assert not (tmp_path / "out").exists()


def test_the_readme_own_data_block_works_pasted_into_a_fresh_clone(tmp_path):
    """README, 'Your own data': its command block, in order, in a fresh clone of this repository, with the
    user's photos replaced by a tiny folder, the two commented edits made with sed, and `dvc repro` run up to
    preprocess (the rest of the pipeline is the end-to-end test's). The clone's .venv is this one, linked, and
    `make setup` is left out: it would reinstall the package from the clone into it."""
    import re
    import subprocess

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own data", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    if (REPO / ".venv").is_dir():
        (clone / ".venv").symlink_to(REPO / ".venv")
    photos = tmp_path / "photos"
    make_folder(photos, {"cats": 12, "dogs": 12})
    for folder in ("cats", "dogs"):
        for png in (photos / folder).glob("*.png"):
            png.rename(png.with_suffix(".jpg"))  # PIL reads them by content: the suffix is what the README copies
    assert block.startswith("make setup && source .venv/bin/activate")
    script = block.replace("make setup && source .venv/bin/activate", "source .venv/bin/activate", 1)
    script = script.replace("~/photos", str(photos))
    script = script.replace("# params.yaml:  preprocess.dataset: folder",
                            "sed -i 's/^  dataset: mnist /  dataset: folder /' params.yaml #")
    script = script.replace("# dvc.yaml:     uncomment `- ${preprocess.image_dir}`",
                            "sed -i 's|^      # - ${preprocess.image_dir}|      - ${preprocess.image_dir}|' dvc.yaml #")
    script = re.sub(r"^dvc repro$", "dvc repro preprocess", script, flags=re.MULTILINE)
    git_identity = "git config user.name test && git config user.email test@example.com\n"
    env = {**stage_env(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", git_identity + script], cwd=clone, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert prepared.read_class_names(clone / "data" / "prepared") == ["cat", "dog"]
    assert "Results on my images" in subprocess.run(["git", "log", "--oneline"], cwd=clone, capture_output=True,
                                                     text=True).stdout
