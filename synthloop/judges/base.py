"""The judge interface: batch-first, like the engines. Every judge scores responses; every judge can
compare two (by default through its scores; judges with a real pairwise mode override `compare`).

    judge.score([JudgeItem(prompt=..., response=..., reference=...)])  -> [Judgement(score=...)]
    judge.compare([PairItem(prompt=..., a=..., b=...)])                  -> [Preference(winner="a")]

Loops rank samples with `score`, build preference pairs from it and use it as a reward; what is accepted
is decided by a `synthloop.judges.panel.Panel` of judges. A programmatic verifier becomes a judge with
`VerifierJudge`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from synthloop.judges.verifiers.base import Verifier


class JudgeItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    response: str
    reference: Any = Field(None, description="A reference answer or gold label, when one exists.")


class PairItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    a: str
    b: str
    reference: Any = None


class Judgement(BaseModel):
    score: float = Field(description="Higher is better; the scale is the judge's own (see `Judge.scale`).")
    passed: bool | None = Field(None, description="Verifiers and thresholded judges: the binary decision.")
    rationale: str = ""


class Preference(BaseModel):
    winner: Literal["a", "b", "tie"]
    score_a: float | None = None
    score_b: float | None = None
    rationale: str = ""


class Judge(ABC):
    name: ClassVar[str]
    #: (low, high) of `Judgement.score`, for plots and for normalising rewards
    scale: ClassVar[tuple[float, float]] = (0.0, 1.0)

    @abstractmethod
    def score(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        """Score every item; the whole batch is handed to the backend at once."""

    def compare(self, pairs: Sequence[PairItem]) -> list[Preference]:
        """Pairwise preference from pointwise scores (equal scores are a tie)."""
        flat = [JudgeItem(prompt=p.prompt, response=r, reference=p.reference) for p in pairs for r in (p.a, p.b)]
        scores = self.score(flat)
        out = []
        for i in range(len(pairs)):
            a, b = scores[2 * i].score, scores[2 * i + 1].score
            winner = "a" if a > b else "b" if b > a else "tie"
            out.append(Preference(winner=winner, score_a=a, score_b=b))
        return out

    def describe(self) -> dict[str, Any]:
        """Provenance: goes into every record a judge scored."""
        return {"judge": self.name}

    def close(self) -> None:  # noqa: B027 - judges without resources need no close
        """Free what the judge holds (a model-backed judge: its engine handle and request cache)."""


class VerifierJudge(Judge):
    """A programmatic verifier (math answer, IFEval constraints, code tests) as a judge: score in [0, 1]."""

    def __init__(self, verifier: Verifier):
        self.verifier = verifier
        self.name = f"verifier:{verifier.name}"  # type: ignore[misc]

    def score(self, items: Sequence[JudgeItem]) -> list[Judgement]:
        out = []
        for item in items:
            verdict = self.verifier.verify(item.response, item.reference)
            out.append(Judgement(score=verdict.score, passed=verdict.passed, rationale=verdict.reason))
        return out
