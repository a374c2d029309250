"""Instruct-SkillMix stage 2: for each record draw k skills from the inventory, write an instruction that
needs all of them, and answer it.

Draws are seeded and, by default, balanced: each draw takes the least-used skill, then the partners whose
pairs with it were used least, so every pair of skills appears once before any appears twice (k=2;
near-even for k>2). `balanced: false` draws uniformly at random, as the paper does. Every record carries
its skills and query type, so a judge can later check that the response really shows them (the paper's
"shirkers": 20% low-quality answers collapse SFT, so filter before training).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel, Field

from synthloop.prompts.skillmix import RespondWithSkills, WriteSkillMixInstruction
from synthloop.synth.base import PROMPT_ECHO, BaseProgramConfig, SynthProgram, ngram_overlap
from synthloop.synth.skill_inventory import Skill, SkillInventory

DEFAULT_QUERY_TYPES = [
    "information seeking", "advice seeking", "creative writing", "problem solving", "explanation for a beginner",
    "planning", "comparison", "editing or rewriting a given text",
]
_REFUSAL = re.compile(r"^\s*(?:i'?m sorry|i am sorry|i cannot|i can'?t|as an ai\b)", re.IGNORECASE)


class SkillMixConfig(BaseProgramConfig):
    kind: Literal["skillmix"] = "skillmix"
    skills: Path = Field(description="The skill inventory: skills.yaml from `synthloop skills build`, or a .txt file "
                                     "with one skill per line.")
    k: int = Field(2, ge=1, le=8, description="Skills drawn per record (the paper's default is 2).")
    min_count: int = Field(1, ge=0, description="Use only skills the extraction named at least this often.")
    max_skills: int | None = Field(None, ge=2, description="Use only the most frequent N skills.")
    balanced: bool = Field(True, description="Cover skill pairs evenly (least-used combination next); false draws "
                                             "uniformly at random, as the paper.")
    query_types: list[str] = Field(default_factory=lambda: list(DEFAULT_QUERY_TYPES),
                                   description="Kinds of request; one is drawn per record (seeded).")
    min_instruction_words: int = Field(5, ge=1, description="Drop instructions shorter than this.")
    min_response_words: int = Field(15, ge=1, description="Drop responses shorter than this (shirkers).")
    seed: int = Field(0, description="Seeds the skill draws and query types.")


def draw_skill_sets(n: int, k: int, seed: int = 0, balanced: bool = True) -> Iterator[tuple[int, ...]]:
    """An endless, deterministic sequence of k distinct indices out of range(n)."""
    if n < k:
        raise ValueError(f"cannot draw {k} distinct skills from an inventory of {n}")
    rng = random.Random(seed)
    if not balanced:
        while True:
            yield tuple(rng.sample(range(n), k))
    uses = [0] * n
    pair_uses: Counter[tuple[int, int]] = Counter()
    while True:
        noise = [rng.random() for _ in range(n)]  # seeded tie-breaks
        chosen = [min(range(n), key=lambda s: (uses[s], noise[s]))]
        while len(chosen) < k:
            chosen.append(min((s for s in range(n) if s not in chosen),
                              key=lambda s: (sum(pair_uses[_pair(s, c)] for c in chosen), uses[s], noise[s])))
        for s in chosen:
            uses[s] += 1
        for a, b in itertools.combinations(chosen, 2):
            pair_uses[_pair(a, b)] += 1
        yield tuple(chosen)


def _pair(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


class Coverage(BaseModel):
    records: int
    skills: int
    skills_used: int
    pairs: int = Field(description="Pairs of inventory skills.")
    pairs_covered: int
    pair_uses_min: int = Field(description="Fewest records any pair appears in (0 while not all are covered).")
    pair_uses_max: int
    skill_uses_min: int
    skill_uses_max: int

    def summary(self) -> str:
        share = self.pairs_covered / self.pairs if self.pairs else 0.0
        return (f"{self.records} records over {self.skills} skills: pairs covered {self.pairs_covered}/{self.pairs} "
                f"({share:.0%}), uses per pair {self.pair_uses_min}-{self.pair_uses_max}, "
                f"per skill {self.skill_uses_min}-{self.skill_uses_max}")


def coverage(skill_sets: Iterable[Sequence[str]], inventory: Sequence[str]) -> Coverage:
    """How evenly `skill_sets` (e.g. the `skills` of kept records) cover the inventory's skills and pairs."""
    names = list(dict.fromkeys(inventory))
    skill_uses: Counter[str] = Counter()
    pair_uses: Counter[tuple[str, str]] = Counter()
    records = 0
    for skills in skill_sets:
        records += 1
        skill_uses.update(set(skills))
        pair_uses.update(tuple(sorted(p)) for p in itertools.combinations(set(skills), 2))
    all_pairs = [tuple(sorted(p)) for p in itertools.combinations(names, 2)]
    per_pair = [pair_uses[p] for p in all_pairs] or [0]
    per_skill = [skill_uses[n] for n in names] or [0]
    return Coverage(records=records, skills=len(names), skills_used=sum(1 for n in names if skill_uses[n]),
                    pairs=len(all_pairs), pairs_covered=sum(1 for c in per_pair if c),
                    pair_uses_min=min(per_pair), pair_uses_max=max(per_pair),
                    skill_uses_min=min(per_skill), skill_uses_max=max(per_skill))


class SkillMix(SynthProgram):
    name = "skillmix"
    config_class = SkillMixConfig

    def __init__(self, config: SkillMixConfig | None = None, **overrides: Any):
        super().__init__(config, **overrides)
        self.write = dspy.Predict(WriteSkillMixInstruction)
        self.respond = dspy.Predict(RespondWithSkills)
        inventory = SkillInventory.load(self.config.skills)
        self.skills: list[Skill] = inventory.select(self.config.min_count, self.config.max_skills)
        if len(self.skills) < self.config.k:
            raise ValueError(f"{self.config.skills}: {len(self.skills)} skills left after min_count/max_skills, "
                             f"fewer than k={self.config.k}")
        self._by_name = {s.name: s for s in self.skills}

    def describe(self) -> dict[str, Any]:
        text = "\n".join(s.prompt_text() for s in self.skills)  # an edited inventory is a different run
        return {**super().describe(), "inventory_sha256": hashlib.sha256(text.encode()).hexdigest()[:16]}

    def inputs(self) -> Iterator[dict[str, Any]]:
        draws = draw_skill_sets(len(self.skills), self.config.k, self.config.seed, self.config.balanced)
        for item, chosen in enumerate(draws):
            rng = random.Random(f"{self.config.seed}:query:{item}")
            yield {"skills": [self.skills[i].name for i in chosen], "query_type": rng.choice(self.config.query_types)}

    def _shown(self, skills: list[str]) -> list[str]:
        return [self._by_name[s].prompt_text() if s in self._by_name else s for s in skills]

    async def aforward(self, skills: list[str], query_type: str = "information seeking", **_: Any) -> dspy.Prediction:
        shown = self._shown(skills)
        instruction = (await self.write.acall(skills=shown, query_type=query_type)).instruction.strip()
        response = (await self.respond.acall(instruction=instruction, skills=shown)).response.strip()
        return dspy.Prediction(instruction=instruction, response=response, skills=skills, query_type=query_type)

    def to_record(self, inputs: dict[str, Any], prediction: dspy.Prediction) -> dict[str, Any]:
        return {
            "messages": [{"role": "user", "content": prediction.instruction},
                         {"role": "assistant", "content": prediction.response}],
            "skills": list(prediction.skills),
            "query_type": prediction.query_type,
        }

    def accept(self, record: dict[str, Any]) -> str | None:
        instruction, response = record["messages"][0]["content"], record["messages"][1]["content"]
        if len(instruction.split()) < self.config.min_instruction_words:
            return f"instruction too short ({len(instruction.split())} words)"
        if PROMPT_ECHO.search(instruction) or PROMPT_ECHO.search(response):
            return "copied the prompt's template or format"
        if _REFUSAL.search(response):
            return "refusal"
        if len(response.split()) < self.config.min_response_words:
            return f"shirker: response of {len(response.split())} words"
        if response.strip().lower().startswith(instruction.strip().lower()[:80]) or \
                ngram_overlap(response, instruction, n=6) > 0.5:
            return "response repeats the instruction"
        return None
