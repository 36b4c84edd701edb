"""Stage 5: prune the selected student (models/student.keras) two ways, each fine-tuned with the same
distillation loss and kept within a validation budget: magnitude (unstructured) pruning, whose zeros only
help compressed sizes, and filter (structured) pruning by L1 norm, which rebuilds a smaller dense network
that is faster for real. For each, the most compression whose validation accuracy stays within
prune.max_val_drop of the student's is kept."""
from functools import partial

from tinygray.train import backend
from tinygray.pipeline.params import load_params

backend.select(load_params().train_student.backend)  # the students' backend; before anything imports Keras

import numpy as np  # noqa: E402

from tinygray.compress import filter_pruning, magnitude_pruning  # noqa: E402
from tinygray.data import prepared  # noqa: E402
from tinygray.data.augment import Augmentation, StoredViews  # noqa: E402
from tinygray.distill.soft_targets import distillation_data  # noqa: E402
from tinygray.evaluate import stats  # noqa: E402
from tinygray.models.files import count_params, load_model, save_model  # noqa: E402
from tinygray.train import loop, student  # noqa: E402
from tinygray.pipeline import layout  # noqa: E402
from tinygray.pipeline.history import history_files, write_history  # noqa: E402
from tinygray.pipeline.tracking import stage_run  # noqa: E402

PREPARED, VIEWS, SOFT_TARGETS, STUDENT = layout.PREPARED, layout.VIEWS, layout.SOFT_TARGETS, layout.model("student")
MAGNITUDE, FILTERS = layout.model("pruned"), layout.model("pruned_filters")
HISTORY, FILTERS_HISTORY = layout.history("prune"), layout.history("prune_filters")


def main() -> None:
    params = load_params()
    prune = params.prune
    student_params = params.train_student  # the student's own loss and views, so pruning fine-tunes
    augmentation = Augmentation.from_params(params.augment, params.seed)  # what it learned, the way it learned it
    with stage_run("prune", {**params.run_params("prune"), **student_params.values(*student.LOSS_PARAMS),
                             **augmentation.run_params()}) as run:
        train, val = distillation_data(PREPARED, SOFT_TARGETS, augmentation, layout.UNLABELED)
        unpruned = load_model(STUDENT)
        prepared.check_num_classes(unpruned, PREPARED, STUDENT)
        val_images, val_labels = prepared.read_split(PREPARED, "val")
        baseline = stats.accuracy(unpruned.predict(np.asarray(val_images), batch_size=256, verbose=0), val_labels)
        setup = student.distillation_setup(student_params)
        fine_tune = partial(loop.fit, train=train, val=val, loss=setup.loss, epochs=prune.epochs,
                            batch_size=prune.batch_size, learning_rate=prune.learning_rate, seed=params.seed,
                            augmentation=StoredViews(VIEWS, augmentation), targets_per_view=True,
                            log_epoch=run.log_epoch)  # every level tried, live; the kept ones again below
        ramp_steps = magnitude_pruning.ramp_steps(prune.ramp_epochs, len(train[0]), prune.batch_size)

        def magnitude(sparsity):
            loop.seed_everything(params.seed)
            model = load_model(STUDENT)
            return (model, *magnitude_pruning.prune_by_magnitude(model, sparsity, partial(fine_tune, metric=setup.metric(),
                                                                                          curve=f"magnitude_{sparsity}"),
                                                       ramp_steps=ramp_steps,
                                                       mask_update_steps=prune.mask_update_steps))

        def filters(fraction):
            loop.seed_everything(params.seed)
            model = filter_pruning.prune_filters(load_model(STUDENT), fraction)
            return (model, *fine_tune(model, metric=setup.metric(), curve=f"filters_{fraction}"))

        budget = partial(magnitude_pruning.most_compressed_within_budget, baseline_val_accuracy=baseline,
                         max_val_drop=prune.max_val_drop)
        pruned, pruned_filters = budget(prune.sparsities, magnitude), budget(prune.filter_fractions, filters)
        write_history(HISTORY, pruned.history, title=f"magnitude pruning to sparsity {pruned.level}")
        write_history(FILTERS_HISTORY, pruned_filters.history,
                      title=f"filter pruning, fraction {pruned_filters.level} removed")
        run.log_history("magnitude", pruned.history)
        run.log_history("filters", pruned_filters.history)
        save_model(pruned.model, MAGNITUDE)
        save_model(pruned_filters.model, FILTERS)

        layer_sparsity = magnitude_pruning.layer_sparsity(pruned.model)
        kernel_sizes = {name: int(np.prod(k.shape)) for name, k in magnitude_pruning.prunable_kernels(pruned.model).items()}
        num_params, nonzero = count_params(pruned.model)
        run.finish({
            **pruned.metrics,
            "student_val_accuracy": round(baseline, 4),
            "params": num_params,
            "nonzero_params": nonzero,
            "target_sparsity": pruned.level,
            "sparsity": round(sum(layer_sparsity[n] * kernel_sizes[n] for n in kernel_sizes) / sum(kernel_sizes.values()), 4),
            "layer_sparsity": layer_sparsity,
            "within_budget": pruned.within_budget,
            "trials": pruned.trials,
            "structured": {**pruned_filters.metrics, "params": count_params(pruned_filters.model)[0],
                           "filter_fraction": pruned_filters.level, "within_budget": pruned_filters.within_budget,
                           "trials": pruned_filters.trials},
        }, artifacts=history_files(HISTORY) + history_files(FILTERS_HISTORY))


if __name__ == "__main__":
    main()
