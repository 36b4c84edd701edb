"""The one way to save and load a model: byte-stable .keras files, safe loading, parameter counts."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import keras
import numpy as np

from tinygray.pipeline.atomic import atomic_output


def uncompiled_copy(model: keras.Model) -> keras.Model:
    """The same network without optimizer state: a compiled model's file is ~3x larger, which would
    inflate every size ratio, and clone_model would recompile it."""
    copy = model.__class__.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def save_model(model: keras.Model, path: Path | str) -> None:
    """The uncompiled model as a .keras file whose bytes depend on the network alone (byte_stable)."""
    with atomic_output(path) as staging:
        uncompiled_copy(model).save(staging)
        byte_stable(staging)


# What a .keras archive records of the moment it was written (zip entry times, metadata.json's date_saved),
# set to fixed values so the same weights always give the same bytes: otherwise every retrained stage gets a
# new hash in dvc.lock, and the stages after it rerun although nothing changed.
FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FIXED_DATE_SAVED = "1980-01-01@00:00:00"


def byte_stable(path: Path | str) -> None:
    """Rewrite a .keras archive in place with its clock readings fixed; content is untouched otherwise."""
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        entries = [(info, archive.read(info)) for info in archive.infolist()]
    with zipfile.ZipFile(path, "w") as archive:
        for info, content in entries:
            if info.filename == "metadata.json":
                metadata = json.loads(content)
                if "date_saved" in metadata:
                    metadata["date_saved"] = FIXED_DATE_SAVED
                content = json.dumps(metadata).encode()
            fixed = zipfile.ZipInfo(info.filename, date_time=FIXED_ZIP_TIME)
            fixed.compress_type, fixed.external_attr = info.compress_type, info.external_attr
            archive.writestr(fixed, content)


class ModelFileError(ValueError):
    """A model file that is missing, not a .keras archive, or refused by safe mode; the message names it."""


def load_model(path: Path | str) -> keras.Model:
    """A .keras file, never executing code from it (safe_mode refuses Lambda layers and the like). A qat.keras
    file needs tinygray.compress.qat imported first, which registers its layers: its readers import it, so that the
    stages that never read one do not depend on the quantization-aware code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model not found; run the stage that produces it first")
    try:
        return keras.models.load_model(path, compile=False, safe_mode=True)
    except Exception as error:  # zipfile, json, h5py and Keras' own deserialisation all fail differently
        raise ModelFileError(f"{path}: cannot be loaded as a Keras model ({type(error).__name__}: {error}); "
                             "rerun the stage that produces it (dvc repro). If `dvc checkout` or `dvc repro` put it "
                             "there, its copy in DVC's cache may be damaged: `python -m tinygray.pipeline.verify` "
                             "checks every output against dvc.lock and says how to rebuild it") from None


def count_params(model: keras.Model) -> tuple[int, int]:
    """(parameters, non-zero parameters) over every weight, trainable or not."""
    weights = model.get_weights()
    return int(sum(w.size for w in weights)), int(sum(np.count_nonzero(w) for w in weights))
