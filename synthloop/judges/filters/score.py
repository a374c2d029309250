"""Judge thresholds: a panel of one judge scores every record (the whole batch at once), stores the score in
`record["scores"][<judge>]`, and drops what the panel's rule rejects: below `min_score` or above `max_score`, a
verifier's failure, or what the judge could not score (see `synthloop.judges.panel`)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.filters.base import Dropped, Filter, FilterResult
from synthloop.judges.panel import Panel
from synthloop.judges.spec import JudgeSpec


class JudgeThresholdConfig(Config):
    kind: Literal["judge_threshold"] = "judge_threshold"
    judge: JudgeSpec = Field(description="The judge that scores each record, with its acceptance rule (min_score, "
                                         "max_score; a verifier's verdict by default).")
    drop_rejected: bool = Field(True, description="false: keep the records the judge rejects too, marked "
                                "`accepted: false` with `rejected_because` (what `synthloop judge score` does); "
                                "records the judge could not score are dropped either way.")
    batch_size: int = Field(512, ge=1, description="Records scored per judge call.")


class JudgeThreshold(Filter):
    kind = "judge_threshold"

    def __init__(self, config: JudgeThresholdConfig, panel: Panel):
        self.config = config
        self.panel = panel

    def apply(self, records: Sequence[dict[str, Any]]) -> FilterResult:
        kept, dropped = [], []
        scores: list[float] = []
        name = self.panel.names[0]
        for start in range(0, len(records), self.config.batch_size):
            chunk = records[start:start + self.config.batch_size]
            for record, verdict in zip(chunk, self.panel.score_records(chunk), strict=True):
                score = verdict.scores[name]
                record = {**record, "scores": {**(record.get("scores") or {}), **verdict.scores}}
                if math.isnan(score) or (not verdict.accepted and self.config.drop_rejected):
                    dropped.append(Dropped(record, verdict.reason or "rejected", {"score": score}))
                elif self.config.drop_rejected:
                    kept.append(record)
                else:
                    kept.append({**record, "accepted": verdict.accepted,
                                 **({} if verdict.accepted else {"rejected_because": verdict.reason})})
                if not math.isnan(score):
                    scores.append(score)
        extra: dict[str, Any] = {"judge": self.panel.describe()[0]}
        if scores:
            ordered = sorted(scores)
            extra["score_mean"] = sum(scores) / len(scores)
            extra["score_median"] = ordered[len(ordered) // 2]
        return FilterResult(kept, dropped, extra)
