"""Plain chat sampling (no DSPy): one request per input row, `n` samples, straight through the engine.

The loops sample the policy with it (N answers per task to verify, one greedy answer per held-out
task), through the same runner as every program: request cache, resume, errors, progress.

    program = ChatSamples(template="{prompt}\\nEnd with 'The answer is N.'", n=8)
    synthloop.generate(program, engine=engine, run="runs/r1/samples", inputs=tasks, sampling=...)

Record: the input row, the `messages` sent, and `samples`: [{text, finish_reason, tokens}, ...].
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthloop.engines.base import Engine
from synthloop.engines.types import ChatRequest, ChatResult, Sampling
from synthloop.runs.inputs import DatasetInput
from synthloop.synth.base import SynthProgram


class ChatSamplesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["chat_samples"] = "chat_samples"
    template: str = Field("{prompt}", description="The user turn; {column} slots are filled from each input row.")
    system: str | None = Field(None, description="A system turn; default: the model's own default, if any.")
    n: int = Field(1, ge=1, description="Samples per input row.")
    inputs: DatasetInput | None = Field(None, description="The rows to answer (when run by `synthloop generate`).")


class ChatProgram(SynthProgram):
    """A program that talks to the engine directly: `messages(row)` in, `to_chat_record(row, result)` out.
    The runner calls `arun` instead of the DSPy path (see `synthloop.runs.generate`)."""

    def messages(self, row: dict[str, Any]) -> tuple[dict[str, str], ...]:
        raise NotImplementedError

    def samples_per_row(self) -> int:
        return 1

    def to_chat_record(self, row: dict[str, Any], messages, result: ChatResult) -> dict[str, Any]:
        return {**row, "messages": list(messages), "samples": [
            {"text": c.text, "finish_reason": c.finish_reason, "tokens": c.output_tokens} for c in result.completions
        ]}

    async def arun(self, row: dict[str, Any], *, engine: Engine, sampling: Sampling, seed: int,
                   attempt: int) -> dict[str, Any]:
        messages = self.messages(row)
        request = ChatRequest(messages=messages, sample_index=attempt,
                              sampling=sampling.model_copy(update={"n": self.samples_per_row(), "seed": seed}))
        return self.to_chat_record(row, messages, await engine.agenerate(request))


class ChatSamples(ChatProgram):
    name = "chat_samples"
    config_class = ChatSamplesConfig

    def __init__(self, config: ChatSamplesConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self._slots = [f for _, f, _, _ in string.Formatter().parse(self.config.template) if f]

    def inputs(self) -> Iterator[dict[str, Any]]:
        if self.config.inputs is None:
            raise NotImplementedError("chat_samples: set program.inputs (a dataset) or pass inputs to generate()")
        yield from self.config.inputs.rows()

    def samples_per_row(self) -> int:
        return self.config.n

    def messages(self, row: dict[str, Any]) -> tuple[dict[str, str], ...]:
        missing = [s for s in self._slots if s not in row]
        if missing:
            raise KeyError(f"chat_samples: the template needs column {missing[0]!r} (row has: {', '.join(row)})")
        turns = [{"role": "user", "content": self.config.template.format(**row)}]
        if self.config.system:
            turns.insert(0, {"role": "system", "content": self.config.system})
        return tuple(turns)
