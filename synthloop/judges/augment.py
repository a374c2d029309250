"""Bias-offset augmentation (in the spirit of OffsetBias, Park et al. 2024, and RRM, Liu et al. 2024): pairs
whose rejected answer has a surface feature judges like (length, fluency, confidence) but is worse, so a
reward model cannot win by reading the surface.

For a prompt and its good, plain answer (the `chosen` side of a training pair, or a gold answer), each kind
makes one rejected answer:
- off_topic: a fluent answer, longer than the good one when possible, written for a *different* prompt (RRM's
  "non-contextual" pairs);
- truncated: the good answer cut off mid-way (25-60% of its words, no closing punctuation);
- repetitive: its first sentence (or a few words) repeated until it is longer than the good answer;
- confident_wrong: the good answer with its numbers changed (or, with no number, its claims negated), opened
  with a confident phrase.

No LLM is involved: every rejected answer is a rule applied to real text, so the augmentation costs
milliseconds and cannot leak an evaluation answer.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from synthloop.configs import Config
from synthloop.judges.preference_data import PreferencePair, render_prompt, render_response
from synthloop.runs.inputs import DatasetInput

Kind = Literal["off_topic", "truncated", "repetitive", "confident_wrong"]
KINDS: tuple[Kind, ...] = ("off_topic", "truncated", "repetitive", "confident_wrong")
_CONFIDENT = ("I am absolutely certain about this.", "This is definitely correct:", "Without any doubt:",
              "As an expert, I can confirm:", "The answer is clear and well established.")
_NEGATIONS = [(r"\bis\b", "is not"), (r"\bare\b", "are not"), (r"\bcan\b", "cannot"), (r"\bshould\b", "should not"),
              (r"\bwill\b", "will not"), (r"\bdoes\b", "does not"), (r"\bhas\b", "has no")]


class AnswerSource(DatasetInput):
    """Good answers to augment besides the training pairs' chosen side, e.g. GSM8K's gold solutions."""

    prompt_field: str = Field("question", description="Column holding the prompt.")
    answer_field: str = Field("answer", description="Column holding the good answer.")


class AugmentConfig(Config):
    """`data.augment`: how many bias-offset pairs to add, of which kinds, from which good answers."""

    count: int = Field(0, ge=0, description="Augmented pairs to add (0: none). Drawn evenly over `kinds`.")
    kinds: list[Kind] = Field(list(KINDS), min_length=1, description="Which rejected answers to make.")
    answers: list[AnswerSource] = Field(default_factory=list, description="Extra (prompt, good answer) sources; "
                                                                          "the training pairs' chosen side is "
                                                                          "always used too.")
    min_chars: int = Field(40, ge=1, description="Only good answers at least this long are augmented.")
    seed: int = Field(0, description="Which answers and which cuts.")


def truncated(answer: str, rng: random.Random) -> str:
    words = answer.split()
    keep = max(1, int(len(words) * rng.uniform(0.25, 0.6)))
    return " ".join(words[:keep]).rstrip(".!?;:,")


def repetitive(answer: str, rng: random.Random) -> str:
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", answer.strip()) if s]
    unit = sentences[0] if sentences and len(sentences[0]) < len(answer) / 2 else " ".join(answer.split()[:12])
    copies = max(3, int(len(answer) * rng.uniform(1.1, 1.6) / max(1, len(unit))) + 1)
    return " ".join([unit] * copies)


def confident_wrong(answer: str, rng: random.Random) -> str:
    def other(match: re.Match[str]) -> str:
        value = int(match.group())
        return str(value + rng.choice([-3, -2, -1, 1, 2, 3, 7, 10]) if value > 3 else value + rng.randint(2, 9))

    wrong = re.sub(r"\d+", other, answer)
    if wrong == answer:  # no number: negate its claims
        for pattern, repl in _NEGATIONS:
            wrong = re.sub(pattern, repl, wrong, count=2)
    if wrong == answer:
        wrong = "No. " + answer
    return f"{rng.choice(_CONFIDENT)} {wrong}"


def off_topic(index: int, goods: Sequence[tuple[str, str]], rng: random.Random) -> str | None:
    """The longest of a few answers to other prompts (a fluent, long, irrelevant answer)."""
    prompt, answer = goods[index]
    candidates = [goods[rng.randrange(len(goods))] for _ in range(8)]
    candidates = [a for p, a in candidates if p != prompt and a != answer]
    return max(candidates, key=len) if candidates else None


def augment(pairs: Sequence[PreferencePair], config: AugmentConfig,
            extra: Sequence[tuple[str, str]] = ()) -> list[PreferencePair]:
    """`config.count` pairs (prompt, good answer, rejected of one kind), kinds in turn, answers drawn at random
    from the chosen side of `pairs` and from `extra` (prompt, answer) tuples."""
    goods: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for prompt, answer in [(render_prompt(p.prompt), render_response(p.chosen)) for p in pairs] + list(extra):
        if len(answer) >= config.min_chars and (prompt, answer) not in seen:
            seen.add((prompt, answer))
            goods.append((prompt, answer))
    if config.count == 0 or len(goods) < 2:
        return []
    rng = random.Random(config.seed)
    out: list[PreferencePair] = []
    attempts = 0
    while len(out) < config.count and attempts < config.count * 3:
        kind = config.kinds[attempts % len(config.kinds)]
        attempts += 1
        index = rng.randrange(len(goods))
        prompt, answer = goods[index]
        if kind == "off_topic":
            rejected = off_topic(index, goods, rng)
        elif kind == "truncated":
            rejected = truncated(answer, rng)
        elif kind == "repetitive":
            rejected = repetitive(answer, rng)
        else:
            rejected = confident_wrong(answer, rng)
        if rejected and rejected != answer:
            out.append(PreferencePair(prompt=prompt, chosen=answer, rejected=rejected, source=f"augment:{kind}"))
    return out


def answer_pairs(source: AnswerSource) -> list[tuple[str, str]]:
    """(prompt, good answer) from a dataset; a missing column is a one-line error."""
    out = []
    for number, row in enumerate(source.rows(), start=1):
        try:
            answer = re.sub(r"<<[^>]*>>", "", str(row[source.answer_field]))  # GSM8K's calculator annotations
            out.append((str(row[source.prompt_field]), answer))
        except KeyError as exc:
            raise KeyError(f"{source.path}:{number}: no column {exc} (set prompt_field/answer_field)") from None
    return out
