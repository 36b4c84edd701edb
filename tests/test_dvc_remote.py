"""Data versioning for real: the image folder and the prepared data go to a DVC remote and come back
byte for byte after the cache and the workspace copies are gone."""
import hashlib
import shutil

from stage_helpers import folder_project, run, stages_run


def digests(root, *folders):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted((root / folder).rglob("*")) if p.is_file()}


def test_push_then_pull_into_an_empty_cache_restores_identical_bytes(tmp_path):
    root, env = folder_project(tmp_path, {"cat": 10, "dog": 11})
    assert stages_run(run(["dvc", "repro", "preprocess"], root, env)) == ["preprocess"]
    run(["dvc", "remote", "add", "-d", "local", str(tmp_path / "remote")], root, env)
    run(["git", "add", "-A"], root, env)
    run(["git", "commit", "-qm", "prepared"], root, env)
    before = digests(root, "data/raw", "data/prepared")
    assert len(before) == 21 + 7
    run(["dvc", "push"], root, env)
    assert any((tmp_path / "remote").rglob("*"))

    shutil.rmtree(root / ".dvc" / "cache")
    shutil.rmtree(root / "data" / "raw")
    shutil.rmtree(root / "data" / "prepared")
    run(["dvc", "pull"], root, env)
    assert digests(root, "data/raw", "data/prepared") == before
    assert "up to date" in run(["dvc", "status"], root, env)
    assert stages_run(run(["dvc", "repro"], root, env)) == []
