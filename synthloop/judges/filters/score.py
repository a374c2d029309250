"""Judge / verifier score thresholds: score every record (the whole batch at once), store the score in
`record["scores"][<judge>]`, drop records below `min_score` (or above `max_score`), that a verifier
failed (`require_pass`), or that the judge could not score (NaN)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.base import Judge
from synthloop.judges.filters.base import Dropped, Filter, FilterResult
from synthloop.judges.spec import JudgeSpec, record_item


class JudgeThresholdConfig(Config):
    kind: Literal["judge_threshold"] = "judge_threshold"
    judge: JudgeSpec = Field(description="The judge that scores each record.")
    min_score: float | None = Field(None, description="Drop records scoring below this.")
    max_score: float | None = Field(None, description="Drop records scoring above this.")
    require_pass: bool = Field(False, description="Verifiers: drop records the verifier failed.")
    batch_size: int = Field(512, ge=1, description="Records scored per judge call.")


class JudgeThreshold(Filter):
    kind = "judge_threshold"

    def __init__(self, config: JudgeThresholdConfig, judge: Judge):
        self.config = config
        self.judge = judge

    def apply(self, records: Sequence[dict[str, Any]]) -> FilterResult:
        name = self.judge.name
        kept, dropped = [], []
        scores: list[float] = []
        for start in range(0, len(records), self.config.batch_size):
            chunk = records[start:start + self.config.batch_size]
            verdicts = self.judge.score([record_item(r, self.config.judge.reference_field) for r in chunk])
            for record, verdict in zip(chunk, verdicts, strict=True):
                record = {**record, "scores": {**(record.get("scores") or {}), name: verdict.score}}
                why = None
                if math.isnan(verdict.score):
                    why = f"{name}: not scored ({verdict.rationale})"
                elif self.config.require_pass and verdict.passed is False:
                    why = f"{name}: failed ({verdict.rationale})"
                elif self.config.min_score is not None and verdict.score < self.config.min_score:
                    why = f"{name}: score {verdict.score:.3g} < {self.config.min_score:g}"
                elif self.config.max_score is not None and verdict.score > self.config.max_score:
                    why = f"{name}: score {verdict.score:.3g} > {self.config.max_score:g}"
                if not math.isnan(verdict.score):
                    scores.append(verdict.score)
                if why is None:
                    kept.append(record)
                else:
                    dropped.append(Dropped(record, why, {"score": verdict.score}))
        extra = {"judge": self.judge.describe()}
        if scores:
            ordered = sorted(scores)
            extra["score_mean"] = sum(scores) / len(scores)
            extra["score_median"] = ordered[len(ordered) // 2]
        return FilterResult(kept, dropped, extra)
