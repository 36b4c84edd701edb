"""Students cut from the teacher (train_student.teacher_blocks): the slice carries the teacher's weights and
computes what the teacher's first blocks compute, its control starts from other weights, its expanded channels
prune within each block, and it goes through BatchNorm folding, quantization-aware training and int8 conversion."""
import keras
import numpy as np
import pytest

from tinygray.compress import filter_pruning, qat, tflite
from tinygray.models import teacher_slice
from tinygray.models.backbones import build_backbone
from tinygray.pipeline.params import ParamsError, from_dict, load_params

from conftest import randomize_batch_norms

SIDE = 32


@pytest.fixture(scope="module")
def teacher():
    """A teacher shaped as teacher.build_teacher makes it (pixels -> Lite0 backbone -> pool -> logits), random
    weights with BatchNorm statistics that are not the identity, so that a wrong copy shows."""
    keras.utils.set_random_seed(0)
    backbone = build_backbone("efficientnet_lite0", "none", (SIDE, SIDE, 1))
    randomize_batch_norms(backbone)
    inputs = keras.Input((SIDE, SIDE, 1), name="pixels")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(backbone(inputs))
    return keras.Model(inputs, keras.layers.Dense(3, name="logits")(x), name="teacher")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 255, (16, SIDE, SIDE, 1)).astype(np.float32)


def test_the_slice_computes_what_the_teachers_first_blocks_compute(teacher, images):
    student = teacher_slice.build((SIDE, SIDE, 1), 3, 5, inherit_from=teacher)
    backbone = teacher_slice.backbone_of(teacher)
    cut = "blocks.4.add"  # the end of the fifth block
    theirs = keras.Model(backbone.input, backbone.get_layer(cut).output).predict(images, verbose=0)
    ours = keras.Model(student.input, student.get_layer(cut).output).predict(images, verbose=0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    assert student.count_params() < teacher.count_params() / 10
    assert student.output_shape == (None, 3)


def test_its_control_starts_from_other_weights(teacher):
    inherited = teacher_slice.build((SIDE, SIDE, 1), 3, 5, inherit_from=teacher)
    scratch = teacher_slice.build((SIDE, SIDE, 1), 3, 5)
    assert [w.shape for w in inherited.get_weights()] == [w.shape for w in scratch.get_weights()]
    assert not np.allclose(inherited.get_layer("conv_stem").get_weights()[0], scratch.get_layer("conv_stem").get_weights()[0])


def test_the_slice_takes_the_full_image_and_works_at_its_input_size(teacher):
    student = teacher_slice.build((2 * SIDE, 2 * SIDE, 1), 3, 2, downscale=2, inherit_from=teacher)
    assert student.input_shape == (None, 2 * SIDE, 2 * SIDE, 1)
    assert student.get_layer("conv_stem").input.shape[1] == SIDE


@pytest.mark.parametrize("blocks", [0, 17])
def test_a_block_count_the_teacher_cannot_give_is_refused(blocks):
    with pytest.raises(teacher_slice.SliceError, match=r"'train_student.teacher_blocks' must be in 1..16"):
        teacher_slice.build((SIDE, SIDE, 1), 3, blocks)


def test_a_teacher_without_the_lite0_backbone_is_refused():
    inputs = keras.Input((SIDE, SIDE, 1))
    cnn = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(inputs)))
    with pytest.raises(teacher_slice.SliceError, match="needs an EfficientNet-Lite0 teacher"):
        teacher_slice.build((SIDE, SIDE, 1), 3, 5, inherit_from=cnn)


def raw_params(**train_teacher) -> dict:
    raw = load_params().model_dump()
    raw["train_student"]["teacher_blocks"] = 5
    raw["train_teacher"].update(train_teacher)
    return raw


@pytest.mark.parametrize("teacher_change, named", [({"backbone": "cnn"}, "backbone: cnn"),
                                                   ({"weights": "none"}, "weights: none")])
def test_params_refuse_a_cut_from_a_teacher_without_imagenet_lite0_weights(teacher_change, named):
    with pytest.raises(ParamsError, match=rf"'train_student.teacher_blocks' \(5\).*{named}"):
        from_dict(raw_params(**teacher_change), "params.yaml")


def test_params_refuse_assistants_for_a_cut_student_and_a_block_count_out_of_range():
    raw = raw_params()
    raw["train_student"]["assistants"] = [[8, 16]]
    with pytest.raises(ParamsError, match="'train_student.assistants'.*set it to"):
        from_dict(raw, "params.yaml")
    raw = raw_params()
    raw["train_student"]["teacher_blocks"] = 17
    with pytest.raises(ParamsError, match=r"'train_student.teacher_blocks' must be <= 16, got 17"):
        from_dict(raw, "params.yaml")


def test_expanded_channels_prune_within_each_block(teacher, images):
    student = teacher_slice.build((SIDE, SIDE, 1), 3, 5, inherit_from=teacher)
    unchanged = filter_pruning.prune_filters(student, 0.0)
    np.testing.assert_allclose(unchanged.predict(images, verbose=0), student.predict(images, verbose=0), rtol=1e-5, atol=1e-5)
    half = filter_pruning.prune_filters(student, 0.5)
    for block in range(1, 5):  # block 0 has no expansion
        assert half.get_layer(f"blocks.{block}.expand_conv").filters == student.get_layer(f"blocks.{block}.expand_conv").filters // 2
        assert half.get_layer(f"blocks.{block}.project_conv").filters == student.get_layer(f"blocks.{block}.project_conv").filters
    assert half.count_params() < 0.6 * student.count_params()
    assert half.predict(images, verbose=0).shape == (16, 3)


def test_the_slice_folds_trains_quantization_aware_and_converts_to_int8(teacher, images):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    student = teacher_slice.build((SIDE, SIDE, 1), 3, 5, inherit_from=teacher)
    randomize_batch_norms(student, seed=2)
    folded = qat.fold_batchnorm(student)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    np.testing.assert_allclose(folded.predict(images, verbose=0), student.predict(images, verbose=0), rtol=1e-3, atol=1e-3)
    model = qat.quantization_aware(folded)
    names = {layer.name for layer in model.layers}
    assert {"blocks.4.add_range", "blocks.4.project_conv_range", "input_range"} <= names  # linear outputs get ranges
    assert "blocks.4.expand_conv_range" not in names  # fused with the activation after it
    qat.calibrate(model, images)
    np.testing.assert_allclose(qat.strip(model).predict(images, verbose=0), folded.predict(images, verbose=0), rtol=1e-4, atol=1e-4)
    content = tflite.convert(model, "int8", representative=tflite.representative_dataset(images, 16, 0))
    interpreter = Interpreter(model_content=content,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    compute = [op for op in interpreter._get_ops_details() if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "ADD")]
    assert {op["op_name"] for op in compute} == {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD"}
    for op in compute:
        assert tensors[op["inputs"][0]]["dtype"] == np.int8, op["op_name"]
