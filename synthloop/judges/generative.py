"""Training data for a generative judge (JudgeLM, Zhu et al. 2023): teacher judgments -> chat records.

A teacher (any `Judge` with a pairwise mode, e.g. an `LLMJudge` on a strong engine) compares answer
pairs; each verdict becomes one SFT record in TRL's `messages` format: the user turn is the judge
prompt (question, answers, optionally a reference), the assistant turn is JudgeLM's output format,
"<score A> <score B>" on the first line and the explanation after it. JudgeLM's augmentations:
- swap augmentation: each pair also appears with the answers exchanged (and the scores with them);
- reference support / reference drop: a pair with a reference is shown with it, except with
  probability `reference_drop`, so the fine-tuned judge works with and without references.

    records = judge_sft_records(pairs, teacher.compare(pairs), reference_drop=0.5)
    write_records(records, "runs/judge-sft-data")            # then SFT with TRL (synthloop.loops)
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthloop.judges.base import Judge, PairItem, Preference

SYSTEM = "You are a helpful and precise assistant for checking the quality of two answers."

_TEMPLATE = (
    "[Question]\n{question}\n\n{reference}[The Start of Assistant 1's Answer]\n{a}\n[The End of Assistant 1's Answer]"
    "\n\n[The Start of Assistant 2's Answer]\n{b}\n[The End of Assistant 2's Answer]\n\n[System]\n"
    "We would like to request your feedback on the performance of two AI assistants in response to the user "
    "question displayed above.{ref_note}\nPlease rate the helpfulness, relevance, accuracy, and level of detail of "
    "their responses. Each assistant receives an overall score on a scale of 1 to 10, where a higher score "
    "indicates better overall performance.\nPlease first output a single line containing only two values "
    "indicating the scores for Assistant 1 and 2, respectively. The two scores are separated by a space. In the "
    "subsequent line, please provide a comprehensive explanation of your evaluation, avoiding any potential bias "
    "and ensuring that the order in which the responses were presented does not affect your judgment."
)


def judge_prompt(question: str, a: str, b: str, reference: str | None = None) -> str:
    ref = f"[The Start of Reference Answer]\n{reference}\n[The End of Reference Answer]\n\n" if reference else ""
    note = " The reference answer is given; judge the answers against it." if reference else ""
    return _TEMPLATE.format(question=question, reference=ref, a=a, b=b, ref_note=note)


def _fmt(score: float) -> str:
    return f"{score:g}"


def judge_sft_records(pairs: Sequence[PairItem], verdicts: Sequence[Preference], *, swap: bool = True,
                      reference_drop: float = 0.5, seed: int = 0, skip_failed: bool = True) -> list[dict[str, Any]]:
    """One record per (pair, order): the teacher's scores and rationale as the assistant's reply."""
    if len(pairs) != len(verdicts):
        raise ValueError(f"{len(pairs)} pairs but {len(verdicts)} verdicts")
    rng = random.Random(seed)
    out = []
    for i, (pair, verdict) in enumerate(zip(pairs, verdicts, strict=True)):
        if verdict.score_a is None or verdict.score_b is None:
            if skip_failed:
                continue
            raise ValueError(f"pair {i}: the teacher gave no scores ({verdict.rationale})")
        for swapped in (False, True) if swap else (False,):
            a, b = (pair.b, pair.a) if swapped else (pair.a, pair.b)
            sa, sb = (verdict.score_b, verdict.score_a) if swapped else (verdict.score_a, verdict.score_b)
            reference = pair.reference if pair.reference not in (None, "") else None
            dropped = reference is not None and rng.random() < reference_drop
            shown = None if dropped else reference
            rationale = verdict.rationale or ""
            if swapped:  # the explanation names positions: keep it consistent with the swapped order
                rationale = (rationale.replace("Assistant 1", "\0").replace("Assistant 2", "Assistant 1")
                             .replace("\0", "Assistant 2"))
            out.append({
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": judge_prompt(pair.prompt, a, b, None if shown is None else
                                                             str(shown))},
                    {"role": "assistant", "content": f"{_fmt(sa)} {_fmt(sb)}\n{rationale}".strip()},
                ],
                "pair": i, "swapped": swapped, "reference": "shown" if shown is not None else
                ("dropped" if dropped else "none"),
            })
    return out


def build_judge_sft_data(pairs: Sequence[PairItem], teacher: Judge, out: str | Path, *, swap: bool = True,
                         reference_drop: float = 0.5, seed: int = 0) -> Path:
    """Ask `teacher` for verdicts on every pair (one batch) and write the SFT records as a run directory."""
    from synthloop.runs.jsonl import AppendLog
    from synthloop.runs.run_dir import RunDir

    verdicts = teacher.compare(list(pairs))
    records = judge_sft_records(pairs, verdicts, swap=swap, reference_drop=reference_drop, seed=seed)
    identity = {"kind": "judge_sft_data", "teacher": teacher.describe(), "pairs": len(pairs), "swap": swap,
                "reference_drop": reference_drop, "seed": seed}
    run = RunDir.open(out, identity=identity, kind="judge_sft_data", resume="always")
    for part in run.record_parts():
        part.unlink()
    with AppendLog(run.records_dir / "part-00000.jsonl") as log:
        for i, record in enumerate(records):
            log.write({"id": i, **record, "provenance": {"teacher": teacher.describe()}})
    run.update_manifest(status="completed", counts={"kept": len(records), "pairs": len(pairs)})
    run.close()
    return run.path
