import io
import zipfile

import h5py
import numpy as np
import pytest

from tinygray.models.cnn import build_cnn

from tinygray.models.files import ModelFileError, count_params, load_model, save_model


def weight_groups(path):
    """Top-level groups of the weights file inside a .keras archive."""
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5"))) as weights:
        return set(weights.keys())


def test_missing_checkpoint_names_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="student/seed_1.keras"):
        load_model(tmp_path / "student" / "seed_1.keras")


def test_saved_model_has_no_optimizer_state_and_same_outputs(tmp_path, trained_digits_cnn, digits_split):
    compiled_path, clean_path = tmp_path / "compiled.keras", tmp_path / "clean.keras"
    trained_digits_cnn.save(compiled_path)  # compiled, with Adam's two moments per weight
    save_model(trained_digits_cnn, clean_path)
    assert "optimizer" in weight_groups(compiled_path) and "optimizer" not in weight_groups(clean_path)
    assert clean_path.stat().st_size < compiled_path.stat().st_size
    loaded = load_model(clean_path)
    images = digits_split["test"][0][:16]
    np.testing.assert_allclose(loaded.predict(images, verbose=0), trained_digits_cnn.predict(images, verbose=0),
                               rtol=1e-5, atol=1e-5)
    assert not list(tmp_path.glob(".tmp-*"))


def test_count_params_counts_zeros_apart():
    model = build_cnn((8, 8, 1), 3, [2])
    total, nonzero = count_params(model)
    assert total == model.count_params()
    model.get_layer("logits").kernel.assign(np.zeros((2, 3), np.float32))
    assert count_params(model)[1] == nonzero - 6


def test_the_same_weights_give_the_same_bytes(tmp_path):
    """.keras archives record when they were written; save_model fixes those readings (dvc.lock stays put)."""
    import time

    model = build_cnn((8, 8, 1), 3, [4])
    save_model(model, tmp_path / "a.keras")
    time.sleep(2.1)  # zip timestamps have a 2-second resolution
    save_model(model, tmp_path / "b.keras")
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    loaded = load_model(tmp_path / "b.keras")
    np.testing.assert_array_equal(loaded.predict(np.ones((2, 8, 8, 1)), verbose=0),
                                  model.predict(np.ones((2, 8, 8, 1)), verbose=0))
    model.layers[-1].kernel.assign(model.layers[-1].kernel + 1.0)
    save_model(model, tmp_path / "c.keras")
    assert (tmp_path / "c.keras").read_bytes() != (tmp_path / "a.keras").read_bytes()


def test_a_file_that_is_not_a_model_is_named(tmp_path):
    fake = tmp_path / "teacher.keras"
    fake.write_bytes(b"not a zip archive")
    with pytest.raises(ModelFileError, match=r"teacher.keras: cannot be loaded as a Keras model \(ValueError"):
        load_model(fake)


def test_a_lambda_layer_is_refused_naming_the_file_and_runs_nothing(tmp_path):
    import keras

    marker = tmp_path / "ran"
    inputs = keras.Input((2,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ModelFileError, match=r"lambda.keras: cannot be loaded as a Keras model .*safe_mode"):
        load_model(path)
    assert not marker.exists()
