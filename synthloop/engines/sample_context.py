"""Which item and attempt a model call belongs to, carried across DSPy's layers by a contextvar.

A run sets it around each item; the DSPy bridge reads it to give each (item, attempt) its own
seed, so outputs are reproducible, a retry draws a different sample, and a resumed run asks the
exact same requests again (and finds them in the cache).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class SampleContext:
    item: int
    attempt: int
    seed: int


_current: ContextVar[SampleContext | None] = ContextVar("synthloop_sample", default=None)


def derive_seed(base: int, item: int, attempt: int) -> int:
    digest = hashlib.blake2b(f"{base}:{item}:{attempt}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


def current() -> SampleContext | None:
    return _current.get()


@contextlib.contextmanager
def sample(item: int, attempt: int = 0, base_seed: int = 0) -> Iterator[SampleContext]:
    ctx = SampleContext(item=item, attempt=attempt, seed=derive_seed(base_seed, item, attempt))
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def child_seeds(count: int, fallback: int = 0) -> list[int]:
    """Distinct, reproducible seeds for `count` samples drawn within the current item (e.g. N thoughts per
    document): derived from the item's seed inside a run, from `fallback` outside one."""
    ctx = current()
    base = ctx.seed if ctx is not None else fallback
    return [derive_seed(base, k, 0) for k in range(count)]
