"""The transformers engine on the tiny random model: batching, n samples, seeds, JSON constraints."""

from __future__ import annotations

import json

import pytest

from synthloop.engines import ChatRequest, Sampling
from synthloop.engines.json_schema import bound_schema
from synthloop.engines.types import PromptTooLongError

SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string"},
        "score": {"type": "integer"},
        "ok": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["answer", "score", "ok", "tags"],
    "additionalProperties": False,
}


def _req(i: int, **kw) -> ChatRequest:
    sampling = kw.pop("sampling", Sampling(max_tokens=48, seed=i, temperature=1.0))
    return ChatRequest(messages=({"role": "user", "content": f"question {i}"},), sampling=sampling, **kw)


def test_json_constrained_generation_parses_every_time(tiny_engine):
    """A random model emits noise, yet every completion is valid JSON of the schema. (Strings are bounded so
    that even 4-byte characters, 4 tokens each in a byte-level vocabulary, fit the budget.)"""
    schema = bound_schema(SCHEMA, max_tokens=160, max_chars=6)
    results = tiny_engine.generate(
        [_req(i, json_schema=schema, sampling=Sampling(max_tokens=160, seed=i, n=2)) for i in range(24)]
    )
    completions = [c for r in results for c in r.completions]
    assert len(completions) == 48
    for c in completions:
        value = json.loads(c.text, strict=False)
        assert list(value) == ["answer", "score", "ok", "tags"]  # the schema's order
        assert isinstance(value["answer"], str) and isinstance(value["score"], int) and isinstance(value["ok"], bool)
        assert c.finish_reason == "stop" and 0 < c.output_tokens <= 160


def test_unconstrained_generation_respects_budget_and_counts(tiny_engine):
    results = tiny_engine.generate([_req(i, sampling=Sampling(max_tokens=5 + i, seed=i)) for i in range(6)])
    for i, r in enumerate(results):
        c = r.completions[0]
        assert c.output_tokens <= 5 + i
        if c.finish_reason == "length":
            assert c.output_tokens == 5 + i
        assert r.prompt_tokens > 0


def test_seeded_request_is_independent_of_its_batch(tiny_engine):
    alone = tiny_engine.generate([_req(3)])[0].text
    batched = tiny_engine.generate([_req(i) for i in range(8)])[3].text
    again = tiny_engine.generate([_req(3)])[0].text
    assert alone == batched == again
    assert tiny_engine.generate([_req(4)])[0].text != alone


def test_n_samples_differ(tiny_engine):
    result = tiny_engine.generate([_req(1, sampling=Sampling(max_tokens=20, seed=1, n=4, temperature=1.0))])[0]
    assert len(result.completions) == 4
    assert len({c.text for c in result.completions}) > 1


def test_greedy_is_deterministic(tiny_engine):
    a = tiny_engine.generate([_req(1, sampling=Sampling(max_tokens=12, temperature=0.0))])[0].text
    b = tiny_engine.generate([_req(1, sampling=Sampling(max_tokens=12, temperature=0.0, seed=99))])[0].text
    assert a == b


def test_prompt_too_long_fails_that_request_only(tiny_engine):
    long = ChatRequest(messages=({"role": "user", "content": "word " * 5000},), sampling=Sampling(max_tokens=4))
    futures = [tiny_engine.submit(long), tiny_engine.submit(_req(1, sampling=Sampling(max_tokens=4, seed=1)))]
    with pytest.raises(PromptTooLongError):
        futures[0].result()
    assert futures[1].result().completions


def test_bound_schema_bounds_every_free_value():
    bounded = bound_schema(SCHEMA, max_tokens=100)
    props = bounded["properties"]
    assert props["answer"]["maxLength"] * 1 <= 100
    assert props["score"]["maximum"] == 10**12 and props["tags"]["maxItems"] == 3
    assert props["tags"]["items"]["maxLength"] == props["answer"]["maxLength"]
    assert "maxLength" not in SCHEMA["properties"]["answer"]  # the input is not modified
    assert bound_schema(SCHEMA, max_tokens=100, max_chars=7)["properties"]["answer"]["maxLength"] == 7


def test_bound_schema_leaves_pattern_and_format_strings_alone():
    """xgrammar (vLLM's backend) rejects a length bound beside a pattern or a format; both bound a string anyway."""
    schema = {"type": "object", "properties": {"day": {"type": "string", "format": "date"},
                                               "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
                                               "note": {"type": "string"}}}
    props = bound_schema(schema, max_tokens=100)["properties"]
    assert "maxLength" not in props["day"] and "maxLength" not in props["code"]
    assert props["note"]["maxLength"] > 0
