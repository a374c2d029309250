"""One item's attempts: the per-item code of a generation run, wherever the run executes.

`ItemAttempts.run(item, inputs)` runs `program.arun(inputs, call)` under the item's sample context, classifies a
failure (`engines.failures.classify_failure`), retries with a fresh sample (after a backoff when transient) up to
`max_attempts`, and returns `(item, record, error)`: the record with its `id` and `provenance`, or the last failed
attempt. Failed attempts that were retried go to `on_retry_error`. The local runner (`synth.runner`) calls it in
its own process; on a Ray cluster each replica calls it against its own engine (`synth.ray_executor`), and the
driver writes what comes back, so both produce the same records.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from typing import Any

import dspy

from synthloop.engines import sample_context
from synthloop.engines.dspy_adapter import SchemaJSONAdapter
from synthloop.engines.dspy_bridge import dspy_lm
from synthloop.engines.failures import classify_failure
from synthloop.engines.types import Sampling
from synthloop.runs.cache import CachedEngine
from synthloop.runs.fingerprint import engine_identity
from synthloop.synth.base import ProgramCall, SynthProgram

ItemResult = tuple[int, dict[str, Any] | None, dict[str, Any] | None]


def failure_reason(exc: BaseException) -> str:
    """An exception as the one-line reason errors.jsonl keeps."""
    text = " ".join(str(exc).split())
    return text[:500] if text else type(exc).__name__


def input_sha(inputs: dict[str, Any]) -> str:
    """An item's inputs as a short hash, kept in its record's provenance: a resumed run compares it before
    skipping the item, so a finished index whose input changed is refused instead of kept stale."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str, ensure_ascii=False).encode()).hexdigest()[:16]


class ItemAttempts:
    def __init__(self, program: SynthProgram, engine: CachedEngine, *, sampling: Sampling, seed: int,
                 max_attempts: int, run_name: str, json_max_chars: int | None = None,
                 adapter: dspy.Adapter | None = None,
                 on_retry_error: Callable[[dict[str, Any]], None] | None = None):
        self.program = program
        self.engine = engine
        self.sampling = sampling
        self.seed = seed
        self.max_attempts = max_attempts
        self.json_max_chars = json_max_chars
        self.adapter = adapter
        self.on_retry_error = on_retry_error
        self._dspy: tuple[dspy.LM, dspy.Adapter] | None = None
        self.provenance = {"program": program.name, **engine_identity(engine.describe()),
                           "sampling": sampling.model_dump(mode="json", exclude={"seed"}), "run": run_name}

    def dspy_settings(self) -> tuple[dspy.LM, dspy.Adapter]:
        """The DSPy LM over the run's cached engine and the adapter, built when a program first asks (a chat
        program never does)."""
        if self._dspy is None:
            lm = dspy_lm(self.engine, self.sampling, json_max_chars=self.json_max_chars)
            adapter = self.adapter or (SchemaJSONAdapter() if self.engine.supports_json_schema else dspy.ChatAdapter())
            self._dspy = (lm, adapter)
        return self._dspy

    async def run(self, item: int, inputs: dict[str, Any]) -> ItemResult:
        last: dict | None = None
        sha = input_sha(inputs)
        for attempt in range(self.max_attempts):
            with sample_context.sample(item, attempt, self.seed) as ctx:
                try:
                    call = ProgramCall(engine=self.engine, sampling=self.sampling, seed=ctx.seed, attempt=attempt,
                                       dspy_settings=self.dspy_settings)
                    record = await self.program.arun(inputs, call)
                    record = {"id": item, **record, "provenance": {**self.provenance, "seed": ctx.seed,
                                                                   "attempt": attempt, "input_sha": sha}}
                    return item, record, None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # every failure is classified and recorded, none crashes the run
                    kind, retry, transient = classify_failure(exc)
                    last = {"id": item, "attempt": attempt, "kind": kind, "reason": failure_reason(exc)}
                    if not retry or attempt == self.max_attempts - 1:
                        break
                    if self.on_retry_error is not None:
                        self.on_retry_error({**last, "final": False})
                    if transient:
                        await asyncio.sleep(min(30.0, 0.5 * 2**attempt))
        return item, None, last
