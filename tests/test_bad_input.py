"""Bad input stops the real preprocess stage with a message naming the file, class or parameter, and leaves
no partial output; with on_bad_file: skip, bad files are listed in metrics/preprocess.json instead."""
import json
import socket
import subprocess
import sys
import threading
import time

import pytest
import yaml

from stage_helpers import REPO, STAGE, free_ports, make_folder, run_stage, stage_env, write_params
from tinygray.pipeline.params import ParamsError, load_params
from tinygray.pipeline.tracking import TrackingServerError, check_tracking_server

PNG = b"\x89PNG\r\n\x1a\n"


def assert_no_output(root):
    """Nothing DVC could take for a finished stage, and no staging left behind."""
    assert not (root / "data" / "prepared").exists()
    assert not list((root / "data").glob(".tmp-*"))
    assert not (root / "metrics" / "preprocess.json").exists()


@pytest.fixture
def project(tmp_path):
    """tmp_path with data/raw of two classes of 10 images, folder params and a stage environment."""
    make_folder(tmp_path / "data" / "raw", {"cat": 10, "dog": 10})
    write_params(tmp_path)
    return tmp_path, stage_env(tmp_path)


BAD_FILES = {
    "corrupt": ("cat/corrupt.png", lambda p: p.write_bytes(PNG + b"not really a png" * 10), "unreadable image"),
    "truncated": ("cat/truncated.png", None, "unreadable image"),
    "non_image": ("dog/notes.txt", lambda p: p.write_text("hello"), "not an image file"),
    "zero_byte": ("dog/empty.png", lambda p: p.write_bytes(b""), "empty file"),
}


def add_bad_file(root, kind):
    name, write, _ = BAD_FILES[kind]
    path = root / "data" / "raw" / name
    if kind == "truncated":
        make_folder(root / "big", {"x": 1}, size=64)
        data = (root / "big" / "x" / "00000.png").read_bytes()
        path.write_bytes(data[:len(data) // 2])
    else:
        write(path)
    return f"data/raw/{name}"


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_file_fails_naming_it_and_leaves_nothing(project, kind):
    root, env = project
    name = add_bad_file(root, kind)
    code, output = run_stage(root, env)
    assert code != 0
    assert f"{name}: {BAD_FILES[kind][2]}" in output
    assert_no_output(root)


def test_skip_lists_every_bad_file_in_metrics(project):
    root, env = project
    names = [add_bad_file(root, kind) for kind in sorted(BAD_FILES)]
    write_params(root, on_bad_file="skip")
    code, output = run_stage(root, env)
    assert code == 0, output
    metrics = json.loads((root / "metrics" / "preprocess.json").read_text())
    assert sorted(metrics["skipped_files"]) == sorted(names)
    for kind, name in zip(sorted(BAD_FILES), names):
        assert BAD_FILES[kind][2] in metrics["skipped_files"][name]
    assert sum(metrics["num_images"].values()) == 20  # the good ones, each once
    assert not list((root / "data").glob(".tmp-*"))


@pytest.mark.parametrize("change, message", [
    (lambda raw: (raw / "bird").mkdir(), "class 'bird' has no image files"),
    (lambda raw: [p.unlink() for p in (raw / "dog").iterdir()] and (raw / "dog").rmdir(), "only one class, 'cat'"),
    (lambda raw: [p.unlink() for p in sorted((raw / "dog").iterdir())[3:]], "class 'dog' has 3"),
    (lambda raw: (raw / "cat" / "link.png").symlink_to(raw.parent.parent / "params.yaml"), "cat/link.png: symlink to"),
    (lambda raw: (raw / "cat").rename(raw / "cat_real") and (raw / "cat").symlink_to(raw.parent.parent / "elsewhere"),
     "data/raw/cat: symlink to"),
])
def test_unusable_folder_fails_naming_the_class_or_file(project, change, message):
    root, env = project
    (root / "elsewhere").mkdir()
    make_folder(root / "elsewhere", {"x": 5})
    change(root / "data" / "raw")
    code, output = run_stage(root, env)
    assert code != 0 and message in output, output[-3000:]
    assert "Traceback" not in output  # a user error is its sentence, not a stack (issue 48, item 2)
    assert_no_output(root)


def test_files_skipped_below_the_split_minimum_fail_naming_the_class(project):
    root, env = project
    for i in range(7):
        (root / "data" / "raw" / "dog" / f"{i:05d}.png").write_bytes(b"")
    write_params(root, on_bad_file="skip")
    code, output = run_stage(root, env)
    assert code != 0 and "class 'dog' has 3" in output, output[-3000:]
    assert_no_output(root)


def test_stage_reports_a_bad_parameter_before_any_work_in_one_line(project):
    """A user error is one line on stderr and exit status 1; TINYGRAY_DEBUG=1 brings the traceback back."""
    root, env = project
    write_params(root, on_bad_file="ignore")
    result = subprocess.run([sys.executable, str(STAGE)], cwd=root, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "params.yaml: parameter 'preprocess.on_bad_file' must be one of ['fail', 'skip'], got 'ignore'"]
    assert_no_output(root)
    debug = subprocess.run([sys.executable, str(STAGE)], cwd=root, env={**env, "TINYGRAY_DEBUG": "1"},
                           capture_output=True, text=True, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr and "ParamsError" in debug.stderr


def test_stage_refuses_a_folder_that_dvc_yaml_does_not_depend_on(project):
    root, env = project
    stage = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["preprocess"]  # as shipped: no folder dep
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"preprocess": stage}}))
    code, output = run_stage(root, env)
    assert code != 0 and "does not depend on the image folder 'data/raw'" in output, output[-3000:]
    assert "${preprocess.image_dir}" in output
    assert_no_output(root)


def edit(root, change, text=None):
    path = root / "params.yaml"
    if text is not None:
        path.write_text(text)
        return path
    params = yaml.safe_load(path.read_text())
    change(params["preprocess"])
    path.write_text(yaml.safe_dump(params))
    return path


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(image_dri="data/raw"), r"unknown parameter\(s\) \['preprocess.image_dri'\]"),
    (lambda p: p.pop("on_bad_file"), "missing parameter 'preprocess.on_bad_file'"),
    (lambda p: p.update(on_bad_file="warn"), r"'preprocess.on_bad_file' must be one of \['fail', 'skip'\]"),
    (lambda p: p.update(dataset="imagenet"), r"'preprocess.dataset' must be one of \['mnist', 'digits', 'fashion_mnist', 'folder'\]"),
    (lambda p: p.update(image_dir="data/nowhere"), "'preprocess.image_dir' must be an existing folder"),
    (lambda p: p.update(image_dir=["data/raw"]), "'preprocess.image_dir' must be of type str"),
    (lambda p: p.update(classes=[0, 1]), "'preprocess.classes' selects labels of the built-in datasets"),
    (lambda p: p.update(image_size=4), "'preprocess.image_size' must be >= 8"),
    (lambda p: p.update(image_size=32.0), "'preprocess.image_size' must be of type int"),
    (lambda p: p.update(val_fraction=float("nan")), "'preprocess.val_fraction' must be a finite number"),
    (lambda p: p.update(val_fraction=0.5, test_fraction=0.5), "must leave images for training"),
    (lambda p: p.update(max_per_class=1), "'preprocess.max_per_class' must be >= 3"),
])
def test_bad_parameter_is_named(project, monkeypatch, change, message):
    root, _ = project
    monkeypatch.chdir(root)
    path = edit(root, change)
    with pytest.raises(ParamsError, match=message):
        load_params(path)


def test_the_valid_folder_params_pass(project, monkeypatch):
    root, _ = project
    monkeypatch.chdir(root)
    assert load_params(root / "params.yaml").preprocess.image_dir == "data/raw"


@pytest.mark.parametrize("text, message", [
    ("seed: 1\npreprocess:\n  dataset: mnist\n  dataset: folder\n", r"duplicate key\(s\) \['dataset'\]"),
    ("seed: 1\npreprocess: [1, 2]\n", "section 'preprocess' must be a mapping"),
    ("seed: 1\npreprocess:\n  dataset: [mnist\n", "not valid YAML"),
])
def test_malformed_params_file_is_named(project, text, message):
    root, _ = project
    with pytest.raises(ParamsError, match=message):
        load_params(edit(root, None, text))


def closed_port():
    return free_ports(1)[0]  # nothing listens there: connecting is refused


def test_unreachable_tracking_server_fails_the_stage_quickly(project):
    root, env = project
    uri = f"http://127.0.0.1:{closed_port()}"
    start = time.monotonic()
    code, output = run_stage(root, {**env, "MLFLOW_TRACKING_URI": uri}, timeout=60)
    assert code != 0 and f"MLflow tracking server {uri} did not answer" in output, output[-3000:]
    assert "unset MLFLOW_TRACKING_URI" in output
    assert time.monotonic() - start < 30  # imports included; MLflow's own retries would take minutes
    assert_no_output(root)


def test_silent_tracking_server_times_out():
    with socket.socket() as server:  # accepts connections (backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen()
        uri = f"http://127.0.0.1:{server.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(TrackingServerError, match="did not answer within 1 s"):
            check_tracking_server(uri, timeout=1)
        assert time.monotonic() - start < 5


def test_answering_tracking_server_passes_and_other_stores_are_not_checked():
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Health(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        check_tracking_server(f"http://127.0.0.1:{server.server_address[1]}", timeout=2)
        check_tracking_server(f"http://127.0.0.1:{server.server_address[1]}/prefix", timeout=2)  # 404 answers too
    finally:
        server.shutdown()
    check_tracking_server(f"sqlite:///{REPO}/nowhere/mlflow.db", timeout=0.01)


def test_a_tracking_server_answering_503_is_refused_before_any_work():
    """A 503 (a proxy with no server behind it) passed the check and 82 lines of MLflow's retries followed."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Unavailable(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(503)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(TrackingServerError, match=r"answered 503 \(Service Unavailable\) to /health"):
            check_tracking_server(f"http://127.0.0.1:{server.server_address[1]}", timeout=2)
    finally:
        server.shutdown()


def test_unwritable_metrics_stop_the_stage_before_it_replaces_any_output(project):
    """metrics/ that cannot be written (here a file where the folder should be; root ignores permission bits)
    used to leave a new data/prepared beside the previous run's metrics: half an update."""
    root, env = project
    (root / "metrics").write_text("not a folder")
    code, output = run_stage(root, env)
    assert code != 0 and "metrics/preprocess.json: the metrics folder metrics is not writable" in output, output[-2000:]
    assert not (root / "data" / "prepared").exists() and not list((root / "data").glob(".tmp-*"))


def test_a_bad_unlabelled_folder_is_refused_before_the_labelled_images_and_the_last_outputs_stay(project):
    """A folder of unreadable files (on_bad_file: skip) was refused only after the labelled folder was decoded, and
    the last good data/prepared was gone while data/unlabeled and metrics/preprocess.json still described it
    (issue 48, item 5). Now the unlabelled images are decoded first and both outputs replace the last ones together."""
    root, env = project
    code, output = run_stage(root, env)
    assert code == 0, output[-3000:]
    before = {path.relative_to(root): path.read_bytes() for path in sorted((root / "data").rglob("*")) if path.is_file()}
    metrics = (root / "metrics" / "preprocess.json").read_bytes()
    (root / "unlabeled").mkdir()
    for name in ("a.png", "b.png"):
        (root / "unlabeled" / name).write_bytes(PNG + b"not really a png" * 10)
    write_params(root, on_bad_file="skip", unlabeled_dir="unlabeled")
    code, output = run_stage(root, env)
    assert code == 1 and "'preprocess.unlabeled_dir': no readable image in unlabeled (2 unreadable" in output, output[-3000:]
    assert "/20 images" not in output  # the labelled folder (20 images) was not read
    after = {path.relative_to(root): path.read_bytes() for path in sorted((root / "data").rglob("*")) if path.is_file()}
    assert after == before and (root / "metrics" / "preprocess.json").read_bytes() == metrics
