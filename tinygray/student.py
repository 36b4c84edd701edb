"""Students: the small CNN trained on soft targets (distilled) or on labels alone (the scratch
control), over several seeds, because one seed cannot tell a 0.5-point gain from noise."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from tinygray import models, training
from tinygray.atomic import atomic_output
from tinygray.augment import Augmentation
from tinygray.distillation import DistillationLoss, label_accuracy, with_teacher_logits
from tinygray.soft_targets import view_logits
from tinygray.stats import mean_std


# train_student parameters that the scratch control ignores (it shares the rest: same budget, same seeds).
DISTILLATION_ONLY = ("temperature", "alpha", "assistants")


def seeds(p: dict) -> list[int]:
    """`num_seeds` consecutive seeds from the global one; the first is the one pruned and shipped."""
    return [p["seed"] + i for i in range(p["num_seeds"])]


def checkpoint(model_dir: Path | str, seed: int) -> Path:
    return Path(model_dir) / f"seed_{seed}.keras"


def distillation_setup(p: dict) -> dict:
    """Packed targets (soft_targets.distillation_data), one set per training view."""
    return {"loss": DistillationLoss(p["temperature"], p["alpha"]), "metric_fn": label_accuracy,
            "targets_per_view": True}


def scratch_setup(p: dict) -> dict:
    """Labels alone, the same for every view: the control sees exactly the distilled student's images."""
    return {"loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True), "metric_fn": None,
            "targets_per_view": False}


def train_one(widths: list[int], train: tuple, val: tuple, num_classes: int, p: dict, seed: int, setup: dict,
              augmentation: Augmentation, name: str = "student") -> tuple[keras.Model, dict, dict]:
    training.seed_everything(seed)
    model = models.build_cnn(train[0].shape[1:], num_classes, widths, name=name)
    metrics, history = training.fit(
        model, train, val, loss=setup["loss"], metric=training.accuracy_metric(setup["metric_fn"]),
        epochs=p["epochs"], batch_size=p["batch_size"], learning_rate=p["learning_rate"], patience=p["patience"],
        seed=seed, augmentation=augmentation, targets_per_view=setup["targets_per_view"])
    return model, metrics, history


def assistant_chain(train: tuple, val: tuple, num_classes: int, p: dict, augmentation: Augmentation):
    """Teacher -> assistant(s) -> student (Mirzadeh et al. 2020): each assistant, narrower than the one
    before, is distilled from it, on the same views, and hands on its own logits for every view.
    Takes and returns distillation data (soft_targets.distillation_data), plus each assistant's metrics."""
    report = {}
    for widths in p["assistants"]:
        name = "assistant_" + "x".join(map(str, widths))
        model, metrics, _ = train_one(widths, train, val, num_classes, p, p["seed"], distillation_setup(p),
                                      augmentation, name=name)
        train = (train[0], with_teacher_logits(train[1], view_logits(model, train[0], augmentation, 256)))
        val = (val[0], with_teacher_logits(val[1], model.predict(np.asarray(val[0]), batch_size=256, verbose=0)))
        report[name] = {"val_accuracy": metrics["val_accuracy"], "params": models.count_params(model)[0]}
    return train, val, report


def train_seeds(train: tuple, val: tuple, num_classes: int, p: dict, setup: dict, augmentation: Augmentation,
                model_dir: Path | str, history_csv: Path | str) -> dict:
    """Train one student per seed into model_dir/seed_<s>.keras (all or nothing); the first seed's
    curves go to history_csv. Returns the stage metrics: the first seed's, plus every seed's."""
    per_seed, first = {}, None
    with atomic_output(model_dir) as staging:
        staging.mkdir()
        for seed in seeds(p):
            model, metrics, history = train_one(p["widths"], train, val, num_classes, p, seed, setup, augmentation)
            models.save_model(model, checkpoint(staging, seed))
            per_seed[str(seed)] = metrics
            if first is None:
                first = {**metrics, "params": models.count_params(model)[0]}
                training.write_history(history_csv, history)
    mean, std = mean_std([m["val_accuracy"] for m in per_seed.values()])
    return {**first, "val_accuracy_mean": round(mean, 4), "val_accuracy_std": round(std, 4), "seeds": per_seed}
