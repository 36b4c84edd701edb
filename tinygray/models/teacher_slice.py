"""Students cut from the teacher: EfficientNet-Lite0's stem and its first k blocks, a new pooled dense head.

Why: a student from random weights learns everything the teacher learnt from ImageNet through four class
probabilities per view, and on the 224-px brain MRI no recipe of that kind beat its scratch control. The first
blocks of the fine-tuned teacher hold ImageNet's low-level features already adapted to the images; a slice of
them is a small network that starts where the teacher is (the "prune, then distil" route of Minitron and
DepGraph, here by depth). A probe on the brain MRI (issue 37: blocks 0-4, 58k parameters, 112 px, labels
alone) reached 92.2% from ImageNet weights against 88.6% from random weights.

The slice takes the full image of raw 0..255 pixels, as every student does (the phone model needs no resizing
of its own), averages it down to `input_size` inside the model, then runs the teacher's layers under their
own names, so the teacher's weights are copied by name. `inherit_from=None` gives the same network from
random weights: the scratch control of the same architecture.
"""
from __future__ import annotations

import keras

from tinygray.models.cnn import BN_MOMENTUM
# The Lite0 builder's own pieces, so that the slice's layers are the teacher's, name for name
from tinygray.models.efficientnet_lite import BLOCKS, INPUT_MEAN, INPUT_STD, _conv_bn, _mbconv

# Blocks of EfficientNet-Lite0 (16): a slice keeps the first 1..NUM_BLOCKS of them.
NUM_BLOCKS = sum(repeats for *_, repeats in BLOCKS)
DROPOUT = 0.2  # before the new head, as in the teacher's own head


class SliceError(ValueError):
    """A slice the teacher cannot give (a block count out of range, a teacher without the Lite0 backbone)."""


def check_blocks(blocks: int) -> None:
    """A slice keeps 1..NUM_BLOCKS blocks."""
    if not 1 <= blocks <= NUM_BLOCKS:
        raise SliceError(f"parameter 'train_student.teacher_blocks' must be in 1..{NUM_BLOCKS} "
                         f"(EfficientNet-Lite0 has {NUM_BLOCKS} blocks), got {blocks}")


def backbone_of(teacher: keras.Model) -> keras.Model:
    """The teacher's EfficientNet-Lite0 feature extractor (the nested model teacher.build_teacher adds)."""
    nested = [layer for layer in teacher.layers if isinstance(layer, keras.Model)]
    if not nested or nested[0].name != "efficientnet_lite0":
        raise SliceError(f"a student cut from the teacher needs an EfficientNet-Lite0 teacher; this one's backbone is "
                         f"{nested[0].name if nested else 'none (a plain CNN)'} (train_teacher.backbone)")
    return nested[0]


def build(input_shape: tuple[int, int, int], num_classes: int, blocks: int, downscale: int = 1, *,
          inherit_from: keras.Model | None = None, name: str = "student") -> keras.Model:
    """Pixels -> (average downscale x downscale patches) -> Lite0 stem and blocks 0..blocks-1 -> global
    average pool -> dropout -> logits. With `inherit_from` (the trained teacher), every layer of the slice
    starts from the teacher's weights; without, from Keras' initializers. BatchNorm keeps training, with the
    faster momentum the students use (BN_MOMENTUM): the slice sees another input size than the teacher."""
    check_blocks(blocks)
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = keras.layers.AveragePooling2D(downscale, name="downscale")(inputs) if downscale > 1 else inputs
    x = keras.layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="rescale")(x)
    x = _conv_bn(x, 32, 3, 2, "conv_stem", "bn0", "stem_relu")
    index = 0
    for kernel, stride, expand, filters, repeats in BLOCKS:
        for i in range(repeats):
            if index < blocks:
                x = _mbconv(x, kernel, stride if i == 0 else 1, expand, filters, f"blocks.{index}")
            index += 1
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(DROPOUT, name="dropout")(x)
    model = keras.Model(inputs, keras.layers.Dense(num_classes, name="logits")(x), name=name)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    if inherit_from is not None:
        inherit(model, backbone_of(inherit_from))
    return model


def inherit(model: keras.Model, backbone: keras.Model) -> None:
    """Copy the backbone's weights into every layer of `model` that has a layer of the same name there (the
    whole slice; the new head has no namesake)."""
    theirs = {layer.name: layer for layer in backbone.layers if layer.weights}
    copied = 0
    for layer in model.layers:
        if layer.weights and layer.name in theirs:
            layer.set_weights(theirs[layer.name].get_weights())
            copied += 1
    if not copied:
        raise SliceError(f"no layer of {model.name!r} has a namesake in the teacher's backbone {backbone.name!r}")
