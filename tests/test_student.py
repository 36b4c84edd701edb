import numpy as np
import pytest

from tinygray.train import student
from tinygray.data.augment import Augmentation
from tinygray.distill.losses import pack_targets
from tinygray.pipeline.history import history_files, write_history
from tinygray.pipeline.params import TrainStudent

P = TrainStudent(num_seeds=2, widths=[4, 8], convs_per_block=1, input_size=None, teacher_blocks=None, backend="tensorflow", temperature=4.0,
                 alpha=0.5, dkd_beta=None, assistants=[[8, 8]], epochs=2, batch_size=128, learning_rate=0.01, patience=5,
                 schedule="plateau", teacher_in_loop=False, mixup=0.0)
SEED = 7  # params.yaml's global seed in these tests


def changed(p: TrainStudent, **values) -> TrainStudent:
    """P with some values changed, validated like params.yaml."""
    return TrainStudent.model_validate({**p.values(), **values})


VIEWS = Augmentation(views=2, max_rotation=10, max_shift=0.1, max_scale=0.1, seed=7)
SCRATCH_LOSS = "sparse_categorical_crossentropy"


def test_seeds_start_at_the_global_seed():
    assert student.seeds(P, SEED) == [7, 8]


def test_train_seeds_writes_one_model_per_seed_and_the_selected_one(tmp_path, digits_split):
    (x, y), (vx, vy) = digits_split["train"], digits_split["val"]
    metrics, histories = student.train_seeds((x, y), (vx, vy), 10, P, SEED, student.Setup(SCRATCH_LOSS), VIEWS,
                                             tmp_path / "scratch", tmp_path / "scratch.keras", tmp_path / "history.csv")
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == ["seed_7.keras", "seed_8.keras"]
    assert list(metrics["seeds"]) == ["7", "8"]
    selected = str(metrics["selected_seed"])
    assert selected == student.select_seed(metrics["seeds"])
    assert metrics["val_accuracy"] == metrics["seeds"][selected]["val_accuracy"]
    assert (tmp_path / "scratch.keras").read_bytes() == (tmp_path / "scratch" / f"seed_{selected}.keras").read_bytes()
    assert (tmp_path / "history.csv").read_text().startswith("epoch,phase,")
    assert sorted(histories) == ["7", "8"] and len(histories["7"]["val_accuracy"]) == metrics["seeds"]["7"]["epochs"]


def test_the_seed_with_the_best_validation_accuracy_is_selected():
    def seed(accuracy, loss):
        return {"val_accuracy": accuracy, "val_loss": loss}

    assert student.select_seed({"42": seed(0.864, 0.5), "43": seed(0.876, 0.6), "44": seed(0.894, 0.7)}) == "44"
    assert student.select_seed({"42": seed(0.9, 0.5), "43": seed(0.9, 0.4)}) == "43"  # tie: lower val loss
    assert student.select_seed({"42": seed(0.9, 0.5), "43": seed(0.9, 0.5)}) == "42"  # full tie: first seed


def test_assistant_chain_hands_on_its_own_logits_for_every_view(digits_split):
    (x, y), (vx, vy) = digits_split["train"], digits_split["val"]
    teacher = np.stack([pack_targets(y, np.eye(10, dtype=np.float32)[y] * 5)] * VIEWS.views)
    train, val, assistants = student.assistant_chain(
        (x, teacher), (vx, pack_targets(vy, np.eye(10, dtype=np.float32)[vy] * 5)), 10, P, SEED, VIEWS)
    assert list(assistants) == ["assistant_8x8"]
    assert train[0] is x and train[1].shape == teacher.shape
    np.testing.assert_array_equal(train[1][..., :10], teacher[..., :10])  # the labels stay
    assert not np.allclose(train[1][..., 10:], teacher[..., 10:])  # the logits are the assistant's
    assert not np.allclose(train[1][0, :, 10:], train[1][1, :, 10:])  # one set per view
    assert val[1].shape == (len(vy), 20)


def test_history_is_written_as_csv_and_png(tmp_path):
    write_history(tmp_path / "h.csv", {"accuracy": [0.5, 0.7], "val_accuracy": [0.4, 0.6], "loss": [2.0, 1.0],
                                       "val_loss": [2.1, 1.2]}, {"accuracy": [0.8], "val_accuracy": [0.7],
                                                                 "loss": [0.5], "val_loss": [0.9]})
    csv_file, png = history_files(tmp_path / "h.csv")
    assert csv_file.read_text().splitlines()[3].startswith("3,1,")  # epochs numbered on across phases
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_student_follows_the_image_size():
    """One stride-2 stem convolution per doubling above 32 px: the last block sees an 8x8 (or 7x7) map of the
    whole image at every size, and the parameter count stays phone-class."""
    import keras

    from tinygray.compress.filter_pruning import prune_filters

    assert [student.stem_downsamples(s) for s in (28, 32, 33, 64, 128, 256)] == [0, 0, 1, 1, 2, 3]
    for size, stems in ((28, 0), (64, 1), (128, 2), (256, 3)):
        model = student.build((size, size, 1), 2, [12, 24, 32])
        assert sum(layer.name.startswith("stem") and isinstance(layer, keras.layers.Conv2D)
                   for layer in model.layers) == stems
        assert model.get_layer("pool").input.shape[1] <= 8 and model.count_params() < 15_000
        pruned = prune_filters(model, 0.25)  # the stem is a plain chain too
        assert pruned.count_params() < model.count_params()
        x = np.random.default_rng(0).integers(0, 255, (2, size, size, 1)).astype("float32")
        assert pruned.predict(x, verbose=0).shape == (2, 2)


def test_a_student_with_its_own_input_size_takes_the_full_image_and_works_at_its_own_size():
    """train_student.input_size: the image is averaged down inside the model, so the network behind it is the
    one built for the smaller size (same stems, same parameters) while the phone model takes full images."""
    import keras

    full, small = student.build((224, 224, 1), 4, [12, 24, 32], 1, 56), student.build((56, 56, 1), 4, [12, 24, 32])
    assert full.input_shape == (None, 224, 224, 1) and full.get_layer("downscale").pool_size == (4, 4)
    assert full.count_params() == small.count_params()
    assert full.get_layer("pool").input.shape == small.get_layer("pool").input.shape
    flat = np.full((1, 224, 224, 1), 200, np.float32)  # averaging keeps a flat image flat
    assert np.allclose(keras.Model(full.input, full.get_layer("downscale").output)(flat), 200 / 255)
    assert "downscale" not in [layer.name for layer in student.build((56, 56, 1), 4, [12, 24, 32], 1, None).layers]
    for bad in (50, 300):
        with pytest.raises(ValueError, match=r"'train_student.input_size' \(%d\) must divide 'preprocess.image_size' \(224\)" % bad):
            student.build((224, 224, 1), 4, [12, 24, 32], 1, bad)


def test_cosine_schedule_runs_every_epoch_and_keeps_the_best_on_validation(digits_split):
    from tinygray.train import loop

    (x, y), val = digits_split["train"], digits_split["val"]
    cosine = changed(P, schedule="cosine", epochs=4, patience=1)  # patience 1 would stop a plateau run early
    model, metrics, history = student.train_one([4, 8], (x, y), val, 10, cosine, 7, student.Setup(SCRATCH_LOSS), VIEWS)
    assert metrics["epochs"] == 4 and len(history["val_accuracy"]) == 4
    assert metrics["val_accuracy"] == round(max(history["val_accuracy"]), 4)
    assert float(model.optimizer.learning_rate) < 1e-6  # decayed to zero at the last step
    import pytest

    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        loop.fit(model, (x, y), val, loss="mse", metric=loop.accuracy_metric(), epochs=1, batch_size=8,
                 learning_rate=0.1, seed=0, patience=1, schedule="step")


def test_teacher_in_the_loop_trains_only_the_student_against_the_teacher_of_each_batch(tmp_path, digits_split,
                                                                                   trained_digits_cnn):
    """Function matching: the teacher labels the mixed, freshly augmented batch itself; its weights never move."""
    from tinygray.data import prepared
    from tinygray.models.files import save_model

    prepared_dir = tmp_path / "prepared"
    prepared.write_prepared(prepared_dir, {split: digits_split[split] for split in ("train", "val")}, [str(c) for c in range(10)])
    save_model(trained_digits_cnn, tmp_path / "teacher.keras")
    online = changed(P, teacher_in_loop=True, mixup=0.4, epochs=6, assistants=[])
    still = Augmentation(views=2, seed=7)  # the conftest teacher never saw moved 8-px digits: 29% right on them
    train, val, setup, views = student.distillation_inputs(prepared_dir, None, tmp_path / "teacher.keras", None, still,
                                                           online, 10)
    assert setup.teacher is not None and setup.mixup == 0.4 and views.views == 6  # a fresh view every epoch
    assert train[1].shape == (len(digits_split["train"][1]), 10)  # one-hot labels, no stored logits
    teacher_before = [w.copy() for w in setup.teacher.get_weights()]
    model, metrics, history = student.train_one([4, 8], train, val, 10, online, 7, setup, views)
    assert model.name == "student" and model.output_shape == (None, 10) and metrics["epochs"] == 6
    for before, after in zip(teacher_before, setup.teacher.get_weights()):
        np.testing.assert_array_equal(before, after)
    assert history["loss"][-1] < 0.9 * history["loss"][0] and metrics["val_accuracy"] > 0.25  # it learns
    scratch_train, _, scratch_setup, scratch_views = student.scratch_inputs(prepared_dir, None, still, online, 10)
    assert scratch_setup.mixup == 0.4 and scratch_views.views == 6 and scratch_train[1].shape == train[1].shape


def test_mixup_blends_images_and_targets_alike_and_reproducibly():
    from tinygray.train import loop

    images = np.stack([np.full((2, 2, 1), 10 * k, np.uint8) for k in range(8)])
    targets = np.eye(8, dtype=np.float32)
    batches = loop.Batches(images, targets, 8, seed=3, mixup=0.5)
    x, y = batches[0]
    assert np.allclose(y.sum(axis=1), 1.0) and not np.allclose(y, np.eye(8)[np.argmax(y, 1)])
    # each blended image is the blend of the two images its target names, with the same weights
    np.testing.assert_allclose(x[:, 0, 0, 0], y @ (10.0 * np.arange(8)), rtol=1e-5)
    np.testing.assert_array_equal(loop.Batches(images, targets, 8, seed=3, mixup=0.5)[0][0], x)


JAX_TRAINING = """
import sys
from tinygray.train import backend
backend.select("jax")
import keras
import numpy as np
from sklearn.datasets import load_digits
from tinygray.models.files import load_model, save_model
from tinygray.train import student
from tinygray.data.augment import Augmentation
digits = load_digits()
images, labels = (digits.images * 16).clip(0, 255).astype("uint8")[..., None], digits.target
train, val = (images[:600], labels[:600]), (images[600:800], labels[600:800])
from tinygray.pipeline.params import TrainStudent
p = TrainStudent(num_seeds=1, widths=[4, 8], convs_per_block=1, input_size=None, teacher_blocks=None, backend="tensorflow", temperature=2.0,
                 alpha=0.5, dkd_beta=None, assistants=[], epochs=8, batch_size=64, learning_rate=0.01, patience=8,
                 schedule="plateau", teacher_in_loop=False, mixup=0.0)
views = Augmentation(views=2, max_rotation=10, max_shift=0.1, max_scale=0.1, seed=7)
for path in sys.argv[1:]:
    model, metrics, _ = student.train_one([4, 8], train, val, 10, p, 7, student.Setup(keras.losses.SparseCategoricalCrossentropy(from_logits=True)), views)
    save_model(model, path)
print(backend.current(), metrics["val_accuracy"])
"""


def test_a_student_trained_under_jax_is_the_same_twice_and_its_file_runs_under_tensorflow(tmp_path):
    """train_student.backend: jax. The same seed gives the same bytes (dvc repro -f changes nothing), and the
    .keras file is backend-neutral: this process, on TensorFlow, loads it for pruning and conversion."""
    import subprocess
    import sys

    import keras

    from tinygray.models.files import load_model

    first, second = tmp_path / "first.keras", tmp_path / "second.keras"
    result = subprocess.run([sys.executable, "-c", JAX_TRAINING, str(first), str(second)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    name, accuracy = result.stdout.splitlines()[-1].split()
    assert name == "jax" and float(accuracy) > 0.3
    assert first.read_bytes() == second.read_bytes()
    assert keras.backend.backend() == "tensorflow"
    model = load_model(first)
    x = np.random.default_rng(0).integers(0, 255, (4, 8, 8, 1)).astype("float32")
    assert model.predict(x, verbose=0).shape == (4, 10)


def test_the_backend_cannot_change_once_keras_is_loaded():
    import keras

    from tinygray.train import backend

    assert keras.backend.backend() == "tensorflow"
    backend.select("tensorflow")  # already so: nothing to do
    with pytest.raises(RuntimeError, match="already loaded on the tensorflow backend"):
        backend.select("jax")
    with pytest.raises(ValueError, match="'train_student.backend'"):
        backend.select("torch")
