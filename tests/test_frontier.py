import matplotlib.image
import numpy as np
import pytest

from tinygray.frontier import frontier_plot_data, pareto_front, plot_confusion_matrix, plot_frontier

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def rows():
    return [
        {"name": "teacher", "kind": "teacher", "size_bytes": 4_000_000, "accuracy": 0.99,
         "accuracy_ci_low": 0.98, "accuracy_ci_high": 0.995},
        {"name": "scratch", "kind": "scratch", "size_bytes": 20_000, "accuracy": 0.95},  # same size, less accurate
        {"name": "distilled", "kind": "distilled", "size_bytes": 20_000, "accuracy": 0.97,
         "accuracy_ci_low": 0.955, "accuracy_ci_high": 0.98},
        {"name": "pruned", "kind": "pruned", "size_bytes": 12_000, "accuracy": 0.96},  # int8 is as good, smaller
        {"name": "int8", "kind": "int8", "size_bytes": 6_000, "accuracy": 0.96},
        {"name": "int8_twin", "kind": "int8", "size_bytes": 6_000, "accuracy": 0.96},  # exact tie: both stay
        {"name": "wide", "kind": "scratch", "size_bytes": 50_000, "accuracy": 0.90},  # beaten on both axes
        {"name": "odd", "kind": "qat", "size_bytes": 3_000, "accuracy": 0.50},  # smallest: on the front
    ]


def names(rows):
    return [row["name"] for row in rows]


def test_pareto_front(rows):
    assert names(pareto_front(rows)) == ["odd", "int8", "int8_twin", "distilled", "teacher"]
    assert pareto_front([]) == []
    assert names(pareto_front(rows[:1])) == ["teacher"]


def test_pareto_front_with_other_keys():
    rows = [{"name": "a", "bytes": 10, "f1": 0.5}, {"name": "b", "bytes": 20, "f1": 0.4},
            {"name": "c", "bytes": 30, "f1": 0.6}]
    assert names(pareto_front(rows, size_key="bytes", accuracy_key="f1")) == ["a", "c"]


def test_frontier_plot_data_marks_the_front(rows):
    data = frontier_plot_data(rows)
    assert names(data) == names(rows)
    assert {row["name"]: row["on_front"] for row in data} == {
        "teacher": True, "scratch": False, "distilled": True, "pruned": False,
        "int8": True, "int8_twin": True, "wide": False, "odd": True}
    assert set(data[0]) == {"name", "kind", "size_bytes", "accuracy", "on_front"}


def assert_valid_png(path):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert image.std() > 0  # something was drawn
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no temporary file left behind


def test_plot_frontier_writes_a_png(rows, tmp_path):
    path = tmp_path / "plots" / "frontier.png"
    plot_frontier(rows, path, title="digits: size vs accuracy")
    assert_valid_png(path)
    plot_frontier(rows[1:2], path, title="overwrite with a single variant")
    assert_valid_png(path)


def test_plot_frontier_can_name_only_the_front(rows, tmp_path):
    def names(figure):
        return sorted(text.get_text() for text in figure.axes[0].texts)

    assert names(plot_frontier(rows, tmp_path / "all.png", title="all")) == sorted(row["name"] for row in rows)
    front = names(plot_frontier(rows, tmp_path / "front.png", title="front", label_front_only=True))
    assert front == sorted(row["name"] for row in pareto_front(rows)) and len(front) < len(rows)


def test_plot_confusion_matrix_writes_a_png(tmp_path):
    labels = np.array([0, 0, 1, 1, 2, 2])
    predictions = np.array([0, 1, 1, 1, 0, 0])  # class 2 is never predicted
    path = tmp_path / "confusion.png"
    plot_confusion_matrix(labels, predictions, ["zero", "one", "two"], path)
    assert_valid_png(path)
