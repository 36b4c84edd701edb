"""Stage 2: the large, accurate teacher, trained on labels with early stopping on validation."""
import keras

from tinygray import data, models, training
from tinygray.params import stage_params
from tinygray.tracking import stage_run

PREPARED, MODEL, HISTORY = "data/prepared", "models/teacher.keras", "metrics/history/teacher.csv"

params = stage_params("train_teacher")
with stage_run("train_teacher", params) as run:
    training.seed_everything(params["seed"])
    train, val = data.read_split(PREPARED, "train"), data.read_split(PREPARED, "val")
    num_classes = len(data.read_class_names(PREPARED))
    teacher = models.build_cnn(train[0].shape[1:], num_classes, params["widths"],
                               convs_per_block=params["convs_per_block"], dropout=params["dropout"], name="teacher")
    result = training.fit(
        teacher, train, val,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metric=training.accuracy_metric(),
        epochs=params["epochs"], batch_size=params["batch_size"], learning_rate=params["learning_rate"],
        patience=params["patience"], history_csv=HISTORY,
    )
    models.save_model(teacher, MODEL)
    run.finish({**result, "params": models.count_params(teacher)[0]}, artifacts=[HISTORY])
