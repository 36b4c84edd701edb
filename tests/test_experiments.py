"""The experiments table, from the shape of `dvc exp show --json` (DVC 3's ExpState/ExpRange)."""
from tinygray.experiments import format_table, rows


def benchmark(accuracy, delta, distilled, scratch):
    """metrics/headline.json as the benchmark writes it (benchmark.headline_figures)."""
    return {"teacher": accuracy - delta, "shipped": {"accuracy": accuracy, "kb": 16.0},
            "distilled": {"mean": distilled, "std": 0.002}, "scratch": {"mean": scratch, "std": 0.0},
            "p_value": 0.5}


def data(temperature, metrics=None):
    return {"params": {"params.yaml": {"data": {"seed": 42, "train_student": {"temperature": temperature}}}},
            "metrics": {"metrics/headline.json": {"data": metrics}} if metrics else {}}


SHOW = [{"rev": "workspace", "name": None, "data": data(2.0, benchmark(0.98, -0.008, 0.9847, 0.9827)),
         "experiments": None},
        {"rev": "a" * 40, "name": "main", "data": data(2.0, benchmark(0.98, -0.008, 0.9847, 0.9827)),
         "experiments": [
             {"name": "t8", "executor": None, "revs": [{"rev": "b" * 40, "name": "t8",
                                                       "data": data(8.0, benchmark(0.97, -0.018, 0.975, 0.9827))}]},
             {"name": "t4", "executor": {"state": "queued"}, "revs": [{"rev": "c" * 40, "data": data(4.0)}]}]}]


def test_one_row_per_commit_and_experiment_with_only_the_changed_params():
    table = rows(SHOW)
    assert [row[:3] for row in table] == [("workspace", "baseline", "-"), ("main", "baseline", "-"),
                                          ("t8", "done", "train_student.temperature=8.0"),
                                          ("t4", "queued", "train_student.temperature=4.0")]
    assert table[2][3:] == ("97.00", "-1.80", "16.0", "97.50 ± 0.20", "98.27")
    assert table[3][3:] == ("-",) * 5  # queued: no results yet


def test_the_table_fits_a_terminal():
    lines = format_table(rows(SHOW)).splitlines()
    assert lines[0].split()[:2] == ["experiment", "state"] and set(lines[1]) <= {"-", " "}
    assert max(map(len, lines)) < 120
