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


class NotEnoughSpace(OSError):
    """A stage would fill the disk: refused before anything is written, with the figures."""


def require_free_space(path: Path | str, needed_bytes: int, what: str) -> None:
    """Refuse to start writing `what` at `path` when its filesystem has less than `needed_bytes` free. A full
    disk under a memory-mapped write kills the process with SIGBUS, no message and a staging folder left
    filling the disk (a 20 MB tmpfs under data/ at image_size 256)."""
    folder = Path(path)
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < needed_bytes:
        raise NotEnoughSpace(f"{path}: {what} needs about {needed_bytes / 2**20:,.1f} MiB and {folder} has "
                             f"{free / 2**20:,.1f} MiB free; nothing was written. Free some space, or lower "
                             "preprocess.image_size or augment.views")
