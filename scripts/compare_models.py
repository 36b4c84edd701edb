"""Two models (.keras or .tflite files) on the same prepared test images: each one's accuracy with its 95% Wilson interval, and
McNemar's exact test of the difference (tinygray.evaluate.stats). For comparisons the pipeline does not make itself,
such as an ImageNet teacher against a `cnn` teacher trained from scratch on the same split:

    python scripts/compare_models.py imagenet_teacher.keras cnn_teacher.keras [--prepared data/prepared] [--json out.json]

or the shipped file of one run against another's (old_shipped.tflite new_shipped.tflite), as the LiteRT
interpreter runs it.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from tinygray.pipeline import layout


def right_answers(path: Path, images, labels):
    """Per image: whether the model file gets it right, a .tflite file as the LiteRT interpreter runs it."""
    if path.suffix == ".tflite":
        from tinygray.litert import TFLiteModel

        return TFLiteModel(path).predict(images).argmax(axis=1) == labels
    from tinygray.compress import qat  # noqa: F401  qat: registers the layers of a qat.keras file
    from tinygray.models.files import load_model

    return load_model(path).predict(images, batch_size=64, verbose=0).argmax(axis=1) == labels


def compare(paths: list[Path], prepared_dir: Path) -> dict:
    import numpy as np

    from tinygray.data import prepared
    from tinygray.evaluate import stats

    images, labels = prepared.read_split(prepared_dir, "test")
    correct, result = {}, {"test_images": int(len(labels)), "models": {}}
    for path in paths:
        correct[path] = right_answers(path, np.asarray(images), labels)
        low, high = stats.wilson_interval(int(correct[path].sum()), len(labels))
        result["models"][str(path)] = {"accuracy": round(float(correct[path].mean()), 4),
                                       "interval_95": [round(low, 4), round(high, 4)]}
    result["mcnemar"] = stats.mcnemar(correct[paths[0]], correct[paths[1]])  # b01: first wrong, second right
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs=2, type=Path)
    parser.add_argument("--prepared", type=Path, default=layout.PREPARED)
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args()
    for path in args.models:
        if not path.is_file():
            parser.error(f"{path}: no such model file")
    result = compare(args.models, args.prepared)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
