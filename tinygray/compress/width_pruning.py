"""Width pruning of a whole network: every channel group found from the graph, scored as a group, cut together.

Why: cutting the teacher by depth keeps its early, high-resolution blocks (the expensive ones) and drops its
late, semantic ones. NVIDIA's Minitron found width pruning better than depth pruning for a pretrained network,
and Torch-Pruning (Fang et al. 2023, "DepGraph") shows how to do it for any architecture: channels that must
be removed together form a *group* (a convolution's output channels, the BatchNorm and depthwise convolution
that act on them channel by channel, every layer that reads them, and across a residual Add every block of the
stage), and a group is scored and cut as one. This module is that idea for the Keras functional graphs
tinygray builds: `channel_groups` walks the graph once, `prune_width` keeps the same fraction of every group.

A channel's importance is Torch-Pruning's group magnitude: for each member of its group, the L1 norm of the
weights that produce or read the channel (for a BatchNorm, its effective scale |gamma| / sqrt(var + eps),
as in Network Slimming), each member's scores divided by their mean so that no layer dominates by its
size, summed over the group. tinygray.compress.filter_pruning prunes the students of the prune stage
(plain chains, and the MBConv expansions only); this module is what the width families of the frontier use.
"""
from __future__ import annotations

import keras
import numpy as np

from tinygray.compress.filter_pruning import kept_filter_count

# Layers whose output channels are their input's, one for one: a group passes through them unchanged.
PASS_THROUGH = (keras.layers.BatchNormalization, keras.layers.DepthwiseConv2D, keras.layers.ReLU,
                keras.layers.Activation, keras.layers.Dropout, keras.layers.MaxPooling2D,
                keras.layers.AveragePooling2D, keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D,
                keras.layers.Rescaling, keras.layers.Resizing)


class WidthError(ValueError):
    """A width the network cannot be pruned to, or a layer this module cannot slice; the message names it."""


def kept_channels(channels: int, width: float) -> int:
    """The channels a group keeps at `width`: filter pruning's rule (kept_filter_count) with width = 1 - fraction."""
    return kept_filter_count(channels, 1.0 - width)


def channel_groups(model: keras.Model) -> tuple[dict[str, list[str]], dict[str, str | None], dict[str, str | None]]:
    """Walk the functional graph in order. Returns (groups, input_group, output_group): each group's producing
    Conv2D layers by the group's name (one of its producers), and for every layer the group of the channels it
    reads and of those it writes (None: not prunable, e.g. the input image or the logits). Raises WidthError
    for a layer whose channels it cannot follow (a Flatten, a Concatenate, a grouped convolution...)."""
    parent: dict[str, str] = {}

    def find(group: str) -> str:
        while parent[group] != group:
            parent[group] = parent[parent[group]]
            group = parent[group]
        return group

    tensor_group: dict[int, str | None] = {}
    reads: dict[str, str | None] = {}
    writes: dict[str, str | None] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            tensor_group[id(layer.output)] = None
            continue
        inputs = layer.input if isinstance(layer.input, (list, tuple)) else [layer.input]
        in_groups = [tensor_group[id(tensor)] for tensor in inputs]
        if isinstance(layer, keras.layers.Add):
            if len(set(g is None for g in in_groups)) > 1:
                raise WidthError(f"width pruning: Add layer {layer.name!r} joins pruned and unpruned channels")
            if in_groups[0] is not None:
                roots = [find(g) for g in in_groups]
                for root in roots[1:]:
                    parent[root] = roots[0]  # a residual Add ties its inputs' channels: one group
            out = in_groups[0]
        elif isinstance(layer, keras.layers.DepthwiseConv2D) or isinstance(layer, PASS_THROUGH):
            if isinstance(layer, keras.layers.DepthwiseConv2D) and layer.depth_multiplier != 1:
                raise WidthError(f"width pruning: depthwise conv {layer.name!r} has depth_multiplier "
                                 f"{layer.depth_multiplier}; only 1 keeps channels one for one")
            out = in_groups[0]
        elif isinstance(layer, keras.layers.Conv2D):
            if layer.groups != 1 or layer.data_format != "channels_last":
                raise WidthError(f"width pruning: conv {layer.name!r} must be ungrouped and channels_last")
            parent[layer.name] = layer.name
            out = layer.name
        elif isinstance(layer, keras.layers.Dense):
            out = None  # the logits: never pruned
        else:
            raise WidthError(f"width pruning: cannot follow the channels through layer {layer.name!r} "
                             f"({layer.__class__.__name__})")
        reads[layer.name], writes[layer.name] = in_groups[0], out
        outputs = layer.output if isinstance(layer.output, (list, tuple)) else [layer.output]
        for tensor in outputs:
            tensor_group[id(tensor)] = out
    input_group = {name: None if g is None else find(g) for name, g in reads.items()}
    output_group = {name: None if g is None else find(g) for name, g in writes.items()}
    groups: dict[str, list[str]] = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D):
            groups.setdefault(output_group[layer.name], []).append(layer.name)
    return groups, input_group, output_group


def _normalised(scores: np.ndarray) -> np.ndarray:
    mean = float(np.mean(scores))
    return scores / mean if mean > 0 else scores


def group_importance(model: keras.Model, input_group: dict, output_group: dict) -> dict[str, np.ndarray]:
    """Each group's per-channel importance: the sum over its members of their mean-normalised L1 scores."""
    importance: dict[str, np.ndarray] = {}

    def add(group: str, scores: np.ndarray) -> None:
        importance[group] = importance.get(group, 0.0) + _normalised(np.asarray(scores, dtype=np.float64))

    for layer in model.layers:
        if not layer.weights:
            continue
        read, written = input_group.get(layer.name), output_group.get(layer.name)
        if isinstance(layer, keras.layers.BatchNormalization) and written is not None:
            gamma, _, _, variance = (np.asarray(w) for w in layer.get_weights())
            add(written, np.abs(gamma) / np.sqrt(variance + layer.epsilon))
        elif isinstance(layer, keras.layers.DepthwiseConv2D) and written is not None:
            add(written, np.abs(np.asarray(layer.kernel)).sum(axis=(0, 1, 3)))
        elif isinstance(layer, keras.layers.Conv2D):
            kernel = np.abs(np.asarray(layer.kernel))
            if written is not None:
                add(written, kernel.sum(axis=(0, 1, 2)))
            if read is not None:
                add(read, kernel.sum(axis=(0, 1, 3)))
        elif isinstance(layer, keras.layers.Dense) and read is not None:
            add(read, np.abs(np.asarray(layer.kernel)).sum(axis=1))
    return importance


def prune_width(model: keras.Model, width: float, *, keep_weights: bool = True) -> keras.Model:
    """A new, uncompiled model keeping `width` (0 < width <= 1) of the channels of every group of `model` (the
    most important, channel_groups and group_importance), with every weight that writes or reads a removed
    channel sliced away. keep_weights=False gives the same narrower architecture from fresh initializers (the
    random-weight control of a width family)."""
    if not 0.0 < width <= 1.0:
        raise WidthError(f"width must be in (0, 1], got {width}")
    groups, input_group, output_group = channel_groups(model)
    if not groups:
        raise WidthError(f"width pruning: model {model.name!r} has no Conv2D layer to prune")
    importance = group_importance(model, input_group, output_group)
    kept: dict[str, np.ndarray] = {}
    for group, producers in groups.items():
        channels = model.get_layer(producers[0]).filters
        kept[group] = np.sort(np.argsort(-importance[group], kind="stable")[:kept_channels(channels, width)])

    def channels(group: str | None, size: int) -> np.ndarray:
        return np.arange(size) if group is None else kept[group]

    config = model.get_config()
    for layer_config in config["layers"]:
        layer_config.pop("build_config", None)
        name = layer_config["config"]["name"]
        if output_group.get(name) is not None and "filters" in layer_config["config"]:
            layer_config["config"]["filters"] = len(kept[output_group[name]])
    pruned = model.__class__.from_config(config)
    if not keep_weights:
        return pruned
    for layer in model.layers:
        values = [np.asarray(w) for w in layer.get_weights()]
        if not values:
            continue
        read, written = input_group.get(layer.name), output_group.get(layer.name)
        if isinstance(layer, keras.layers.BatchNormalization):
            values = [v[channels(written, v.shape[0])] for v in values]
        elif isinstance(layer, keras.layers.DepthwiseConv2D):
            values = [values[0][:, :, channels(written, values[0].shape[2]), :]] + \
                     [b[channels(written, b.shape[0])] for b in values[1:]]
        elif isinstance(layer, keras.layers.Conv2D):
            kernel = values[0][:, :, channels(read, values[0].shape[2]), :]
            values = [kernel[..., channels(written, kernel.shape[3])]] + \
                     [b[channels(written, b.shape[0])] for b in values[1:]]
        elif isinstance(layer, keras.layers.Dense):
            values = [values[0][channels(read, values[0].shape[0]), :]] + values[1:]
        pruned.get_layer(layer.name).set_weights(values)
    return pruned
