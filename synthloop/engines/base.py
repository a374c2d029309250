"""The engine interface: batch-first, thread-safe, usable from sync code and from any event loop.

An engine takes requests through `submit()` (returns at once with a future) and batches whatever is
in flight on its own: vLLM by continuous batching, the transformers engine by micro-batching, the
OpenAI client by keeping many requests on the wire. Callers saturate it by submitting many requests
before waiting, which is what `generate()` and the DSPy bridge do.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, ClassVar

from synthloop.engines.types import ChatRequest, ChatResult, EngineError, ScoreRequest, ScoreResult


class Engine(ABC):
    kind: ClassVar[str]
    #: whether `ChatRequest.json_schema` is enforced by constrained decoding
    supports_json_schema: ClassVar[bool] = True
    #: engines that retry failed requests on their own (the openai engine) report each retried failure here
    #: as a dict (kind, item, try, reason, retry_in_s); a run sets it to log them in errors.jsonl
    on_retry: Callable[[dict[str, Any]], None] | None = None

    #: the engine's own event loop, for engines built on async clients: a caller that runs its coroutines
    #: there (as `synthloop.generate` does) reaches `agenerate` without a thread hop per request
    loop_thread: LoopThread | None = None

    #: whether `submit_score` / `loglikelihood` work (they need the model's prompt log-probabilities)
    supports_scoring: ClassVar[bool] = False

    #: how many requests keep this engine busy: what it works on at once plus a queue to refill from (a run's
    #: default concurrency); None: no preference
    preferred_in_flight: int | None = None

    def __init__(self, model: str):
        self.model = model

    @abstractmethod
    def submit(self, request: ChatRequest) -> concurrent.futures.Future[ChatResult]:
        """Queue one request; thread-safe; the future fails with `EngineError` on failure."""

    async def agenerate(self, request: ChatRequest) -> ChatResult:
        return await asyncio.wrap_future(self.submit(request))

    def generate(self, requests: Sequence[ChatRequest], *, progress: str | None = None) -> list[ChatResult]:
        """Run a batch: everything is submitted before anything is awaited, so the engine stays full."""
        futures = [self.submit(r) for r in requests]
        if progress:
            from synthloop.console.progress import wait_with_progress

            wait_with_progress(futures, progress)
        return [f.result() for f in futures]

    def submit_score(self, request: ScoreRequest) -> concurrent.futures.Future[ScoreResult]:
        """Queue one log-likelihood request; batched like `submit`."""
        raise EngineError(f"the {self.kind} engine cannot score log-likelihoods (use vllm or transformers)")

    async def ascore(self, request: ScoreRequest) -> ScoreResult:
        return await asyncio.wrap_future(self.submit_score(request))

    def loglikelihood(self, requests: Sequence[ScoreRequest], *, progress: str | None = None) -> list[ScoreResult]:
        """log p(continuation | context) for many pairs, batched: everything is queued before anything is awaited.

        `result.logprob` is the summed log-probability, `result.mean_logprob` the per-token mean and
        `result.token_logprobs` the per-token values."""
        futures = [self.submit_score(r) for r in requests]
        if progress:
            from synthloop.console.progress import wait_with_progress

            wait_with_progress(futures, progress)
        return [f.result() for f in futures]

    def describe(self) -> dict[str, Any]:
        """Provenance written into every record: which engine and model produced it."""
        return {"engine": self.kind, "model": self.model}

    def close(self) -> None:  # noqa: B027 - engines without resources need no close
        """Free the engine's memory and processes (loops alternate generation and training)."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LoopThread:
    """An asyncio event loop running in a daemon thread, for engines built on async clients."""

    def __init__(self, name: str):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, Any]) -> concurrent.futures.Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float | None = None) -> Any:
        return self.submit(coro).result(timeout)

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run `coro` to completion on this loop from another thread (like `asyncio.run`). Ctrl-C cancels it
        and waits until its `finally` blocks have run."""
        finished = threading.Event()

        async def guarded():
            try:
                return await coro
            finally:
                finished.set()

        future = self.submit(guarded())
        try:
            return future.result()
        except KeyboardInterrupt:
            future.cancel()
            finished.wait(60)
            raise

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self.loop.close()


def run_sync(make_coro: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    """Run a coroutine to completion from sync code, also when the caller is itself inside an event loop (then in
    a worker thread, with the caller's context variables: DSPy's settings travel along)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coro())
    context = contextvars.copy_context()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(context.run, lambda: asyncio.run(make_coro())).result()
