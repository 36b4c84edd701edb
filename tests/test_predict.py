"""tinygray.predict: image files in, the pipeline's preprocessing, the model's answer out; and the contract file
that tells a phone developer how to call the shipped .tflite."""
import csv
import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest
from PIL import Image

from tinygray import predict, quantization
from tinygray.image_folder import load_grayscale


@pytest.fixture
def int8_model(tmp_path, trained_digits_cnn, digits_split):
    path = tmp_path / "digits_int8.tflite"
    representative = quantization.representative_dataset(digits_split["train"][0], 50, seed=0)
    path.write_bytes(quantization.convert(trained_digits_cnn, "int8", representative=representative))
    return path


def test_contract_says_how_to_call_the_int8_model(tmp_path, int8_model):
    contract = predict.write_contract(int8_model, predict.contract_for(int8_model), [str(c) for c in range(10)],
                                      preprocessing={"image_size": 8})
    assert json.loads(predict.contract_for(int8_model).read_text()) == contract
    assert contract["classes"] == [str(c) for c in range(10)] and contract["model"] == "digits_int8.tflite"
    assert contract["input"]["shape"] == [1, 8, 8, 1] and contract["input"]["dtype"] == "int8"
    assert contract["output"]["dtype"] == "int8" and contract["output"]["shape"] == [1, 10]
    model = quantization.TFLiteModel(int8_model)
    assert (contract["input"]["scale"], contract["input"]["zero_point"]) == pytest.approx(model.input["quantization"])
    assert 0 < contract["output"]["scale"] and -128 <= contract["output"]["zero_point"] <= 127


def test_predict_agrees_with_the_interpreter_on_the_same_images(tmp_path, int8_model, digits_split):
    images, labels = digits_split["test"]
    folder = tmp_path / "images"
    for i, image in enumerate(images[:40]):
        (folder / str(labels[i])).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image[..., 0]).save(folder / str(labels[i]) / f"{i:03d}.png")
    predict.write_contract(int8_model, predict.contract_for(int8_model), [f"digit {c}" for c in range(10)], {})
    out = io.StringIO()
    with redirect_stdout(out):
        assert predict.main([str(int8_model), str(folder), "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 40 and list(rows[0])[:3] == ["path", "class", "digit 0"]
    files = [folder / row["path"].split(str(folder) + "/")[1] for row in rows]
    pixels = np.stack([load_grayscale(path, 8) for path in files])[..., None]
    expected = quantization.TFLiteModel(int8_model).predict(pixels).argmax(axis=1)
    assert [row["class"] for row in rows] == [f"digit {c}" for c in expected]
    probabilities = np.array([[float(row[f"digit {c}"]) for c in range(10)] for row in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    correct = np.mean([row["class"] == f"digit {path.parent.name}" for row, path in zip(rows, files)])
    assert correct > 0.8  # the class names are in output order: the answers are right


def test_predict_refuses_what_it_cannot_read(tmp_path, int8_model):
    with pytest.raises(SystemExit, match="no such image file or folder"):
        predict.main([str(int8_model), str(tmp_path / "nowhere")])
    with pytest.raises(SystemExit, match="model file not found"):
        predict.main([str(tmp_path / "missing.tflite"), str(tmp_path)])
    (tmp_path / "names.json").write_text(json.dumps(["a", "b"]))
    (tmp_path / "x.png").write_bytes(b"")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    with pytest.raises(SystemExit, match="2 class names for a model with 10 outputs"):
        predict.main([str(int8_model), str(tmp_path / "x.png"), "--classes", str(tmp_path / "names.json")])
