"""Stage 3: run the teacher once on every view of every training image and store its logits, so student
experiments never rerun it and always learn the teacher's answer for the view they are shown."""
import numpy as np

from tinygray.data import prepared
from tinygray.distill import soft_targets
from tinygray.evaluate import stats
from tinygray.models.files import load_model
from tinygray.pipeline.atomic import atomic_output
from tinygray.data.augment import Augmentation, StoredViews, views_warning
from tinygray.pipeline.params import load_params
from tinygray.pipeline import layout
from tinygray.pipeline.tracking import stage_run

PREPARED, UNLABELED, VIEWS, TEACHER, OUT = (layout.PREPARED, layout.UNLABELED, layout.VIEWS, layout.model("teacher"),
                                           layout.SOFT_TARGETS)


def main() -> None:
    params = load_params()
    soft = params.soft_targets
    augmentation = Augmentation.from_params(params.augment, params.seed)
    with stage_run("soft_targets", {**params.run_params("soft_targets"), **augmentation.run_params()}) as run:
        teacher = load_model(TEACHER)
        prepared.check_num_classes(teacher, PREPARED, TEACHER)
        (_, train_labels), (val_images, val_labels) = (prepared.read_split(PREPARED, s) for s in ("train", "val"))
        # the training images, then any unlabelled ones: the teacher's logits are the only targets those get
        train_logits = soft_targets.view_logits(teacher, prepared.distillation_images(PREPARED, UNLABELED),
                                                StoredViews(VIEWS, augmentation), soft.batch_size)
        val_logits = teacher.predict(np.asarray(val_images), batch_size=soft.batch_size, verbose=0)
        with atomic_output(OUT) as staging:
            staging.mkdir()
            soft_targets.write(staging, train_logits, val_logits, augmentation)
        # how often the teacher is right on the augmented views: a teacher that often errs on them would
        # teach mistakes, and the hard-label term (train_student.alpha) would have to pull against it
        view_accuracy = (train_logits[:, :len(train_labels)].argmax(-1) == train_labels).mean(axis=1)
        metrics = {"val_accuracy": round(stats.accuracy(val_logits, val_labels), 4),
                   "train_accuracy": round(float(view_accuracy[0]), 4),
                   **({"augmented_view_accuracy": round(float(view_accuracy[1:].mean()), 4)} if len(view_accuracy) > 1 else {})}
        warning = views_warning(metrics)
        if warning:
            print(f"soft_targets: {warning}", flush=True)
        run.finish(metrics)


if __name__ == "__main__":
    main()
