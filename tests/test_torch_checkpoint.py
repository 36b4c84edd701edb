import collections
import os
import pickle
import struct
import sys
import types
import zipfile

import numpy as np
import pytest

from tinygray.models.efficientnet_lite import imagenet_checkpoint_path
from tinygray.models.torch_checkpoint import LEGACY_MAGIC, LEGACY_PROTOCOL, CheckpointError, load_torch_checkpoint


# --- writing checkpoints without torch: stand-in globals pickled under torch's names ---------------

def _named(obj, module, name):
    obj.__module__, obj.__qualname__, obj.__name__ = module, name, name
    return obj


@pytest.fixture
def fake_torch(monkeypatch):
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    torch.FloatStorage = _named(type("FloatStorage", (), {}), "torch", "FloatStorage")
    torch.LongStorage = _named(type("LongStorage", (), {}), "torch", "LongStorage")
    utils._rebuild_tensor_v2 = _named(lambda *a: None, "torch._utils", "_rebuild_tensor_v2")
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch, utils


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, np.ascontiguousarray(array).ravel()


class _Tensor:
    def __init__(self, storage, offset, shape, stride, rebuild):
        self.args = (storage, offset, shape, stride, False, collections.OrderedDict())
        self.rebuild = rebuild

    def __reduce__(self):
        return self.rebuild, self.args


def _write(path, tensors, fmt, fake_torch):
    """tensors: {name: (storage, offset, shape, stride)}; fmt: 'legacy' or 'zip'."""
    torch, utils = fake_torch
    state = collections.OrderedDict(
        (name, _Tensor(*spec, rebuild=utils._rebuild_tensor_v2)) for name, spec in tensors.items())
    storages = {spec[0].key: spec[0] for spec in tensors.values()}

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if not isinstance(obj, _Storage):
                return None
            kind = torch.LongStorage if obj.array.dtype == np.int64 else torch.FloatStorage
            pid = ("storage", kind, obj.key, "cpu", obj.array.size)
            return pid + (None,) if fmt == "legacy" else pid

    if fmt == "legacy":
        with open(path, "wb") as f:
            for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
                pickle.dump(header, f, protocol=2)
            Pickler(f, protocol=2).dump(state)
            pickle.dump(sorted(storages), f, protocol=2)
            for key in sorted(storages):
                f.write(struct.pack("<q", storages[key].array.size) + storages[key].array.tobytes())
    else:
        with zipfile.ZipFile(path, "w") as zf:
            with zf.open("archive/data.pkl", "w") as f:
                Pickler(f, protocol=2).dump(state)
            zf.writestr("archive/byteorder", "little")
            for key, storage in storages.items():
                zf.writestr(f"archive/data/{key}", storage.array.tobytes())


@pytest.mark.parametrize("fmt", ["legacy", "zip"])
def test_roundtrip_strides_offsets_and_dtypes(tmp_path, fake_torch, fmt):
    hwio = np.arange(3 * 3 * 2 * 4, dtype=np.float32).reshape(3, 3, 2, 4)
    shared = _Storage("7", np.arange(10, dtype=np.float32))
    tensors = {
        # An OIHW view of HWIO memory, stored non-contiguously like the real conv stem.
        "conv.weight": (_Storage("3", hwio), 0, (4, 2, 3, 3), (1, 4, 24, 8)),
        "a": (shared, 2, (2, 3), (3, 1)),
        "b": (shared, 1, (3,), (3,)),
        "count": (_Storage("11", np.array([5], dtype=np.int64)), 0, (), ()),
    }
    path = tmp_path / f"ckpt.{fmt}"
    _write(path, tensors, fmt, fake_torch)
    sd = load_torch_checkpoint(path)
    assert list(sd) == list(tensors)
    np.testing.assert_array_equal(sd["conv.weight"], hwio.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(sd["a"], [[2, 3, 4], [5, 6, 7]])
    np.testing.assert_array_equal(sd["b"], [1, 4, 7])
    assert sd["count"].dtype == np.int64 and sd["count"].shape == () and sd["count"] == 5


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("container", ["plain", "legacy", "zip"])
def test_arbitrary_global_is_refused_and_never_runs(tmp_path, fake_torch, container):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"x": _Payload(marker)}, protocol=2)
    path = tmp_path / "evil.pth"
    if container == "plain":
        path.write_bytes(payload)
    elif container == "legacy":
        headers = b"".join(pickle.dumps(h, protocol=2) for h in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}))
        path.write_bytes(headers + payload + pickle.dumps([], protocol=2))
    else:
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", payload)
    with pytest.raises(CheckpointError) as err:
        load_torch_checkpoint(path)
    assert f"{os.system.__module__}.system" in str(err.value)
    assert str(path) in str(err.value)
    assert not marker.exists()


def test_malformed_files_raise_checkpoint_error(tmp_path, fake_torch):
    good = tmp_path / "good.pth"
    _write(good, {"w": (_Storage("0", np.ones(6, np.float32)), 0, (6,), (1,))}, "legacy", fake_torch)
    truncated = tmp_path / "truncated.pth"
    truncated.write_bytes(good.read_bytes()[:-4])
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00not a checkpoint")
    outside = tmp_path / "outside.pth"
    _write(outside, {"w": (_Storage("0", np.ones(6, np.float32)), 4, (3,), (1,))}, "zip", fake_torch)
    for path in (truncated, garbage, outside):
        with pytest.raises(CheckpointError, match=str(path)):
            load_torch_checkpoint(path)
    assert isinstance(CheckpointError("x"), ValueError)


def test_real_checkpoint_contents():
    sd = load_torch_checkpoint(imagenet_checkpoint_path())
    assert len(sd) == 296
    counters = [k for k in sd if k.endswith(".num_batches_tracked")]
    assert len(counters) == 49  # one per BatchNorm; the other 247 tensors are float32 weights
    assert all(sd[k].dtype == np.int64 and sd[k].shape == () for k in counters)
    floats = [v for k, v in sd.items() if k not in counters]
    assert all(v.dtype == np.float32 for v in floats)
    assert sum(v.size for v in floats) == 4_694_024
    # lukemelas EfficientNet-PyTorch naming (ml-illustrated EfficientNet-Lite-PyTorch port).
    assert list(sd)[:2] == ["_conv_stem.weight", "_bn0.weight"] and list(sd)[-1] == "_fc.bias"
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
