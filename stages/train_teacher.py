"""Stage 2: the large, accurate teacher: an ImageNet backbone fine-tuned on grayscale (or a CNN from
scratch), trained on labels with early stopping on validation."""
from tinygray import data, models, teacher, training
from tinygray.params import stage_params
from tinygray.tracking import stage_run

PREPARED, MODEL, HISTORY = "data/prepared", "models/teacher.keras", "metrics/history/teacher.csv"

params = stage_params("train_teacher")
with stage_run("train_teacher", params) as run:
    training.seed_everything(params["seed"])
    train, val = data.read_split(PREPARED, "train"), data.read_split(PREPARED, "val")
    model = teacher.build_teacher(train[0].shape[1:], len(data.read_class_names(PREPARED)), params)
    metrics, histories = teacher.train(model, train, val, params)
    training.write_history(HISTORY, *histories)
    models.save_model(model, MODEL)
    run.finish({**metrics, "params": models.count_params(model)[0]}, artifacts=training.history_files(HISTORY))
