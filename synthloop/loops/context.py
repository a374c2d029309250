"""What a stage sees of its loop: the config, its round and directory, earlier stages' outputs, the checkpoint of
each role, the engines (through the controller's pool: the one owner of every engine) and the judges."""

from __future__ import annotations

import contextlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthloop.engines.base import Engine
from synthloop.engines.config import EngineConfig
from synthloop.engines.pool import EnginePool
from synthloop.engines.sample_context import derive_seed
from synthloop.judges.panel import Panel
from synthloop.loops.config import LoopConfig
from synthloop.loops.state import RoundRecord


@dataclass
class RoundContext:
    config: LoopConfig
    run_dir: Path
    round: int
    dir: Path
    record: RoundRecord
    checkpoints: dict[str, str]
    engines: EnginePool
    panel: Panel
    progress: bool = True
    log_fn: Callable[[str], None] | None = None
    pending: dict[str, str] = field(default_factory=dict)

    def outputs(self, stage: str) -> dict[str, Any]:
        if stage not in self.record.stages:
            raise KeyError(f"round {self.round}: stage {stage!r} has not run (this recipe's order is wrong)")
        return self.record.stages[stage].outputs

    def checkpoint(self, role: str = "policy") -> str:
        return self.pending.get(role) or self.checkpoints[role]

    def set_checkpoint(self, path: str | Path, role: str = "policy") -> None:
        """The role's new checkpoint; recorded together with the stage's completion."""
        self.pending[role] = str(path)

    def engine(self, role: str = "policy") -> Engine:
        """The loop's engine serving `role`'s current checkpoint (started now if another one was running)."""
        return self.engines.get(role, self.config.engine.model_copy(update={"model": self.checkpoint(role)}))

    def engine_for(self, role: str, config: EngineConfig) -> Engine:
        """An engine of another config (a teacher, a judge model), owned by the loop like the policy's."""
        return self.engines.get(role, config)

    def seed(self, purpose: str) -> int:
        return derive_seed(self.config.seed, self.round, zlib.crc32(purpose.encode()))

    def log(self, message: str) -> None:
        if self.log_fn is not None:
            self.log_fn(message)

    @contextlib.contextmanager
    def bar(self, label: str, total: int | None, unit: str = "records") -> Iterator[Callable[[int], None]]:
        """A progress bar of the stage (a row of its live display): yields `advance(n=1)`."""
        from synthloop.console.progress import bar

        with bar(label, total, unit=unit, enabled=self.progress) as b:
            yield b.advance
