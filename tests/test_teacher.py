import keras
import numpy as np
import pytest

from tinygray.train import teacher
from tinygray.pipeline.params import TrainTeacher, load_params

BASE = TrainTeacher(backbone="efficientnet_lite0", weights="none", input_size=32, dropout=0.1, frozen_epochs=1,
                    learning_rate=0.01, epochs=1, finetune_learning_rate=0.001, unfreeze_top_layers=None, batch_size=64,
                    patience=2, cnn_widths=[8, 16], cnn_convs_per_block=1, augment=False, mixed_precision=False,
                    distribute="none")


def changed(p: TrainTeacher, **values) -> TrainTeacher:
    """p with some values changed, validated like params.yaml."""
    return TrainTeacher.model_validate({**p.values(), **values})


def batchnorms(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_teacher_resizes_inside_and_returns_logits():
    model = teacher.build_teacher((8, 8, 1), 10, BASE)
    assert model.get_layer("resize").output.shape[1:3] == (32, 32)
    assert model.predict(np.zeros((2, 8, 8, 1), np.uint8), verbose=0).shape == (2, 10)
    cnn = teacher.build_teacher((32, 32, 1), 3, changed(BASE, backbone="cnn"))
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
    p = changed(BASE, weights="imagenet", batch_size=128)
    train, val = digits_split["train"], digits_split["val"]
    model = teacher.build_teacher(train[0].shape[1:], 10, p)
    frozen_before = [w.copy() for w in teacher.backbone_of(model).get_weights()]
    metrics, histories = teacher.train(model, train, val, p, seed=0)
    assert set(metrics["phases"]) == {"frozen", "finetune"}
    assert metrics["epochs"] == 2 and len(histories) == 2
    # BatchNorm moving statistics of the pretrained backbone never move
    backbone = teacher.backbone_of(model)
    for bn in batchnorms(backbone):
        index = [id(w) for w in backbone.weights].index(id(bn.moving_mean))
        np.testing.assert_array_equal(np.asarray(bn.moving_mean), frozen_before[index])


def separable_images(size, per_class, seed=0):
    """Two classes anyone can tell apart at a glance: a bright square on the left half or on the right."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, (2 * per_class, size, size, 1)).astype(np.uint8)
    labels = np.repeat([0, 1], per_class)
    for image, label in zip(images, labels):
        left = int(rng.integers(0, size // 2 - size // 4)) + (size // 2 if label else 0)
        top = int(rng.integers(0, size - size // 4))
        image[top:top + size // 4, left:left + size // 4] = 230
    order = rng.permutation(len(labels))
    return images[order], labels[order]


def test_from_scratch_cnn_teacher_beats_chance_with_the_default_patience():
    """At 64 px and more, with few steps per epoch, the moving BatchNorm statistics of a CNN trained from
    scratch lag its weights: validation saw one class for several epochs and early stopping (patience 3)
    ended training at chance. The statistics are recomputed before each validation now."""
    from pathlib import Path

    defaults = load_params(Path(__file__).resolve().parents[1] / "params.yaml").train_teacher
    p = changed(defaults, backbone="cnn", input_size=64)
    train, val = separable_images(64, 48), separable_images(64, 20, seed=1)
    keras.utils.set_random_seed(0)
    model = teacher.build_teacher(train[0].shape[1:], 2, p)
    metrics, _ = teacher.train(model, train, val, p, seed=0)
    predicted = model.predict(val[0], verbose=0).argmax(axis=1)
    assert metrics["val_accuracy"] > 0.8 and len(set(predicted)) == 2, metrics


def test_a_teacher_at_chance_stops_the_pipeline_naming_what_was_seen():
    from tinygray.train.loop import ChanceLevelError, require_above_chance

    with pytest.raises(ChanceLevelError, match=r"train_teacher: validation accuracy 0.5000 on 80 images is not clearly "
                                               r"above the majority-class rate 0.5000 .* Try a larger"):
        require_above_chance("train_teacher", 0.5, np.repeat([0, 1], 40), hint="Try a larger patience.")
    require_above_chance("train_teacher", 0.95, np.repeat([0, 1], 40))


def test_auto_input_size_follows_the_image_within_what_imagenet_features_need():
    auto = changed(BASE, input_size="auto")
    assert [teacher.input_size(auto, side) for side in (28, 64, 128, 256)] == [64, 64, 128, 224]
    assert teacher.input_size(changed(BASE, input_size=96), 28) == 96
    model = teacher.build_teacher((128, 128, 1), 2, changed(auto, backbone="cnn"))
    assert "resize" not in [layer.name for layer in model.layers]  # 128 px is taken as it is


def test_mixed_precision_is_refused_clearly_without_a_gpu():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU: mixed precision is allowed here")
    with pytest.raises(SystemExit, match=r"mixed_precision: true needs a GPU .* `make setup GPU=1`"):
        teacher.use_mixed_precision(True)
    teacher.use_mixed_precision(False)
    assert keras.mixed_precision.global_policy().name == "float32"


def test_the_gpu_install_takes_the_cuda_build_and_the_default_stays_cpu():
    import subprocess
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    default = subprocess.run(["make", "-n", "-B", "setup"], cwd=repo, capture_output=True, text=True).stdout
    gpu = subprocess.run(["make", "-n", "-B", "setup", "GPU=1"], cwd=repo, capture_output=True, text=True).stdout
    assert "-r requirements.txt -c constraints.txt" in default and "requirements-gpu" not in default
    assert "-r requirements-gpu.txt -c constraints-gpu.txt" in gpu
    import tomllib

    extras = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["cpu"] == ["tensorflow-cpu"] and extras["gpu"] == ["tensorflow[and-cuda]"]
    assert "-e .[cpu,test]" in (repo / "requirements.txt").read_text()
    assert "-e .[gpu,test]" in (repo / "requirements-gpu.txt").read_text()
    assert "tensorflow_cpu==2.21.0" in (repo / "constraints.txt").read_text().lower().replace("-", "_")
    assert "tensorflow_cpu" not in (repo / "constraints-gpu.txt").read_text().lower().replace("-", "_")
