"""tinygray.predict: image files in, the pipeline's preprocessing, the model's answer out; and the contract file
that tells a phone developer how to call the shipped .tflite."""
import csv
import io
import json
from contextlib import redirect_stdout

import numpy as np
import pytest
from PIL import Image

from tinygray import litert, predict
from tinygray.compress import tflite
from tinygray.data.folders import load_grayscale


@pytest.fixture
def int8_model(tmp_path, trained_digits_cnn, digits_split):
    path = tmp_path / "digits_int8.tflite"
    representative = tflite.representative_dataset(digits_split["train"][0], 50, seed=0)
    path.write_bytes(tflite.convert(trained_digits_cnn, "int8", representative=representative))
    return path


def test_contract_says_how_to_call_the_int8_model(tmp_path, int8_model):
    contract = predict.write_contract(int8_model, predict.contract_for(int8_model), [str(c) for c in range(10)],
                                      preprocessing={"image_size": 8})
    assert json.loads(predict.contract_for(int8_model).read_text()) == contract
    assert contract["classes"] == [str(c) for c in range(10)] and contract["model"] == "digits_int8.tflite"
    assert contract["input"]["shape"] == [1, 8, 8, 1] and contract["input"]["dtype"] == "int8"
    assert contract["output"]["dtype"] == "int8" and contract["output"]["shape"] == [1, 10]
    model = litert.TFLiteModel(int8_model)
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
    expected = litert.TFLiteModel(int8_model).predict(pixels).argmax(axis=1)
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


def run_predict(*argv) -> tuple[int, str, str]:
    from contextlib import redirect_stderr

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = predict.main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def test_the_contract_beside_the_model_wins_over_the_working_folder(tmp_path, int8_model, monkeypatch):
    """Run from a folder whose data/prepared/classes.json lists other classes, predict once answered `zebra` with
    no warning. The model's own contract names its classes; without one, the fallback says where names came from."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "prepared").mkdir(parents=True)
    (tmp_path / "data" / "prepared" / "classes.json").write_text(json.dumps([f"zebra {c}" for c in range(10)]))
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    code, out, err = run_predict(int8_model, tmp_path / "x.png")
    assert code == 0 and "zebra" in out and "no contract beside" in err and "data/prepared/classes.json" in err
    assert "squashing" in err  # nor how to make images square
    predict.write_contract(int8_model, predict.contract_for(int8_model), [f"digit {c}" for c in range(10)],
                           predict.preprocessing(8, "pad"))
    code, out, err = run_predict(int8_model, tmp_path / "x.png")
    assert code == 0 and "digit" in out and "zebra" not in out and err == ""


def test_a_contract_that_is_corrupt_or_belongs_to_another_model_is_refused_by_name(tmp_path, int8_model):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    contract = predict.contract_for(int8_model)
    contract.write_text("{not json")
    with pytest.raises(SystemExit, match=r"digits_int8\.tflite\.contract\.json: cannot read the model's contract"):
        run_predict(int8_model, tmp_path / "x.png")
    predict.write_contract(int8_model, contract, ["a", "b", "c"], {})
    with pytest.raises(SystemExit, match="3 classes for a model with 10 outputs: this contract belongs to another"):
        run_predict(int8_model, tmp_path / "x.png")
    written = predict.write_contract(int8_model, contract, [str(c) for c in range(10)], {})
    contract.write_text(json.dumps({**written, "input": {**written["input"], "shape": [1, 28, 28, 1]}}))
    with pytest.raises(SystemExit, match=r"input shape \[1, 28, 28, 1\] for a model that takes 8x8 images"):
        run_predict(int8_model, tmp_path / "x.png")


def test_a_file_that_is_not_a_model_is_refused_by_name(tmp_path):
    fake = tmp_path / "random.tflite"
    fake.write_bytes(np.random.default_rng(0).integers(0, 255, 4096, dtype=np.uint8).tobytes())
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    with pytest.raises(SystemExit, match=r"random\.tflite: not a TFLite model the LiteRT interpreter can load"):
        run_predict(fake, tmp_path / "x.png")


def test_one_unreadable_image_does_not_cost_the_others_their_answer(tmp_path, int8_model, digits_split):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, image in enumerate(digits_split["test"][0][:3]):
        Image.fromarray(image[..., 0]).save(folder / f"{i}.png")
    (folder / "1b_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    predict.write_contract(int8_model, predict.contract_for(int8_model), [str(c) for c in range(10)], {})
    code, out, err = run_predict(int8_model, folder)
    assert code == 1
    assert [line.split(":")[0] for line in out.splitlines()] == [str(folder / f"{i}.png") for i in range(3)]
    assert "1b_broken.png: unreadable, no answer" in err and "1 of 4 images unreadable" in err


def test_a_class_name_with_a_newline_stays_on_its_images_one_line(tmp_path, int8_model, digits_split):
    """A class folder named with a newline made predict print 3 lines per image (issue 48, also seen)."""
    images, _ = digits_split["test"]
    for i, image in enumerate(images[:3]):
        Image.fromarray(image[..., 0]).save(tmp_path / f"{i}.png")
    predict.write_contract(int8_model, predict.contract_for(int8_model), [f"digit\n{c}" for c in range(10)], {})
    out = io.StringIO()
    with redirect_stdout(out):
        assert predict.main([str(int8_model), *(str(tmp_path / f"{i}.png") for i in range(3))]) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and all("digit\\n" in line for line in lines)
