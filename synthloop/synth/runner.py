"""The runner of a generate run: items as asyncio tasks, records written as they finish, resume, retries, the
circuit breaker, progress, and the run's end (`synth.generate.generate` builds it).

Failures: an unparseable or truncated output is retried with a fresh sample (a new seed), a
transient engine error after a backoff; after `max_attempts` the item is given up. errors.jsonl gets
every failed attempt with its reason (`final: true` on the one that gave the item up), and every
request an engine retried on its own (`kind: request`, e.g. an HTTP 500 or a timeout). A rerun skips
items already kept or filtered, reuses cached responses, and retries failures.

Saturation: items run as asyncio tasks on one loop; each model call goes into the engine the moment
the program makes it, so up to `concurrency` items' calls are in flight together (not DSPy's 8
threads). DSPy's call history and trace are off inside a run (each keeps up to 10,000 calls).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloop.console.progress import RateMeter, bar
from synthloop.engines.base import Engine
from synthloop.engines.types import Sampling
from synthloop.runs.cache import CachedEngine, RequestCache
from synthloop.runs.jsonl import AppendLog, next_part
from synthloop.runs.run_dir import RunAborted, RunConflictError, RunDir
from synthloop.synth.attempts import ItemAttempts, failure_reason, input_sha
from synthloop.synth.base import SynthProgram
from synthloop.synth.remote import AttemptSpec, RemoteItems, RemoteTally

#: after this many items in a row failed for a reason that is not the sample's (engine errors, transient ones
#: included, or a program error such as a missing column), the run stops: `RunAborted` naming the cause
_CIRCUIT_BREAKER = 25
#: failures that say something about one sample, not about the run: a fresh item may well succeed
_SAMPLE_FAILURES = {"unparseable", "truncated", "prompt_too_long"}


@dataclass
class RunSummary:
    run: RunDir
    kept: int = 0
    filtered: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    output_tokens: int = 0
    prompt_tokens: int = 0
    cache_hits: int = 0
    status: str = "running"
    failure_reasons: dict[str, int] = field(default_factory=dict)
    #: why the run failed (status "failed"): the last item's failure
    error: str | None = None

    @property
    def path(self) -> Path:
        return self.run.path


def one_line_errors(source: Iterable[dict[str, Any]], name: str) -> Iterator[dict[str, Any]]:
    """The inputs, with what a program raises about a row it cannot use (a missing column: KeyError, ValueError) as
    the one-line `ConfigError` it is."""
    from synthloop.configs import ConfigError

    try:
        yield from source
    except ConfigError:
        raise
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"program ({name}) inputs: {exc.args[0] if exc.args else type(exc).__name__}") from None


def run_on_engine(runner: Runner, engine: Engine) -> RunSummary:
    """Run `runner` on `engine`'s own event loop when it has one (else a new one); SIGTERM asks it to stop."""
    thread = engine.loop_thread
    if thread is None:
        return asyncio.run(runner.run())
    # An engine with its own event loop (openai, vllm): the run goes there, so each model call is a plain
    # await instead of a hop between threads (measured: ~15% of the client's CPU at 600 req/s).
    # SIGTERM is caught here, in the main thread, and passed on.
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: runner.request_stop())
    try:
        return thread.run(runner.run())
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _length(inputs: Iterable[dict[str, Any]] | None, limit: int | None) -> int | None:
    """How many items the run has, when the caller's inputs know their length."""
    try:
        n = len(inputs)  # type: ignore[arg-type]
    except TypeError:
        return None
    return min(n, limit) if limit is not None else n


class Runner:
    def __init__(self, program, engine, rundir, inputs, num_records, sampling, seed, concurrency, max_attempts,
                 max_items, json_max_chars, progress, adapter=None, check_inputs=True):
        self.program: SynthProgram = program
        self.rundir: RunDir = rundir
        self.adapter = adapter
        if engine is None:  # the items run elsewhere (run_remote): the replicas keep the request cache
            self.cache, self.engine, self.attempts = None, RemoteTally(), None
        else:
            self.cache = RequestCache(rundir.cache_path)
            self.engine = CachedEngine(engine, self.cache)
            self.attempts = ItemAttempts(program, self.engine, sampling=sampling, seed=seed, max_attempts=max_attempts,
                                         run_name=rundir.path.name, json_max_chars=json_max_chars, adapter=adapter,
                                         on_retry_error=self._log_error)
        self.inputs = inputs
        self.num_records = num_records
        self.sampling: Sampling = sampling
        self.seed = seed
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.max_items = max_items if max_items is not None else (num_records * 10 if num_records else None)
        self.show_progress = progress
        self.json_max_chars = json_max_chars
        self.summary = RunSummary(run=rundir)
        self.done: set[int] = set()
        #: the input hash each finished item was made from (records since input hashes were kept)
        self.done_inputs: dict[int, str] = {}
        self.check_inputs = check_inputs
        self.consecutive_failures = 0
        self.last_failure: str | None = None
        self.errors_log: AppendLog | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._interrupt = None
        self.stop_remote = threading.Event()

    def _load_state(self) -> None:
        for record in self.rundir.iter_records():
            self._finished(record["id"], record)
            self.program.remember(record)
            self.summary.kept += 1
        for row in self.rundir.iter_filtered():
            self._finished(row["id"], row.get("record"))
            self.summary.filtered += 1
        self.summary.skipped = len(self.done)

    def _finished(self, item: int, record: dict | None) -> None:
        self.done.add(item)
        sha = ((record or {}).get("provenance") or {}).get("input_sha")
        if sha is not None:
            self.done_inputs[item] = sha

    def _check_unchanged(self, item: int, inputs: dict[str, Any]) -> None:
        """A finished item is skipped only if its input is the one its record was made from."""
        known = self.done_inputs.get(item)
        if self.check_inputs and known is not None and known != input_sha(inputs):
            raise RunConflictError(
                f"{self.rundir.path}: item {item}'s input differs from the one its record was made from (the inputs "
                "changed); pass --resume never to start a new run, or --resume always to keep the old records")

    def _target_reached(self) -> bool:
        return self.num_records is not None and self.summary.kept >= self.num_records

    def request_stop(self) -> None:
        """Stop taking new items and end the run cleanly (thread-safe; SIGTERM does this)."""
        if self.loop is not None and self._interrupt is not None:
            with contextlib.suppress(RuntimeError):
                self.loop.call_soon_threadsafe(self._interrupt)

    def _log_error(self, row: dict[str, Any]) -> None:
        if self.errors_log is not None:
            self.errors_log.write({**row, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})

    def _engine_retry(self, row: dict[str, Any]) -> None:
        """Called by the engine (from its own thread) for every request it retries: logged on our loop."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed in between: the run is over
                loop.call_soon_threadsafe(self._log_error, {"id": row.pop("item", None), **row, "final": False})

    def _handle(self, item: int, record: dict | None, error: dict | None, logs) -> None:
        shard, filtered, errors = logs
        if record is not None:
            self.consecutive_failures = 0
            try:
                reason = self.program.accept(record)
            except Exception as exc:  # a filter bug must not crash the run or drop the item silently
                record, error = None, {"id": item, "attempt": record["provenance"]["attempt"],
                                       "kind": f"filter:{type(exc).__name__}", "reason": failure_reason(exc)}
        if record is not None:
            if reason is None:
                shard.write(record)
                self.program.remember(record)
                self.summary.kept += 1
            else:
                filtered.write({"id": item, "reason": reason, "record": record})
                self.summary.filtered += 1
        else:
            errors.write({**error, "final": True, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})
            self.summary.failed += 1
            kind = error["kind"]
            self.summary.failure_reasons[kind] = self.summary.failure_reasons.get(kind, 0) + 1
            self.last_failure = error["reason"]
            if kind not in _SAMPLE_FAILURES:
                self.consecutive_failures += 1
                if self.consecutive_failures >= _CIRCUIT_BREAKER:
                    what = "the engine failed" if kind in ("engine", "transient") else f"the program raised {kind} on"
                    raise RunAborted(f"{self.rundir.path}: {what} {_CIRCUIT_BREAKER} items in a row: "
                                     f"{error['reason']}")
        self.done.add(item)

    def _detail(self, meter: RateMeter) -> str:
        s = self.summary
        parts = [f"{n} {what}" for n, what in ((s.filtered, "filtered"), (s.failed, "failed")) if n]
        return " · ".join([*parts, f"{meter.rate(self.engine.output_tokens):.0f} tok/s"])

    def _counts(self) -> dict[str, Any]:
        s = self.summary
        counts = {"kept": s.kept, "filtered": s.filtered, "failed": s.failed, "target": self.num_records,
                  "output_tokens": self.engine.output_tokens, "prompt_tokens": self.engine.prompt_tokens,
                  "cache_hits": self.engine.hits,
                  "failure_reasons": s.failure_reasons}
        stats = getattr(self.engine.inner, "engine_stats", None)
        if stats is not None:  # e.g. the openai engine: retries by reason, the adaptive concurrency limit
            counts["engine"] = stats()
        return counts

    def _items(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """(index, inputs) of every item this run may take: the caller's rows or the program's, up to max_items."""
        source = self.inputs if self.inputs is not None else one_line_errors(self.program.inputs(), self.program.name)
        items = enumerate(source)
        return itertools.islice(items, self.max_items) if self.max_items is not None else items

    async def run(self) -> RunSummary:
        started = time.time()
        self._load_state()
        items = self._items()
        pending: set[asyncio.Task] = set()
        finished: collections.deque[asyncio.Task] = collections.deque()
        wake: list[asyncio.Future | None] = [None]

        def on_done(task: asyncio.Task) -> None:  # O(1) per item (asyncio.wait re-arms every pending task)
            pending.discard(task)
            finished.append(task)
            if wake[0] is not None and not wake[0].done():
                wake[0].set_result(None)

        meter, last_manifest, last_update = RateMeter(), 0.0, 0.0
        status = "completed"
        loop = self.loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def interrupt() -> None:
            stop.set()
            on_done_wake = wake[0]
            if on_done_wake is not None and not on_done_wake.done():
                on_done_wake.set_result(None)

        self._interrupt = interrupt
        if threading.current_thread() is threading.main_thread():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGTERM, interrupt)
        shard = AppendLog(next_part(self.rundir.records_dir))
        logs = (shard, AppendLog(self.rundir.filtered_path), AppendLog(self.rundir.errors_path))
        self.errors_log = logs[2]
        inner = self.engine.inner
        inner.on_retry = self._engine_retry
        total = self.num_records
        # the display's total: the records wanted, else the caller's items when it knows how many (a loop's tasks)
        shown = total if total is not None else _length(self.inputs, self.max_items)
        exhausted = False
        try:
            with bar(self.program.name, shown, unit="records" if total is not None else "items",
                     completed=self.summary.kept if total is not None else len(self.done),
                     enabled=self.show_progress) as progress:
                while True:
                    while not exhausted and not stop.is_set() and not self._target_reached() \
                            and len(pending) < self.concurrency:
                        nxt = next(items, None)
                        if nxt is None:
                            exhausted = True
                            break
                        if nxt[0] in self.done:
                            self._check_unchanged(*nxt)
                            continue
                        item_task = asyncio.create_task(self.attempts.run(*nxt))
                        pending.add(item_task)
                        item_task.add_done_callback(on_done)
                    if not pending and not finished:
                        break
                    if not finished and not stop.is_set():
                        wake[0] = loop.create_future()
                        timer = loop.call_later(1.0, lambda f=wake[0]: f.done() or f.set_result(None))
                        await wake[0]
                        timer.cancel()
                        wake[0] = None
                    while finished and not self._target_reached():
                        self._handle(*finished.popleft().result(), logs)
                    if stop.is_set():
                        status = "interrupted"
                        break
                    if self._target_reached():
                        break  # enough records: the rest stay in the request cache for a longer run
                    now = time.monotonic()
                    if now - last_update > 0.25:
                        last_update = now
                        progress.update(completed=self.summary.kept if total is not None else len(self.done),
                                        detail=self._detail(meter))
                        if now - last_manifest > 2:
                            self.rundir.update_manifest(counts=self._counts(), status="running")
                            last_manifest = now
                progress.update(completed=self.summary.kept if total is not None else len(self.done),
                                detail=self._detail(meter))
        except (KeyboardInterrupt, asyncio.CancelledError):
            status = "interrupted"
            raise
        except RunAborted as exc:
            status = "failed"
            self.rundir.update_manifest(error=str(exc))
            raise
        except Exception as exc:  # e.g. an input row that cannot be read, a changed input at a finished item
            status = "failed"
            self.rundir.update_manifest(error=failure_reason(exc))
            raise
        finally:
            inner.on_retry = None
            for t in list(pending):
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            self._finish(status, started, logs, concurrency=self.concurrency)
            self.cache.close()
        return self.summary

    def _skip(self, item: int, inputs: dict[str, Any]) -> bool:
        if item in self.done:
            self._check_unchanged(item, inputs)
            return True
        return False

    def _finish(self, status: str, started: float, logs, **manifest: Any) -> None:
        """The end of a run, however it ended: logs closed, totals and the final status in the summary and manifest."""
        self.errors_log = None
        for log in logs:
            log.close()
        s = self.summary
        s.seconds = time.time() - started
        s.output_tokens, s.prompt_tokens, s.cache_hits = self.engine.output_tokens, self.engine.prompt_tokens, \
            self.engine.hits
        s.status = self._final_status(status, self.num_records)
        self.rundir.update_manifest(status=s.status, counts=self._counts(), seconds=round(s.seconds, 2), **manifest)

    def _final_status(self, status: str, total: int | None) -> str:
        """A run that ended normally is "completed", "incomplete" (fewer records than its target) or "failed"
        (nothing came back and the failures were the run's, e.g. every request refused, a missing column)."""
        run_failures = any(k not in _SAMPLE_FAILURES for k in self.summary.failure_reasons)
        if status == "completed" and run_failures and not self.summary.kept and not self.summary.filtered:
            self.summary.error = f"every item failed; the last: {self.last_failure}"
            self.rundir.update_manifest(error=self.summary.error)
            return "failed"
        if status == "completed" and total is not None and self.summary.kept < total:
            return "incomplete"
        return status

    def run_remote(self, remote: RemoteItems) -> RunSummary:
        """The run with its items executed by `remote`'s replicas (`synth.remote`): this process decides which items
        are pending, writes what comes back through `_handle` (as `run` does) and keeps the manifest. SIGTERM (or
        `stop_remote`) ends it after the batch in hand; a rerun resumes it like a local run."""
        started = time.time()
        self._load_state()
        items = self._items()
        pending = ((i, row) for i, row in items if not self._skip(i, row))
        spec = AttemptSpec.of(self.program, sampling=self.sampling, seed=self.seed, max_attempts=self.max_attempts,
                              run_path=self.rundir.path, json_max_chars=self.json_max_chars, adapter=self.adapter)
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, lambda *_: self.stop_remote.set())
        logs = (AppendLog(next_part(self.rundir.records_dir)), AppendLog(self.rundir.filtered_path),
                AppendLog(self.rundir.errors_path))
        self.errors_log = logs[2]
        total, status = self.num_records, "completed"
        meter, last_manifest = RateMeter(), 0.0
        shown = total if total is not None else _length(self.inputs, self.max_items)
        batches = remote.results(pending, spec)
        try:
            with bar(self.program.name, shown, unit="records" if total is not None else "items",
                     completed=self.summary.kept if total is not None else len(self.done),
                     enabled=self.show_progress) as progress:
                for batch in batches:
                    for row in batch.retry_errors:
                        self._log_error(row)
                    self.engine.add(batch)
                    for result in batch.items:
                        if self._target_reached():
                            break  # more than needed came back: the rest stay in the replicas' request caches
                        if result[0] not in self.done:  # a retried batch never writes an item twice
                            self._handle(*result, logs)
                    progress.update(completed=self.summary.kept if total is not None else len(self.done),
                                    detail=self._detail(meter))
                    now = time.monotonic()
                    if now - last_manifest > 2:
                        self.rundir.update_manifest(counts=self._counts(), status="running")
                        last_manifest = now
                    if self.stop_remote.is_set():
                        status = "interrupted"
                        break
                    if self._target_reached():
                        break
        except KeyboardInterrupt:
            status = "interrupted"
            raise
        except Exception as exc:  # RunAborted, or the cluster failed: the manifest says so, a rerun resumes
            status = "failed"
            self.rundir.update_manifest(error=failure_reason(exc))
            raise
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()  # ends the remote work still in flight
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            self._finish(status, started, logs)
        return self.summary
