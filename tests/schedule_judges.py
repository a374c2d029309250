"""A judge whose held-out score the test decides, per round, for the scheduler tests on the tiny random model.

The tiny model's answers are noise, so whether a round "improves" it cannot be left to training. This judge
reads `grades` ({round: score}, a JSON file the test writes) and gives every answer the grade of the round being
run (the schedule's state.json names it): the promotion rule then decides on figures the test controls, while
everything else (the inbox, sampling, training, evaluation, the pointer) is the real thing.
"""

from __future__ import annotations

import json
from pathlib import Path

from synthloop.judges.base import Judge, Judgement


class Graded(Judge):
    name = "graded"

    def __init__(self, grades: str, schedule: str):
        self.grades, self.schedule = Path(grades), Path(schedule)

    def running_round(self) -> int:
        state = json.loads((self.schedule / "state.json").read_text())
        return next(r["round"] for r in reversed(state["rounds"]) if r["status"] != "done")

    def score(self, items):
        grade = json.loads(self.grades.read_text())[str(self.running_round())]
        return [Judgement(score=float(grade)) for _ in items]


def make(grades: str, schedule: str) -> Graded:
    return Graded(grades, schedule)
