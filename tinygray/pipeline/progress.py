"""Progress of every long step, so no stage is silent for minutes: tqdm's bar on a terminal, and in a log
file or CI (no terminal) one line at the start and then at most every LOG_EVERY_SECONDS, with what is done,
of how many and the seconds so far. One way for every loop: decoding images, views, soft targets, the
benchmark's variants, the conversions; Keras trainings get the same through loop.EpochProgress."""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
LOG_EVERY_SECONDS = 20.0


def on_terminal() -> bool:
    return sys.stderr.isatty()


def steps(items: Iterable[T], what: str, *, unit: str = "step", total: int | None = None,
          enabled: bool = True) -> Iterator[T]:
    """`items`, reporting progress as it goes (see the module). `what` names the work ("soft targets")."""
    total = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    if not enabled:
        yield from items
        return
    if on_terminal():
        from tqdm import tqdm

        yield from tqdm(items, desc=what, unit=unit, total=total, leave=False)
        return
    started = last = time.perf_counter()
    of = f"/{total}" if total is not None else ""
    print(f"{what}: 0{of} {unit}s", flush=True)
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.perf_counter()
        if now - last >= LOG_EVERY_SECONDS and done != total:
            print(f"{what}: {done}{of} {unit}s, {now - started:.0f} s", flush=True)
            last = now
    print(f"{what}: {done}{of} {unit}s done in {time.perf_counter() - started:.0f} s", flush=True)
