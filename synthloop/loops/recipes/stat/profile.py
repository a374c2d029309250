"""The arithmetic of STAT: per-skill accuracy, the Missing-Skill-Profile, and what it does to training data.

- `skill_accuracy(judged, labels)`: per skill, how many tasks needing it were answered correctly.
- `build_profile(judged, labels, inventory)`: the Missing-Skill-Profile: each skill's failure rate on the
  probe set (smoothed toward the overall rate, so a skill seen on 3 tasks is not judged on 3 tasks alone),
  the skills failed more often than average (`missing`), and `target`: the share of training data each
  skill should get, proportional to failure_rate ** sharpness, mixed with a uniform floor.
- `example_weights(skills_of_examples, target)`: STAT-Sel sampling weights, chosen so that the expected
  share of skill s in data drawn by weight is target[s] (exactly so for single-skill examples).
- `weighted_draw`, `allocate`, `skill_shares`: drawing the SFT budget, splitting a task budget over
  skills, and measuring what a data set covers.

A task without a label counts under the pseudo-skill `UNLABELED`, treated as an average skill.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

UNLABELED = "(unlabeled)"


class SkillAccuracy(BaseModel):
    skill: str
    tasks: int
    correct: float
    accuracy: float | None


class SkillRate(BaseModel):
    skill: str
    tasks: int = Field(description="Probe tasks that need the skill.")
    failures: float = Field(description="Of those, how many the student failed (mean over its samples).")
    failure_rate: float = Field(description="Smoothed: (failures + smoothing * overall) / (tasks + smoothing).")
    target: float = Field(description="Share of training data this skill should get.")


class SkillProfile(BaseModel):
    """The Missing-Skill-Profile of a student on a probe set."""

    tasks: int
    failures: float
    overall_failure_rate: float
    skills: list[SkillRate]
    missing: list[str] = Field(description="Skills failed more often than the average task, worst first.")
    settings: dict[str, float] = Field(default_factory=dict)

    @property
    def target(self) -> dict[str, float]:
        return {s.skill: s.target for s in self.skills}

    @property
    def rates(self) -> dict[str, float]:
        return {s.skill: s.failure_rate for s in self.skills}


def _task_score(record: Mapping[str, Any]) -> float:
    samples = record.get("samples") or []
    return sum(bool(s["accepted"]) for s in samples) / len(samples) if samples else 0.0


def _skills_of(record: Mapping[str, Any], labels: Mapping[str, Sequence[str]]) -> list[str]:
    return list(dict.fromkeys(labels.get(record["task_id"]) or [])) or [UNLABELED]


def skill_accuracy(judged: Iterable[Mapping[str, Any]], labels: Mapping[str, Sequence[str]]) -> list[SkillAccuracy]:
    """Accuracy per skill over judged records (each with `task_id` and judged `samples`), most tasks first."""
    tasks: Counter[str] = Counter()
    correct: Counter[str] = Counter()
    for record in judged:
        score = _task_score(record)
        for skill in _skills_of(record, labels):
            tasks[skill] += 1
            correct[skill] += score
    rows = [SkillAccuracy(skill=s, tasks=n, correct=round(correct[s], 4), accuracy=round(correct[s] / n, 4))
            for s, n in tasks.items()]
    return sorted(rows, key=lambda r: (-r.tasks, r.skill))


def build_profile(judged: Iterable[Mapping[str, Any]], labels: Mapping[str, Sequence[str]],
                  inventory: Sequence[str], *, smoothing: float = 1.0, sharpness: float = 1.0,
                  uniform_mix: float = 0.1) -> SkillProfile:
    """The Missing-Skill-Profile from a student's judged probe answers (see the module docstring)."""
    records = list(judged)
    if not records:
        raise ValueError("the probe set is empty: no Missing-Skill-Profile can be built")
    failures = sum(1.0 - _task_score(r) for r in records)
    overall = failures / len(records)
    per_tasks: Counter[str] = Counter()
    per_fail: Counter[str] = Counter()
    for record in records:
        fail = 1.0 - _task_score(record)
        for skill in _skills_of(record, labels):
            per_tasks[skill] += 1
            per_fail[skill] += fail
    names = list(dict.fromkeys([*inventory, *(s for s in per_tasks if s != UNLABELED)]))
    if per_tasks[UNLABELED]:
        names.append(UNLABELED)
    rates = {s: (per_fail[s] + smoothing * overall) / (per_tasks[s] + smoothing) if per_tasks[s] + smoothing > 0
             else overall for s in names}
    target = mix_uniform(normalize({s: r**sharpness for s, r in rates.items()}), uniform_mix)
    skills = [SkillRate(skill=s, tasks=per_tasks[s], failures=round(per_fail[s], 4), failure_rate=round(rates[s], 4),
                        target=round(target[s], 4)) for s in names]
    missing = sorted((s for s in names if s != UNLABELED and rates[s] > overall + 1e-12), key=lambda s: -rates[s])
    return SkillProfile(tasks=len(records), failures=round(failures, 4), overall_failure_rate=round(overall, 4),
                        skills=skills, missing=missing,
                        settings={"smoothing": smoothing, "sharpness": sharpness, "uniform_mix": uniform_mix})


def normalize(values: Mapping[str, float]) -> dict[str, float]:
    total = sum(values.values())
    if total <= 0:
        return {k: 1.0 / len(values) for k in values} if values else {}
    return {k: v / total for k, v in values.items()}


def mix_uniform(shares: Mapping[str, float], uniform_mix: float) -> dict[str, float]:
    """(1 - u) * shares + u * uniform: every skill keeps some data, however well it is mastered."""
    if not shares:
        return {}
    floor = uniform_mix / len(shares)
    return {k: (1.0 - uniform_mix) * v + floor for k, v in shares.items()}


def example_weights(example_skills: Sequence[Sequence[str]], target: Mapping[str, float]) -> list[float]:
    """STAT-Sel: a sampling weight per example, normalized to sum 1.

    Example x with skills S(x) gets sum over s in S(x) of target[s] / count[s], where count[s] is how many
    examples have s: the skills then appear in data drawn by weight in the target shares (skills with no
    example cannot, and their share goes to the others). Unlabeled examples count as `UNLABELED`; a skill
    the target does not know gets the mean target."""
    skills = [list(dict.fromkeys(s)) or [UNLABELED] for s in example_skills]
    if not skills:
        return []
    counts = Counter(s for ss in skills for s in ss)
    default = sum(target.values()) / len(target) if target else 1.0
    raw = [sum(target.get(s, default) / counts[s] for s in ss) for ss in skills]
    total = sum(raw)
    return [w / total for w in raw] if total > 0 else [1.0 / len(raw)] * len(raw)


def weighted_draw(weights: Sequence[float], budget: int, seed: int) -> list[int]:
    """`budget` indices drawn with replacement by weight (seeded); an empty pool draws nothing."""
    if not weights or budget <= 0:
        return []
    return random.Random(seed).choices(range(len(weights)), weights=weights, k=budget)


def allocate(total: int, shares: Mapping[str, float]) -> dict[str, int]:
    """Split `total` items over keys in proportion to `shares` (largest remainder; sums to `total`)."""
    shares = normalize(shares)
    exact = {k: total * v for k, v in shares.items()}
    counts = {k: int(v) for k, v in exact.items()}
    left = total - sum(counts.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - counts[k]), k))[:left]:
        counts[k] += 1
    return counts


def skill_shares(example_skills: Iterable[Sequence[str]]) -> dict[str, float]:
    """Share of examples that need each skill (an example with two skills counts for both)."""
    counts: Counter[str] = Counter()
    n = 0
    for skills in example_skills:
        n += 1
        counts.update(list(dict.fromkeys(skills)) or [UNLABELED])
    return {s: round(c / n, 4) for s, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))} if n else {}
