"""The DSPy bridge on the tiny random model: schemas become constraints, calls become batches."""

from __future__ import annotations

import asyncio

import dspy
import pytest

from synthloop.engines import sample_context
from synthloop.engines.base import Engine
from synthloop.engines.dspy_adapter import SchemaJSONAdapter
from synthloop.engines.dspy_bridge import TruncatedOutputError, dspy_lm
from synthloop.engines.types import Sampling


class Recording(Engine):
    """Passes everything to a real engine and remembers what it was asked."""

    kind = "recording"

    def __init__(self, inner):
        super().__init__(inner.model)
        self.inner, self.requests = inner, []

    def submit(self, request):
        self.requests.append(request)
        return self.inner.submit(request)


class Report(dspy.Signature):
    """Describe the item."""

    item: str = dspy.InputField()
    title: str = dspy.OutputField()
    rating: int = dspy.OutputField()
    good: bool = dspy.OutputField()
    keywords: list[str] = dspy.OutputField()


def test_every_field_parses_on_a_random_model(tiny_engine):
    engine = Recording(tiny_engine)
    lm = dspy_lm(engine, Sampling(max_tokens=200, temperature=1.0), json_max_chars=5)
    program = dspy.Predict(Report)

    async def run_all():
        async def one(i):
            with sample_context.sample(i, 0, base_seed=7):
                return await program.acall(item=f"thing {i}")

        return await asyncio.gather(*[one(i) for i in range(32)])

    before = dict(tiny_engine.stats)
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        predictions = asyncio.run(run_all())
    assert len(predictions) == 32
    for p in predictions:
        assert isinstance(p.title, str) and isinstance(p.rating, int) and isinstance(p.good, bool)
        assert isinstance(p.keywords, list)
    # the signature's schema reached the engine, bounded
    schema = engine.requests[0].json_schema
    assert list(schema["properties"]) == ["title", "rating", "good", "keywords"]
    assert schema["properties"]["title"]["maxLength"] == 5
    # 32 concurrent calls shared forward passes instead of running one by one
    batches = tiny_engine.stats["batches"] - before["batches"]
    assert batches < 32 and tiny_engine.stats["max_rows"] > 1


def test_seed_follows_item_and_attempt(tiny_engine):
    engine = Recording(tiny_engine)
    lm = dspy_lm(engine, Sampling(max_tokens=120, temperature=1.0), json_max_chars=5)
    program = dspy.Predict(Report)
    outputs = []
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        for item, attempt in [(1, 0), (1, 0), (1, 1), (2, 0)]:
            with sample_context.sample(item, attempt, base_seed=0):
                outputs.append(program(item="same input").title)
    seeds = [r.sampling.seed for r in engine.requests]
    assert seeds[0] == seeds[1] and len({seeds[0], seeds[2], seeds[3]}) == 3
    assert outputs[0] == outputs[1]
    assert [r.sample_index for r in engine.requests] == [0, 0, 1, 0]


def test_threads_reach_the_engine_concurrently(tiny_engine):
    """DSPy's own Module.batch (threads) through the sync bridge: still batched by the engine."""
    lm = dspy_lm(tiny_engine, Sampling(max_tokens=120, temperature=1.0, seed=3), json_max_chars=5)
    before = dict(tiny_engine.stats)
    with dspy.context(lm=lm, adapter=SchemaJSONAdapter()):
        examples = [dspy.Example(item=f"x{i}").with_inputs("item") for i in range(16)]
        results = dspy.Predict(Report).batch(examples, num_threads=16)
    assert all(isinstance(r.rating, int) for r in results)
    assert tiny_engine.stats["batches"] - before["batches"] < 16


def test_truncated_output_is_an_error_not_a_short_field(tiny_engine):
    lm = dspy_lm(tiny_engine, Sampling(max_tokens=3, temperature=1.0, seed=1))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()), pytest.raises(Exception) as err:
        dspy.Predict("question -> answer")(question="hi")
    chain, seen = [], err.value
    while seen is not None:
        chain.append(type(seen))
        seen = seen.__cause__
    assert TruncatedOutputError in chain
