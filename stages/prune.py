"""Stage 5: prune the shipped-seed student two ways, each fine-tuned with the same distillation loss:
magnitude (unstructured) pruning to a target sparsity, whose zeros only help compressed sizes, and
filter (structured) pruning by L1 norm, which rebuilds a smaller dense network that is faster for real."""
from functools import partial

import numpy as np

from tinygray import data, models, pruning, structured_pruning, student, training
from tinygray.augment import Augmentation
from tinygray.params import stage_params
from tinygray.soft_targets import distillation_data
from tinygray.tracking import stage_run

PREPARED, SOFT_TARGETS = "data/prepared", "data/soft_targets"
MAGNITUDE, FILTERS = "models/pruned.keras", "models/pruned_filters.keras"
HISTORY, FILTERS_HISTORY = "metrics/history/prune.csv", "metrics/history/prune_filters.csv"

params = stage_params("prune")
student_params = stage_params("train_student")  # the student's own loss and views, so pruning fine-tunes
augmentation = Augmentation.from_params(stage_params("augment"))  # what it learned, the way it learned it
with stage_run("prune", {**params, "temperature": student_params["temperature"],
                         "alpha": student_params["alpha"], **augmentation.run_params()}) as run:
    train, val = distillation_data(PREPARED, SOFT_TARGETS, augmentation)
    source = student.checkpoint("models/student", student.seeds(student_params)[0])
    data.check_num_classes(models.load_model(source), PREPARED, source)
    setup = student.distillation_setup(student_params)
    fine_tune = partial(training.fit, train=train, val=val, loss=setup["loss"], epochs=params["epochs"],
                        batch_size=params["batch_size"], learning_rate=params["learning_rate"], seed=params["seed"],
                       augmentation=augmentation, targets_per_view=True)

    training.seed_everything(params["seed"])
    magnitude = models.load_model(source)
    steps_per_epoch = int(np.ceil(len(train[0]) / params["batch_size"]))
    schedule = partial(pruning.polynomial_sparsity, final_sparsity=params["target_sparsity"],
                       begin_step=0, end_step=params["ramp_epochs"] * steps_per_epoch)
    metrics, history = fine_tune(magnitude, metric=training.accuracy_metric(setup["metric_fn"]),
                                 callbacks=[pruning.MagnitudePruning(schedule, params["mask_update_steps"])])
    training.write_history(HISTORY, history)
    models.save_model(magnitude, MAGNITUDE)

    training.seed_everything(params["seed"])
    filters = structured_pruning.prune_filters(models.load_model(source), params["filter_fraction"])
    filter_metrics, filter_history = fine_tune(filters, metric=training.accuracy_metric(setup["metric_fn"]))
    training.write_history(FILTERS_HISTORY, filter_history)
    models.save_model(filters, FILTERS)

    layer_sparsity = pruning.layer_sparsity(magnitude)
    kernel_sizes = {name: int(np.prod(k.shape)) for name, k in pruning.prunable_kernels(magnitude).items()}
    num_params, nonzero = models.count_params(magnitude)
    run.finish({
        **metrics,
        "params": num_params,
        "nonzero_params": nonzero,
        "sparsity": round(sum(layer_sparsity[n] * kernel_sizes[n] for n in kernel_sizes) / sum(kernel_sizes.values()), 4),
        "layer_sparsity": layer_sparsity,
        "structured": {**filter_metrics, "params": models.count_params(filters)[0]},
    }, artifacts=training.history_files(HISTORY) + training.history_files(FILTERS_HISTORY))
