from tinygray import tracking


def test_default_store_is_sqlite_in_the_original_repo(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_tracking_uri_env_wins(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking.tracking_uri() == "http://127.0.0.1:5999"


def test_pipeline_run_id_env_wins_and_is_stable(monkeypatch):
    monkeypatch.setenv("PIPELINE_RUN_ID", "abc")
    assert tracking.pipeline_run_id() == "abc"
    monkeypatch.delenv("PIPELINE_RUN_ID")
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    assert tracking.pipeline_run_id().startswith("manual-")  # pytest has no dvc ancestor
