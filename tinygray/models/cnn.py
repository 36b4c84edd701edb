"""The plain CNN the students and the scratch teacher are built from (build_cnn), and its BatchNorm momentum."""
from __future__ import annotations

import keras

# Keras' default 0.99 needs hundreds of steps before the moving statistics match the weights; with a
# few thousand images (~60 steps an epoch) validation accuracy then lags at chance for epochs.
BN_MOMENTUM = 0.9


def build_cnn(input_shape: tuple[int, int, int], num_classes: int, widths: list[int], *,
              convs_per_block: int = 1, dropout: float = 0.0, downscale: int = 1, stem_downsamples: int = 0,
              name: str = "cnn") -> keras.Model:
    """A plain conv -> BN -> ReLU -> max-pool stack with a global-average-pool head returning logits.

    It takes raw 0..255 pixels (the scaling is inside), so a TFLite int8 input maps 1:1 onto pixels.
    Global average pooling instead of Flatten keeps the head tiny whatever the image size.
    `stem_downsamples` stride-2 convolutions (widths[0] filters each) come first, so that larger images
    reach the blocks at a small working resolution (student.stem_downsamples picks the number).
    `downscale` > 1 averages each downscale x downscale patch of pixels first: the network then works at
    1/downscale of the image's side yet still takes the full image, so the phone model needs no resizing
    of its own; at 224 px a learned stride-2 stem costs most of an epoch, an average pool almost nothing.
    """
    inputs = keras.Input(shape=input_shape, name="pixels")
    x = keras.layers.Rescaling(1.0 / 255.0, name="scale")(inputs)
    if downscale > 1:
        x = keras.layers.AveragePooling2D(downscale, name="downscale")(x)
    for stem in range(stem_downsamples):
        x = keras.layers.Conv2D(widths[0], 3, strides=2, padding="same", use_bias=False, name=f"stem{stem}_conv")(x)
        x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"stem{stem}_bn")(x)
        x = keras.layers.ReLU(name=f"stem{stem}_relu")(x)
    for block, width in enumerate(widths):
        for conv in range(convs_per_block):
            x = keras.layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"block{block}_conv{conv}")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"block{block}_bn{conv}")(x)
            x = keras.layers.ReLU(name=f"block{block}_relu{conv}")(x)
        if block < len(widths) - 1:
            x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name=name)
