"""The student-training levers of the default run, each timed as seconds per epoch, one after another on one
machine: machines differ up to 3x, so only the ratios within one run compare (docs/results.md, "Where the time goes").

    python scripts/speed_levers.py levers.jsonl                      # after `dvc repro` has made data/
    python scripts/speed_levers.py levers.jsonl --epochs 6           # epochs per lever (the first, compiling, is not timed)
    python scripts/speed_levers.py levers.jsonl --backend tensorflow --levers "28 px, batch 64 (the previous student settings)" "28 px, batch 256"

Each lever trains the distilled student of params.yaml (seed 42, its stored views and soft targets) for a few
epochs with one thing changed, and writes one JSON line: the lever, seconds per epoch after the first, and the
ratio to the first lever (the student as it was before this round's defaults). The accuracy a lever costs is not measured here: a few epochs say
nothing about it; the full runs do (`dvc exp run -S ...`).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tinygray.train import backend  # noqa: E402
from tinygray.pipeline.params import load_params  # noqa: E402

# --backend tensorflow times the same levers under Keras' TensorFlow backend (chosen before Keras loads)
backend.select(sys.argv[sys.argv.index("--backend") + 1] if "--backend" in sys.argv else load_params().train_student.backend)

import keras  # noqa: E402

from tinygray.train import loop, student  # noqa: E402
from tinygray.data.augment import Augmentation  # noqa: E402
from tinygray.pipeline import layout  # noqa: E402


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def time_lever(name: str, epochs: int, side_by_side: int = 0, steps_per_execution: int = 1,
               eager_recalibration: bool = False, sync_progress: bool = False, **changes) -> dict:
    params = load_params()
    loop.EpochProgress.async_safe = not sync_progress
    compiled_forward = loop._compiled_forward
    if eager_recalibration:  # the BatchNorm recalibration's passes op by op, as before they were compiled
        loop._compiled_forward = lambda model: (
            lambda trainable, non_trainable, images: model.stateless_call(trainable, non_trainable, images, training=True)[1])
    p = params.train_student.model_copy(update={"epochs": epochs, **changes})
    augmentation = Augmentation.from_params(params.augment, params.seed)
    num_classes = 10
    train, val, setup, views = student.distillation_inputs(layout.PREPARED, layout.SOFT_TARGETS, layout.model("teacher"),
                                                           layout.VIEWS, augmentation, p, num_classes, layout.UNLABELED)
    timer = EpochTimer()
    if side_by_side:  # `side_by_side` seeds as one Keras model, an input and an output each: one compiled step
        inputs = [keras.Input(shape=train[0].shape[1:], name=f"pixels_{k}") for k in range(side_by_side)]
        outputs = []
        for k, x in enumerate(inputs):
            loop.seed_everything(params.seed + k)
            outputs.append(student.build_for(p, train[0].shape[1:], num_classes, name=f"seed_{params.seed + k}")(x))
        model = keras.Model(inputs, outputs, name="side_by_side")
        step_size = keras.optimizers.schedules.CosineDecay(p.learning_rate, p.epochs * -(-len(train[0]) // p.batch_size))
        model.compile(optimizer=keras.optimizers.Adam(step_size), loss=[setup.loss] * side_by_side,
                      metrics=[[setup.metric()] for _ in range(side_by_side)])
        batches = [loop.Batches(*train, p.batch_size, seed=params.seed + k, augmentation=views, targets_per_view=True)
                   for k in range(side_by_side)]
        val_batches = loop.Batches(*val, p.batch_size, shuffle=False)

        class Zipped(keras.utils.PyDataset):  # step i: batch i of every seed's own order (or the validation batch)
            def __init__(self, parts):
                super().__init__()
                self.parts = parts

            def __len__(self):
                return len(self.parts[0])

            def __getitem__(self, index):
                pairs = [part[index] for part in self.parts]
                return tuple(x for x, _ in pairs), tuple(y for _, y in pairs)

            def on_epoch_end(self):
                for part in self.parts:
                    part.on_epoch_end()
        # one BatchNorm recalibration per seed before each validation, as loop.fit does for one
        recalibrate = [loop.RecalibrateBatchNorm(train[0], p.batch_size, seed=params.seed + k) for k in range(side_by_side)]
        for callback, seed_model in zip(recalibrate, (layer for layer in model.layers if isinstance(layer, keras.Model))):
            callback.set_model(seed_model)
        recalibration = keras.callbacks.LambdaCallback(on_epoch_end=lambda *_: [c.on_test_begin() for c in recalibrate])
        model.fit(Zipped(batches), validation_data=Zipped([val_batches] * side_by_side), epochs=p.epochs,
                  callbacks=[timer, recalibration, loop.EpochProgress(model.name, len(batches[0]))], verbose=2)
        metrics = {"val_accuracy": None}
    else:
        loop.seed_everything(params.seed)
        model = student.build_for(p, train[0].shape[1:], num_classes)
        if steps_per_execution > 1:
            wrapped_compile = model.compile

            def compile_with_steps(**kwargs):
                wrapped_compile(**kwargs, steps_per_execution=steps_per_execution)
            model.compile = compile_with_steps
        metrics, _ = loop.fit(model, train, val, loss=setup.loss, metric=setup.metric(), epochs=p.epochs,
                              batch_size=p.batch_size, learning_rate=p.learning_rate, patience=p.patience,
                              schedule=p.schedule, seed=params.seed, augmentation=views, targets_per_view=True,
                              callbacks=[timer])
    loop._compiled_forward, loop.EpochProgress.async_safe = compiled_forward, True
    steady = timer.seconds[1:]
    return {"lever": name, "changes": changes, "first_epoch_s": round(timer.seconds[0], 3),
            "s_per_epoch": round(sum(steady) / len(steady), 3), "steps_per_epoch": -(-len(train[0]) // p.batch_size),
            "val_accuracy_after": metrics["val_accuracy"]}


FULL = {"input_size": None}  # the student on the whole 28-px image, as before this round's defaults
LEVERS = {
    "28 px, batch 64 (the previous student settings)": FULL,
    "28 px, batch 128": {**FULL, "batch_size": 128},
    "28 px, batch 256": {**FULL, "batch_size": 256},
    "28 px, steps_per_execution 8": {**FULL, "steps_per_execution": 8},
    "28 px, 3 seeds side by side in one step (an epoch of all three)": {**FULL, "side_by_side": 3},
    "28 px, progress lines synchronous (each step waits for the last)": {**FULL, "sync_progress": True},
    "14 px (train_student.input_size 14: the student averages 28 px down to 14)": {"input_size": 14},
    "14 px, batch 256": {"input_size": 14, "batch_size": 256},
    "14 px, 3 seeds side by side": {"input_size": 14, "side_by_side": 3},
    "14 px, progress lines synchronous": {"input_size": 14, "sync_progress": True},
    "14 px, BatchNorm recalibration op by op": {"input_size": 14, "eager_recalibration": True},
    "28 px, batch 64 again (the spread of the measurement)": FULL,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--backend", choices=backend.BACKENDS, help="train_student.backend unless given")
    parser.add_argument("--levers", nargs="*", help="only these levers (their names), in this order")
    args = parser.parse_args()
    rows = []
    for name in args.levers or LEVERS:
        changes = LEVERS[name]
        row = time_lever(name, args.epochs, **changes)
        row["backend"] = backend.current()
        row["changes"] = changes
        row["ratio"] = round(row["s_per_epoch"] / rows[0]["s_per_epoch"], 3) if rows else 1.0
        rows.append(row)
        print(json.dumps(row), flush=True)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
