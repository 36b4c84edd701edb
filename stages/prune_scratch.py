"""Stage 5b: the scratch control through the compression the shipped student gets. The prune stage
fine-tunes the distilled student for prune.epochs more while it prunes it; compared with a control that
never had those epochs, the shipped model's "distilled against scratch" would credit distillation with
what the extra training did. So the control (models/scratch.keras) is pruned by magnitude the same way:
to the sparsity the prune stage kept, with the same epochs, ramp, step size, seed and views, on labels
alone. It is quantized like the student (quantize@pruned_scratch) and the benchmark sets
pruned_int8 against pruned_scratch_int8."""
import json
from functools import partial

from tinygray.train import backend
from tinygray.pipeline.params import load_params

backend.select(load_params().train_student.backend)  # the students' backend; before anything imports Keras

import keras  # noqa: E402

from tinygray.compress import magnitude_pruning  # noqa: E402
from tinygray.data import prepared  # noqa: E402
from tinygray.data.augment import Augmentation, StoredViews  # noqa: E402
from tinygray.models.files import count_params, load_model, save_model  # noqa: E402
from tinygray.train import loop  # noqa: E402
from tinygray.pipeline import layout  # noqa: E402
from tinygray.pipeline.history import history_files, write_history  # noqa: E402
from tinygray.pipeline.tracking import stage_run  # noqa: E402

PREPARED, VIEWS, SCRATCH = layout.PREPARED, layout.VIEWS, layout.model("scratch")
PRUNE_METRICS, PRUNED_SCRATCH, HISTORY = layout.stage_metrics("prune"), layout.model("pruned_scratch"), layout.history("prune_scratch")


def main() -> None:
    params = load_params()
    prune = params.prune
    augmentation = Augmentation.from_params(params.augment, params.seed)
    sparsity = json.loads(PRUNE_METRICS.read_text())["target_sparsity"]  # what the distilled student got
    run_params = {**params.run_params("prune"), "target_sparsity": sparsity, **augmentation.run_params()}
    with stage_run("prune_scratch", run_params) as run:
        train, val = prepared.read_split(PREPARED, "train"), prepared.read_split(PREPARED, "val")
        fine_tune = partial(loop.fit, train=train, val=val,
                            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                            metric=loop.accuracy_metric(), epochs=prune.epochs, batch_size=prune.batch_size,
                            learning_rate=prune.learning_rate, seed=params.seed,
                            augmentation=StoredViews(VIEWS, augmentation), log_epoch=run.log_epoch, curve="magnitude")
        loop.seed_everything(params.seed)
        model = load_model(SCRATCH)
        prepared.check_num_classes(model, PREPARED, SCRATCH)
        metrics, history = magnitude_pruning.prune_by_magnitude(
            model, sparsity, fine_tune, ramp_steps=magnitude_pruning.ramp_steps(prune.ramp_epochs, len(train[0]), prune.batch_size),
            mask_update_steps=prune.mask_update_steps)
        write_history(HISTORY, history, title=f"scratch control, magnitude pruning to sparsity {sparsity}")
        save_model(model, PRUNED_SCRATCH)
        num_params, nonzero = count_params(model)
        run.finish({**metrics, "target_sparsity": sparsity, "params": num_params, "nonzero_params": nonzero},
                   artifacts=history_files(HISTORY))


if __name__ == "__main__":
    main()
