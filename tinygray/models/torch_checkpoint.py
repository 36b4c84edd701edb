"""Read PyTorch tensor checkpoints (.pth) into numpy without torch.

Unpickling runs whatever callables a file names, so a plain ``pickle.load`` of a
downloaded checkpoint is arbitrary code execution. The unpickler here resolves
only the few globals a tensor state dict needs, each to a local stand-in, and
refuses everything else with :class:`CheckpointError`. Both the legacy format
(pickles followed by raw storages) and the zip format (torch >= 1.6) are read.
"""

from __future__ import annotations

import collections
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}

# Anything going wrong while parsing untrusted bytes is reported as a malformed file.
_PARSE_ERRORS = (
    pickle.UnpicklingError, EOFError, struct.error, zipfile.BadZipFile,
    AttributeError, IndexError, KeyError, TypeError, ValueError, MemoryError,
)


class CheckpointError(ValueError):
    """A checkpoint that is refused (unsafe global) or cannot be parsed."""


class _StorageType:
    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _StorageRef:
    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel


class _TensorRef:
    """A tensor whose storage bytes may not have been read yet (legacy format)."""

    def __init__(self, storage, offset, shape, stride):
        if not isinstance(storage, _StorageRef):
            raise TypeError("tensor is not backed by a storage")
        self.storage, self.offset = storage, int(offset)
        self.shape, self.stride = tuple(map(int, shape)), tuple(map(int, stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Allow-list unpickler.

    Stand-ins are per-instance objects and bound methods, so a file cannot use
    BUILD opcodes to alter state shared with later loads.
    """

    def __init__(self, file, path: Path):
        super().__init__(file, encoding="utf-8")
        self._path = path
        self.storages: dict[str, _StorageRef] = {}
        self._globals = {
            ("collections", "OrderedDict"): collections.OrderedDict,
            ("torch._utils", "_rebuild_tensor_v2"): self._rebuild_tensor_v2,
            ("torch._utils", "_rebuild_parameter"): self._rebuild_parameter,
        }
        for name in _STORAGE_DTYPES:
            self._globals[("torch", name)] = _StorageType(name)

    def find_class(self, module, name):
        try:
            return self._globals[(module, name)]
        except KeyError:
            raise CheckpointError(
                f"{self._path}: refusing to load global {module}.{name}; "
                "only tensor state dicts are allowed"
            ) from None

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise CheckpointError(f"{self._path}: unexpected persistent id {pid!r}")
        storage_type, key, _location, numel = pid[1:5]
        if len(pid) == 6 and pid[5] is not None:
            raise CheckpointError(f"{self._path}: storage views are not supported")
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str):
            raise CheckpointError(f"{self._path}: malformed storage reference {pid!r}")
        ref = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype, int(numel)))
        if ref.dtype != storage_type.dtype or ref.numel != int(numel):
            raise CheckpointError(f"{self._path}: storage {key} is declared twice differently")
        return ref

    def _rebuild_tensor_v2(self, storage, offset, shape, stride, requires_grad=False, hooks=None, metadata=None):
        return _TensorRef(storage, offset, shape, stride)

    def _rebuild_parameter(self, data, requires_grad=False, hooks=None):
        return data


def load_torch_checkpoint(path) -> dict[str, np.ndarray]:
    """Return the checkpoint's state dict as ``{name: array}`` in file order."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            state, buffers = _read_zip(path)
        else:
            with open(path, "rb") as f:
                state, buffers = _read_legacy(f, path)
        if not isinstance(state, dict):
            raise CheckpointError(f"{path}: top-level object is {type(state).__name__}, not a state dict")
        out = {}
        for name, tensor in state.items():
            if not isinstance(name, str) or not isinstance(tensor, _TensorRef):
                raise CheckpointError(f"{path}: entry {name!r} is not a named tensor")
            out[name] = _materialize(tensor, buffers[tensor.storage.key], path, name)
        return out
    except CheckpointError:
        raise
    except _PARSE_ERRORS as exc:
        raise CheckpointError(f"{path}: malformed checkpoint ({type(exc).__name__}: {exc})") from exc


def _read_legacy(f, path: Path):
    def header():
        return _RestrictedUnpickler(f, path).load()

    if header() != LEGACY_MAGIC:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (bad magic number)")
    if header() != LEGACY_PROTOCOL:
        raise CheckpointError(f"{path}: unsupported legacy protocol version")
    sys_info = header()
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian") is True):
        raise CheckpointError(f"{path}: only little-endian checkpoints are supported")
    unpickler = _RestrictedUnpickler(f, path)
    state = unpickler.load()
    keys = header()
    if not (isinstance(keys, list) and sorted(keys) == sorted(unpickler.storages)):
        raise CheckpointError(f"{path}: storage key list does not match the tensors")
    file_size = os.fstat(f.fileno()).st_size
    buffers = {}
    for key in keys:
        ref = unpickler.storages[key]
        (numel,) = struct.unpack("<q", f.read(8))
        nbytes = ref.numel * ref.dtype.itemsize
        if numel != ref.numel or nbytes > file_size - f.tell():  # checked before reading: sizes are untrusted
            raise CheckpointError(f"{path}: storage {key} is truncated or has a wrong size")
        buffers[key] = np.frombuffer(f.read(nbytes), dtype=ref.dtype)
    if f.read(1):
        raise CheckpointError(f"{path}: unexpected trailing bytes after the last storage")
    return state, buffers


def _read_zip(path: Path):
    with zipfile.ZipFile(path) as zf:
        pickles = [n for n in zf.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise CheckpointError(f"{path}: expected exactly one data.pkl, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        if prefix + "byteorder" in zf.namelist() and zf.read(prefix + "byteorder") != b"little":
            raise CheckpointError(f"{path}: only little-endian checkpoints are supported")
        with zf.open(pickles[0]) as f:
            unpickler = _RestrictedUnpickler(f, path)
            state = unpickler.load()
        buffers = {}
        for key, ref in unpickler.storages.items():
            data = zf.read(f"{prefix}data/{key}")
            if len(data) != ref.numel * ref.dtype.itemsize:
                raise CheckpointError(f"{path}: storage {key} has a wrong size")
            buffers[key] = np.frombuffer(data, dtype=ref.dtype)
    return state, buffers


def _materialize(t: _TensorRef, buf: np.ndarray, path: Path, name: str) -> np.ndarray:
    if len(t.shape) != len(t.stride) or any(n < 0 for n in t.shape) or any(s < 0 for s in t.stride):
        raise CheckpointError(f"{path}: tensor {name} has an invalid shape/stride")
    if 0 in t.shape:
        return np.zeros(t.shape, dtype=buf.dtype)
    last = t.offset + sum((n - 1) * s for n, s in zip(t.shape, t.stride))
    if t.offset < 0 or last >= buf.size:
        raise CheckpointError(f"{path}: tensor {name} reaches outside its storage")
    strides = [s * buf.itemsize for s in t.stride]
    view = np.lib.stride_tricks.as_strided(buf[t.offset:], shape=t.shape, strides=strides, writeable=False)
    return np.array(view, dtype=buf.dtype.newbyteorder("="), order="C")
