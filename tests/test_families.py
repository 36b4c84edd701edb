"""Student families (params.yaml `families`): the teacher cut by depth and pruned by width. At full width the
whole family computes the teacher's own logits; the width pruning finds the channel groups a residual stage
ties together, keeps the same fraction of each, removes the least important channels, and gives a network
that still converts to int8; a bad family is refused by name before any work."""
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from tinygray.compress import tflite, width_pruning
from tinygray.litert import TFLiteModel
from tinygray.models import families
from tinygray.models.backbones import build_backbone
from tinygray.pipeline.params import ParamsError, load_params

from conftest import randomize_batch_norms

REPO = Path(__file__).resolve().parents[1]
SIDE = 32


@pytest.fixture(scope="module")
def teacher():
    """Shaped as teacher.build_teacher makes it (pixels -> Lite0 backbone -> pool -> dropout -> logits), random
    weights and BatchNorm statistics that are not the identity, so that a wrong copy or slice shows."""
    keras.utils.set_random_seed(0)
    backbone = build_backbone("efficientnet_lite0", "none", (SIDE, SIDE, 1))
    randomize_batch_norms(backbone)
    inputs = keras.Input((SIDE, SIDE, 1), name="pixels")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    x = keras.layers.Dropout(0.2, name="dropout")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="teacher")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 255, (8, SIDE, SIDE, 1)).astype(np.float32)


def test_the_whole_family_at_full_width_computes_the_teachers_logits(teacher, images):
    whole = families.build(teacher, (SIDE, SIDE, 1), 3, 16, 1.0)
    assert whole.count_params() == teacher.count_params()
    np.testing.assert_allclose(whole.predict(images, verbose=0), teacher.predict(images, verbose=0), rtol=1e-4, atol=1e-4)


def test_depth_cuts_give_the_documented_sizes(teacher):
    """The sizes params.yaml and the guide quote for the 4-class brain MRI at 224 px (112-px students)."""
    sizes = {blocks: families.build(teacher, (224, 224, 1), 4, blocks, 1.0, downscale=2).count_params()
             for blocks in (5, 6, 8, 11)}
    assert sizes == {5: 58_004, 6: 91_364, 8: 261_924, 11: 716_804}


def test_a_residual_stage_is_one_group_and_each_expansion_its_own(teacher):
    whole = families.build(teacher, (SIDE, SIDE, 1), 3, 16, 1.0)
    groups, reads, writes = width_pruning.channel_groups(whole)
    by_member = {member: group for group, members in groups.items() for member in members}
    # blocks 5-7 (80 channels) add their outputs: one group; blocks 8-10 (112) another
    assert len({by_member[f"blocks.{i}.project_conv"] for i in (5, 6, 7)}) == 1
    assert by_member["blocks.5.project_conv"] != by_member["blocks.8.project_conv"]
    # an expansion is read only inside its block: a group of its own
    assert groups[by_member["blocks.6.expand_conv"]] == ["blocks.6.expand_conv"]
    # the stem's channels run through block 0's depthwise convolution (no expansion there)
    assert writes["blocks.0.depthwise_conv"] == by_member["conv_stem"] == reads["blocks.0.project_conv"]
    # the stage's channels are what the next stage's first expansion and the head convolution read
    assert reads["blocks.8.expand_conv"] == by_member["blocks.7.project_conv"]
    assert reads["conv_head"] == by_member["blocks.15.project_conv"] and reads["logits"] == by_member["conv_head"]
    assert len(groups) == 1 + 15 + 7 + 1  # the stem, 15 expansions, one per stage (7), the head convolution


@pytest.mark.parametrize("width", [0.5, 0.25, 0.125])
def test_every_group_keeps_the_same_fraction_and_the_network_still_runs(teacher, images, width):
    whole = families.build(teacher, (SIDE, SIDE, 1), 3, 16, 1.0)
    narrow = families.build(teacher, (SIDE, SIDE, 1), 3, 16, width)
    for layer in whole.layers:
        if isinstance(layer, keras.layers.Conv2D) and not isinstance(layer, keras.layers.DepthwiseConv2D):
            expected = width_pruning.kept_channels(layer.filters, width)
            assert narrow.get_layer(layer.name).filters == expected, layer.name
    assert narrow.count_params() < whole.count_params() * width * 1.2  # 1x1 convolutions shrink as width squared
    assert np.isfinite(narrow.predict(images, verbose=0)).all()


def test_the_least_important_channel_is_the_one_removed(teacher):
    """A channel whose weights are zero everywhere in its group (producing convolution, BatchNorm scale, every
    reader) contributes nothing: pruning one channel of the group must take it, and keep the rest exactly."""
    whole = families.build(teacher, (SIDE, SIDE, 1), 3, 16, 1.0)
    groups, reads, writes = width_pruning.channel_groups(whole)
    group = writes["blocks.5.project_conv"]
    dead = 17
    for layer in whole.layers:
        weights = layer.get_weights()
        if writes.get(layer.name) == group and isinstance(layer, keras.layers.BatchNormalization):
            weights[0][dead] = 0.0
        elif writes.get(layer.name) == group and isinstance(layer, keras.layers.Conv2D) \
                and not isinstance(layer, keras.layers.DepthwiseConv2D):
            weights[0][..., dead] = 0.0
        elif reads.get(layer.name) == group and isinstance(layer, keras.layers.Conv2D):
            weights[0][:, :, dead, :] = 0.0
        else:
            continue
        layer.set_weights(weights)
    channels = whole.get_layer("blocks.5.project_conv").filters  # 80
    pruned = width_pruning.prune_width(whole, (channels - 1) / channels)
    for bn in ("blocks.5.bn2", "blocks.6.bn2", "blocks.7.bn2"):  # the group's BatchNorms: every other channel kept, in order
        for kept, before in zip(pruned.get_layer(bn).get_weights(), whole.get_layer(bn).get_weights()):
            np.testing.assert_array_equal(kept, np.delete(before, dead))


def test_the_random_init_control_has_the_families_shape_and_other_weights(teacher):
    inherited = families.build(teacher, (SIDE, SIDE, 1), 3, 16, 0.25)
    control = families.build(teacher, (SIDE, SIDE, 1), 3, 16, 0.25, inherit=False)
    assert [w.shape for w in control.weights] == [w.shape for w in inherited.weights]
    assert not np.allclose(control.get_layer("conv_stem").get_weights()[0], inherited.get_layer("conv_stem").get_weights()[0])


def test_a_width_family_converts_to_int8_and_agrees_with_its_float_network(teacher, images, tmp_path):
    narrow = families.build(teacher, (SIDE, SIDE, 1), 3, 16, 0.25)
    path = tmp_path / "narrow_int8.tflite"
    path.write_bytes(tflite.convert(narrow, "int8", representative=tflite.representative_dataset(images, 8, 0)))
    int8 = TFLiteModel(path)
    assert (int8.predict(images).argmax(1) == narrow.predict(images, verbose=0).argmax(1)).mean() >= 0.75


def test_width_pruning_refuses_what_it_cannot_follow():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Flatten()(keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(width_pruning.WidthError, match="flatten"):
        width_pruning.prune_width(keras.Model(inputs, keras.layers.Dense(2)(x)), 0.5)
    with pytest.raises(width_pruning.WidthError, match="width must be in"):
        width_pruning.prune_width(keras.Model(inputs, keras.layers.Dense(2)(x)), 0.0)


def write(tmp_path, change, base=REPO / "params.yaml"):
    params = yaml.safe_load(base.read_text())
    change(params)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def with_families(**entries):
    return lambda p: p.update(families=entries)


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(families=[]), "parameter 'families' must be a mapping"),
    (lambda p: p.update(families=[{"blocks": 8, "width": 1}]), "parameter 'families' must be a mapping"),
    (with_families(cut=[8]), "parameter 'families.cut' must be a mapping"),
    (with_families(cut={"blocks": 17, "width": 1}), "parameter 'families.cut.blocks' must be <= 16"),
    (with_families(cut={"blocks": 0, "width": 1}), "parameter 'families.cut.blocks' must be >= 1"),
    (with_families(half={"blocks": 16, "width": 0}), "parameter 'families.half.width' must be > 0"),
    (with_families(half={"blocks": 16, "width": 1.5}), "parameter 'families.half.width' must be <= 1"),
    (with_families(half={"blocks": 16}), "missing parameter 'families.half.width'"),
    (with_families(half={"blocks": 16, "width": 0.5, "depth": 3}), "unknown parameter 'families.half.depth'"),
    (with_families(half={"blocks": 16, "width": 0.5, "input_size": 12}), "families.half.input_size"),
    (with_families(student={"blocks": 16, "width": 0.5}), "family name 'student'"),
    (with_families(half_random={"blocks": 16, "width": 0.5}), "family name 'half_random'"),
    (with_families(half={"blocks": 16, "width": 0.5, "controls": ["random", "random"]}),
     "parameter 'families.half.controls': a control is named twice"),
    (with_families(half={"blocks": 16, "width": 0.5, "controls": ["none"]}), "parameter 'families.half.controls' must be a list"),
    (with_families(**{"Half": {"blocks": 16, "width": 0.5}}), "family name 'Half'"),
])
def test_a_bad_family_is_refused_by_name(tmp_path, change, message):
    def teacher_that_can_give_families(p):
        p["train_teacher"].update(backbone="efficientnet_lite0", weights="imagenet")
        change(p)

    with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
        load_params(write(tmp_path, teacher_that_can_give_families))


@pytest.mark.parametrize("teacher, message", [
    ({"backbone": "cnn"}, "train_teacher.backbone: cnn"),
    ({"weights": "none"}, "train_teacher.weights: none"),
])
def test_a_family_needs_a_pretrained_lite0_teacher(tmp_path, teacher, message):
    def change(p):
        p["train_teacher"].update(teacher)
        p["families"] = {"half": {"blocks": 16, "width": 0.5}}

    with pytest.raises(ParamsError, match=f"families.half.*{message}"):
        load_params(write(tmp_path, change))


def test_a_family_is_refused_with_the_teacher_in_the_loop(tmp_path):
    def change(p):
        p["families"] = {"half": {"blocks": 16, "width": 0.5}}
        p["train_student"].update(teacher_in_loop=True, backend="tensorflow")

    with pytest.raises(ParamsError, match="'families' distils from the teacher's stored logits"):
        load_params(write(tmp_path, change))


def test_the_benchmark_may_ship_a_familys_file_and_nothing_unknown(tmp_path):
    def ship(name):
        def change(p):
            p["families"] = {"half": {"blocks": 16, "width": 0.5}}
            p["benchmark"]["shipped"] = name
        return change

    assert load_params(write(tmp_path, ship("half_int8"))).benchmark.shipped == "half_int8"
    with pytest.raises(ParamsError, match="'benchmark.shipped'.*half_int8"):
        load_params(write(tmp_path, ship("quarter_int8")))
    with pytest.raises(ParamsError, match="'benchmark.shipped'"):
        load_params(write(tmp_path, ship("half_random_int8")))  # a control never ships
