"""Verifiable arithmetic word problems with a difficulty knob.

Each problem is a short story about one person and one kind of object: a starting amount, then a chain
of `operations` steps drawn from `skills` (add: gets more; sub: gives some away; mul: the amount
becomes k times as large; div: shares equally and keeps one share), then the question. Operands have
up to `digits` digits; every intermediate amount stays a positive whole number, so the reference
answer is exact. Problem i of a seed is the same on every run.

    {"prompt": "Maya has 7 marbles. She buys 5 more marbles. Then she gives 3 marbles to Leo. How many
                marbles does Maya have now?", "reference": "9", "skills": ["add", "sub"], "operations": 2}
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Literal

from pydantic import Field, model_validator

from synthloop.configs import Config

Skill = Literal["add", "sub", "mul", "div"]

_NAMES = ["Maya", "Leo", "Ana", "Omar", "Lena", "Sam", "Ivy", "Noah", "Zoe", "Ravi", "Mia", "Ben", "Sara", "Tom",
          "Nina", "Jack", "Emma", "Luis", "Kira", "Paul"]
_OBJECTS = ["marbles", "apples", "stickers", "books", "coins", "pencils", "cookies", "shells", "cards", "stamps",
            "balloons", "candles", "beads", "eggs", "flowers", "toy cars"]
_START = ["{name} has {a} {obj}.", "{name} starts with {a} {obj}.", "There are {a} {obj} in {name}'s box."]
_ADD = ["Then {name} buys {b} more {obj}.", "{name} finds {b} more {obj}.", "A friend gives {name} {b} {obj}.",
        "{name} gets {b} more {obj} as a gift."]
_SUB = ["Then {name} gives {b} {obj} to {friend}.", "{name} loses {b} {obj}.", "{name} sells {b} {obj}.",
        "{friend} takes {b} of the {obj}."]
_MUL = ["Then the number of {obj} {name} has becomes {b} times as large.",
        "{name} collects more until there are {b} times as many {obj} as before."]
_DIV = ["{name} divides the {obj} into {b} equal groups and keeps one group.",
        "{name} splits the {obj} into {b} equal piles and keeps only one pile."]
_QUESTION = ["How many {obj} does {name} have now?", "How many {obj} are left with {name}?"]


class ArithmeticTasks(Config):
    kind: Literal["arithmetic"] = "arithmetic"
    digits: int = Field(1, ge=1, le=6, description="Most digits of an added or subtracted operand (1: 1-9, 2: 10-99).")
    min_digits: int = Field(1, ge=1, le=6, description="Fewest digits of an added or subtracted operand.")
    operations: int = Field(1, ge=1, le=8, description="Most steps in a problem's chain.")
    min_operations: int = Field(1, ge=1, le=8, description="Fewest steps in a problem's chain.")
    skills: list[Skill] = Field(
        default_factory=lambda: ["add", "sub"],
        description="Steps to mix: add, sub, mul (times k, k in 2-5), div (equal shares, k in 2-5).",
    )
    seed: int = Field(0, description="Problem i of a seed is the same on every run; use different seeds for "
                                     "training and held-out sets (the loop also drops exact overlaps).")
    count: int | None = Field(None, ge=1, description="How many problems (default: unbounded).")

    @model_validator(mode="after")
    def _ranges(self) -> ArithmeticTasks:
        if self.min_digits > self.digits:
            raise ValueError(f"min_digits ({self.min_digits}) is larger than digits ({self.digits})")
        if self.min_operations > self.operations:
            raise ValueError(f"min_operations ({self.min_operations}) is larger than operations ({self.operations})")
        if not self.skills:
            raise ValueError("skills: name at least one of add, sub, mul, div")
        return self

    def rows(self) -> Iterator[dict]:
        i = 0
        while self.count is None or i < self.count:
            yield make_problem(self, random.Random(f"arith:{self.seed}:{i}"))
            i += 1


def _operand(rng: random.Random, cfg: ArithmeticTasks) -> int:
    digits = rng.randint(cfg.min_digits, cfg.digits)
    low = 1 if digits == 1 else 10 ** (digits - 1)
    return rng.randint(low, 10**digits - 1)


def make_problem(cfg: ArithmeticTasks, rng: random.Random) -> dict:
    name = rng.choice(_NAMES)
    friend = rng.choice([n for n in _NAMES if n != name])
    obj = rng.choice(_OBJECTS)
    value = _operand(rng, cfg) + (1 if "sub" in cfg.skills else 0)
    sentences = [rng.choice(_START).format(name=name, a=value, obj=obj)]
    used: list[str] = []
    for _ in range(rng.randint(cfg.min_operations, cfg.operations)):
        skill = rng.choice(cfg.skills)
        if skill == "sub" and value <= 1:
            skill = "add" if "add" in cfg.skills else "mul" if "mul" in cfg.skills else skill
        if skill == "div" and not any(value % k == 0 for k in range(2, 6)):
            skill = next((s for s in ("add", "mul", "sub") if s in cfg.skills), "mul")
        if skill == "add":
            b = _operand(rng, cfg)
            value += b
            template = _ADD
        elif skill == "sub":
            b = rng.randint(1, min(value - 1, 10**cfg.digits - 1)) if value > 1 else 0
            value -= b
            template = _SUB
        elif skill == "mul":
            b = rng.randint(2, 5)
            value *= b
            template = _MUL
        else:
            b = rng.choice([k for k in range(2, 6) if value % k == 0])
            value //= b
            template = _DIV
        used.append(skill)
        sentences.append(rng.choice(template).format(name=name, b=b, obj=obj, friend=friend))
    sentences.append(rng.choice(_QUESTION).format(name=name, obj=obj))
    return {"prompt": " ".join(sentences), "reference": str(value), "skills": used, "operations": len(used)}
