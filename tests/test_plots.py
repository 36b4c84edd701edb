import matplotlib.image
import numpy as np
from tinygray.evaluate import plots
from tinygray.evaluate.frontier import pareto_front
from tinygray.pipeline.history import draw_history

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


def test_plot_frontier_names_the_front_and_the_given_points_without_overlap(frontier_rows, tmp_path):
    figure = plots.frontier(frontier_rows, tmp_path / "front.png", title="front", always_label=("teacher",))
    texts = figure.axes[0].texts
    front = {row["name"] for row in pareto_front(frontier_rows)}
    assert sorted(t.get_text() for t in texts) == sorted(front | {"teacher"}) and len(texts) < len(frontier_rows)
    renderer = figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_the_shipped_file_is_starred_and_in_the_legend(frontier_rows, tmp_path):
    shipped = frontier_rows[-1]["name"]
    axes = plots.frontier(frontier_rows, tmp_path / "front.png", title="front", shipped=shipped).axes[0]
    assert f"shipped: {shipped}" in [text.get_text() for text in axes.get_legend().get_texts()]
    star = [c for c in axes.collections if c.get_label() == f"shipped: {shipped}"][0]
    assert star.get_offsets().tolist() == [[frontier_rows[-1]["size_bytes"], 100 * frontier_rows[-1]["accuracy"]]]


def test_crowded_labels_are_moved_apart(tmp_path):
    rows = [{"name": f"variant_{i}", "kind": "int8", "size_bytes": 10_000 + i, "accuracy": 0.9 + i / 1000}
            for i in range(4)]  # a front of four points almost on top of each other
    texts = plots.frontier(rows, tmp_path / "crowded.png", title="crowded").axes[0].texts
    boxes = [t.get_window_extent() for t in texts]
    assert len(texts) == 4 and not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_plot_confusion_matrix_writes_a_png(tmp_path):
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 0, 0])  # class 2 is never predicted
    path = tmp_path / "confusion.png"
    plots.confusion_matrix(labels, predictions, ["zero", "one", "two"], path, title="student on test")
    assert_valid_png(path)


def test_history_is_a_png_with_the_title_given(tmp_path):
    rows = [{"epoch": 1, "phase": 0, "accuracy": 0.5, "val_accuracy": 0.4, "loss": 2.0, "val_loss": 2.1},
            {"epoch": 2, "phase": 1, "accuracy": 0.7, "val_accuracy": 0.6, "loss": 1.0, "val_loss": 1.2}]
    path = tmp_path / "history.png"
    draw_history(rows, path, title="student, seed 43 (selected)")
    assert_valid_png(path)
