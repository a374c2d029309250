"""The LLM judge: any engine judges through the DSPy bridge, with constrained decoding and JudgeLM's debiasing.

    judge = LLMJudge(engine, LLMJudgeConfig(swap=True))
    judge.score([JudgeItem(prompt=..., response=...)])        # 1-10 with a short rationale
    judge.compare([PairItem(prompt=..., a=..., b=...)])         # JudgeLM pairwise: two scores -> a winner

Debiasing (JudgeLM, Zhu et al. 2023):
- swap augmentation: every pair is judged in both orders; the verdicts are mapped back to (a, b) and
  a disagreement becomes a tie (scores are averaged), so position bias cannot pick the winner;
- reference support: when an item carries a reference answer the judge sees it (the *WithReference
  signatures); `reference="drop"` ignores references (JudgeLM's reference drop, for judging without
  them or for comparing the two regimes).

Batch-first: all the model calls of a `score`/`compare` batch are issued concurrently (asyncio tasks
through the bridge), so the engine batches them. A call that still fails (engine error, truncation)
yields a NaN score / a tie whose rationale starts with "judge failed" rather than crashing the batch.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from typing import Any, Literal

import dspy
from pydantic import Field

from synthloop.configs import Config
from synthloop.engines import sample_context
from synthloop.engines.base import Engine, run_sync
from synthloop.engines.dspy_adapter import SchemaJSONAdapter
from synthloop.engines.dspy_bridge import dspy_lm
from synthloop.engines.types import sampling_config
from synthloop.judges.base import Judge, JudgeItem, Judgement, PairItem, Preference
from synthloop.prompts.judge import (
    CompareResponses,
    CompareResponsesWithReference,
    ScoreResponse,
    ScoreResponseWithReference,
)
from synthloop.text import cut_end, cut_start

FAILED = "judge failed"


class LLMJudgeConfig(Config):
    swap: bool = Field(True, description="Judge every pair in both orders; disagreement becomes a tie (JudgeLM).")
    reference: Literal["auto", "drop"] = Field(
        "auto", description="auto: show the item's reference answer to the judge when it has one; "
        "drop: never show references (JudgeLM's reference drop).")
    sampling: sampling_config("How verdicts are sampled (greedy by default; max_tokens is the budget of one verdict: "
                              "scores + rationale).", keys=("temperature", "top_p", "max_tokens"), temperature=0.0,
                              max_tokens=96)
    rationale_chars: int = Field(160, ge=1, description="Longest rationale, in characters (bounded by the schema).")
    max_input_chars: int = Field(
        3000, ge=100, description="Prompts, responses and references longer than this are cut "
        "(prompts keep their end, responses their start), so long inputs fit the context.")
    attempts: int = Field(2, ge=1, description="Tries per verdict; a retry draws a fresh sample (new seed).")
    seed: int = Field(0, description="Base seed of the verdicts' sampling.")


class LLMJudge(Judge):
    name = "llm"
    scale = (1.0, 10.0)

    def __init__(self, engine: Engine, config: LLMJudgeConfig | None = None, **overrides: Any):
        config = config or LLMJudgeConfig()
        self.config = config.model_copy(update=overrides) if overrides else config
        self.engine = engine
        rationale_chars = min(self.config.rationale_chars, max(8, self.config.sampling.max_tokens - 40))
        self.lm = dspy_lm(engine, self.config.sampling, json_max_chars=rationale_chars)
        self._adapter: dspy.Adapter | None = None  # asks the engine: decided on the first verdict, not at build time
        self.pointwise = dspy.Predict(ScoreResponse)
        self.pointwise_ref = dspy.Predict(ScoreResponseWithReference)
        self.pairwise = dspy.Predict(CompareResponses)
        self.pairwise_ref = dspy.Predict(CompareResponsesWithReference)

    @property
    def adapter(self) -> dspy.Adapter:
        if self._adapter is None:
            self._adapter = SchemaJSONAdapter() if self.engine.supports_json_schema else dspy.ChatAdapter()
        return self._adapter

    def close(self) -> None:
        self.engine.close()

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name, **self.engine.describe(), "config": self.config.model_dump(mode="json")}

    # -- inputs ----------------------------------------------------------------------------------
    def _reference(self, reference: Any) -> str | None:
        if self.config.reference == "drop" or reference is None or str(reference).strip() == "":
            return None
        return cut_start(str(reference), self.config.max_input_chars)

    def _prompt(self, prompt: str) -> str:
        return cut_end(prompt, self.config.max_input_chars)

    def _response(self, response: str) -> str:
        return cut_start(response, self.config.max_input_chars)

    # -- one verdict -------------------------------------------------------------------------------
    async def _call(self, index: int, predictor: dspy.Predict, **inputs: Any) -> dspy.Prediction | Exception:
        error: Exception | None = None
        for attempt in range(self.config.attempts):
            with sample_context.sample(index, attempt, self.config.seed):
                try:
                    with dspy.context(lm=self.lm, adapter=self.adapter):
                        return await predictor.acall(**inputs)
                except Exception as exc:  # noqa: BLE001 - every failure becomes a marked verdict
                    error = exc
        return error  # type: ignore[return-value]

    async def ascore(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        async def one(i: int, item: JudgeItem):
            ref = self._reference(item.reference)
            if ref is None:
                return await self._call(i, self.pointwise, prompt=self._prompt(item.prompt),
                                        response=self._response(item.response))
            return await self._call(i, self.pointwise_ref, prompt=self._prompt(item.prompt), reference=ref,
                                    response=self._response(item.response))

        results = await asyncio.gather(*[one(i, item) for i, item in enumerate(items)])
        out = []
        for result in results:
            if isinstance(result, Exception):
                out.append(Judgement(score=math.nan, rationale=f"{FAILED}: {_short(result)}"))
            else:
                out.append(Judgement(score=float(result.score), rationale=str(result.rationale).strip()))
        return out

    def score(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        return run_sync(lambda: self.ascore(items))

    async def acompare_orders(self, pairs: Sequence[PairItem], swap: bool | None = None) -> list[list[Preference]]:
        """Each pair's verdict per order (a-b, then b-a when swapping), mapped back to (a, b)."""
        orders = (False, True) if (self.config.swap if swap is None else swap) else (False,)

        async def one(i: int, pair: PairItem, swapped: bool):
            a, b = (pair.b, pair.a) if swapped else (pair.a, pair.b)
            ref = self._reference(pair.reference)
            inputs = dict(prompt=self._prompt(pair.prompt), response_a=self._response(a), response_b=self._response(b))
            # each order is its own item for seeding, so the two orders are independent samples
            index = 2 * i + int(swapped)
            if ref is None:
                return await self._call(index, self.pairwise, **inputs)
            return await self._call(index, self.pairwise_ref, reference=ref, **inputs)

        results = await asyncio.gather(*[one(i, pair, swapped) for i, pair in enumerate(pairs) for swapped in orders])
        k = len(orders)
        return [[_verdict(r, swapped) for r, swapped in zip(results[k * i: k * i + k], orders, strict=True)]
                for i in range(len(pairs))]

    async def acompare(self, pairs: Sequence[PairItem]) -> list[Preference]:
        return [combine(v) for v in await self.acompare_orders(pairs)]

    def compare(self, pairs: Sequence[PairItem]) -> list[Preference]:
        return run_sync(lambda: self.acompare(pairs))

    def compare_orders(self, pairs: Sequence[PairItem], swap: bool | None = None) -> list[list[Preference]]:
        """Sync `acompare_orders` (for benchmarks: accuracy with and without swap from the same calls)."""
        return run_sync(lambda: self.acompare_orders(pairs, swap))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text or type(exc).__name__)[:200]


def _verdict(result: dspy.Prediction | Exception, swapped: bool) -> Preference:
    """One call's verdict, mapped back to the caller's (a, b) order."""
    if isinstance(result, Exception):
        return Preference(winner="tie", rationale=f"{FAILED}: {_short(result)}")
    first, second = float(result.score_a), float(result.score_b)
    score_a, score_b = (second, first) if swapped else (first, second)
    winner = "a" if score_a > score_b else "b" if score_b > score_a else "tie"
    return Preference(winner=winner, score_a=score_a, score_b=score_b, rationale=str(result.rationale).strip())


def combine(verdicts: list[Preference]) -> Preference:
    """Swap augmentation: one winner only if every order agrees on it; otherwise a tie."""
    ok = [v for v in verdicts if not v.rationale.startswith(FAILED)]
    if not ok:
        return verdicts[0]
    if len(verdicts) == 1:
        return verdicts[0]
    winners = {v.winner for v in verdicts}
    winner = verdicts[0].winner if len(winners) == 1 and len(ok) == len(verdicts) else "tie"
    score_a = sum(v.score_a for v in ok) / len(ok)
    score_b = sum(v.score_b for v in ok) / len(ok)
    if len(ok) < len(verdicts):
        failed = next(v for v in verdicts if v.rationale.startswith(FAILED))
        note = f"one order failed ({failed.rationale})"
    elif len(winners) > 1:
        note = f"orders disagree ({' vs '.join(v.winner for v in verdicts)}): tie"
    else:
        note = verdicts[0].rationale
    return Preference(winner=winner, score_a=score_a, score_b=score_b, rationale=note)


def swap_consistent(verdicts: Sequence[Preference]) -> bool:
    """Whether the orders of one swapped pair agreed (for the swap-consistency rate)."""
    return len({v.winner for v in verdicts}) == 1
