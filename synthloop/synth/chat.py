"""Chat programs (no DSPy): the prompt -> parse primitive, one chat request per input row, straight to the engine.

    class Summaries(ChatProgram):                      # curator's shape: two hooks
        def prompt(self, row): return ({"role": "user", "content": f"Summarize: {row['text']}"},)
        def parse(self, row, messages, result): return {**row, "summary": result.text}

`ChatSamples` is the one the loops sample the policy with (N answers per task to verify, one greedy
answer per held-out task), through the same runner as every program: request cache, resume, errors,
progress.

    program = ChatSamples(template="{prompt}\\nEnd with 'The answer is N.'", n=8)
    synthloop.generate(program, engine=engine, run="runs/r1/samples", inputs=tasks, sampling=...)

ChatSamples' record: the input row, the `messages` sent, and `samples`: [{text, finish_reason, tokens}, ...].
"""

from __future__ import annotations

import string
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthloop.engines.types import ChatRequest, ChatResult
from synthloop.runs.inputs import DatasetInput
from synthloop.synth.base import ProgramCall, SynthProgram


class ChatSamplesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["chat_samples"] = "chat_samples"
    template: str = Field("{prompt}", description="The user turn; {column} slots are filled from each input row.")
    system: str | None = Field(None, description="A system turn; default: the model's own default, if any.")
    n: int = Field(1, ge=1, description="Samples per input row.")
    inputs: DatasetInput | None = Field(None, description="The rows to answer (when run by `synthloop generate`).")


class ChatProgram(SynthProgram):
    """A program that talks to the engine directly: `prompt(row)` -> chat messages, `parse(row, messages, result)`
    -> the record. `samples_per_row()` completions come back per request (the engine's `n`)."""

    def prompt(self, row: dict[str, Any]) -> tuple[dict[str, str], ...]:
        raise NotImplementedError

    def samples_per_row(self) -> int:
        return 1

    def parse(self, row: dict[str, Any], messages: tuple[dict[str, str], ...], result: ChatResult) -> dict[str, Any]:
        return {**row, "messages": list(messages), "samples": [
            {"text": c.text, "finish_reason": c.finish_reason, "tokens": c.output_tokens} for c in result.completions
        ]}

    async def arun(self, inputs: dict[str, Any], call: ProgramCall) -> dict[str, Any]:
        messages = self.prompt(inputs)
        sampling = call.sampling.model_copy(update={"n": self.samples_per_row(), "seed": call.seed})
        request = ChatRequest(messages=messages, sample_index=call.attempt, sampling=sampling)
        return self.parse(inputs, messages, await call.engine.agenerate(request))

    async def aforward(self, **inputs: Any):
        raise NotImplementedError(f"{self.name} is a chat program: run it with synthloop.generate")


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

    def check_input(self, inputs: dict[str, Any]) -> None:
        from synthloop.configs import ConfigError

        try:
            self.prompt(inputs)
        except (KeyError, IndexError, ValueError) as exc:
            source = self.config.inputs.path if self.config.inputs is not None else "the input rows"
            raise ConfigError(f"{source}: {exc.args[0] if exc.args else exc}") from None

    def prompt(self, row: dict[str, Any]) -> tuple[dict[str, str], ...]:
        missing = [s for s in self._slots if s not in row]
        if missing:
            raise KeyError(f"program.template needs column {missing[0]!r} (rows have: {', '.join(row)}; map one with "
                           f"inputs.columns: {{{missing[0]}: <column>}})")
        turns = [{"role": "user", "content": self.config.template.format(**row)}]
        if self.config.system:
            turns.insert(0, {"role": "system", "content": self.config.system})
        return tuple(turns)
