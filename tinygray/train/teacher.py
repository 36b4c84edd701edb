"""The teacher: a from-scratch CNN or an ImageNet backbone fine-tuned on grayscale input.

Fine-tuning follows the usual two phases for small data: train a new head on a frozen backbone,
then unfreeze (all of it, or its top layers) at a lower learning rate with early stopping.
"""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import keras

from tinygray.train import loop
from tinygray.models.cnn import BN_MOMENTUM, build_cnn

if TYPE_CHECKING:
    from tinygray.data.augment import Augmentation
    from tinygray.pipeline.params import TrainTeacher


# train_teacher.input_size "auto": the image's own size, but at least what ImageNet features need (28-px
# digits: 98.8% at 64 px) and at most EfficientNet-Lite0's native 224 (a 256-px image costs 224's compute).
AUTO_INPUT_RANGE = (64, 224)


def input_size(p: TrainTeacher, image_size: int) -> int:
    """The side the teacher resizes its input to: train_teacher.input_size, or the "auto" rule above."""
    if p.input_size != "auto":
        return p.input_size
    low, high = AUTO_INPUT_RANGE
    return min(high, max(low, image_size))


def use_mixed_precision(enabled: bool) -> None:
    """train_teacher.mixed_precision: float16 compute with float32 weights (Keras' mixed_float16), which pays
    on GPUs with tensor cores. Refused without a GPU: on a CPU float16 is emulated, slower, not faster."""
    if not enabled:
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        raise SystemExit("train_teacher.mixed_precision: true needs a GPU (TensorFlow sees none here: "
                         "tf.config.list_physical_devices('GPU') is empty); set it to false, or install the GPU "
                         "build with `make setup GPU=1` on a machine with an NVIDIA GPU")
    keras.mixed_precision.set_global_policy("mixed_float16")


def build_teacher(input_shape: tuple[int, int, int], num_classes: int, p: TrainTeacher) -> keras.Model:
    """Pixels -> (resize to input_size) -> backbone -> global average pool -> dropout -> logits."""
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = inputs
    side = input_size(p, input_shape[0])
    if input_shape[:2] != (side, side):
        # ImageNet features need more than 28 px; resizing inside the model keeps the data small on disk.
        x = keras.layers.Resizing(side, side, name="resize")(x)
    size = (side, side, input_shape[2])
    if p.backbone == "cnn":
        return keras.Model(inputs, build_cnn(size, num_classes, p.cnn_widths, convs_per_block=p.cnn_convs_per_block,
                                             dropout=p.dropout, name="cnn")(x), name="teacher")
    from tinygray.models.backbones import build_backbone

    backbone = build_backbone(p.backbone, p.weights, size)
    x = backbone(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(p.dropout, name="dropout")(x)
    # logits in float32 whatever the compute policy: softmax and the loss need its range
    return keras.Model(inputs, keras.layers.Dense(num_classes, name="logits", dtype="float32")(x), name="teacher")


def backbone_of(teacher: keras.Model) -> keras.Model | None:
    nested = [layer for layer in teacher.layers if isinstance(layer, keras.Model)]
    return nested[0] if nested else None


def is_pretrained(p: TrainTeacher) -> bool:
    return p.backbone != "cnn" and p.weights != "none"


def set_trainable(backbone: keras.Model, *, pretrained: bool, unfreeze_top_layers: int | None) -> None:
    """Open the backbone for fine-tuning. A pretrained backbone keeps every BatchNorm frozen: its
    statistics otherwise drift to the few thousand new images (measured here: 99.0% -> 67.8%), and
    calling the backbone with training=False alone does not stop that inside fit(). A random one
    trains its BatchNorm with a faster momentum, without which it did not learn at all."""
    backbone.trainable = True
    weighted = [layer for layer in backbone.layers if layer.weights]
    for layer in weighted:
        if isinstance(layer, keras.layers.BatchNormalization):
            if pretrained:
                layer.trainable = False
            else:
                layer.momentum = BN_MOMENTUM
    if pretrained and unfreeze_top_layers is not None:
        convolutions = [layer for layer in weighted if not isinstance(layer, keras.layers.BatchNormalization)]
        for layer in convolutions[: max(0, len(convolutions) - unfreeze_top_layers)]:
            layer.trainable = False


def train(teacher: keras.Model, train_split: tuple, val_split: tuple, p: TrainTeacher, seed: int,
          augmentation: Augmentation | None = None, log_epoch: loop.EpochLog | None = None) -> tuple[dict, list[dict]]:
    """Returns the stage's training metrics and one history per phase. With an `augment.Augmentation`
    (train_teacher.augment), epoch e trains on view e mod views of every image, the views the student sees.
    `log_epoch` gets each phase's curve (teacher_frozen, teacher_finetune) as it trains, numbered across phases."""
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    common = dict(loss=loss, batch_size=p.batch_size, seed=seed, augmentation=augmentation, log_epoch=log_epoch)
    backbone = backbone_of(teacher)
    pretrained = is_pretrained(p)
    phases, histories = {}, []
    if pretrained and p.frozen_epochs:
        backbone.trainable = False
        phases["frozen"], history = loop.fit(
            teacher, train_split, val_split, metric=loop.accuracy_metric(), epochs=p.frozen_epochs,
            learning_rate=p.learning_rate, curve="teacher_frozen", **common)
        histories.append(history)
    if backbone is not None:
        set_trainable(backbone, pretrained=pretrained, unfreeze_top_layers=p.unfreeze_top_layers)
    phase = "finetune" if pretrained else "train"
    phases[phase], history = loop.fit(
        teacher, train_split, val_split, metric=loop.accuracy_metric(), epochs=p.epochs,
        learning_rate=p.finetune_learning_rate if pretrained else p.learning_rate,
        patience=p.patience, curve=f"teacher_{phase}", first_step=1 + sum(len(h["loss"]) for h in histories), **common)
    histories.append(history)
    last = list(phases.values())[-1]
    metrics = {
        "val_accuracy": last["val_accuracy"],
        "val_loss": last["val_loss"],
        "epochs": sum(phase["epochs"] for phase in phases.values()),
        "best_epoch": sum(phase["epochs"] for phase in phases.values()) - last["epochs"] + last["best_epoch"],
        "train_seconds": round(sum(phase["train_seconds"] for phase in phases.values()), 2),
        "phases": phases,
    }
    return metrics, histories


def training_views(p: TrainTeacher, augmentation: Augmentation) -> Augmentation | None:
    """With train_teacher.augment, a fresh view every epoch in the augment section's ranges (not its number of
    views: soft targets need a fixed set, the teacher's own training does not); otherwise None, the plain images."""
    return augmentation.fresh(p.frozen_epochs + p.epochs) if p.augment else None


def fit(p: TrainTeacher, seed: int, train_split: tuple, val_split: tuple, num_classes: int,
        augmentation: Augmentation | None = None, strategy=None,
        log_epoch: loop.EpochLog | None = None) -> tuple[keras.Model, dict, list[dict]]:
    """Seed, build and train a teacher (inside a tf.distribute strategy's scope when given): the train_teacher
    stage and scripts/out_of_fold_targets.py train it the same way. Returns (model, metrics, histories)."""
    loop.seed_everything(seed)
    use_mixed_precision(p.mixed_precision)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model = build_teacher(train_split[0].shape[1:], num_classes, p)
        metrics, histories = train(model, train_split, val_split, p, seed, augmentation, log_epoch)
    return model, metrics, histories
