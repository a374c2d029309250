"""Judges as GRPO reward functions: any `synthloop.judges.Judge` (a verifier through `VerifierJudge`, a trained
reward model, an LLM judge) becomes the callable TRL's GRPOTrainer calls on each batch of completions.

The dataset column `reference` (configurable) is handed to the judge as each item's reference answer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from synthloop.judges.base import Judge, JudgeItem


def _text(turns: Any) -> str:
    """TRL passes prompts and completions as strings (standard data) or message lists (conversational)."""
    if isinstance(turns, str):
        return turns
    users = [m.get("content", "") for m in turns if m.get("role") == "user"]
    if users:
        return users[-1]
    return "".join(m.get("content", "") for m in turns)


def judge_reward(judge: Judge, *, reference_column: str = "reference", name: str | None = None) -> Callable:
    """A GRPO reward function scoring each completion with `judge` (batch-first: one `score` call per batch)."""

    def reward(prompts: Sequence[Any], completions: Sequence[Any], **kwargs: Any) -> list[float]:
        references = kwargs.get(reference_column) or [None] * len(completions)
        items = [
            JudgeItem(prompt=_text(p), response=_text(c), reference=r)
            for p, c, r in zip(prompts, completions, references, strict=True)
        ]
        return [float(j.score) for j in judge.score(items)]

    reward.__name__ = name or judge.name.replace(":", "_")  # TRL logs rewards/<name>/mean
    return reward


def rewards_from_specs(specs: Sequence[dict[str, Any]], reference_column: str = "reference") -> list[Callable]:
    """The reward functions of judge specs (dicts, as in a config), built anew: what each process of a GRPO step
    under an accelerate launcher calls (through `train.launch.Factory`). Model-backed judges start their own engine
    in each process."""
    from synthloop.judges.panel import Panel

    panel = Panel.from_specs(specs)
    return [judge_reward(judge, reference_column=reference_column) for judge in panel.judges]
