"""Whether a new checkpoint replaces the current one: its held-out metrics against the current one's, by the rules
of the config (`promotion:` in a schedule config, `synthloop.schedule.config.PromotionRules`).

A candidate is promoted when all of these hold, and the reason names the first that does not:
1. the metric rose: gain > 0 and gain >= min_gain;
2. every floor in `require` is reached (e.g. a required judge's mean held-out score);
3. no guard metric got worse than its max_drop.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from synthloop.schedule.config import PromotionRules

_EPS = 1e-9  # metrics are rounded to 4 places; do not let float noise decide


class Check(BaseModel):
    name: str
    ok: bool
    detail: str


class Decision(BaseModel):
    promoted: bool
    reason: str
    metric: str
    candidate: float | None = None
    current: float | None = None
    gain: float | None = None
    checks: list[Check] = Field(default_factory=list)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def decide(candidate: dict[str, Any], current: dict[str, Any], rules: PromotionRules) -> Decision:
    """Compare held-out metrics (`eval_accuracy`, ..., `judge.<name>`) of the candidate and the current checkpoint."""
    name = rules.metric
    new, old = candidate.get(name), current.get(name)
    checks: list[Check] = []
    if new is None or old is None:
        missing = "the new checkpoint" if new is None else "the current checkpoint"
        checks.append(Check(name=name, ok=False, detail=f"{missing} has no {name}"))
    else:
        gain = round(new - old, 6)
        ok = gain > _EPS and gain >= rules.min_gain - _EPS
        need = f" (min_gain {rules.min_gain:g})" if rules.min_gain else ""
        verdict = "improved" if ok else "no gain" if gain <= _EPS else "gain too small"
        checks.append(Check(name=name, ok=ok, detail=f"{name} {_fmt(old)} -> {_fmt(new)} ({gain:+.4g}){need}: "
                                                      f"{verdict}"))
    for metric, floor in rules.require.items():
        value = candidate.get(metric)
        ok = value is not None and value >= floor - _EPS
        checks.append(Check(name=metric, ok=ok, detail=f"{metric} {_fmt(value)} {'>=' if ok else '<'} required "
                                                       f"{floor:g}"))
    for guard in rules.guards:
        value, base = candidate.get(guard.metric), current.get(guard.metric)
        if value is None or base is None:
            checks.append(Check(name=guard.metric, ok=False, detail=f"guard {guard.metric}: not measured"))
            continue
        worse = (value - base) if guard.lower_is_better else (base - value)
        ok = worse <= guard.max_drop + _EPS
        verdict = "ok" if ok else f"worse by {worse:.4g} (max_drop {guard.max_drop:g})"
        checks.append(Check(name=guard.metric, ok=ok,
                            detail=f"guard {guard.metric} {_fmt(base)} -> {_fmt(value)}: {verdict}"))
    failed = [c for c in checks if not c.ok]
    promoted = not failed
    reason = checks[0].detail if promoted else failed[0].detail
    if promoted and len(checks) > 1:
        reason += f"; {len(checks) - 1} other check(s) passed"
    gain = None if new is None or old is None else round(new - old, 6)
    return Decision(promoted=promoted, reason=reason, metric=name, candidate=new, current=old, gain=gain,
                    checks=checks)
