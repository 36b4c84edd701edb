"""`python -m tinygray.pipeline.verify` re-hashes the workspace's stage outputs against dvc.lock, through a real
DVC project: DVC itself trusts its cache, so a damaged cached model came back from `dvc checkout` unnoticed."""
import os
import subprocess
import sys
from pathlib import Path

from stage_helpers import run

REPO = Path(__file__).resolve().parents[1]
DVC_YAML = """stages:
  make:
    cmd: python -c "import pathlib; p = pathlib.Path('out'); p.mkdir(exist_ok=True); (p / 'a.bin').write_bytes(b'a' * 4096); pathlib.Path('model.bin').write_bytes(b'm' * 4096); r = pathlib.Path('reports'); r.mkdir(exist_ok=True); (r / 'r.md').write_text('report')"
    outs:
      - out
      - model.bin
      - reports:        # a folder kept out of DVC's cache, as the benchmark's reports/: git holds it
          cache: false
"""


def verify(root, env, *options):
    done = subprocess.run([sys.executable, "-m", "tinygray.pipeline.verify", *options], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)
    return done.returncode, done.stdout + done.stderr


def test_verify_names_a_damaged_output_and_its_damaged_cache_copy_where_dvc_sees_nothing(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.check_update", "false"]):
        run(command, tmp_path, env)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    run(["dvc", "repro"], tmp_path, env)
    code, output = verify(tmp_path, env)
    assert code == 0 and "all 2 output files (and their copies in DVC's cache) match dvc.lock" in output, output

    # bytes overwritten inside the cached model, then the workspace copy restored from it
    [cached] = [p for p in (tmp_path / ".dvc" / "cache" / "files" / "md5").rglob("*")
                if p.is_file() and p.read_bytes() == b"m" * 4096]
    cached.chmod(0o644)
    cached.write_bytes(b"m" * 4000 + b"x" * 96)
    (tmp_path / "model.bin").unlink()
    run(["dvc", "checkout"], tmp_path, env)
    assert (tmp_path / "model.bin").read_bytes().endswith(b"x" * 96)  # DVC restored the damaged copy
    (tmp_path / "out" / "a.bin").write_bytes(b"b" * 4096)  # and a file of an output folder edited in place

    code, output = verify(tmp_path, env)
    assert code == 1
    assert "model.bin: its bytes are not the ones dvc.lock records" in output
    assert f"its copy in DVC's cache, {cached}, is damaged too; delete that cache file first" in output
    assert "`dvc repro -f -s make`" in output  # this stage alone: `dvc repro -f` would rebuild every stage upstream
    # the folder's file has an intact cached copy: restoring it takes seconds, no training
    assert "out/a.bin: its bytes are not the ones dvc.lock records" in output
    assert "out/a.bin: its bytes are not the ones dvc.lock records (md5 " in output and "`dvc checkout -f make` restores it" in output


def test_verify_finds_a_damaged_cache_copy_behind_an_intact_file_and_each_advice_puts_things_right(tmp_path):
    """A damaged cache object behind an intact workspace file used to pass; a deleted output was answered with
    `dvc repro -f` (every upstream stage) where `dvc checkout` restores it in seconds (issue 48, item 7)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    for command in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "config", "core.check_update", "false"]):
        run(command, tmp_path, env)
    (tmp_path / "dvc.yaml").write_text(DVC_YAML)
    run(["dvc", "repro"], tmp_path, env)
    [cached] = [p for p in (tmp_path / ".dvc" / "cache" / "files" / "md5").rglob("*")
                if p.is_file() and p.read_bytes() == b"m" * 4096]
    cached.chmod(0o644)
    cached.write_bytes(b"m" * 4000 + b"x" * 96)  # the workspace's model.bin is a copy: still intact
    code, output = verify(tmp_path, env)
    assert code == 1 and f"model.bin: its copy in DVC's cache, {cached}, is damaged (the workspace file is intact)" in output
    assert "`dvc commit -f make`" in output
    cached.unlink()
    run(["dvc", "commit", "-f", "make"], tmp_path, env)  # the advice
    assert verify(tmp_path, env)[0] == 0 and cached.read_bytes() == b"m" * 4096

    (tmp_path / "model.bin").unlink()
    code, output = verify(tmp_path, env)
    assert code == 1 and "model.bin: missing from the workspace; `dvc checkout -f make` restores it" in output
    run(["dvc", "checkout", "-f", "make"], tmp_path, env)  # the advice
    code, output = verify(tmp_path, env)
    assert code == 0 and "(and their copies in DVC's cache) match dvc.lock" in output
    code, output = verify(tmp_path, env, "--workspace-only")
    assert code == 0 and "all 2 output files match dvc.lock" in output
