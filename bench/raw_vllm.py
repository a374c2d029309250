"""One request straight into a VLLMEngine's AsyncLLM (vLLM's own batched API, nothing of synthloop's in between):
the reference side of bench/engine_overhead.py and bench/engine_overhead_profile.py."""

from __future__ import annotations

import uuid

from synthloop.engines import ChatRequest


async def raw_request(engine, request: ChatRequest):
    """vLLM's final RequestOutput for `request` (same token ids, sampling, seed and JSON schema as synthloop sends)."""
    from vllm import SamplingParams
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    s = request.sampling
    params = SamplingParams(n=s.n, temperature=s.temperature, top_p=s.top_p, max_tokens=s.max_tokens, seed=s.seed,
                            stop=list(s.stop) or None, output_kind=RequestOutputKind.FINAL_ONLY,
                            structured_outputs=StructuredOutputsParams(json=request.json_schema)
                            if request.json_schema else None)
    final = None
    async for out in engine._llm.generate({"prompt_token_ids": engine.prompt_ids(request.messages)}, params,
                                          request_id=uuid.uuid4().hex):
        final = out
    return final
