"""Students: the small CNN trained on soft targets (distilled) or on labels alone (the scratch
control), over several seeds, because one seed cannot tell a 0.5-point gain from noise; the seed with the
best validation accuracy is the one that goes on."""
from __future__ import annotations

import dataclasses
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras
import numpy as np

from tinygray.data import prepared
from tinygray.models.cnn import build_cnn
from tinygray.models.files import count_params, load_model, save_model
from tinygray.models import teacher_slice
from tinygray.train import loop
from tinygray.pipeline.atomic import atomic_output
from tinygray.data.augment import Augmentation, StoredViews
from tinygray.distill.losses import DistillationLoss, TeacherInTheLoop, label_accuracy, labels_of, with_teacher_logits
from tinygray.distill.soft_targets import distillation_data, view_logits
from tinygray.evaluate.stats import mean_std
from tinygray.pipeline.history import write_history

if TYPE_CHECKING:
    from tinygray.pipeline.params import TrainStudent


# train_student parameters of the distillation loss, which prune and qat fine-tune with too.
LOSS_PARAMS = ("temperature", "alpha", "dkd_beta")
# train_student parameters that the scratch control ignores (it shares the rest: same budget, same seeds).
DISTILLATION_ONLY = (*LOSS_PARAMS, "assistants")


def seeds(p: TrainStudent, first_seed: int) -> list[int]:
    """`num_seeds` consecutive seeds from the global one."""
    return [first_seed + i for i in range(p.num_seeds)]


# The student works at about this resolution whatever the image size: each doubling above it adds a stride-2
# stem convolution, so a 256-px student costs a few times a 28-px one instead of 84 times, and its last
# block sees the whole image instead of an 18-pixel patch.
WORKING_RESOLUTION = 32


def stem_downsamples(image_size: int) -> int:
    """Stride-2 stem convolutions for a square image of this side: 0 up to 32 px, 1 to 64, 2 to 128, 3 to 256."""
    return max(0, math.ceil(math.log2(image_size / WORKING_RESOLUTION) - 1e-9))


def downscale_factor(image_size: int, input_size: int | None) -> int:
    """How many pixels of the image's side one pixel of the student's working input averages
    (train_student.input_size; None: 1, the image as it is)."""
    if input_size is None:
        return 1
    if input_size > image_size or image_size % input_size:
        raise ValueError(f"parameter 'train_student.input_size' ({input_size}) must divide "
                         f"'preprocess.image_size' ({image_size}) exactly, e.g. {image_size // 2} or {image_size // 4}, "
                         "or be null (the student works on the full image)")
    return image_size // input_size


def build(input_shape: tuple[int, int, int], num_classes: int, widths: list[int], convs_per_block: int = 1,
          input_size: int | None = None, name: str = "student") -> keras.Model:
    """The student for these images: build_cnn averaging the image down to `input_size` inside the model
    (train_student.input_size), then with the stem that working size needs. It always takes the full image."""
    factor = downscale_factor(input_shape[0], input_size)
    return build_cnn(input_shape, num_classes, widths, convs_per_block=convs_per_block, downscale=factor,
                     stem_downsamples=stem_downsamples(input_shape[0] // factor), name=name)


def build_for(p: TrainStudent, input_shape: tuple[int, int, int], num_classes: int, *, widths: list[int] | None = None,
              inherit_from: keras.Model | None = None, name: str = "student") -> keras.Model:
    """The student train_student describes: with `teacher_blocks`, the teacher's stem and first blocks
    (teacher_slice; from the teacher's weights when `inherit_from` is the teacher, else from random ones);
    otherwise the small CNN of `widths` (train_student.widths unless given, as for an assistant)."""
    if p.teacher_blocks is not None:
        return teacher_slice.build(input_shape, num_classes, p.teacher_blocks,
                                   downscale_factor(input_shape[0], p.input_size), inherit_from=inherit_from, name=name)
    return build(input_shape, num_classes, widths or p.widths, p.convs_per_block, p.input_size, name=name)


def checkpoint(model_dir: Path | str, seed: int) -> Path:
    return Path(model_dir) / f"seed_{seed}.keras"


def select_seed(per_seed: dict[str, dict]) -> str:
    """The seed whose student goes on (pruned, quantized, shipped): the best validation accuracy, ties to
    the lower validation loss, then to the earlier seed. Model selection on validation is honest; a fixed
    first seed is not a choice at all (on Fashion-MNIST it was the worst of three: 86.4 vs 87.6 and 89.4%)."""
    return min(per_seed, key=lambda seed: (-per_seed[seed]["val_accuracy"], per_seed[seed]["val_loss"],
                                           list(per_seed).index(seed)))


@dataclass
class Setup:
    """How a student learns: its loss, its accuracy metric, whether each training view comes with its own
    targets (stored teacher logits), the teacher it runs in the loop instead, mixup, and the teacher whose
    weights a student cut from it starts from (None: random weights)."""
    loss: Any
    metric_fn: Any = None
    targets_per_view: bool = False
    one_hot: bool = False
    teacher: keras.Model | None = None
    mixup: float = 0.0
    inherit_from: keras.Model | None = None

    def metric(self) -> keras.metrics.Metric:
        return loop.accuracy_metric(self.metric_fn, one_hot=self.one_hot)


def one_hot(split: tuple, num_classes: int) -> tuple:
    images, labels = split
    return images, np.eye(num_classes, dtype=np.float32)[labels]


def distillation_setup(p: TrainStudent) -> Setup:
    """Packed targets (soft_targets.distillation_data), one set per training view."""
    return Setup(DistillationLoss(p.temperature, p.alpha, p.dkd_beta), label_accuracy, targets_per_view=True)


def distillation_inputs(prepared_dir, soft_targets_dir, teacher_path, views_dir, augmentation: Augmentation, p: TrainStudent,
                        num_classes: int, unlabeled_dir=None) -> tuple[tuple, tuple, Setup, Augmentation | StoredViews]:
    """(train, val, setup, views) for the distilled student. By default the stored views (views_dir) and the
    teacher's stored logits for them; with train_student.teacher_in_loop, one-hot labels, the teacher
    itself, a fresh view every epoch and train_student.mixup: the teacher labels exactly the (mixed) image
    the student sees."""
    teacher = load_model(teacher_path) if p.teacher_in_loop or p.teacher_blocks is not None else None
    inherit_from = teacher if p.teacher_blocks is not None else None
    if not p.teacher_in_loop:
        train, val = distillation_data(prepared_dir, soft_targets_dir, augmentation, unlabeled_dir)
        setup = dataclasses.replace(distillation_setup(p), inherit_from=inherit_from)
        return train, val, setup, StoredViews(views_dir, augmentation)
    train, val = (one_hot(prepared.read_split(prepared_dir, split), num_classes) for split in ("train", "val"))
    setup = Setup(None, one_hot=True, teacher=teacher, mixup=p.mixup, inherit_from=inherit_from)
    return train, val, setup, augmentation.fresh(p.epochs)


def scratch_inputs(prepared_dir, views_dir, augmentation: Augmentation, p: TrainStudent,
                   num_classes: int) -> tuple[tuple, tuple, Setup, Augmentation | StoredViews]:
    """(train, val, setup, views) for the scratch control: labels alone, on the images the distilled student
    sees (the same fixed views, or fresh ones and the same mixup when the teacher runs in the loop). A student cut
    from the teacher gets its control from random weights: the same network, without ImageNet or the teacher."""
    train, val = prepared.read_split(prepared_dir, "train"), prepared.read_split(prepared_dir, "val")
    if p.teacher_in_loop:
        setup = Setup(keras.losses.CategoricalCrossentropy(from_logits=True), one_hot=True, mixup=p.mixup)
        return one_hot(train, num_classes), one_hot(val, num_classes), setup, augmentation.fresh(p.epochs)
    return train, val, Setup(keras.losses.SparseCategoricalCrossentropy(from_logits=True)), StoredViews(views_dir, augmentation)


def train_one(widths: list[int], train: tuple, val: tuple, num_classes: int, p: TrainStudent, seed: int, setup: Setup,
              augmentation: Augmentation, name: str = "student",
              log_epoch: loop.EpochLog | None = None) -> tuple[keras.Model, dict, dict]:
    loop.seed_everything(seed)
    model = build_for(p, train[0].shape[1:], num_classes, widths=widths, inherit_from=setup.inherit_from, name=name)
    fitted = model if setup.teacher is None else TeacherInTheLoop(model, setup.teacher, p.temperature, p.alpha, p.dkd_beta)
    metrics, history = loop.fit(
        fitted, train, val, loss=setup.loss, metric=setup.metric(),
        epochs=p.epochs, batch_size=p.batch_size, learning_rate=p.learning_rate, patience=p.patience,
        schedule=p.schedule, seed=seed, augmentation=augmentation, targets_per_view=setup.targets_per_view,
        mixup=setup.mixup, log_epoch=log_epoch, curve=f"seed_{seed}")
    return model, metrics, history


def assistant_chain(train: tuple, val: tuple, num_classes: int, p: TrainStudent, seed: int,
                    augmentation: Augmentation | StoredViews):
    """Teacher -> assistant(s) -> student (Mirzadeh et al. 2020): each assistant, narrower than the one
    before, is distilled from it, on the same views, and hands on its own logits for every view.
    Takes and returns distillation data (soft_targets.distillation_data), plus each assistant's metrics."""
    report = {}
    for widths in p.assistants:
        name = "assistant_" + "x".join(map(str, widths))
        model, metrics, _ = train_one(widths, train, val, num_classes, p, seed, distillation_setup(p),
                                      augmentation, name=name)
        train = (train[0], with_teacher_logits(train[1], view_logits(model, train[0], augmentation, 256)))
        val = (val[0], with_teacher_logits(val[1], model.predict(np.asarray(val[0]), batch_size=256, verbose=0)))
        report[name] = {"val_accuracy": metrics["val_accuracy"], "params": count_params(model)[0]}
    return train, val, report


def train_seeds(train: tuple, val: tuple, num_classes: int, p: TrainStudent, first_seed: int, setup: Setup,
                augmentation: Augmentation,
                model_dir: Path | str, selected_path: Path | str, history_csv: Path | str,
                log_epoch: loop.EpochLog | None = None) -> tuple[dict, dict]:
    """Train one student per seed into model_dir/seed_<s>.keras (all or nothing), and copy the one
    select_seed picks to `selected_path`, the single file later stages read; its curves go to history_csv.
    Returns the stage metrics (the selected seed's, which seed that is, and every seed's) and every seed's
    per-epoch history (each seed's curve also goes to `log_epoch` as it trains, as seed_<s>)."""
    per_seed, histories, params = {}, {}, None
    with atomic_output(model_dir) as staging:
        staging.mkdir()
        for number, seed in enumerate(seeds(p, first_seed), start=1):
            print(f"{Path(model_dir).name}: seed {seed} ({number}/{p.num_seeds})", flush=True)
            model, metrics, histories[str(seed)] = train_one(p.widths, train, val, num_classes, p, seed, setup,
                                                             augmentation, log_epoch=log_epoch)
            loop.require_above_chance(
                f"{Path(model_dir).name} seed {seed}", metrics["val_accuracy"], labels_of(val[1], num_classes),
                hint=f"It trained {metrics['epochs']} epochs; try a larger train_student.learning_rate or epochs, or "
                     "check the teacher (metrics/train_teacher.json) and the data (metrics/preprocess.json).")
            save_model(model, checkpoint(staging, seed))
            per_seed[str(seed)], params = metrics, count_params(model)[0]
        selected = select_seed(per_seed)
        with atomic_output(selected_path) as selected_staging:
            shutil.copyfile(checkpoint(staging, int(selected)), selected_staging)
    write_history(history_csv, histories[selected], title=f"{Path(model_dir).name}, seed {selected} (selected)")
    mean, std = mean_std([m["val_accuracy"] for m in per_seed.values()])
    return {**per_seed[selected], "params": params, "selected_seed": int(selected), "val_accuracy_mean": round(mean, 4),
            "val_accuracy_std": round(std, 4), "seeds": per_seed}, histories
