"""Structured pruning: remove whole convolution filters and rebuild a narrower dense model.

Magnitude pruning leaves the tensors their full size, so its zeros only help gzip; dropping filters
shrinks the kernels themselves, so parameters, file size and latency all fall, with no sparse
kernels needed on the phone. Filters are ranked by the L1 norm of their kernel (Li et al., 2017,
"Pruning Filters for Efficient ConvNets").
"""
from __future__ import annotations

import math

import keras
import numpy as np

# Layers that act on each channel separately: a pruned channel's neighbours pass through unchanged.
CHANNELWISE_LAYERS = (keras.layers.ReLU, keras.layers.Activation, keras.layers.MaxPooling2D,
                      keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D,
                      keras.layers.GlobalMaxPooling2D, keras.layers.Dropout)


def filter_l1_norms(model: keras.Model) -> dict[str, np.ndarray]:
    """L1 norm of every output filter of every Conv2D, by layer name: small filters produce small
    activations, so they are the cheapest to lose."""
    return {layer.name: np.abs(np.asarray(layer.kernel)).sum(axis=(0, 1, 2))
            for layer in model.layers if isinstance(layer, keras.layers.Conv2D)}


def kept_filter_count(filters: int, fraction: float) -> int:
    """ceil((1 - fraction) * filters), at least 1. The rounding first stops float noise from keeping
    an extra filter: (1 - 0.7) * 10 is 3.0000000000000004."""
    return max(1, math.ceil(round((1.0 - fraction) * filters, 9)))


def prune_filters(model: keras.Model, fraction: float) -> keras.Model:
    """A new, uncompiled model with `fraction` of each Conv2D's filters removed (the smallest by L1
    norm) and every weight that read or wrote those channels sliced to match: the conv's kernel (and
    bias), the BatchNormalization statistics after it, the next conv's input channels and the Dense
    input rows. Handles plain chains such as build_cnn with any convs_per_block; raises ValueError,
    naming the layer, for anything else (branches, Flatten after a conv, grouped convs, ...). A network of
    MBConv blocks (a student cut from the teacher) has its expanded channels pruned instead
    (prune_expanded_channels)."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    if any(layer.name.endswith(EXPAND_SUFFIX) for layer in model.layers):
        return prune_expanded_channels(model, fraction)
    norms = filter_l1_norms(model)
    widths: dict[str, int] = {}
    weights: dict[str, list[np.ndarray]] = {}
    kept = None  # indices of the surviving channels of the current tensor; None = all of them
    previous = None
    for layer in model.layers:
        _check_chain(layer, previous)
        previous = layer
        values = [np.asarray(w) for w in layer.get_weights()]
        if isinstance(layer, keras.layers.Conv2D):
            _check_conv(layer)
            if kept is not None:
                values[0] = values[0][:, :, kept, :]
            kept = np.sort(np.argsort(-norms[layer.name], kind="stable")[:kept_filter_count(layer.filters, fraction)])
            values = [values[0][..., kept]] + [bias[kept] for bias in values[1:]]
            widths[layer.name] = len(kept)
        elif kept is None or isinstance(layer, CHANNELWISE_LAYERS):
            pass  # before the first conv nothing is pruned; channel-wise layers have nothing to slice
        elif isinstance(layer, keras.layers.BatchNormalization) and layer.axis in (-1, len(layer.input.shape) - 1):
            values = [v[kept] for v in values]  # gamma, beta, moving mean and variance: one per channel
        elif isinstance(layer, keras.layers.Dense):
            values[0] = values[0][kept, :]
            kept = None  # the logits are not pruned
        else:
            raise ValueError(f"prune_filters: cannot slice the channels of layer {layer.name!r} "
                             f"({layer.__class__.__name__}) after a pruned convolution")
        weights[layer.name] = values
    if not widths:
        raise ValueError(f"prune_filters: model {model.name!r} has no Conv2D layer to prune")
    return _rebuild_with_widths(model, widths, weights)


EXPAND_SUFFIX = ".expand_conv"  # tinygray.models.efficientnet_lite's names: blocks.<i>.expand_conv, .bn0, .depthwise_conv, ...


def prune_expanded_channels(model: keras.Model, fraction: float) -> keras.Model:
    """A new, uncompiled model with `fraction` of each MBConv block's expanded channels removed: the channels
    between its 1x1 expansion and its 1x1 projection, which nothing outside the block reads, so each block is
    pruned on its own (Torch-Pruning's dependency groups, for this one architecture). Block outputs, which the
    residual adds tie across a stage, keep their width. A channel's importance is its scale after the
    depthwise convolution's BatchNorm (|gamma| / sqrt(var + eps), as in Network Slimming) times the L1 norm of
    the projection weights that read it: what the channel contributes to the block's output. Sliced to match:
    the expansion's filters, both BatchNorms, the depthwise kernel and the projection's input channels."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction must be in [0, 1), got {fraction}")
    weights = {layer.name: [np.asarray(w) for w in layer.get_weights()] for layer in model.layers}
    widths: dict[str, int] = {}
    for expand in (layer for layer in model.layers if layer.name.endswith(EXPAND_SUFFIX)):
        block = expand.name.removesuffix(EXPAND_SUFFIX)
        bn0, depthwise, bn1, project = (f"{block}.{part}" for part in ("bn0", "depthwise_conv", "bn1", "project_conv"))
        gamma, _, _, variance = weights[bn1]
        importance = (np.abs(gamma) / np.sqrt(variance + model.get_layer(bn1).epsilon)
                      * np.abs(weights[project][0]).sum(axis=(0, 1, 3)))
        kept = np.sort(np.argsort(-importance, kind="stable")[:kept_filter_count(expand.filters, fraction)])
        weights[expand.name][0] = weights[expand.name][0][..., kept]
        weights[bn0], weights[bn1] = [v[kept] for v in weights[bn0]], [v[kept] for v in weights[bn1]]
        weights[depthwise][0] = weights[depthwise][0][:, :, kept, :]
        weights[project][0] = weights[project][0][:, :, kept, :]
        widths[expand.name] = len(kept)
    if not widths:
        raise ValueError(f"prune_expanded_channels: model {model.name!r} has no MBConv expansion to prune")
    return _rebuild_with_widths(model, widths, weights)


def _check_chain(layer: keras.layers.Layer, previous: keras.layers.Layer | None) -> None:
    """Channel indices are tracked along a single path; a branch or merge would need them aligned."""
    if previous is None:
        return
    try:
        single_input = layer.input is previous.output
    except (AttributeError, ValueError):  # a shared layer, called more than once
        single_input = False
    if not single_input:
        raise ValueError(f"prune_filters: layer {layer.name!r} does not simply follow {previous.name!r}; "
                         "only plain chains of layers (like build_cnn) can be pruned")


def _check_conv(layer: keras.layers.Conv2D) -> None:
    if layer.groups != 1 or layer.data_format != "channels_last":
        raise ValueError(f"prune_filters: conv {layer.name!r} must be ungrouped and channels_last "
                         f"(groups={layer.groups}, data_format={layer.data_format!r})")


def _rebuild_with_widths(model: keras.Model, widths: dict[str, int], weights: dict[str, list[np.ndarray]]) -> keras.Model:
    """The same architecture from its config with new filter counts, holding the sliced `weights` (by layer name).
    Each layer's saved build shape is dropped so the layers are built from the narrower tensors that now reach them."""
    config = model.get_config()
    for layer_config in config["layers"]:
        layer_config.pop("build_config", None)
        name = layer_config["config"]["name"]
        if name in widths:
            layer_config["config"]["filters"] = widths[name]
    pruned = model.__class__.from_config(config)
    for layer in pruned.layers:
        layer.set_weights(weights[layer.name])
    return pruned
