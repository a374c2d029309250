"""transformers: the universal fallback engine (any machine, any checkpoint, the tiny test model).

A worker thread drains the request queue into left-padded batches (up to `batch_size` rows, waiting
a few milliseconds for more to arrive), so concurrent callers share forward passes. JSON schemas
are enforced with xgrammar's logits processor; sampling is seeded per row (`sampling.RowSampler`),
so a seeded request gives the same text whatever batch it lands in.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import queue
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from synthloop.engines.base import Engine
from synthloop.engines.config import EngineConfig
from synthloop.engines.types import (
    ChatRequest,
    ChatResult,
    Completion,
    EngineError,
    PromptTooLongError,
    ScoreRequest,
    ScoreResult,
)

_Item = tuple[ChatRequest | ScoreRequest, concurrent.futures.Future]
#: scoring keeps log-probabilities for at most this many (row, position, vocab) floats at once (~256 MB)
_SCORE_LOGIT_BUDGET = 64 * 1024 * 1024


def _rows(request: ChatRequest | ScoreRequest) -> int:
    return request.sampling.n if isinstance(request, ChatRequest) else 1


class TransformersEngine(Engine):
    kind = "transformers"
    supports_scoring = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        name: str | None = None,
        config: EngineConfig | None = None,
        batch_wait_s: float = 0.005,
    ):
        super().__init__(name or str(model_path))
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        cfg = config or EngineConfig(kind="transformers")
        self.path = str(model_path)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if self.device == "cuda" else "float32")
        self.dtype = dtype
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.hf_model = AutoModelForCausalLM.from_pretrained(self.path, dtype=getattr(torch, dtype)).to(self.device)
        self.hf_model.eval()
        self.max_model_len = cfg.max_model_len
        self.batch_size = cfg.batch_size
        self.preferred_in_flight = 2 * cfg.batch_size  # a full batch decoding, the next one queued
        self.batch_wait_s = batch_wait_s
        self.eos_ids = self._eos_ids()
        #: how requests were batched (for tests and benchmarks): forward batches run, rows decoded, largest batch
        self.stats = {"batches": 0, "rows": 0, "max_rows": 0}
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._closed = False
        self._worker = threading.Thread(target=self._work, name="synthloop-transformers", daemon=True)
        self._worker.start()

    def _eos_ids(self) -> list[int]:
        ids = set()
        gen = getattr(self.hf_model, "generation_config", None)
        eos = getattr(gen, "eos_token_id", None)
        ids.update(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return sorted(ids)

    def describe(self) -> dict[str, Any]:
        return {"engine": self.kind, "model": self.model, "dtype": self.dtype}

    def submit(self, request: ChatRequest) -> concurrent.futures.Future[ChatResult]:
        if self._closed:
            raise EngineError("the transformers engine is closed")
        future: concurrent.futures.Future[ChatResult] = concurrent.futures.Future()
        self._queue.put((request, future))
        return future

    def submit_score(self, request: ScoreRequest) -> concurrent.futures.Future[ScoreResult]:
        if self._closed:
            raise EngineError("the transformers engine is closed")
        future: concurrent.futures.Future[ScoreResult] = concurrent.futures.Future()
        self._queue.put((request, future))
        return future

    # -- worker ---------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.batch_wait_s
            rows = _rows(first[0])
            while rows < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is None:
                    self._queue.put(None)
                    break
                batch.append(item)
                rows += _rows(item[0])
            groups: dict[tuple, list[_Item]] = defaultdict(list)
            for item in batch:
                req = item[0]
                if isinstance(req, ScoreRequest):
                    groups[("score",)].append(item)
                else:
                    groups[(req.json_schema is not None, req.sampling.stop)].append(item)
            for key, items in groups.items():
                live = [it for it in items if it[1].set_running_or_notify_cancel()]
                if not live:
                    continue
                run = self._score if key == ("score",) else self._generate
                try:
                    results = run([req for req, _ in live])
                except Exception as exc:  # one bad batch must not kill the worker
                    for _, fut in live:
                        fut.set_exception(
                            exc
                            if isinstance(exc, EngineError)
                            else EngineError(f"transformers: {type(exc).__name__}: {exc}")
                        )
                    continue
                for (_, fut), res in zip(live, results, strict=True):
                    fut.set_result(res) if not isinstance(res, Exception) else fut.set_exception(res)

    def _generate(self, requests: list[ChatRequest]) -> list[ChatResult | Exception]:
        import torch

        from synthloop.engines.sampling import RowSampler

        prompts, owners, outcomes = [], [], [None] * len(requests)
        temps, top_ps, seeds, budgets = [], [], [], []
        for idx, req in enumerate(requests):
            text = self.tokenizer.apply_chat_template(list(req.messages), tokenize=False, add_generation_prompt=True)
            n_prompt = len(self.tokenizer.encode(text, add_special_tokens=False))
            if n_prompt >= self.max_model_len:
                outcomes[idx] = PromptTooLongError(
                    f"prompt has {n_prompt} tokens; max_model_len is {self.max_model_len}"
                )
                continue
            for k in range(req.sampling.n):
                prompts.append(text)
                owners.append(idx)
                temps.append(req.sampling.temperature)
                top_ps.append(req.sampling.top_p)
                seeds.append(None if req.sampling.seed is None else req.sampling.seed + 7919 * k)
                budgets.append(min(req.sampling.max_tokens, self.max_model_len - n_prompt))
        if not prompts:
            return outcomes
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        self.stats["batches"] += 1
        self.stats["rows"] += len(prompts)
        self.stats["max_rows"] = max(self.stats["max_rows"], len(prompts))
        prompt_len = enc["input_ids"].shape[1]
        processors = []
        schemas = [requests[o].json_schema for o in owners]
        if schemas[0] is not None:
            processors.append(self._grammar_processor(schemas))
        processors.append(RowSampler(temps, top_ps, seeds, budgets, prompt_len, self.eos_ids[0]))
        from transformers import LogitsProcessorList

        stop = list(requests[owners[0]].sampling.stop)
        with torch.inference_mode():
            out = self.hf_model.generate(
                **enc,
                max_new_tokens=max(budgets) + 1,
                do_sample=False,
                logits_processor=LogitsProcessorList(processors),
                eos_token_id=self.eos_ids,
                pad_token_id=self.tokenizer.pad_token_id,
                stop_strings=stop or None,
                tokenizer=self.tokenizer if stop else None,
            )
        generated = out[:, prompt_len:].tolist()
        per_request: dict[int, list[Completion]] = defaultdict(list)
        for row, tokens in enumerate(generated):
            per_request[owners[row]].append(self._completion(tokens, budgets[row], stop))
        for idx in range(len(requests)):
            if outcomes[idx] is None:
                n_prompt = int(enc["attention_mask"][owners.index(idx)].sum())
                outcomes[idx] = ChatResult(completions=per_request[idx], prompt_tokens=n_prompt)
        return outcomes

    def _score(self, requests: list[ScoreRequest]) -> list[ScoreResult | Exception]:
        """One forward pass per sub-batch: left-padded rows (explicit position ids, as generation uses), and
        logits computed only for the last positions, where the continuations are."""
        import torch

        from synthloop.engines.scoring import encode_for_scoring

        outcomes: list[ScoreResult | Exception | None] = [None] * len(requests)
        rows: list[tuple[int, list[int], int]] = []  # (request index, ids, context tokens)
        for idx, req in enumerate(requests):
            try:
                ids, n_ctx = encode_for_scoring(self.tokenizer, req)
            except ValueError as exc:
                outcomes[idx] = EngineError(f"transformers: {exc}")
                continue
            if len(ids) > self.max_model_len:
                outcomes[idx] = PromptTooLongError(
                    f"context + continuation have {len(ids)} tokens; max_model_len is {self.max_model_len}"
                )
                continue
            rows.append((idx, ids, n_ctx))
        rows.sort(key=lambda r: len(r[1]))
        vocab = self.hf_model.config.vocab_size
        pad = self.tokenizer.pad_token_id
        start = 0
        while start < len(rows):
            end = start + 1  # grow the sub-batch while the kept logits fit the budget
            while end < len(rows) and end - start < self.batch_size:
                keep = max(len(r[1]) - r[2] for r in rows[start:end + 1]) + 1
                if (end + 1 - start) * keep * vocab > _SCORE_LOGIT_BUDGET:
                    break
                end += 1
            chunk = rows[start:end]
            start = end
            width = max(len(ids) for _, ids, _ in chunk)
            keep = max(len(ids) - n for _, ids, n in chunk) + 1
            input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, (_, ids, _) in enumerate(chunk):
                input_ids[r, width - len(ids):] = torch.tensor(ids)
                mask[r, width - len(ids):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            self.stats["batches"] += 1
            self.stats["rows"] += len(chunk)
            self.stats["max_rows"] = max(self.stats["max_rows"], len(chunk))
            with torch.inference_mode():
                logits = self.hf_model(
                    input_ids=input_ids.to(self.device),
                    attention_mask=mask.to(self.device),
                    position_ids=positions.to(self.device),
                    logits_to_keep=keep,
                ).logits  # (rows, keep, vocab): position j predicts token width - keep + j + 1
            for r, (idx, ids, n_ctx) in enumerate(chunk):
                n_cont = len(ids) - n_ctx
                logprobs = torch.log_softmax(logits[r, keep - 1 - n_cont: keep - 1].float(), dim=-1)
                targets = torch.tensor(ids[n_ctx:], device=logprobs.device)
                values = logprobs.gather(-1, targets[:, None])[:, 0].tolist()
                outcomes[idx] = ScoreResult(token_logprobs=values, context_tokens=n_ctx)
        return outcomes  # type: ignore[return-value]

    def _completion(self, tokens: list[int], budget: int, stop: list[str]) -> Completion:
        end = next((i for i, t in enumerate(tokens) if t in self.eos_ids), None)
        if end is None or end >= budget:  # no end-of-sequence, or the one forced at the budget
            kept, reason, count = tokens[:budget], "length", min(len(tokens), budget)
        else:
            kept, reason, count = tokens[:end], "stop", end + 1
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        for s in stop:
            cut = text.find(s)
            if cut >= 0:
                text, reason = text[:cut], "stop"
        return Completion(text=text, finish_reason=reason, output_tokens=count)

    def _grammar_processor(self, schemas: list[dict]):
        from synthloop.engines.sampling import GrammarConstraint

        grammars = [self._compiled(json.dumps(s)) for s in schemas]  # key order is the output order
        return GrammarConstraint(grammars, self.hf_model.config.vocab_size)

    @functools.cached_property
    def _compiler(self):
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.hf_model.config.vocab_size)
        return xgr.GrammarCompiler(info)

    @functools.lru_cache(maxsize=256)  # noqa: B019 - one engine per process lifetime; schemas are few
    def _compiled(self, schema_json: str):
        return self._compiler.compile_json_schema(schema_json, any_whitespace=False)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._worker.join(timeout=60)
        del self.hf_model
        import gc

        gc.collect()
