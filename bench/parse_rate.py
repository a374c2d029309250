"""The parse-rate phase of bench/engine_overhead.py: a two-field signature (answer: str, confidence: float) through
the DSPy bridge, one attempt per question, with constrained decoding (synthloop's default) and without it (DSPy's
ChatAdapter and JSONAdapter, prompt only): the share of answers that parse."""

from __future__ import annotations

import asyncio
import time

import dspy
from pydantic import BaseModel

from synthloop.engines import Sampling
from synthloop.engines.base import Engine
from synthloop.synth.base import SynthProgram


class Assess(dspy.Signature):
    """Answer the question, and say how confident you are."""

    question: str = dspy.InputField()
    answer: str = dspy.OutputField()
    confidence: float = dspy.OutputField(desc="between 0 and 1")


class _AssessConfig(BaseModel):
    kind: str = "assess"


class AssessProgram(SynthProgram):
    name = "assess"
    config_class = _AssessConfig

    def __init__(self):
        super().__init__()
        self.assess = dspy.Predict(Assess)

    async def aforward(self, question: str) -> dspy.Prediction:
        return await self.assess.acall(question=question)


def parse_rates(engine: Engine, texts: list[str]) -> dict:
    """One attempt per question through DSPy (the bridge, no synthloop runner); an output cut off at max_tokens
    is handed to DSPy's parser as plain DSPy would (synthloop itself would retry it with a fresh sample)."""
    from collections import Counter

    from synthloop.engines import sample_context
    from synthloop.engines.dspy_adapter import SchemaJSONAdapter
    from synthloop.engines.dspy_bridge import dspy_lm
    from synthloop.synth.generate import _classify

    sampling = Sampling(temperature=0.7, max_tokens=160)
    out = {}
    for label, schema, adapter in [("constrained (synthloop default: schema enforced)", True, SchemaJSONAdapter()),
                                   ("unconstrained ChatAdapter (DSPy default)", False, dspy.ChatAdapter()),
                                   ("unconstrained JSONAdapter (prompt only)", False, dspy.JSONAdapter())]:
        engine.supports_json_schema = schema  # off: the bridge sends no schema, the engine does not constrain
        lm = dspy_lm(engine, sampling, reject_truncated=False)
        program = AssessProgram()

        async def attempt_all(lm=lm, adapter=adapter, program=program) -> Counter:
            gate = asyncio.Semaphore(256)

            async def one(i: int, text: str) -> str:
                async with gate:
                    with sample_context.sample(i, 0, 0):
                        try:
                            with dspy.context(lm=lm, adapter=adapter, disable_history=True, trace=None):
                                p = await program.acall(question=text)
                            return "parsed" if isinstance(p.confidence, float) and isinstance(p.answer, str) \
                                else "wrong type"
                        except Exception as exc:  # noqa: BLE001 - every outcome is counted
                            return _classify(exc)[0]

            return Counter(await asyncio.gather(*(one(i, t) for i, t in enumerate(texts))))

        try:
            engine._loop.call(engine._llm.reset_prefix_cache())
            started = time.perf_counter()
            outcomes = engine._loop.call(attempt_all())
            seconds = time.perf_counter() - started
        finally:
            engine.supports_json_schema = True
        out[label] = {"items": len(texts), "parsed": outcomes["parsed"],
                      "parse_rate": round(outcomes["parsed"] / len(texts), 4), "outcomes": dict(outcomes),
                      "seconds": round(seconds, 1), "max_tokens": sampling.max_tokens}
        print(f"  parse rate {label}: {out[label]['parse_rate']:.1%} ({dict(outcomes)})")
    return out
