"""Training data from judged samples: SFT examples from the accepted ones, preference pairs from the ranking.

A judged record is one task with its N samples, each carrying a combined `score` and `accepted`
(see `synthloop.loops.judging`). Rows come out in TRL's conversational formats, with the same prompt
messages the samples were drawn with, so training sees exactly what the engine was asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from synthloop.text import normal_form


def _prompt(record: dict[str, Any]) -> list[dict[str, str]]:
    return [dict(m) for m in record["messages"]]


def ranked(samples: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """(index, sample) best first: accepted before rejected, then by combined score, ties by sample order. The
    verdict comes first because a combined score may mix scales (a rank-only reward model's logit beside a
    verifier's 0-1): a rejected answer must never outrank an accepted one."""
    return sorted(enumerate(samples), key=lambda pair: (not pair[1]["accepted"], -pair[1]["score"], pair[0]))


def sft_examples(records: Iterable[dict[str, Any]], *, max_per_task: int | None = None,
                 include_truncated: bool = False) -> Iterator[dict[str, Any]]:
    """Accepted samples as prompt-completion rows; identical answers (up to whitespace and case) are kept once,
    at most `max_per_task` per task, best combined score first (ties: sample order), so `max_per_task: 1` keeps
    the best accepted answer."""
    for record in records:
        seen: set[str] = set()
        for _, sample in ranked(record["samples"]):
            if not sample["accepted"] or (sample.get("finish_reason") == "length" and not include_truncated):
                continue
            key = normal_form(sample["text"])
            if key in seen or not key:
                continue
            seen.add(key)
            yield {"prompt": _prompt(record), "completion": [{"role": "assistant", "content": sample["text"]}],
                   "task_id": record["id"], "score": sample["score"]}
            if max_per_task is not None and len(seen) >= max_per_task:
                break


def preference_pairs(records: Iterable[dict[str, Any]], *, min_margin: float = 0.0, pairs_per_task: int = 1,
                     require_accepted: bool = True) -> Iterator[dict[str, Any]]:
    """Best vs worst of N per task (see `ranked`: accepted answers above rejected ones, then by combined score).
    With `pairs_per_task` k > 1: the k best against the k worst, paired in order. An accepted answer pairs with a
    rejected one whatever their scores (the verdict is the margin); two answers with the same verdict need a score
    margin above `min_margin`. By default the chosen answer must be accepted; identical texts never pair."""
    for record in records:
        order = ranked(record["samples"])
        k = min(pairs_per_task, len(order) // 2)
        best, worst = order[:k], list(reversed(order))[:k]
        for (bi, chosen), (wi, rejected) in zip(best, worst, strict=True):
            same_verdict = chosen["accepted"] == rejected["accepted"]
            if bi == wi or (same_verdict and chosen["score"] - rejected["score"] <= min_margin):
                continue
            if require_accepted and not chosen["accepted"]:
                continue
            if normal_form(chosen["text"]) == normal_form(rejected["text"]):
                continue
            yield {
                "prompt": _prompt(record),
                "chosen": [{"role": "assistant", "content": chosen["text"]}],
                "rejected": [{"role": "assistant", "content": rejected["text"]}],
                "task_id": record["id"],
                "score_chosen": chosen["score"],
                "score_rejected": rejected["score"],
            }
