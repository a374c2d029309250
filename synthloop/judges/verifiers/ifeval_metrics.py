"""IFEval's four accuracies (Zhou et al., 2023) with a per-family breakdown, and a paired comparison of two answer
sets on the same prompts (prompts gained and lost, McNemar's exact test).

    scores = ifeval_scores(responses, rows)          # rows: IFEval rows {instruction_id_list, kwargs, prompt}
    scores.prompt_strict, scores.instruction_loose, scores.families["keywords"].strict
    diff = compare_scores(before, after)             # gained / lost prompts, p-value, per-family before -> after

Prompt-level: a prompt counts when every one of its instructions is followed; instruction-level: each
instruction counts on its own. Strict checks the response as is; loose also tries it without its first and/or
last line and without markdown asterisks (the reference's rule, `ifeval.check(loose=True)`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from synthloop.judges.verifiers.ifeval import check

Level = Literal["prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose"]


class GroupScore(BaseModel):
    instructions: int = Field(description="Instructions of this family (or id) over all prompts.")
    strict: float
    loose: float


class IFEvalScores(BaseModel):
    prompts: int
    instructions: int
    prompt_strict: float
    prompt_loose: float
    instruction_strict: float
    instruction_loose: float
    families: dict[str, GroupScore] = Field(description="Instruction-level accuracy per family (the id's part "
                                                        "before ':', e.g. 'keywords').")
    by_instruction: dict[str, GroupScore] = Field(description="Instruction-level accuracy per instruction id.")
    ids: list[list[str]] = Field(description="Each prompt's instruction ids, in row order.")
    strict: list[list[bool]] = Field(description="Per prompt, whether each instruction was followed (strict).")
    loose: list[list[bool]] = Field(description="The same, loose.")

    def followed(self, level: Level) -> list[bool]:
        """One verdict per unit of `level`: per prompt (all its instructions followed) or per instruction."""
        table = self.strict if level.endswith("strict") else self.loose
        if level.startswith("prompt"):
            return [all(row) for row in table]
        return [ok for row in table for ok in row]

    def summary(self) -> str:
        return (f"{self.prompts} prompts / {self.instructions} instructions: prompt-level strict "
                f"{self.prompt_strict:.1%}, loose {self.prompt_loose:.1%}; instruction-level strict "
                f"{self.instruction_strict:.1%}, loose {self.instruction_loose:.1%}")


def _groups(ids: list[list[str]], strict: list[list[bool]], loose: list[list[bool]],
            key) -> dict[str, GroupScore]:
    tally: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row_ids, row_s, row_l in zip(ids, strict, loose, strict=True):
        for instruction_id, s, lo in zip(row_ids, row_s, row_l, strict=True):
            t = tally[key(instruction_id)]
            t[0] += 1
            t[1] += s
            t[2] += lo
    return {name: GroupScore(instructions=n, strict=s / n, loose=lo / n) for name, (n, s, lo) in sorted(tally.items())}


def ifeval_scores(responses: Sequence[str | None], rows: Sequence[Mapping[str, Any]]) -> IFEvalScores:
    """Score `responses[i]` against IFEval row `rows[i]` ({instruction_id_list, kwargs, prompt}); a missing
    response (None) follows nothing."""
    if len(responses) != len(rows):
        raise ValueError(f"{len(responses)} responses for {len(rows)} rows")
    if not rows:
        raise ValueError("no rows to score")
    ids, strict, loose = [], [], []
    for response, row in zip(responses, rows, strict=True):
        row_ids = list(row["instruction_id_list"])
        kwargs = list(row.get("kwargs") or [{}] * len(row_ids))
        ids.append(row_ids)
        strict.append(check(response or "", row_ids, kwargs, row.get("prompt", "")))
        loose.append(check(response or "", row_ids, kwargs, row.get("prompt", ""), loose=True))
    flat_s = [ok for row in strict for ok in row]
    flat_l = [ok for row in loose for ok in row]
    return IFEvalScores(
        prompts=len(rows), instructions=len(flat_s),
        prompt_strict=sum(all(r) for r in strict) / len(rows), prompt_loose=sum(all(r) for r in loose) / len(rows),
        instruction_strict=sum(flat_s) / len(flat_s), instruction_loose=sum(flat_l) / len(flat_l),
        families=_groups(ids, strict, loose, lambda i: i.split(":", 1)[0]),
        by_instruction=_groups(ids, strict, loose, lambda i: i),
        ids=ids, strict=strict, loose=loose)


class FamilyChange(BaseModel):
    instructions: int
    before: float
    after: float


class Comparison(BaseModel):
    level: str
    units: int = Field(description="Prompts (prompt-level) or instructions (instruction-level) compared.")
    before: float
    after: float
    gained: int = Field(description="Units failed before and followed after.")
    lost: int = Field(description="Units followed before and failed after.")
    both: int
    neither: int
    p_value: float = Field(description="McNemar's exact test (two-sided binomial test on gained vs lost); 1.0 "
                                       "when nothing changed.")
    families: dict[str, FamilyChange] = Field(description="Instruction-level accuracy per family, before and after "
                                                          "(strict or loose as the level).")

    def summary(self) -> str:
        return (f"{self.level}: {self.before:.1%} -> {self.after:.1%} on {self.units} "
                f"({'+' if self.gained else ''}{self.gained} gained, -{self.lost} lost, McNemar p={self.p_value:.3g})")


def compare_scores(before: IFEvalScores, after: IFEvalScores, level: Level = "prompt_strict") -> Comparison:
    """Two answer sets scored on the same prompts: what the second gained and lost, and whether that is more than
    chance (McNemar's exact test: under no difference, gained ~ Binomial(gained + lost, 1/2))."""
    from scipy.stats import binomtest

    if before.ids != after.ids:
        raise ValueError("the two score sets are not on the same prompts and instructions")
    a, b = before.followed(level), after.followed(level)
    gained = sum(not x and y for x, y in zip(a, b, strict=True))
    lost = sum(x and not y for x, y in zip(a, b, strict=True))
    both = sum(x and y for x, y in zip(a, b, strict=True))
    changed = gained + lost
    p_value = binomtest(gained, changed, 0.5).pvalue if changed else 1.0
    strict = level.endswith("strict")
    families = {name: FamilyChange(instructions=g.instructions, before=g.strict if strict else g.loose,
                                   after=(after.families[name].strict if strict else after.families[name].loose))
                for name, g in before.families.items()}
    return Comparison(level=level, units=len(a), before=sum(a) / len(a), after=sum(b) / len(b), gained=gained,
                      lost=lost, both=both, neither=len(a) - gained - lost - both, p_value=float(p_value),
                      families=families)
