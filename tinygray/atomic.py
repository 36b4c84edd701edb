"""All-or-nothing outputs: a killed or failing stage must not leave a file DVC could take for finished."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_output(path: Path | str) -> Iterator[Path]:
    """Yield a sibling temporary path (same suffix) to write a file or directory into; move it into
    place only when the block succeeds, otherwise delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    _remove(staging)
    try:
        yield staging
        if path.is_dir() and staging.is_dir():
            shutil.rmtree(path)
        os.replace(staging, path)
    finally:
        _remove(staging)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
