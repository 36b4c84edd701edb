"""Stage 4: the small student, trained on labels and the teacher's soft targets (Hinton et al. 2015),
over several seeds; optionally through a chain of teacher assistants."""
from tinygray import data, student
from tinygray.distillation import pack_targets
from tinygray.params import stage_params
from tinygray.soft_targets import read_logits
from tinygray.tracking import stage_run

PREPARED, SOFT_TARGETS = "data/prepared", "data/soft_targets"
MODEL_DIR, HISTORY = "models/student", "metrics/history/student.csv"

params = stage_params("train_student")
with stage_run("train_student", params) as run:
    (train_images, train_labels), val = data.read_split(PREPARED, "train"), data.read_split(PREPARED, "val")
    num_classes = len(data.read_class_names(PREPARED))
    train_logits = read_logits(SOFT_TARGETS, "train", len(train_labels))
    val_logits = read_logits(SOFT_TARGETS, "val", len(val[1]))
    train_logits, val_logits, assistants = student.assistant_chain(
        train_images, train_labels, train_logits, val, val_logits, num_classes, params)
    metrics = student.train_seeds(
        (train_images, pack_targets(train_labels, train_logits)), (val[0], pack_targets(val[1], val_logits)),
        num_classes, params, student.distillation_setup(params), MODEL_DIR, HISTORY)
    run.finish({**metrics, **({"assistants": assistants} if assistants else {})}, artifacts=[HISTORY])
