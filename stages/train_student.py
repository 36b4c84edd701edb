"""Stage 4: the small student, trained on labels and the teacher's soft targets (Hinton et al. 2015) for
each augmented view, over several seeds (the best on validation goes on as models/student.keras);
optionally through a chain of teacher assistants."""
from tinygray.train import backend
from tinygray.pipeline.params import load_params

backend.select(load_params().train_student.backend)  # before anything below imports Keras

from tinygray.data import prepared  # noqa: E402
from tinygray.data.augment import Augmentation  # noqa: E402
from tinygray.distill import losses  # noqa: E402
from tinygray.train import student  # noqa: E402
from tinygray.pipeline import layout  # noqa: E402
from tinygray.pipeline.history import history_files  # noqa: E402
from tinygray.pipeline.tracking import stage_run  # noqa: E402

PREPARED, VIEWS, SOFT_TARGETS, TEACHER = layout.PREPARED, layout.VIEWS, layout.SOFT_TARGETS, layout.model("teacher")
MODEL_DIR, SELECTED, HISTORY = layout.seeds("student"), layout.model("student"), layout.history("student")


def main() -> None:
    params = load_params()
    student_params = params.train_student
    augmentation = Augmentation.from_params(params.augment, params.seed)
    with stage_run("train_student", {**params.run_params("train_student"), **augmentation.run_params()}) as run:
        num_classes = len(prepared.read_class_names(PREPARED))
        train, val, setup, views = student.distillation_inputs(PREPARED, SOFT_TARGETS, TEACHER, VIEWS, augmentation,
                                                               student_params, num_classes, layout.UNLABELED)
        confidence = {} if student_params.teacher_in_loop else losses.target_confidence(train[1], student_params.temperature)
        train, val, assistants = student.assistant_chain(train, val, num_classes, student_params, params.seed, views)
        metrics, _ = student.train_seeds(train, val, num_classes, student_params, params.seed, setup, views,
                                                 MODEL_DIR, SELECTED, HISTORY, log_epoch=run.log_epoch)
        run.finish({**metrics, **confidence, **({"assistants": assistants} if assistants else {})}, artifacts=history_files(HISTORY))


if __name__ == "__main__":
    main()
