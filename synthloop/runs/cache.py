"""The request-level cache: one SQLite row per completed request, keyed by the hash of the canonical
request (model with its weights' fingerprint, messages, sampling params with seed, schema, sample index; never
credentials): a checkpoint retrained at the same path never answers from the old one's entries.
Log-likelihood scoring requests are cached the same way (their canonical form says "loglikelihood").

`CachedEngine` wraps any engine with it. A resumed run asks the same requests again and gets the
stored answers without touching the model, so work finished before a kill is never redone.
"""

from __future__ import annotations

import concurrent.futures
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from synthloop.engines.base import Engine
from synthloop.engines.types import ChatRequest, ChatResult, ScoreRequest, ScoreResult
from synthloop.runs.fingerprint import engine_identity

R = TypeVar("R", bound=BaseModel)


class RequestCache:
    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, result TEXT NOT NULL, "
                         "created REAL NOT NULL)")
        # A cache that was empty when opened can only hold this session's answers: look those up in memory
        # (a set of 64-bit key prefixes, ~40 bytes each) and skip SQLite for everything else (the lookups were a
        # third of the bookkeeping per call against a fast server, measured).
        self.fresh = self._db.execute("SELECT 1 FROM responses LIMIT 1").fetchone() is None
        self._written: set[int] = set()

    def get(self, key: str, kind: type[R] = ChatResult) -> R | None:
        if self.fresh and int(key[:16], 16) not in self._written:
            return None
        with self._lock:
            if self._closed:
                return None
            row = self._db.execute("SELECT result FROM responses WHERE key = ?", (key,)).fetchone()
        return kind.model_validate_json(row[0]) if row else None

    def put(self, key: str, result: ChatResult | ScoreResult) -> None:
        blob = result.model_dump_json(exclude={"cached"})
        if self.fresh:
            self._written.add(int(key[:16], 16))
        with self._lock:
            if self._closed:
                return  # a request that finished after its run ended (cancelled item): nothing to keep it for
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)", (key, blob, time.time()))

    def absorb(self, other: Path) -> int:
        """Copy the answers of another cache file that this one lacks; returns how many."""
        with self._lock:
            before = self._db.total_changes
            self._db.execute("ATTACH DATABASE ? AS other", (str(other),))
            try:
                self._db.execute("INSERT OR IGNORE INTO responses SELECT key, result, created FROM other.responses")
            except sqlite3.OperationalError:  # a file killed before its table existed: nothing in it
                pass
            finally:
                self._db.execute("DETACH DATABASE other")
            return self._db.total_changes - before

    def __len__(self) -> int:
        with self._lock:
            if self._closed:
                return 0
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()


class ReplicaCache(RequestCache):
    """The request cache of one replica of a distributed run (`synth.ray_executor`): its answers go to its own shard
    file (one writer per SQLite file, whatever node it runs on); lookups also see the run's merged cache, opened
    read-only and immutable (nobody writes it while replicas run: the driver merges shards before and after)."""

    def __init__(self, shard: Path, merged: Path):
        shard.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(shard)
        self._merged = None
        if merged.is_file():
            self._merged = sqlite3.connect(f"file:{merged}?immutable=1", uri=True, check_same_thread=False)
            if self._merged.execute("SELECT 1 FROM responses LIMIT 1").fetchone() is None:
                self._merged.close()
                self._merged = None

    def get(self, key: str, kind: type[R] = ChatResult) -> R | None:
        hit = super().get(key, kind)
        if hit is not None or self._merged is None:
            return hit
        with self._lock:
            if self._closed:
                return None
            row = self._merged.execute("SELECT result FROM responses WHERE key = ?", (key,)).fetchone()
        return kind.model_validate_json(row[0]) if row else None

    def close(self) -> None:
        with self._lock:
            if self._merged is not None:
                self._merged.close()
                self._merged = None
        super().close()


def merge_caches(merged: Path, shards: list[Path]) -> int:
    """Fold replica shard files into the run's cache (`merged`) and delete them; returns the answers added. Run it
    only while no replica writes the shards (before replicas start, after they stopped)."""
    if not shards:
        return 0
    cache = RequestCache(merged)
    try:
        added = sum(cache.absorb(shard) for shard in shards)
    finally:
        cache.close()
    for shard in shards:
        for path in (shard, shard.with_name(shard.name + "-wal"), shard.with_name(shard.name + "-shm")):
            path.unlink(missing_ok=True)
    return added


class CachedEngine(Engine):
    """An engine in front of which completed requests are looked up first and stored after."""

    def __init__(self, inner: Engine, cache: RequestCache):
        super().__init__(inner.model)
        self.inner = inner
        self.kind = inner.kind  # type: ignore[misc]
        self.supports_json_schema = inner.supports_json_schema  # type: ignore[misc]
        self.supports_scoring = inner.supports_scoring  # type: ignore[misc]
        self.preferred_in_flight = inner.preferred_in_flight
        self.cache = cache
        self.hits = 0
        self.misses = 0
        self.output_tokens = 0
        self.prompt_tokens = 0
        self._stats_lock = threading.Lock()
        sha = engine_identity(inner.describe()).get("model_sha256")
        #: the model as cache keys name it: with the fingerprint of its weights when it has local ones
        self.model_key = f"{inner.model}@{sha}" if sha else inner.model

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    # -- the one hit/miss rule: look up, count, store with the tokens it cost ------------------------
    def _lookup(self, key: str, kind: type[R]) -> R | None:
        hit = self.cache.get(key, kind)
        with self._stats_lock:
            if hit is not None:
                self.hits += 1
            else:
                self.misses += 1
        return None if hit is None else hit.model_copy(update={"cached": True})

    def _store(self, key: str, result: ChatResult | ScoreResult) -> None:
        self.cache.put(key, result)
        with self._stats_lock:
            if isinstance(result, ChatResult):
                self.output_tokens += result.output_tokens
                self.prompt_tokens += result.prompt_tokens
            else:
                self.prompt_tokens += result.context_tokens + result.tokens

    def _cached_future(self, key: str, kind: type[R], submit) -> concurrent.futures.Future[R]:
        hit = self._lookup(key, kind)
        if hit is not None:
            done: concurrent.futures.Future[R] = concurrent.futures.Future()
            done.set_result(hit)
            return done
        future = submit()

        def store(f: concurrent.futures.Future[R]) -> None:
            if not f.cancelled() and f.exception() is None:
                self._store(key, f.result())

        future.add_done_callback(store)
        return future

    def submit(self, request: ChatRequest) -> concurrent.futures.Future[ChatResult]:
        return self._cached_future(request.cache_key(self.model_key), ChatResult, lambda: self.inner.submit(request))

    async def agenerate(self, request: ChatRequest) -> ChatResult:
        """Like `submit`, but awaits the inner engine's `agenerate` (no thread hop on the engine's own loop)."""
        key = request.cache_key(self.model_key)
        hit = self._lookup(key, ChatResult)
        if hit is not None:
            return hit
        result = await self.inner.agenerate(request)
        self._store(key, result)
        return result

    def submit_score(self, request: ScoreRequest) -> concurrent.futures.Future[ScoreResult]:
        return self._cached_future(request.cache_key(self.model_key), ScoreResult,
                                   lambda: self.inner.submit_score(request))

    @property
    def loop_thread(self):  # type: ignore[override]
        return self.inner.loop_thread

    def close(self) -> None:
        """Closes the cache only; the inner engine belongs to whoever built it."""
        self.cache.close()
