"""The engines of one job, by role (policy, teacher, judge): the one place that starts, closes and reaps them.

    pool = EnginePool(log=print)
    policy = pool.get("policy", EngineConfig(model="runs/q/round-001/train-sft/model"))
    judge = pool.handle("judge", EngineConfig(model="smollm2-135m-instruct"))   # started on its first request
    pool.close()                                                                   # before training frees memory

One engine runs at a time by default (`exclusive=True`): asking for a role whose engine is not running closes the
others first, so a vLLM policy and a vLLM judge never hold memory together (on a GPU, two engines that each take
85% of its memory cannot coexist). Two roles with the same engine config share one engine. A handle is an
`Engine` that finds its role's engine at every request, starting it again after the pool closed it (a loop closes
its engines before each training stage; its judges keep working afterwards).
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Callable
from typing import Any

from synthloop.engines.base import Engine
from synthloop.engines.config import EngineConfig
from synthloop.engines.types import ChatRequest, ChatResult, ScoreRequest, ScoreResult


def _short(model: str) -> str:
    """A checkpoint path without its directories above the run (`round-001/train-sft/model`)."""
    parts = model.split("/")
    return "/".join(parts[-3:]) if len(parts) > 3 else model


def _key(config: EngineConfig) -> str:
    return config.model_dump_json()


class EnginePool:
    def __init__(self, *, exclusive: bool = True, log: Callable[[str], None] | None = None,
                 start: Callable[..., Engine] | None = None):
        self.exclusive = exclusive
        self._log = log
        self._start = start
        self._running: dict[str, tuple[Engine, list[str]]] = {}  # config key -> (engine, roles using it)

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(message)

    def get(self, role: str, config: EngineConfig) -> Engine:
        """The running engine for `config` (started now if needed; in exclusive mode the others are closed first)."""
        key = _key(config)
        running = self._running.get(key)
        if running is not None:
            if role not in running[1]:
                running[1].append(role)
            return running[0]
        if self.exclusive:
            self.close()
        from synthloop import engines
        from synthloop.console import progress

        started, kind = time.time(), engines.resolve_kind(config.kind)
        progress.status(f"starting the {kind} engine ({role}: {_short(config.model)})")  # shown while it starts
        start = self._start or engines.from_config
        engine = start(config, log=self._log)
        self._running[key] = (engine, [role])
        if not progress.aside(f"{kind} engine start {time.time() - started:.0f} s"):  # in the stage's line, or:
            self.log(f"{kind} engine ready in {time.time() - started:.0f} s ({role}: {_short(config.model)})")
        return engine

    def handle(self, role: str, config: EngineConfig) -> EngineHandle:
        return EngineHandle(self, role, config)

    def roles(self) -> list[str]:
        return [role for _, roles in self._running.values() for role in roles]

    def close(self, role: str | None = None) -> None:
        """Close every engine (or the one `role` uses); each engine waits for its own processes to exit."""
        for key, (engine, roles) in list(self._running.items()):
            if role is None or role in roles:
                del self._running[key]
                engine.close()
        if role is None or not self._running:
            from synthloop.memory import release_memory

            release_memory()

    def __enter__(self) -> EnginePool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class EngineHandle(Engine):
    """An engine that is whatever its pool runs for its role and config right now (started on demand)."""

    def __init__(self, pool: EnginePool, role: str, config: EngineConfig):
        super().__init__(config.model)
        self.pool, self.role, self.config = pool, role, config
        from synthloop import engines

        self.kind = engines.resolve_kind(config.kind)  # type: ignore[misc]

    @property
    def engine(self) -> Engine:
        return self.pool.get(self.role, self.config)

    @property
    def supports_json_schema(self) -> bool:  # type: ignore[override]
        return self.engine.supports_json_schema

    @property
    def supports_scoring(self) -> bool:  # type: ignore[override]
        return self.engine.supports_scoring

    @property
    def preferred_in_flight(self) -> int | None:  # type: ignore[override]
        return self.engine.preferred_in_flight

    @property
    def loop_thread(self):  # type: ignore[override]
        return self.engine.loop_thread

    @property
    def on_retry(self):  # type: ignore[override]
        return self.engine.on_retry

    @on_retry.setter
    def on_retry(self, callback) -> None:
        self.engine.on_retry = callback

    def __getattr__(self, name: str) -> Any:  # engine-specific extras, e.g. the openai engine's engine_stats()
        if name.startswith("_") or name in ("pool", "role", "config"):
            raise AttributeError(name)
        return getattr(self.engine, name)

    def submit(self, request: ChatRequest) -> concurrent.futures.Future[ChatResult]:
        return self.engine.submit(request)

    async def agenerate(self, request: ChatRequest) -> ChatResult:
        return await self.engine.agenerate(request)

    def submit_score(self, request: ScoreRequest) -> concurrent.futures.Future[ScoreResult]:
        return self.engine.submit_score(request)

    def describe(self) -> dict[str, Any]:
        from synthloop import engines

        return engines.describe_config(self.config)

    def close(self) -> None:
        self.pool.close(self.role)
