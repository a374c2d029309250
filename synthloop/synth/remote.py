"""What the generation runner and an executor that runs items elsewhere (a Ray cluster) say to each other.

The driver (`synth.runner.Runner.run_remote`) keeps the run directory: it decides which items are pending
(resume skips finished ones), hands them to `RemoteItems.results` as `(item, inputs)` pairs, and writes what comes
back (records, filtered records, errors, the program's `accept`/`remember`) exactly as a local run does. The
replicas build the program and their own engine from an `AttemptSpec` and run `attempts.ItemAttempts` on each item.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import dspy
from pydantic import BaseModel

from synthloop.engines.types import Sampling
from synthloop.synth.attempts import ItemResult
from synthloop.synth.base import SynthProgram


@dataclass
class AttemptSpec:
    """What a replica needs to run items like the driver would: the program (rebuilt from its class and config in
    the replica), the run's sampling, seed and retry budget, and where the run lives."""

    program_class: type[SynthProgram]
    program_config: BaseModel
    sampling: Sampling
    seed: int
    max_attempts: int
    run_path: Path
    json_max_chars: int | None = None
    adapter: dspy.Adapter | None = None

    @classmethod
    def of(cls, program: SynthProgram, **fields: Any) -> AttemptSpec:
        return cls(program_class=type(program), program_config=program.config, **fields)

    def build_program(self) -> SynthProgram:
        return self.program_class(self.program_config)


@dataclass
class RemoteBatch:
    """Finished items of one batch, the failed attempts that were retried (and engine retries) on the way, and
    what the batch cost the replica's engine."""

    items: list[ItemResult]
    retry_errors: list[dict[str, Any]] = field(default_factory=list)
    output_tokens: int = 0
    prompt_tokens: int = 0
    cache_hits: int = 0


class RemoteItems(Protocol):
    def describe_engine(self) -> dict[str, Any]:
        """The replicas' engine as `Engine.describe()` says it (part of the run's identity)."""

    def results(self, pending: Iterable[tuple[int, dict[str, Any]]], spec: AttemptSpec) -> Iterator[RemoteBatch]:
        """Run every pending item; yield batches as they finish (in any order). Closing the iterator early (the
        target was reached, or a stop) ends the remote work."""


class RemoteTally:
    """The driver's token and cache counts of a remote run: what `CachedEngine` counts in a local one."""

    inner = None

    def __init__(self) -> None:
        self.output_tokens = self.prompt_tokens = self.hits = 0

    def add(self, batch: RemoteBatch) -> None:
        self.output_tokens += batch.output_tokens
        self.prompt_tokens += batch.prompt_tokens
        self.hits += batch.cache_hits
