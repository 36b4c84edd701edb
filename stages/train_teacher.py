"""Stage 2: the large, accurate teacher: an ImageNet backbone fine-tuned on grayscale (or a CNN from
scratch), trained on labels with early stopping on validation, on one device or through tf.distribute
(train_teacher.distribute; with multi_worker every worker runs this stage and the chief writes its outputs)."""
from tinygray.data import prepared
from tinygray.models.files import count_params, save_model
from tinygray.train import distribute, loop, teacher
from tinygray.data.augment import Augmentation
from tinygray.pipeline.params import load_params
from tinygray.pipeline import layout
from tinygray.pipeline.tracking import stage_run
from tinygray.pipeline.history import history_files, write_history

PREPARED, MODEL, HISTORY = layout.PREPARED, layout.model("teacher"), layout.history("teacher")


def main() -> None:
    params = load_params()
    teacher_params = params.train_teacher
    strategy = distribute.strategy(teacher_params.distribute)  # first: a multi-worker strategy must precede other TF work
    augmentation = teacher.training_views(teacher_params, Augmentation.from_params(params.augment, params.seed))

    def fit(log_epoch=None) -> tuple:
        """(model, metrics, histories, val split), the same on every worker; the chief logs the curves live."""
        train, val = prepared.read_split(PREPARED, "train"), prepared.read_split(PREPARED, "val")
        return (*teacher.fit(teacher_params, params.seed, train, val, len(prepared.read_class_names(PREPARED)),
                             augmentation, strategy, log_epoch), val)

    if not distribute.is_chief(teacher_params.distribute):
        model, metrics, _, _ = fit()
        print(f"train_teacher: {distribute.task_name()} trained {metrics['epochs']} epochs in step with the chief, "
              f"weights {distribute.weights_digest(model)}; the chief writes the outputs", flush=True)
        return
    run_params = {**params.run_params("train_teacher"), **(augmentation.run_params() if augmentation else {})}
    with stage_run("train_teacher", run_params) as run:
        model, metrics, histories, val = fit(run.log_epoch)
        loop.require_above_chance(
            "train_teacher", metrics["val_accuracy"], val[1],
            hint=f"Seen: training accuracy {histories[-1]['accuracy'][-1]:.4f} at the last of {metrics['epochs']} epochs. "
                 "Try a larger train_teacher.patience or epochs, a lower learning_rate, and look at class_counts in "
                 "metrics/preprocess.json; no teacher was written.")
        write_history(HISTORY, *histories)
        save_model(model, MODEL)
        print(f"train_teacher: {distribute.task_name()} saved {MODEL}, weights {distribute.weights_digest(model)}",
              flush=True)
        run.finish({**metrics, "params": count_params(model)[0],
                    "distribute": distribute.describe(strategy, teacher_params.distribute)},
                   artifacts=history_files(HISTORY))


if __name__ == "__main__":
    main()
