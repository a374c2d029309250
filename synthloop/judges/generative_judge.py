"""The generative judge: a fine-tuned checkpoint (`synthloop judge train` with `kind: generative`) that answers
the JudgeLM prompt with "<score A> <score B>" on its first line, run on any engine.

    judge = GenerativeJudge.load("runs/gen_judge/model", EngineConfig(kind="vllm", dtype="float32"))
    judge.compare([PairItem(prompt=..., a=..., b=...)])    # both orders (swap), disagreement -> tie
    judge.score([JudgeItem(prompt=..., response=..., reference=...)])

Pairwise is JudgeLM's own mode. Pointwise follows JudgeLM's single-answer grading: the reference answer is
shown as Assistant 1 and the response as Assistant 2, whose score is the verdict; without a reference the
response is compared with an empty answer ("(no answer)"), so the score is the answer's absolute merit as the
judge sees it.

The engines constrain decoding by JSON schema only, and the judge was trained on JudgeLM's plain-text format,
so the verdict is decoded as plain text (greedy, stopped at the end of the first line unless `explain`) and
parsed with a regex; an unparseable verdict or an engine error becomes a tie (pairwise) or a NaN score
(pointwise) whose rationale starts with "judge failed", never an exception.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.engines.base import Engine
from synthloop.engines.types import ChatRequest, sampling_config
from synthloop.judges.base import Judge, JudgeItem, Judgement, PairItem, Preference
from synthloop.judges.generative import SYSTEM, judge_prompt
from synthloop.judges.llm_judge import FAILED, combine
from synthloop.text import cut_end, cut_start

ARTIFACT_FILE = "judge.json"
NO_ANSWER = "(no answer)"
_SCORES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*[ ,]\s*(\d+(?:\.\d+)?)")


class GenerativeJudgeConfig(Config):
    swap: bool = Field(True, description="Judge every pair in both orders; disagreement becomes a tie (JudgeLM).")
    reference: Literal["auto", "drop"] = Field(
        "auto", description="auto: show an item's reference answer when it has one; drop: never show references.")
    explain: bool = Field(False, description="Also generate the explanation after the scores line (slower; it "
                                             "lands in each verdict's rationale).")
    sampling: sampling_config("How verdicts are sampled (greedy by default; max_tokens is the budget of one verdict: "
                              "raise it with explain: true).", keys=("temperature", "top_p", "max_tokens"),
                              temperature=0.0, max_tokens=16)
    max_input_chars: int | None = Field(
        None, ge=50, description="Questions, answers and references longer than this are cut (questions keep their "
        "end, answers their start). Default: the cut the judge was trained with (its judge.json), else 1000.")
    seed: int = Field(0, description="Base seed of the verdicts' sampling.")


def parse_scores(text: str) -> tuple[float, float] | None:
    """JudgeLM's first line "<score 1> <score 2>" -> the two scores; None when it does not parse."""
    match = _SCORES.match(text)
    if match is None:
        return None
    return float(match.group(1)), float(match.group(2))


def cut_texts(question: str, a: str, b: str, reference: str | None, max_chars: int) -> tuple[str, str, str, str | None]:
    """The same cuts in training and judging: long multi-turn questions keep their end, answers their start."""
    return (cut_end(question, max_chars), cut_start(a, max_chars), cut_start(b, max_chars),
            None if reference is None else cut_start(reference, max_chars))


def read_artifact(path: str | Path) -> dict[str, Any]:
    """The judge.json of a generative-judge checkpoint; one-line FileNotFoundError when it is not one."""
    file = Path(path) / ARTIFACT_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{path}: not a generative judge (no {ARTIFACT_FILE}; train one with `synthloop "
                                f"judge train` and `kind: generative`)")
    return json.loads(file.read_text())


class GenerativeJudge(Judge):
    name = "generative"
    scale = (1.0, 10.0)

    def __init__(self, engine: Engine, config: GenerativeJudgeConfig | None = None, *,
                 artifact: dict[str, Any] | None = None, **overrides: Any):
        config = config or GenerativeJudgeConfig()
        self.config = config.model_copy(update=overrides) if overrides else config
        self.engine = engine
        self.artifact = artifact or {}
        self.max_chars = self.config.max_input_chars or int(self.artifact.get("max_input_chars", 1000))

    def close(self) -> None:
        self.engine.close()

    def describe(self) -> dict[str, Any]:
        return {"judge": self.name, **self.engine.describe(), "config": self.config.model_dump(mode="json"),
                "artifact": {k: v for k, v in self.artifact.items() if k in ("base_model", "teacher", "train_pairs")}}

    # -- requests ----------------------------------------------------------------------------------
    def _reference(self, reference: Any) -> str | None:
        if self.config.reference == "drop" or reference is None or str(reference).strip() == "":
            return None
        return str(reference)

    def _request(self, question: str, a: str, b: str, reference: str | None, index: int) -> ChatRequest:
        question, a, b, reference = cut_texts(question, a, b, reference, self.max_chars)
        sampling = self.config.sampling.model_copy(update={"seed": self.config.seed + index,
                                                           "stop": () if self.config.explain else ("\n",)})
        return ChatRequest(messages=({"role": "system", "content": SYSTEM},
                                     {"role": "user", "content": judge_prompt(question, a, b, reference)}),
                           sampling=sampling, sample_index=index)

    def _run(self, requests: list[ChatRequest]) -> list[tuple[tuple[float, float] | None, str]]:
        """Every request submitted before any is awaited (the engine batches them); (scores or None, text)."""
        futures = []
        for request in requests:
            try:
                futures.append(self.engine.submit(request))
            except Exception as exc:  # noqa: BLE001 - a failed submit is one failed verdict
                futures.append(exc)
        out = []
        for future in futures:
            try:
                text = future.result().text if not isinstance(future, Exception) else None
                error = future if text is None else None
            except Exception as exc:  # noqa: BLE001 - every failure becomes a marked verdict
                text, error = None, exc
            if text is None:
                out.append((None, f"{FAILED}: {' '.join(str(error).split())[:200] or type(error).__name__}"))
                continue
            scores = parse_scores(text)
            first, _, rest = text.strip().partition("\n")
            out.append((scores, rest.strip() if scores else f"{FAILED}: unparseable verdict {first[:80]!r}"))
        return out

    # -- pairwise ----------------------------------------------------------------------------------
    def compare_orders(self, pairs: Sequence[PairItem], swap: bool | None = None) -> list[list[Preference]]:
        """Each pair's verdict per order (a-b, then b-a when swapping), mapped back to (a, b)."""
        orders = (False, True) if (self.config.swap if swap is None else swap) else (False,)
        requests = []
        for i, pair in enumerate(pairs):
            for swapped in orders:
                a, b = (pair.b, pair.a) if swapped else (pair.a, pair.b)
                requests.append(self._request(pair.prompt, a, b, self._reference(pair.reference), 2 * i + swapped))
        results = self._run(requests)
        k = len(orders)
        return [[_verdict(result, swapped) for result, swapped in zip(results[k * i: k * i + k], orders, strict=True)]
                for i in range(len(pairs))]

    def compare(self, pairs: Sequence[PairItem]) -> list[Preference]:
        return [combine(v) for v in self.compare_orders(pairs)]

    # -- pointwise ---------------------------------------------------------------------------------
    def score(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        requests = []
        for i, item in enumerate(items):
            reference = self._reference(item.reference)
            requests.append(self._request(item.prompt, reference if reference is not None else NO_ANSWER,
                                          item.response, reference, i))
        out = []
        for scores, rationale in self._run(requests):
            out.append(Judgement(score=math.nan if scores is None else scores[1], rationale=rationale))
        return out

    @classmethod
    def load(cls, path: str | Path, engine_config=None, config: GenerativeJudgeConfig | None = None,
             log=None) -> GenerativeJudge:
        """The checkpoint at `path` on the engine `engine_config` describes (its `model` is replaced by `path`)."""
        from synthloop import engines
        from synthloop.engines.config import EngineConfig

        artifact = read_artifact(path)
        engine_config = (engine_config or EngineConfig()).model_copy(update={"model": str(path)})
        return cls(engines.from_config(engine_config, log=log), config, artifact=artifact)


def _verdict(result: tuple[tuple[float, float] | None, str], swapped: bool) -> Preference:
    scores, rationale = result
    if scores is None:
        return Preference(winner="tie", rationale=rationale)
    first, second = scores
    score_a, score_b = (second, first) if swapped else (first, second)
    winner = "a" if score_a > score_b else "b" if score_b > score_a else "tie"
    return Preference(winner=winner, score_a=score_a, score_b=score_b, rationale=rationale)
