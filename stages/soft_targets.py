"""Stage 3: run the teacher once and store its logits, so student experiments never rerun it."""
import numpy as np

from tinygray import data, models
from tinygray.atomic import atomic_output
from tinygray.params import stage_params
from tinygray.tracking import stage_run

PREPARED, TEACHER, OUT = "data/prepared", "models/teacher.keras", "data/soft_targets"

params = stage_params("soft_targets")
with stage_run("soft_targets", params) as run:
    teacher = models.load_model(TEACHER)
    data.check_num_classes(teacher, PREPARED, TEACHER)
    metrics = {}
    with atomic_output(OUT) as staging:
        staging.mkdir()
        for split in ("train", "val"):
            images, labels = data.read_split(PREPARED, split)
            logits = teacher.predict(np.asarray(images), batch_size=params["batch_size"], verbose=0)
            np.save(staging / f"{split}_logits.npy", logits.astype(np.float32))
            if split == "val":
                metrics["val_accuracy"] = round(float(np.mean(logits.argmax(1) == labels)), 4)
    run.finish(metrics)
