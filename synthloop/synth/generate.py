"""Run a synthesis program over its inputs into a run directory: concurrent, streamed, resumable.

Items run as asyncio tasks, at most `concurrency` at once; each task is one `program.arun(inputs, call)`
(`synth.base.SynthProgram`): a DSPy program's model calls go through the bridge into one engine, a chat
program sends its request itself, and everything in flight is batched there. Inputs are pulled lazily
and records are written as they finish, so memory does not grow with the dataset.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from synthloop.engines import sample_context
from synthloop.engines.base import Engine
from synthloop.engines.dspy_adapter import SchemaJSONAdapter
from synthloop.engines.dspy_bridge import dspy_lm
from synthloop.engines.failures import classify_failure
from synthloop.engines.types import Sampling
from synthloop.progress import RateMeter, bar
from synthloop.runs.cache import CachedEngine, RequestCache
from synthloop.runs.jsonl import AppendLog, next_part
from synthloop.runs.run_dir import ResumePolicy, RunDir
from synthloop.synth.base import ProgramCall, SynthProgram

#: after this many consecutive permanent engine failures with no success, the run stops
_CIRCUIT_BREAKER = 25
#: items in flight for an engine without a preference
_DEFAULT_CONCURRENCY = 64


class RunAborted(RuntimeError):
    pass


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

    @property
    def path(self) -> Path:
        return self.run.path


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:500] if text else type(exc).__name__


def run_identity(program: SynthProgram, engine: dict[str, Any], sampling: Sampling, seed: int, *,
                 caller_inputs: bool) -> dict[str, Any]:
    """What determines a run's outputs; a rerun with a different identity does not reuse the directory."""
    return {"program": program.describe(), "engine": engine, "sampling": sampling.model_dump(mode="json"),
            "seed": seed, "inputs": "caller" if caller_inputs else "program"}


def generate(
    program: SynthProgram,
    *,
    engine: Engine,
    run: str | Path,
    inputs: Iterable[dict[str, Any]] | None = None,
    num_records: int | None = None,
    sampling: Sampling | None = None,
    seed: int = 0,
    concurrency: int | None = None,
    max_attempts: int = 3,
    max_items: int | None = None,
    resume: ResumePolicy = "if-unchanged",
    config_yaml: str | None = None,
    json_max_chars: int | None = None,
    progress: bool = True,
    adapter: dspy.Adapter | None = None,
) -> RunSummary:
    """Run `program` into the run directory `run`; returns counts. See the module docstring.

    `adapter`: the DSPy adapter (default: `SchemaJSONAdapter` on engines that enforce JSON schemas, else
    DSPy's ChatAdapter). `concurrency`: items in flight (default: `engine.preferred_in_flight`, else 64)."""
    sampling = sampling or Sampling()
    concurrency = concurrency or engine.preferred_in_flight or _DEFAULT_CONCURRENCY
    identity = run_identity(program, engine.describe(), sampling, seed, caller_inputs=inputs is not None)
    rundir = RunDir.open(run, identity=identity, kind="generate", resume=resume, config_yaml=config_yaml)
    runner = _Runner(program, engine, rundir, inputs, num_records, sampling, seed, concurrency, max_attempts,
                     max_items, json_max_chars, progress, adapter)
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


class _Runner:
    def __init__(self, program, engine, rundir, inputs, num_records, sampling, seed, concurrency, max_attempts,
                 max_items, json_max_chars, progress, adapter=None):
        self.program: SynthProgram = program
        self.rundir: RunDir = rundir
        self.cache = RequestCache(rundir.cache_path)
        self.engine = CachedEngine(engine, self.cache)
        self.inputs = inputs
        self.num_records = num_records
        self.sampling: Sampling = sampling
        self.seed = seed
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.max_items = max_items if max_items is not None else (num_records * 10 if num_records else None)
        self.show_progress = progress
        self.json_max_chars = json_max_chars
        self.adapter = adapter
        self._dspy: tuple[dspy.LM, dspy.Adapter] | None = None
        self.summary = RunSummary(run=rundir)
        self.done: set[int] = set()
        self.consecutive_engine_failures = 0
        self.errors_log: AppendLog | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._interrupt = None
        self.provenance = {"program": program.name, **engine.describe(),
                           "sampling": sampling.model_dump(mode="json", exclude={"seed"}), "run": rundir.path.name}

    def dspy_settings(self) -> tuple[dspy.LM, dspy.Adapter]:
        """The DSPy LM over the run's cached engine and the adapter, built when a program first asks (a chat
        program never does)."""
        if self._dspy is None:
            lm = dspy_lm(self.engine, self.sampling, json_max_chars=self.json_max_chars)
            adapter = self.adapter or (SchemaJSONAdapter() if self.engine.supports_json_schema else dspy.ChatAdapter())
            self._dspy = (lm, adapter)
        return self._dspy

    def _load_state(self) -> None:
        for record in self.rundir.iter_records():
            self.done.add(record["id"])
            self.program.remember(record)
            self.summary.kept += 1
        for row in self.rundir.iter_filtered():
            self.done.add(row["id"])
            self.summary.filtered += 1
        self.summary.skipped = len(self.done)

    def _target_reached(self) -> bool:
        return self.num_records is not None and self.summary.kept >= self.num_records

    async def _run_item(self, item: int, inputs: dict[str, Any]) -> tuple[int, dict | None, dict | None]:
        last: dict | None = None
        for attempt in range(self.max_attempts):
            with sample_context.sample(item, attempt, self.seed) as ctx:
                try:
                    call = ProgramCall(engine=self.engine, sampling=self.sampling, seed=ctx.seed, attempt=attempt,
                                       dspy_settings=self.dspy_settings)
                    record = await self.program.arun(inputs, call)
                    record = {"id": item, **record, "provenance": {**self.provenance, "seed": ctx.seed,
                                                                   "attempt": attempt}}
                    return item, record, None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # every failure is classified and recorded, none crashes the run
                    kind, retry, transient = classify_failure(exc)
                    last = {"id": item, "attempt": attempt, "kind": kind, "reason": _reason(exc)}
                    if not retry or attempt == self.max_attempts - 1:
                        break
                    self._log_error({**last, "final": False})
                    if transient:
                        await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
        return item, None, last

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
            self.consecutive_engine_failures = 0
            try:
                reason = self.program.accept(record)
            except Exception as exc:  # a filter bug must not crash the run or drop the item silently
                record, error = None, {"id": item, "attempt": record["provenance"]["attempt"],
                                       "kind": f"filter:{type(exc).__name__}", "reason": _reason(exc)}
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
            if kind == "engine":
                self.consecutive_engine_failures += 1
                if self.consecutive_engine_failures >= _CIRCUIT_BREAKER and self.summary.kept == 0:
                    raise RunAborted(f"the engine failed {_CIRCUIT_BREAKER} items in a row: {error['reason']}")
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

    async def run(self) -> RunSummary:
        started = time.time()
        self._load_state()
        source = self.inputs if self.inputs is not None else self.program.inputs()
        items = enumerate(source)
        if self.max_items is not None:
            items = itertools.islice(items, self.max_items)
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
                            continue
                        item_task = asyncio.create_task(self._run_item(*nxt))
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
        finally:
            inner.on_retry = None
            for t in list(pending):
                t.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            self.errors_log = None
            for log in logs:
                log.close()
            self.summary.seconds = time.time() - started
            self.summary.output_tokens = self.engine.output_tokens
            self.summary.prompt_tokens = self.engine.prompt_tokens
            self.summary.cache_hits = self.engine.hits
            if status == "completed" and total is not None and self.summary.kept < total:
                status = "incomplete"
            self.summary.status = status
            self.rundir.update_manifest(status=status, counts=self._counts(),
                                        seconds=round(self.summary.seconds, 2), concurrency=self.concurrency)
            self.cache.close()
        return self.summary
