"""Training images per second of the inherited students and the teacher, per setting, and their FLOPs per image.

Each (model, setting) runs in a fresh process (TensorFlow's determinism and thread settings are global and
fixed at start-up): Keras `fit` on random 224x224 gray images through tinygray's own batches (train.loop.Batches),
`--epochs` epochs of `--images` images, the first epoch (tracing, XLA compilation) left out of the rate.
FLOPs per image are the forward pass's, by TensorFlow's profiler (a training step costs about three times it).

    .venv/bin/python benchmarks/training_throughput.py [--models cut5_112,teacher_160] [--settings today,xla]

Models: cutK_S (the teacher's stem and first K blocks, the student's input averaged down to S px),
wF_S (all 16 blocks at width F/100), teacher_S (EfficientNet-Lite0 at S px, fine-tuning: BatchNorm frozen).
Settings (docs/results.md, 'Where the time goes'): today (deterministic ops, no XLA: the pipeline before
issue 49), fast_ops (deterministic ops off), xla (jit_compile=True; Keras refuses XLA while determinism is on),
and any setting with _bN for batch size N (default 64). Prints one JSON object per line. Not a test.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE_SIDE, CLASSES = 224, 4


def build(model: str):
    import keras

    from tinygray.models import families, teacher_slice
    from tinygray.pipeline.params import TrainTeacher
    from tinygray.train import teacher

    kind, side = model.rsplit("_", 1)
    shape, downscale = (IMAGE_SIDE, IMAGE_SIDE, 1), IMAGE_SIDE // int(side)
    if kind == "teacher":
        p = TrainTeacher.model_construct(backbone="efficientnet_lite0", weights="imagenet", input_size=int(side),
                                         dropout=0.2, cnn_widths=[32], cnn_convs_per_block=1)
        net = teacher.build_teacher(shape, CLASSES, p)
        teacher.set_trainable(teacher.backbone_of(net), pretrained=True, unfreeze_top_layers=None)
        return net
    if kind.startswith("cut"):
        return teacher_slice.build(shape, CLASSES, int(kind[3:]), downscale)
    if kind.startswith("w"):
        p = TrainTeacher.model_construct(backbone="efficientnet_lite0", weights="imagenet", input_size=160,
                                         dropout=0.2, cnn_widths=[32], cnn_convs_per_block=1)
        return families.build(teacher.build_teacher(shape, CLASSES, p), shape, CLASSES, 16, int(kind[1:]) / 100, downscale)
    raise SystemExit(f"unknown model {model!r}")


def forward_flops(net) -> int:
    """Floating-point operations of one image's forward pass (TensorFlow's profiler on the traced graph)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function = tf.function(lambda x: net(x, training=False)).get_concrete_function(
        tf.TensorSpec((1, IMAGE_SIDE, IMAGE_SIDE, 1), tf.float32))
    graph = convert_variables_to_constants_v2(function).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


def measure(model: str, setting: str, images: int, epochs: int) -> dict:
    """One (model, setting) in this process: images per second of training after the first epoch."""
    import keras
    import numpy as np

    from tinygray.train import loop

    batch = int(setting.split("_b")[1]) if "_b" in setting else 64
    keras.utils.set_random_seed(0)
    if setting.startswith("today"):
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    net = build(model)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (images, IMAGE_SIDE, IMAGE_SIDE, 1), dtype=np.uint8)
    y = rng.integers(0, CLASSES, images)
    net.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=setting.startswith("xla"))
    seconds = []
    timer = keras.callbacks.LambdaCallback(on_epoch_begin=lambda e, logs: seconds.append(-time.perf_counter()),
                                           on_epoch_end=lambda e, logs: seconds.__setitem__(-1, seconds[-1] + time.perf_counter()))
    net.fit(loop.Batches(x, y, batch, seed=0), epochs=epochs, verbose=0, callbacks=[timer])
    steady = seconds[1:]
    return {"model": model, "setting": setting, "batch_size": batch, "params": int(net.count_params()),
            "forward_mflops_per_image": round(forward_flops(net) / 1e6, 1),
            "images_per_second": round(images * len(steady) / sum(steady), 1), "first_epoch_s": round(seconds[0], 1),
            "epochs_images_per_second": [round(images / s, 1) for s in steady],
            "cpu": _cpu(), "jit_compile": bool(net.jit_compile)}


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cut5_112,cut8_112,cut5_160,teacher_160")
    parser.add_argument("--settings", default="today,fast_ops,xla")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2, help="settings interleaved, round after round (the machine's "
                        "speed drifts: compare within a round)")
    parser.add_argument("--one", nargs=2, metavar=("MODEL", "SETTING"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        sys.path.insert(0, str(REPO))
        print(json.dumps(measure(*args.one, args.images, args.epochs)), flush=True)
        return
    for model in args.models.split(","):
        for setting in args.settings.split(",") * args.rounds:
            done = subprocess.run([sys.executable, __file__, "--one", model, setting, "--images", str(args.images),
                                   "--epochs", str(args.epochs)], capture_output=True, text=True)
            line = done.stdout.strip().splitlines()[-1:] or [json.dumps({"model": model, "setting": setting,
                                                                           "error": done.stderr.strip()[-500:]})]
            print(line[0], flush=True)


if __name__ == "__main__":
    main()
