"""Stage 5b: quantization-aware training of a compressed student (qat.source: pruned, pruned_filters or
student), BatchNorm folded in, weights and activations fake-quantized, fine-tuned with the same distillation
loss on the same views, then converted to a builtin-int8 .tflite (tinygray.compress.qat). Sparsity and removed filters
are kept: it starts from the compressed model and zero weights stay zero."""
import numpy as np

from tinygray import litert
from tinygray.compress import magnitude_pruning, qat, tflite
from tinygray.data import prepared
from tinygray.data.augment import Augmentation, StoredViews
from tinygray.distill.soft_targets import distillation_data
from tinygray.evaluate import stats
from tinygray.models.files import load_model, save_model
from tinygray.train import loop, student
from tinygray.pipeline import layout
from tinygray.pipeline.atomic import atomic_output
from tinygray.pipeline.history import history_files, write_history
from tinygray.pipeline.params import load_params
from tinygray.pipeline.tracking import stage_run

PREPARED, VIEWS, SOFT_TARGETS = layout.PREPARED, layout.VIEWS, layout.SOFT_TARGETS
MODEL, OUT, HISTORY = layout.model("qat"), layout.tflite_dir("qat"), layout.history("qat")


def main() -> None:
    params = load_params()
    qat_params = params.qat
    student_params = params.train_student
    augmentation = Augmentation.from_params(params.augment, params.seed)
    source = layout.model(qat_params.source)
    with stage_run("qat", {**params.run_params("qat"), **student_params.values(*student.LOSS_PARAMS),
                           **augmentation.run_params()}) as run:
        train, val = distillation_data(PREPARED, SOFT_TARGETS, augmentation, layout.UNLABELED)
        loop.seed_everything(params.seed)
        model = qat.quantization_aware(qat.fold_batchnorm(load_model(source)))
        train_images = np.asarray(train[0])
        qat.calibrate(model, train_images[np.random.default_rng(params.seed).permutation(len(train_images))[:qat.CALIBRATION_IMAGES]])
        calibrated = qat.ranges(model)
        setup = student.distillation_setup(student_params)
        metrics, history = loop.fit(model, train, val, loss=setup.loss, metric=setup.metric(), epochs=qat_params.epochs,
                                    batch_size=qat_params.batch_size, learning_rate=qat_params.learning_rate,
                                    seed=params.seed, augmentation=StoredViews(VIEWS, augmentation),
                                    targets_per_view=True, callbacks=[magnitude_pruning.KeepZeros()],
                                    log_epoch=run.log_epoch, curve="qat")
        write_history(HISTORY, history, title=f"quantization-aware training of {qat_params.source}")
        save_model(model, MODEL)
        val_images, val_labels = prepared.read_split(PREPARED, "val")
        representative = tflite.representative_dataset(train_images, params.quantize.representative_samples,
                                                       params.seed)
        with atomic_output(OUT) as staging:
            staging.mkdir()
            path = staging / "qat_int8.tflite"
            path.write_bytes(tflite.convert(model, "int8", representative=representative))
            tflite_val = stats.accuracy(litert.TFLiteModel(path).predict(val_images), val_labels)
        keras_val = stats.accuracy(model.predict(np.asarray(val_images), batch_size=256, verbose=0), val_labels)
        run.finish({**metrics, "source": qat_params.source, "val_accuracy": round(keras_val, 4), "tflite_val_accuracy": round(tflite_val, 4),
                    "ranges": {name: {"calibrated_min": calibrated[name][0], "calibrated_max": calibrated[name][1],
                                      "min": trained[0], "max": trained[1]} for name, trained in qat.ranges(model).items()}},
                   artifacts=history_files(HISTORY))


if __name__ == "__main__":
    main()
