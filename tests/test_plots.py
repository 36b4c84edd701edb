import matplotlib.image
import numpy as np
from tinygray import plots
from tinygray.frontier import pareto_front

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # something was drawn
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left behind


def test_plot_frontier_writes_a_png(frontier_rows, tmp_path):
    path = tmp_path / "plots" / "frontier.png"
    plots.frontier(frontier_rows, path, title="digits: size vs accuracy")
    assert_valid_png(path)
    plots.frontier(frontier_rows[1:2], path, title="overwrite with a single variant")
    assert_valid_png(path)


def test_plot_frontier_can_name_only_the_front(frontier_rows, tmp_path):
    def names(figure):
        return sorted(text.get_text() for text in figure.axes[0].texts)

    assert names(plots.frontier(frontier_rows, tmp_path / "all.png", title="all")) == sorted(row["name"] for row in frontier_rows)
    front = names(plots.frontier(frontier_rows, tmp_path / "front.png", title="front", label_front_only=True))
    assert front == sorted(row["name"] for row in pareto_front(frontier_rows)) and len(front) < len(frontier_rows)


def test_plot_confusion_matrix_writes_a_png(tmp_path):
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 0, 0])  # class 2 is never predicted
    path = tmp_path / "confusion.png"
    plots.confusion_matrix(labels, predictions, ["zero", "one", "two"], path)
    assert_valid_png(path)


def test_history_is_a_png_with_the_title_given(tmp_path):
    rows = [{"epoch": 1, "phase": 0, "accuracy": 0.5, "val_accuracy": 0.4, "loss": 2.0, "val_loss": 2.1},
            {"epoch": 2, "phase": 1, "accuracy": 0.7, "val_accuracy": 0.6, "loss": 1.0, "val_loss": 1.2}]
    path = tmp_path / "history.png"
    plots.history(rows, path, title="student, seed 43 (selected)")
    assert_valid_png(path)
