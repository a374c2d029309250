"""A panel: several judges with weights and one acceptance rule. Everything that decides "accepted" (a loop's
samples, the judge_threshold filter, `synthloop judge score`) asks a panel.

    panel = Panel.from_specs([{"kind": "ifeval"}, {"kind": "reward_model", "path": "runs/judge/model"}])
    verdicts = panel.score([JudgeItem(prompt=..., response=..., reference=...)])
    verdicts[0].accepted, verdicts[0].score, verdicts[0].reason
    kept, dropped = panel.filter(records)             # records: dicts; the judges' scores land in `scores`

The rule, per judge (unless `gate: false`: a judge that only ranks): a score that is NaN (the judge could not score)
rejects. With neither `min_score` nor
`max_score`, a verifier's pass/fail verdict decides, and a scoring judge accepts from the middle of its scale
(`Judge.scale`); with bounds, the score must lie within them. A response is accepted when every judge accepts
it. Its combined score is the weighted mean of the judges' scores: loops rank samples by it (best-vs-worst
pairs) and GRPO uses the weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from synthloop.configs import ConfigError
from synthloop.engines.pool import EnginePool
from synthloop.judges.base import Judge, JudgeItem, Judgement
from synthloop.judges.records import record_item
from synthloop.judges.spec import JudgeSpec, JudgeSpecBase


@dataclass
class Member:
    """One judge of a panel and how it votes."""

    judge: Judge
    weight: float = 1.0
    min_score: float | None = None
    max_score: float | None = None
    reference_field: str | None = None
    gate: bool = True

    def rejects(self, verdict: Judgement) -> str | None:
        """Why this judge rejects the response, or None when it accepts it (a judge that only ranks never does)."""
        name, score = self.judge.name, verdict.score
        if not self.gate:
            return None
        if math.isnan(score):
            return f"{name}: not scored ({verdict.rationale})"
        if self.min_score is None and self.max_score is None:
            if verdict.passed is not None:
                return None if verdict.passed else f"{name}: failed ({verdict.rationale})"
            low, high = self.judge.scale
            middle = (low + high) / 2
            return None if score >= middle else f"{name}: score {score:.3g} < {middle:g} (middle of its scale)"
        if self.min_score is not None and score < self.min_score:
            return f"{name}: score {score:.3g} < {self.min_score:g}"
        if self.max_score is not None and score > self.max_score:
            return f"{name}: score {score:.3g} > {self.max_score:g}"
        return None


@dataclass
class PanelVerdict:
    score: float
    accepted: bool
    scores: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # the first judge's reason to reject, when not accepted

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "accepted": self.accepted, "scores": self.scores, "notes": self.notes}


class Panel:
    def __init__(self, members: Iterable[Member | Judge], *, pool: EnginePool | None = None):
        self.members = [m if isinstance(m, Member) else Member(m) for m in members]
        if not self.members:
            raise ValueError("a panel needs at least one judge or verifier (e.g. judges: [{kind: math_answer}])")
        self.pool = pool

    @classmethod
    def from_specs(cls, specs: Iterable[JudgeSpecBase | dict[str, Any]], *, engines: EnginePool | None = None,
                   cache_path: Path | None = None, where: str = "judges", log=None) -> Panel:
        """Build every judge; a bad spec is a one-line `ConfigError` naming `where[i]`. Model-backed judges take
        their engine from `engines` (the caller owns it), else from a pool this panel owns and closes."""
        own = engines is None
        pool = engines or EnginePool(log=log)
        members = []
        for i, spec in enumerate(specs):
            try:
                if isinstance(spec, dict):
                    spec = TypeAdapter(JudgeSpec).validate_python(spec)
                judge = spec.build(engines=pool, cache_path=cache_path)
            except (ImportError, AttributeError, TypeError, ValueError, FileNotFoundError) as exc:
                kind = spec.get("kind") if isinstance(spec, dict) else spec.kind
                raise ConfigError(f"{where}[{i}] ({kind}): cannot build the judge: {exc}") from None
            members.append(Member(judge, spec.weight, spec.min_score, spec.max_score, spec.reference_field,
                                  spec.gate))
        return cls(members, pool=pool if own else None)

    @property
    def judges(self) -> list[Judge]:
        return [m.judge for m in self.members]

    @property
    def names(self) -> list[str]:
        return [m.judge.name for m in self.members]

    @property
    def weights(self) -> list[float]:
        return [m.weight for m in self.members]

    def score(self, items: Sequence[JudgeItem]) -> list[PanelVerdict]:
        """Every judge scores the whole batch at once; per item: the combined score and the acceptance."""
        return self.score_with(lambda member: items)

    def score_records(self, records: Sequence[dict[str, Any]]) -> list[PanelVerdict]:
        """`score` on records (dicts): each judge sees the record's prompt, response and its reference column."""
        return self.score_with(lambda member: [record_item(r, member.reference_field) for r in records])

    def score_with(self, items_for: Callable[[Member], Sequence[JudgeItem]]) -> list[PanelVerdict]:
        """`score` where each judge sees its own items (the same responses; its own `reference_field`)."""
        per_judge = [m.judge.score(items_for(m)) for m in self.members]
        n = len(per_judge[0])
        total = sum(self.weights)
        out = []
        for i in range(n):
            verdict = PanelVerdict(score=0.0, accepted=True)
            for member, verdicts in zip(self.members, per_judge, strict=True):
                v = verdicts[i]
                verdict.scores[member.judge.name] = v.score
                verdict.score += member.weight * v.score / total
                if v.rationale:
                    verdict.notes[member.judge.name] = v.rationale
                why = member.rejects(v)
                if why is not None and verdict.accepted:
                    verdict.accepted, verdict.reason = False, why
            out.append(verdict)
        return out

    def filter(self, records: Sequence[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[tuple[dict, str]]]:
        """(kept records, [(dropped record, reason)]): every record gets each judge's score under `scores`."""
        kept, dropped = [], []
        for record, verdict in zip(records, self.score_records(records), strict=True):
            record = {**record, "scores": {**(record.get("scores") or {}), **verdict.scores}}
            if verdict.accepted:
                kept.append(record)
            else:
                dropped.append((record, verdict.reason or "rejected"))
        return kept, dropped

    def describe(self) -> list[dict[str, Any]]:
        return [{**m.judge.describe(), "weight": m.weight, "min_score": m.min_score, "max_score": m.max_score}
                for m in self.members]

    def close(self) -> None:
        """Close the judges' request caches, and the engines when this panel started them."""
        for member in self.members:
            member.judge.close()
        if self.pool is not None:
            self.pool.close()

    def __enter__(self) -> Panel:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
