"""Stage 5: magnitude-prune the student to a target sparsity, fine-tuning with the same distillation loss."""
from functools import partial

import numpy as np

from tinygray import models, pruning, training
from tinygray.distillation import DistillationLoss, label_accuracy
from tinygray.params import stage_params
from tinygray.soft_targets import distillation_split
from tinygray.tracking import stage_run

PREPARED, SOFT_TARGETS, STUDENT = "data/prepared", "data/soft_targets", "models/student.keras"
MODEL, HISTORY = "models/pruned.keras", "metrics/history/prune.csv"

params = stage_params("prune")
distill = stage_params("train_student")  # the student's own loss, so pruning fine-tunes what it learned
with stage_run("prune", {**params, "temperature": distill["temperature"], "alpha": distill["alpha"]}) as run:
    training.seed_everything(params["seed"])
    train = distillation_split(PREPARED, SOFT_TARGETS, "train")
    val = distillation_split(PREPARED, SOFT_TARGETS, "val")
    student = models.load_model(STUDENT)
    steps_per_epoch = int(np.ceil(len(train[0]) / params["batch_size"]))
    schedule = partial(pruning.polynomial_sparsity, final_sparsity=params["target_sparsity"],
                       begin_step=0, end_step=params["ramp_epochs"] * steps_per_epoch)
    metrics, history = training.fit(
        student, train, val,
        loss=DistillationLoss(distill["temperature"], distill["alpha"]),
        metric=training.accuracy_metric(label_accuracy),
        epochs=params["epochs"], batch_size=params["batch_size"], learning_rate=params["learning_rate"],
        callbacks=[pruning.MagnitudePruning(schedule, params["mask_update_steps"])],
    )
    training.write_history(HISTORY, history)
    models.save_model(student, MODEL)
    layer_sparsity = pruning.layer_sparsity(student)
    kernel_sizes = {name: int(np.prod(kernel.shape)) for name, kernel in pruning.prunable_kernels(student).items()}
    num_params, nonzero = models.count_params(student)
    run.finish({
        **metrics,
        "params": num_params,
        "nonzero_params": nonzero,
        "sparsity": round(sum(layer_sparsity[n] * kernel_sizes[n] for n in kernel_sizes) / sum(kernel_sizes.values()), 4),
        "layer_sparsity": layer_sparsity,
    }, artifacts=[HISTORY])
