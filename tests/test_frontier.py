from tinygray.evaluate.frontier import frontier_plot_data, pareto_front


def names(rows):
    return [row["name"] for row in rows]


def test_pareto_front(frontier_rows):
    assert names(pareto_front(frontier_rows)) == ["odd", "int8", "int8_twin", "distilled", "teacher"]
    assert pareto_front([]) == []
    assert names(pareto_front(frontier_rows[:1])) == ["teacher"]


def test_pareto_front_with_other_keys():
    rows = [{"name": "a", "bytes": 10, "f1": 0.5}, {"name": "b", "bytes": 20, "f1": 0.4},
            {"name": "c", "bytes": 30, "f1": 0.6}]
    assert names(pareto_front(rows, size_key="bytes", accuracy_key="f1")) == ["a", "c"]


def test_frontier_plot_data_marks_the_front(frontier_rows):
    data = frontier_plot_data(frontier_rows)
    assert names(data) == names(frontier_rows)
    assert {row["name"]: row["on_front"] for row in data} == {
        "teacher": True, "scratch": False, "distilled": True, "pruned": False,
        "int8": True, "int8_twin": True, "wide": False, "odd": True}
    assert set(data[0]) == {"name", "kind", "size_bytes", "accuracy", "on_front"}
