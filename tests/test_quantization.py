import numpy as np
import pytest

from tinygray import litert
from tinygray.compress import tflite
from conftest import accuracy


def test_int8_round_trip_keeps_accuracy(tmp_path, trained_digits_cnn, digits_split):
    images, labels = digits_split["test"]
    train_images, _ = digits_split["train"]
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(tflite.convert(
        trained_digits_cnn, "int8", representative=tflite.representative_dataset(train_images, 100, seed=0)))
    model = litert.TFLiteModel(path)
    assert model.input["dtype"] == np.int8 and model.output["dtype"] == np.int8
    keras_logits = trained_digits_cnn.predict(images, verbose=0)
    tflite_logits = model.predict(images, batch_size=64)
    assert tflite_logits.shape == keras_logits.shape
    assert accuracy(keras_logits, labels) > 0.85
    assert np.mean(tflite_logits.argmax(1) == keras_logits.argmax(1)) > 0.95
    assert accuracy(tflite_logits, labels) >= accuracy(keras_logits, labels) - 0.03


@pytest.mark.parametrize("mode", ["float32", "dynamic_range", "float16"])
def test_float_modes_match_keras(tmp_path, trained_digits_cnn, digits_split, mode):
    images, _ = digits_split["test"]
    path = tmp_path / f"model_{mode}.tflite"
    path.write_bytes(tflite.convert(trained_digits_cnn, mode))
    tflite_logits = litert.TFLiteModel(path).predict(images)
    keras_logits = trained_digits_cnn.predict(images, verbose=0)
    assert np.mean(tflite_logits.argmax(1) == keras_logits.argmax(1)) > 0.97


def test_int8_without_representative_data_is_refused(trained_digits_cnn):
    with pytest.raises(ValueError, match="representative"):
        tflite.convert(trained_digits_cnn, "int8")


def test_latency_returns_one_time_per_run(tmp_path, trained_digits_cnn, digits_split):
    path = tmp_path / "m.tflite"
    path.write_bytes(tflite.convert(trained_digits_cnn, "float32"))
    times = litert.TFLiteModel(path).latency_ms(digits_split["test"][0][0], warmup_runs=2, timed_runs=7)
    assert times.shape == (7,) and (times > 0).all()


def test_int8_gate_fails_only_a_real_loss_beyond_the_budget():
    from tinygray.compress.tflite import int8_gate

    float_correct = np.ones(80, bool)
    two_lost = float_correct.copy()
    two_lost[:2] = False  # 2.5 points on 80 images: over a 2-point budget, but 2 of 80 is chance (p = 0.5)
    assert int8_gate(two_lost, float_correct, 0.02)["passed"]
    twelve_lost = float_correct.copy()
    twelve_lost[:12] = False  # 15 points, p = 2 * 0.5**12
    gate = int8_gate(twelve_lost, float_correct, 0.02)
    assert not gate["passed"] and gate["accuracy_delta"] == -0.15 and gate["p_value"] < 0.001
    assert int8_gate(twelve_lost, float_correct, 0.2)["passed"]  # a real loss, but within the budget
