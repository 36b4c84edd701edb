"""Stage 4b: one student family of the frontier (train_family@<name>, one per entry of params.yaml's `families`):
the teacher cut after `blocks` blocks and pruned to `width` of its channels (tinygray/models/families.py),
distilled for train_student's schedule on the stored views and the unlabelled images, one seed, then converted
to int8 and judged on validation: the file benchmark.shipped: auto chooses among. Each of the family's
`controls` is the same network trained the same way but for one thing, converted alike (layout.FAMILY_CONTROLS):
random (random weights, labels alone), labels (the teacher's weights, labels alone), no_unlabeled (distilled
without the unlabelled images)."""
import json
import sys

from tinygray.train import backend
from tinygray.pipeline.params import load_params

backend.select(load_params().train_student.backend)  # before anything below imports Keras

import numpy as np  # noqa: E402

from tinygray import litert, predict  # noqa: E402
from tinygray.compress import tflite  # noqa: E402
from tinygray.data import prepared  # noqa: E402
from tinygray.data.augment import Augmentation, StoredViews  # noqa: E402
from tinygray.distill.soft_targets import distillation_data  # noqa: E402
from tinygray.models import families  # noqa: E402
from tinygray.models.files import count_params, load_model, save_model  # noqa: E402
from tinygray.train import loop, student  # noqa: E402
from tinygray.pipeline import layout  # noqa: E402
from tinygray.pipeline.atomic import atomic_output  # noqa: E402
from tinygray.pipeline.tracking import stage_run  # noqa: E402

PREPARED, VIEWS, SOFT_TARGETS, TEACHER = layout.PREPARED, layout.VIEWS, layout.SOFT_TARGETS, layout.model("teacher")
CLOCKS = ("val_accuracy", "val_loss", "epochs", "best_epoch", "train_seconds", "seconds_per_epoch")


def main(name: str) -> None:
    params = load_params()
    if name not in params.families:
        sys.exit(f"train_family: no family {name!r} under 'families' in params.yaml (there: {sorted(params.families)})")
    family, p = params.families[name], params.train_student
    augmentation = Augmentation.from_params(params.augment, params.seed)
    stage = f"train_family@{name}"
    run_params = {**{f"family.{k}": v for k, v in family.model_dump().items()}, **params.run_params("train_student"),
                  **params.run_params("quantize"), **augmentation.run_params()}
    with stage_run(stage, run_params) as run:
        num_classes = len(prepared.read_class_names(PREPARED))
        teacher = load_model(TEACHER)
        distilled = distillation_data(PREPARED, SOFT_TARGETS, augmentation, layout.UNLABELED)
        views = StoredViews(VIEWS, augmentation)
        shape = distilled[0][0].shape[1:]
        downscale = student.downscale_factor(shape[0], family.input_size if family.input_size is not None else p.input_size)
        val_images, val_labels = prepared.read_split(PREPARED, "val")
        train_images = prepared.read_split(PREPARED, "train")[0]
        representative = tflite.representative_dataset(train_images, params.quantize.representative_samples, params.seed)

        def train(network_name: str, inherit: bool, data: tuple, setup: student.Setup):
            loop.seed_everything(params.seed)
            network = families.build(teacher, shape, num_classes, family.blocks, family.width, downscale,
                                     inherit=inherit, name=network_name)
            metrics, _ = loop.fit(network, *data, loss=setup.loss, metric=setup.metric(), epochs=p.epochs,
                                  batch_size=p.batch_size, learning_rate=p.learning_rate, patience=p.patience,
                                  schedule=p.schedule, seed=params.seed, augmentation=views,
                                  targets_per_view=setup.targets_per_view, log_epoch=run.log_epoch, curve=network_name)
            loop.require_above_chance(f"{stage}: {network_name}", metrics["val_accuracy"], val_labels,
                                      hint="Try a larger train_student.learning_rate or epochs, or a wider family.")
            return network, metrics

        model, metrics = train(name, True, distilled, student.distillation_setup(p))
        labelled, labelled_val, labels_setup, _ = student.scratch_inputs(PREPARED, VIEWS, augmentation, p, num_classes)
        labelled_count = len(labelled[0])
        control_runs = {  # each control: (inherit the teacher's weights, its data, its loss)
            "random": (False, (labelled, labelled_val), labels_setup),
            "labels": (True, (labelled, labelled_val), labels_setup),
            "no_unlabeled": (True, ((distilled[0][0][:labelled_count], distilled[0][1][:, :labelled_count]), distilled[1]),
                             student.distillation_setup(p)),
        }
        controls = {kind: train(layout.family_control(name, kind), *control_runs[kind]) for kind in family.controls}

        out, variants, gate = layout.family_dir(name), [], None
        with atomic_output(out) as staging:
            staging.mkdir(parents=True)
            save_model(model, staging / f"{name}.keras")
            for network, kind in [(model, "family"), *((net, "control") for net, _ in controls.values())]:
                path = staging / f"{network.name}_int8.tflite"
                path.write_bytes(tflite.convert(network, "int8", representative=representative))
                logits = litert.TFLiteModel(path).predict(val_images)
                if np.ptp(logits, axis=0).max() == 0:
                    sys.exit(f"{stage}: {path.name} gives the same output for every validation image; the conversion "
                             "is broken (check the representative data)")
                int8_correct = logits.argmax(1) == val_labels
                predict.write_contract(path, predict.contract_for(path), prepared.read_class_names(PREPARED),
                                       predict.preprocessing(val_images.shape[1], params.preprocess.resize))
                variants.append({"name": path.stem, "format": "tflite", "model": network.name, "kind": kind,
                                 "val_accuracy": round(float(int8_correct.mean()), 4), "size_bytes": path.stat().st_size,
                                 "params": count_params(network)[0]})
                if network is model:
                    float_correct = np.asarray(model.predict(np.asarray(val_images), batch_size=256, verbose=0)).argmax(1) == val_labels
                    gate = tflite.int8_gate(int8_correct, float_correct, params.quantize.max_int8_accuracy_drop)
                    variants[-1]["gate_passed"] = gate["passed"]
            (staging / layout.FAMILY_VALIDATION).write_text(json.dumps({"variants": variants}, indent=1) + "\n")
        run.finish({"name": name, "family": family.model_dump(), "params": count_params(model)[0], **metrics,
                    "variants": variants, "int8_gate": gate,
                    **({"controls": {kind: {k: m[k] for k in CLOCKS} for kind, (_, m) in controls.items()}}
                       if controls else {})})


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) == 2 else sys.exit("usage: python stages/train_family.py NAME (a key of params.yaml's families)"))
