"""What a synthesis program is: a DSPy module that also knows its inputs and its records.

    class MyProgram(SynthProgram):
        config_class = MyConfig                        # pydantic; its fields document the knobs
        def inputs(self): yield {"passage": ...}       # streamed, item by item
        async def aforward(self, passage): ...         # plain DSPy: wire sub-predictors
        def to_record(self, inputs, pred): return {"messages": [...]}

`synthloop.generate(program, engine=..., run=...)` runs it over its inputs with the engine kept
full; `accept`/`remember` let a program filter records against what it already kept (e.g. the
self-instruct ROUGE-L novelty filter), consistently across resumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import dspy
from pydantic import BaseModel


class SynthProgram(dspy.Module):
    name: ClassVar[str]
    config_class: ClassVar[type[BaseModel]]

    def __init__(self, config: BaseModel | None = None, **overrides: Any):
        super().__init__()
        if config is None:
            config = self.config_class(**overrides)
        elif overrides:
            config = config.model_copy(update=overrides)
        self.config = config

    def describe(self) -> dict[str, Any]:
        """The program's identity in a run's provenance and resume hash."""
        return {"name": self.name, "config": self.config.model_dump(mode="json")}

    def inputs(self) -> Iterator[dict[str, Any]]:
        """The items to run on, in a fixed order (item i must be the same on every run)."""
        raise NotImplementedError(f"{type(self).__name__} takes its inputs from the caller")

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        return {**inputs, **prediction.toDict()}

    def accept(self, record: dict[str, Any]) -> str | None:
        """None to keep the record, or the reason it is dropped."""
        return None

    def remember(self, record: dict[str, Any]) -> None:
        """Called for every kept record, including those already on disk when a run resumes."""
