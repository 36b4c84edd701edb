"""Long steps report progress where there is no terminal (logs, CI): a first line, lines as they go, a last one."""
import numpy as np

from tinygray.pipeline import progress
from tinygray.train import loop
from tinygray.models.cnn import build_cnn


def test_steps_without_a_terminal_print_a_first_and_a_last_line_and_yield_everything(capsys, monkeypatch):
    monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.0)  # a line after every item
    assert list(progress.steps(range(3), "soft targets", unit="view")) == [0, 1, 2]
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "soft targets: 0/3 views"
    assert lines[1].startswith("soft targets: 1/3 views, ") and lines[-1].startswith("soft targets: 3/3 views done in")


def test_disabled_steps_print_nothing(capsys):
    assert list(progress.steps(iter("ab"), "x", enabled=False)) == ["a", "b"]
    assert capsys.readouterr().out == ""


def test_a_training_without_a_terminal_reports_steps_within_an_epoch(capsys, monkeypatch):
    monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.0)
    import keras

    images = np.random.default_rng(0).integers(0, 255, (64, 8, 8, 1)).astype(np.uint8)
    labels = np.arange(64) % 2
    model = build_cnn((8, 8, 1), 2, [4])
    loop.fit(model, (images, labels), (images[:16], labels[:16]), epochs=1, batch_size=16, learning_rate=1e-3,
             seed=0, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
             metric=loop.accuracy_metric())
    out = capsys.readouterr().out
    assert f"{model.name}: epoch 1, step 1/4, loss " in out and f"{model.name}: epoch 1, step 3/4" in out


def test_a_training_reports_each_epoch_to_log_epoch_as_it_ends():
    """The MLflow UI once showed a stage's curves only after its fit ended: a ten-minute teacher showed nothing."""
    import keras

    images = np.random.default_rng(0).integers(0, 255, (32, 8, 8, 1)).astype(np.uint8)
    labels = np.arange(32) % 2
    seen = []
    loop.fit(build_cnn((8, 8, 1), 2, [4]), (images, labels), (images[:8], labels[:8]), epochs=3, batch_size=16,
             learning_rate=1e-3, seed=0, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
             metric=loop.accuracy_metric(), log_epoch=lambda *args: seen.append(args), curve="seed_7",
             first_step=4)
    assert [(curve, step) for curve, step, _ in seen] == [("seed_7", 4), ("seed_7", 5), ("seed_7", 6)]
    assert {"loss", "accuracy", "val_loss", "val_accuracy"} <= set(seen[0][2])
