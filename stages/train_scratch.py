"""Control for stage 4: the same student architecture, seeds, epoch budget and augmented views, trained on
labels alone, its seed selected by the same rule. Without it a distillation "gain" cannot be told from the
student simply being trained well."""
from tinygray.train import backend
from tinygray.pipeline.params import load_params

backend.select(load_params().train_student.backend)  # before anything below imports Keras

from tinygray.data import prepared  # noqa: E402
from tinygray.data.augment import Augmentation  # noqa: E402
from tinygray.train import student  # noqa: E402
from tinygray.pipeline import layout  # noqa: E402
from tinygray.pipeline.history import history_files  # noqa: E402
from tinygray.pipeline.tracking import stage_run  # noqa: E402

PREPARED, VIEWS, MODEL_DIR, SELECTED = layout.PREPARED, layout.VIEWS, layout.seeds("scratch"), layout.model("scratch")
HISTORY = layout.history("scratch")


def main() -> None:
    params = load_params()
    student_params = params.train_student
    augmentation = Augmentation.from_params(params.augment, params.seed)
    run_params = {**params.run_params("train_student", exclude=student.DISTILLATION_ONLY), **augmentation.run_params()}
    with stage_run("train_scratch", run_params) as run:
        num_classes = len(prepared.read_class_names(PREPARED))
        train, val, setup, views = student.scratch_inputs(PREPARED, VIEWS, augmentation, student_params, num_classes)
        metrics, _ = student.train_seeds(train, val, num_classes, student_params, params.seed, setup, views,
                                                 MODEL_DIR, SELECTED, HISTORY, log_epoch=run.log_epoch)
        run.finish(metrics, artifacts=history_files(HISTORY))


if __name__ == "__main__":
    main()
