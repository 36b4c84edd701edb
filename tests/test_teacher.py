import keras
import numpy as np
import pytest

from tinygray import teacher

BASE = {"backbone": "efficientnet_lite0", "weights": "none", "input_size": 32, "dropout": 0.1, "frozen_epochs": 1,
        "learning_rate": 0.01, "epochs": 1, "finetune_learning_rate": 0.001, "unfreeze_top_layers": None,
        "batch_size": 64, "patience": 2, "cnn_widths": [8, 16], "cnn_convs_per_block": 1, "seed": 0}


def batchnorms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_teacher_resizes_inside_and_returns_logits():
    model = teacher.build_teacher((8, 8, 1), 10, BASE)
    assert model.get_layer("resize").output.shape[1:3] == (32, 32)
    assert model.predict(np.zeros((2, 8, 8, 1), np.uint8), verbose=0).shape == (2, 10)
    cnn = teacher.build_teacher((32, 32, 1), 3, {**BASE, "backbone": "cnn"})
    assert "resize" not in [layer.name for layer in cnn.layers]


def test_pretrained_finetuning_keeps_every_batchnorm_frozen():
    model = teacher.build_teacher((32, 32, 1), 10, BASE)
    backbone = teacher.backbone_of(model)
    teacher.set_trainable(backbone, pretrained=True, unfreeze_top_layers=None)
    assert all(not bn.trainable for bn in batchnorms(backbone))
    assert all(layer.trainable for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D))


def test_unfreeze_top_layers_opens_only_the_top():
    model = teacher.build_teacher((32, 32, 1), 10, BASE)
    backbone = teacher.backbone_of(model)
    teacher.set_trainable(backbone, pretrained=True, unfreeze_top_layers=3)
    convs = [layer for layer in backbone.layers if layer.weights and not isinstance(layer, keras.layers.BatchNormalization)]
    assert [layer.trainable for layer in convs[-4:]] == [False, True, True, True]
    assert not any(layer.trainable for layer in convs[:-3])


def test_random_init_trains_batchnorm_with_fast_momentum():
    model = teacher.build_teacher((32, 32, 1), 10, BASE)
    backbone = teacher.backbone_of(model)
    teacher.set_trainable(backbone, pretrained=False, unfreeze_top_layers=None)
    assert all(bn.trainable and bn.momentum == pytest.approx(0.9) for bn in batchnorms(backbone))


def test_two_phase_training_reports_both_phases(digits_split):
    p = {**BASE, "weights": "imagenet", "batch_size": 128}
    train, val = digits_split["train"], digits_split["val"]
    model = teacher.build_teacher(train[0].shape[1:], 10, p)
    frozen_before = [w.copy() for w in teacher.backbone_of(model).get_weights()]
    metrics, histories = teacher.train(model, train, val, p)
    assert set(metrics["phases"]) == {"frozen", "finetune"}
    assert metrics["epochs"] == 2 and len(histories) == 2
    # BatchNorm moving statistics of the pretrained backbone never move
    backbone = teacher.backbone_of(model)
    for bn in batchnorms(backbone):
        index = [id(w) for w in backbone.weights].index(id(bn.moving_mean))
        np.testing.assert_array_equal(np.asarray(bn.moving_mean), frozen_before[index])
