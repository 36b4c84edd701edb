"""Student families: networks that inherit the teacher's weights by depth and by width, one per frontier point.

Why: a single student shape gives one point of the size/accuracy curve; a user with a 1 MB budget and one with
100 KB need different files, and both want the teacher's ImageNet features, not a network from random weights.
A family is `blocks` (the teacher's stem and its first k of 16 MBConv blocks; 16 keeps the whole network with
its 1280-channel head convolution and the teacher's own classifier) and `width` (the fraction of every channel
group kept, tinygray.compress.width_pruning: the route Minitron and Torch-Pruning take for pretrained networks).
Depth cuts after blocks 5, 6, 8, 11 give 58k, 91k, 262k, 717k parameters; the whole network at widths 1/2,
1/4, 1/8 fills the band between them by width. Every family takes the full image of raw pixels and averages it
down to its input size inside the model, as every student does.

`build` gives the inherited network; `build(..., inherit=False)` the same architecture from fresh
initializers: the random-weight control of that family.
"""
from __future__ import annotations

import keras

from tinygray.compress.width_pruning import prune_width
from tinygray.models.cnn import BN_MOMENTUM
from tinygray.models import teacher_slice
from tinygray.models.efficientnet_lite import FEATURES_LAYER, _conv_bn
from tinygray.models.teacher_slice import DROPOUT, NUM_BLOCKS, backbone_of

HEAD_CHANNELS = 1280  # EfficientNet-Lite0's head convolution, kept when a family keeps all 16 blocks


def build(teacher: keras.Model, input_shape: tuple[int, int, int], num_classes: int, blocks: int, width: float,
          downscale: int = 1, *, inherit: bool = True, name: str = "student") -> keras.Model:
    """The teacher cut after `blocks` blocks and pruned to `width` of its channels, from the teacher's weights
    (its classifier too when all 16 blocks are kept), or with inherit=False the same shape from random weights.
    BatchNorm keeps training with the students' faster momentum (the family sees another input size)."""
    full = _lite0(input_shape, num_classes, blocks, downscale, name)
    _inherit(full, teacher)
    model = prune_width(full, width, keep_weights=inherit) if width < 1.0 else full
    if not inherit and width >= 1.0:
        model = keras.Model.from_config(full.get_config())
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    return model


def _lite0(input_shape, num_classes: int, blocks: int, downscale: int, name: str) -> keras.Model:
    """The depth cut of teacher_slice (pixels -> average downscale -> Lite0 stem and blocks 0..blocks-1 -> pool
    -> dropout -> new logits, under the teacher's layer names), with the teacher's 1280-channel head
    convolution before the pool when all 16 blocks are kept, so that its classifier fits too."""
    cut = teacher_slice.build(input_shape, num_classes, blocks, downscale, name=name)
    if blocks < NUM_BLOCKS:
        return cut
    x = _conv_bn(cut.get_layer("pool").input, HEAD_CHANNELS, 1, 1, "conv_head", "bn1", FEATURES_LAYER)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(DROPOUT, name="dropout")(x)
    return keras.Model(cut.input, keras.layers.Dense(num_classes, name="logits")(x), name=name)


def _inherit(model: keras.Model, teacher: keras.Model) -> None:
    """Every layer with a namesake in the teacher's backbone takes its weights; the classifier too when its
    shape is the teacher's (all 16 blocks and the head kept), else it stays new."""
    backbone = backbone_of(teacher)
    theirs = {layer.name: layer for layer in backbone.layers if layer.weights}
    for layer in model.layers:
        if layer.weights and layer.name in theirs:
            layer.set_weights(theirs[layer.name].get_weights())
    head = next((layer for layer in teacher.layers if layer.name == "logits"), None)
    mine = model.get_layer("logits")
    if head is not None and [w.shape for w in head.weights] == [w.shape for w in mine.weights]:
        mine.set_weights(head.get_weights())
