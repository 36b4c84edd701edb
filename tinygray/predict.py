"""Run any variant on image files, with exactly the pipeline's preprocessing.

    python -m tinygray.predict MODEL IMAGE_OR_FOLDER... [--csv] [--classes FILE]
    tinygray-predict MODEL IMAGE_OR_FOLDER...      (the same, as the console script pip installs)

MODEL is a .tflite (run through the LiteRT interpreter, as on a phone) or a .keras file. Every image is read
as the pipeline reads an image folder (tinygray.data.folders.load_grayscale: 8-bit BT.601 luma, made square
as the contract file says, or --resize, and resized to the model's input with PIL's bilinear filter);
folders are searched recursively. Prints one line per image:
the predicted class and the probability of each class (softmax of the logits), or CSV with --csv. Class
names come from --classes, else the contract file beside the model (contract_for: the quantize stage writes
one beside every .tflite), else data/prepared/classes.json with a warning, else the class indices. A contract
that does not fit the model is refused; unreadable images are listed on stderr after every readable one is
answered (exit status 1).
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

from tinygray.data.folders import IMAGE_EXTENSIONS, RESIZE_MODES, BadImageError, load_grayscale
from tinygray.pipeline import layout

CONTRACT_SUFFIX = ".contract.json"


def contract_for(model_path: Path | str) -> Path:
    """Where the contract of a model file lives: beside it, `<file>.contract.json`."""
    return Path(f"{model_path}{CONTRACT_SUFFIX}")


def write_contract(tflite_path: Path | str, out: Path | str, class_names: list[str], preprocessing: dict) -> dict:
    """What a phone developer needs to call the .tflite: class names in output order, input shape, channel
    count, pixel range, and the int8 scale and zero point of input and output (real = scale * (q - zero))."""
    from tinygray.litert import TFLiteModel

    model = TFLiteModel(tflite_path)

    def tensor(details):
        scale, zero_point = details["quantization"]
        return {"shape": [int(n) for n in details["shape"]], "dtype": np.dtype(details["dtype"]).name,
                "scale": float(scale), "zero_point": int(zero_point)}

    contract = {
        "model": Path(tflite_path).name,
        "classes": list(class_names),
        "input": {**tensor(model.input), "layout": "NHWC, one channel (gray)", "pixels": "0..255 (8-bit gray)",
                  "quantize": "q = round(pixel / scale + zero_point), clipped to the dtype's range; a float32 "
                              "input takes the raw 0..255 pixels, the model rescales them itself"},
        "output": {**tensor(model.output), "meaning": "logits in class order; softmax gives probabilities; "
                                                      "real = scale * (q - zero_point)"},
        "preprocessing": preprocessing,
    }
    Path(out).write_text(json.dumps(contract, indent=2) + "\n")
    return contract


def preprocessing(image_size: int, resize: str) -> dict:
    """How the pipeline made an image into the model's input, for the contract."""
    return {"image_size": int(image_size), "gray": "8-bit ITU-R BT.601 luma, alpha dropped", "resize": resize,
            "resize_filter": "PIL bilinear"}


def softmax(logits) -> np.ndarray:
    """Probabilities from logits, row by row (numpy alone: scipy's costs a second of import for one line)."""
    shifted = np.asarray(logits, dtype=np.float64)
    shifted = np.exp(shifted - shifted.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SystemExit(f"{path}: cannot read the {what} ({error})") from None


def read_contract(model_path: Path, size: int, num_classes: int) -> dict | None:
    """The contract beside the model, checked against it (input side, number of outputs), or None."""
    path = contract_for(model_path)
    if not path.is_file():
        return None
    contract = read_json(path, "model's contract")
    if not isinstance(contract, dict) or not isinstance(contract.get("classes"), list):
        raise SystemExit(f"{path}: not a model contract (a JSON object with a 'classes' list)")
    if len(contract["classes"]) != num_classes:
        raise SystemExit(f"{path}: {len(contract['classes'])} classes for a model with {num_classes} outputs: this "
                         f"contract belongs to another model")
    shape = contract.get("input", {}).get("shape")
    if shape is not None and (len(shape) != 4 or int(shape[1]) != size):
        raise SystemExit(f"{path}: input shape {shape} for a model that takes {size}x{size} images: this contract "
                         "belongs to another model")
    return contract


def class_names(model_path: Path, explicit: Path | None, contract: dict | None, num_classes: int) -> list[str]:
    """--classes, else the model's contract, else the working folder's data/prepared/classes.json (which may be
    another run's: said on stderr), else the class indices."""
    if explicit is not None:
        content = read_json(explicit, "class names")
        names = content.get("classes") if isinstance(content, dict) else content
        source = explicit
    elif contract is not None:
        names, source = contract["classes"], contract_for(model_path)
    elif layout.CLASSES.is_file():
        source = layout.CLASSES
        names = read_json(source, "class names")
        warn(f"no contract beside {model_path} ({contract_for(model_path).name}); class names from {source}, "
             "which belongs to whatever run prepared this folder")
    else:
        warn(f"no contract beside {model_path}; answering class indices")
        return [str(c) for c in range(num_classes)]
    if not isinstance(names, list):
        raise SystemExit(f"{source}: not a list of class names")
    if len(names) != num_classes:
        raise SystemExit(f"{source}: {len(names)} class names for a model with {num_classes} outputs")
    return [str(name) for name in names]


def image_files(arguments: list[str]) -> list[Path]:
    files = []
    for argument in map(Path, arguments):
        if argument.is_dir():
            files += sorted(p for p in argument.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        elif argument.is_file():
            files.append(argument)
        else:
            raise SystemExit(f"{argument}: no such image file or folder")
    if not files:
        raise SystemExit(f"no image files ({' '.join(IMAGE_EXTENSIONS)}) in {' '.join(arguments)}")
    return files


class Predictor:
    """Logits of a .tflite or .keras model for (N, H, W, 1) raw 8-bit pixels; `size` is its input side."""

    def __init__(self, path: Path):
        if path.suffix == ".tflite":
            from tinygray.litert import TFLiteModel

            try:
                self.model = TFLiteModel(path)
            except ValueError as error:  # LiteRT: "Model provided has model identifier ..., should be TFL3"
                raise SystemExit(f"{path}: not a TFLite model the LiteRT interpreter can load ({error})") from None
            self.size = int(self.model.input["shape"][1])
            self.num_classes = int(self.model.output["shape"][-1])
            self.logits = self.model.predict
        else:
            import tinygray.compress.qat  # noqa: F401  registers the layers of a qat.keras file
            from tinygray.models.files import load_model

            try:
                keras_model = load_model(path)
            except (ValueError, OSError) as error:
                raise SystemExit(f"{path}: not a Keras model file this project can load ({error})") from None
            self.size, self.num_classes = int(keras_model.input_shape[1]), int(keras_model.output_shape[-1])
            self.logits = lambda images: keras_model.predict(images, batch_size=256, verbose=0)


def main(argv: list[str] | None = None) -> int:
    command = "tinygray-predict" if Path(sys.argv[0]).name == "tinygray-predict" else "python -m tinygray.predict"
    parser = argparse.ArgumentParser(prog=command, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help=".tflite or .keras file")
    parser.add_argument("images", nargs="+", help="image files or folders")
    parser.add_argument("--csv", action="store_true", help="CSV: path, class, then one probability per class")
    parser.add_argument("--classes", type=Path, help="a JSON list of class names, or a contract file")
    parser.add_argument("--resize", choices=RESIZE_MODES, help="squash, crop or pad non-square images "
                                                               "(default: as the contract file says)")
    args = parser.parse_args(argv)
    if not args.model.is_file():
        raise SystemExit(f"{args.model}: model file not found")
    predictor = Predictor(args.model)
    contract = read_contract(args.model, predictor.size, predictor.num_classes)
    names = class_names(args.model, args.classes, contract, predictor.num_classes)
    files = image_files(args.images)
    resize = args.resize or (contract or {}).get("preprocessing", {}).get("resize")
    if resize is None:
        resize = "squash"
        warn("no contract to say how the training images were made square: squashing (--resize to choose)")
    images, unreadable = [], {}
    for path in files:
        try:
            images.append(load_grayscale(path, predictor.size, resize))
        except BadImageError as error:
            unreadable[path] = error.reason
    files = [path for path in files if path not in unreadable]
    probabilities = softmax(predictor.logits(np.stack(images)[..., np.newaxis])) if images else np.zeros((0, len(names)))
    if args.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(["path", "class", *names])
        for path, row in zip(files, probabilities):
            writer.writerow([str(path), names[int(row.argmax())], *(f"{p:.6f}" for p in row)])
    else:
        for path, row in zip(files, probabilities):
            top = int(row.argmax())
            print(f"{shown(path)}: {shown(names[top])} ({row[top]:.1%})  "
                  + "  ".join(f"{shown(n)} {p:.3f}" for n, p in zip(names, row)))
    for path, reason in unreadable.items():
        print(f"{shown(path)}: unreadable, no answer ({reason})", file=sys.stderr)
    if unreadable:
        print(f"{len(unreadable)} of {len(files) + len(unreadable)} images unreadable", file=sys.stderr, flush=True)
    return 1 if unreadable else 0


def shown(text) -> str:
    """A class name or file name on one line of output: a newline or other control character in it (a class
    folder can be named so) is written escaped (\\n), so each image stays one line; --csv quotes instead."""
    text = str(text)
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


if __name__ == "__main__":
    sys.exit(main())
