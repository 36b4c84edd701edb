"""Quantization-aware training in Keras 3: BatchNorm folding keeps the outputs, the fake-quant ranges learn
and are frozen into the file, every conv and fully connected op of the result runs int8, and the per-layer
error report finds the layer that quantization hurts most."""
import keras
import numpy as np
import pytest

from tinygray import litert
from tinygray.compress import qat, tflite
from tinygray.train import loop
from tinygray.models.cnn import build_cnn

from conftest import accuracy, randomize_batch_norms


def test_folding_batchnorm_leaves_the_outputs_unchanged(digits_split):
    model = build_cnn((8, 8, 1), 10, [6, 12], convs_per_block=2, stem_downsamples=1)
    randomize_batch_norms(model)
    folded = qat.fold_batchnorm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    images = digits_split["test"][0][:64].astype(np.float32)
    np.testing.assert_allclose(folded.predict(images, verbose=0), model.predict(images, verbose=0), rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def trained_qat(digits_split, trained_digits_cnn, tmp_path_factory):
    """The conftest CNN, folded, fake-quantized, calibrated, fine-tuned 3 epochs, and its int8 file."""
    keras.utils.set_random_seed(0)
    model = qat.quantization_aware(qat.fold_batchnorm(trained_digits_cnn))
    train_images, train_labels = digits_split["train"]
    qat.calibrate(model, train_images[:256])
    calibrated = qat.ranges(model)
    loop.fit(model, (train_images, train_labels), digits_split["val"],
             loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metric=loop.accuracy_metric(),
             epochs=3, batch_size=64, learning_rate=0.001, seed=0)
    path = tmp_path_factory.mktemp("qat") / "qat_int8.tflite"
    path.write_bytes(tflite.convert(model, "int8",
                                    representative=tflite.representative_dataset(train_images, 50, 0)))
    return model, calibrated, path


def test_every_conv_and_fully_connected_op_of_the_file_runs_int8(trained_qat):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    _, _, path = trained_qat
    interpreter = Interpreter(model_path=str(path),
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()
    compute = [op for op in ops if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(compute) == 3  # two convolutions and the logits
    for op in compute:
        activation, weights = (tensors[i] for i in op["inputs"][:2])
        assert activation["dtype"] == np.int8 and weights["dtype"] == np.int8, op
        assert tensors[op["outputs"][0]]["dtype"] == np.int8
    convolution_scales = [len(tensors[op["inputs"][1]]["quantization_parameters"]["scales"]) for op in compute[:2]]
    assert convolution_scales == [8, 16]  # per output channel
    assert interpreter.get_input_details()[0]["dtype"] == np.int8 == interpreter.get_output_details()[0]["dtype"]
    assert not any(op["op_name"] in ("DEQUANTIZE", "FAKE_QUANT") for op in ops)  # nothing left in float


def test_ranges_are_learned_and_frozen_in_the_file(trained_qat):
    model, calibrated, path = trained_qat
    trained = qat.ranges(model)
    assert trained["input_range"] == calibrated["input_range"] == (0.0, 255.0)  # the pixels' range is fixed
    moved = [name for name in trained if trained[name] != calibrated[name]]
    assert len(moved) >= 3  # fine-tuning moved the activation ranges
    low, high = trained["logits_range"]
    scale, _ = litert.TFLiteModel(path).output["quantization"]
    assert scale == pytest.approx((high - low) / 255, rel=0.02)  # the file carries the trained logits range


def test_the_fake_quant_model_and_its_file_agree(trained_qat, digits_split):
    """Within one output quantization step on most images, and the same class on nearly all: the converter
    rounds exactly as the fake-quant ops do, and only accumulation order differs."""
    model, _, path = trained_qat
    images, labels = digits_split["test"]
    keras_logits = model.predict(images.astype(np.float32), verbose=0)
    interpreter = litert.TFLiteModel(path)
    tflite_logits = interpreter.predict(images)
    scale, _ = interpreter.output["quantization"]
    assert np.mean(np.abs(keras_logits - tflite_logits) <= 1.01 * scale) > 0.95
    assert np.mean(keras_logits.argmax(1) == tflite_logits.argmax(1)) > 0.98
    assert accuracy(tflite_logits, labels) > 0.85


def test_the_per_layer_error_report_names_the_layer_quantization_hurts_most(digits_split, tmp_path):
    """One output channel of the second convolution made huge: its per-tensor activation range then leaves
    the other channels a few int8 steps, and that layer is the worst of the report."""
    keras.utils.set_random_seed(0)
    model = build_cnn((8, 8, 1), 10, [8, 16])
    train_images, train_labels = digits_split["train"]
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train_images, train_labels, epochs=3, verbose=0)
    kernel = np.asarray(model.get_layer("block1_conv0").kernel).copy()
    kernel[..., 3] *= 500.0
    model.get_layer("block1_conv0").kernel.assign(kernel)
    representative = tflite.representative_dataset(train_images, 50, 0)
    (tmp_path / "f.tflite").write_bytes(tflite.convert(model, "float32"))
    (tmp_path / "q.tflite").write_bytes(tflite.convert(model, "int8", representative=representative))
    errors = tflite.layer_errors(tmp_path / "f.tflite", tmp_path / "q.tflite", digits_split["val"][0][:64])
    assert [e["name"].split(":")[1] for e in errors] == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "MEAN", "FULLY_CONNECTED"]
    worst = tflite.worst_layer(errors)
    assert worst["name"] == "2:CONV_2D" and worst["layer"].startswith("block1_"), errors  # fused with its ReLU
    assert errors[-1]["snr_db"] < errors[0]["snr_db"]  # errors add up: the last layer has the lowest SNR


def test_strip_gives_the_trained_network_in_plain_float(trained_qat, digits_split):
    model, _, _ = trained_qat
    plain = qat.strip(model)
    assert not any(isinstance(layer, (qat.ActivationRange, qat.QuantizedConv2D, qat.QuantizedDense))
                   for layer in plain.layers)
    images = digits_split["val"][0].astype(np.float32)
    assert np.mean(plain.predict(images, verbose=0).argmax(1) == model.predict(images, verbose=0).argmax(1)) > 0.95
