"""Stage 4: the small student, trained on labels and the teacher's soft targets (Hinton et al. 2015)."""
from tinygray import data, models, training
from tinygray.distillation import DistillationLoss, label_accuracy
from tinygray.params import stage_params
from tinygray.soft_targets import distillation_split
from tinygray.tracking import stage_run

PREPARED, SOFT_TARGETS = "data/prepared", "data/soft_targets"
MODEL, HISTORY = "models/student.keras", "metrics/history/student.csv"

params = stage_params("train_student")
with stage_run("train_student", params) as run:
    training.seed_everything(params["seed"])
    train = distillation_split(PREPARED, SOFT_TARGETS, "train")
    val = distillation_split(PREPARED, SOFT_TARGETS, "val")
    num_classes = len(data.read_class_names(PREPARED))
    student = models.build_cnn(train[0].shape[1:], num_classes, params["widths"], name="student")
    metrics, history = training.fit(
        student, train, val,
        loss=DistillationLoss(params["temperature"], params["alpha"]),
        metric=training.accuracy_metric(label_accuracy),
        epochs=params["epochs"], batch_size=params["batch_size"], learning_rate=params["learning_rate"],
        patience=params["patience"],
    )
    training.write_history(HISTORY, history)
    models.save_model(student, MODEL)
    run.finish({**metrics, "params": models.count_params(student)[0]}, artifacts=[HISTORY])
