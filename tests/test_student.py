import numpy as np

from tinygray import student
from tinygray.distillation import pack_targets

P = {"seed": 7, "num_seeds": 2, "widths": [4, 8], "temperature": 4.0, "alpha": 0.5, "assistants": [[8, 8]],
     "epochs": 2, "batch_size": 128, "learning_rate": 0.01, "patience": 5}


def test_seeds_start_at_the_global_seed():
    assert student.seeds(P) == [7, 8]


def test_train_seeds_writes_one_model_per_seed(tmp_path, digits_split):
    (x, y), (vx, vy) = digits_split["train"], digits_split["val"]
    metrics = student.train_seeds((x, y), (vx, vy), 10, P, student.scratch_setup(P), tmp_path / "scratch",
                                  tmp_path / "history.csv")
    assert sorted(p.name for p in (tmp_path / "scratch").iterdir()) == ["seed_7.keras", "seed_8.keras"]
    assert list(metrics["seeds"]) == ["7", "8"] and metrics["val_accuracy"] == metrics["seeds"]["7"]["val_accuracy"]
    assert (tmp_path / "history.csv").read_text().startswith("epoch,phase,")


def test_assistant_chain_hands_on_its_own_logits(digits_split):
    (x, y), val = digits_split["train"], digits_split["val"]
    teacher_logits = np.eye(10, dtype=np.float32)[y] * 5
    train_logits, val_logits, assistants = student.assistant_chain(
        x, y, teacher_logits, val, np.eye(10, dtype=np.float32)[val[1]] * 5, 10, P)
    assert list(assistants) == ["assistant_8x8"]
    assert train_logits.shape == teacher_logits.shape and not np.allclose(train_logits, teacher_logits)
    assert val_logits.shape == (len(val[1]), 10)
    assert pack_targets(y, train_logits).shape == (len(y), 20)
