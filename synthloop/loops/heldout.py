"""Held-out figures beside accuracy, computed from an evaluation's judged answers (`EvaluateStage` adds them to
its metrics, so the round table and summary.json carry them):

- `<prefix>_words`: mean words of the answers; `<prefix>_judge.<name>`: each judge's mean score (a rank-only
  reward model's too): whether quality holds while a verifier's pass rate rises.
- IFEval's own metrics when every held-out task's reference is an IFEval row (`tasks.eval: {kind: ifeval}`, or
  any set with instruction_id_list / kwargs references): `<prefix>_ifeval_prompt_strict|prompt_loose|
  instruction_strict|instruction_loose`, instruction-level strict accuracy per family
  (`<prefix>_ifeval_family.<family>`), and, from round 1 on, the paired comparison with the starting model's
  answers on the same prompts (prompt-level strict: `<prefix>_ifeval_gained`, `_lost`, McNemar's exact
  `_p_value`). The full scores (every prompt's verdicts) go to `round-NNN/<out>-ifeval.json`; round 0's
  `eval-ifeval.json` is the baseline of the comparison.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from synthloop.loops.context import RoundContext
from synthloop.runs.jsonl import atomic_write


def is_ifeval_row(reference: Any) -> bool:
    return isinstance(reference, dict) and "instruction_id_list" in reference


def heldout_metrics(ctx: RoundContext, rows: list[dict[str, Any]], records: list[dict[str, Any]], out: str,
                    prefix: str) -> dict[str, Any]:
    """The extra figures of one evaluation: `rows` are the held-out tasks, `records` their judged answers."""
    samples = [s for r in records for s in r["samples"]]
    metrics: dict[str, Any] = {}
    if samples:
        metrics[f"{prefix}_words"] = round(statistics.fmean(len(s["text"].split()) for s in samples), 1)
    scores: dict[str, list[float]] = {}
    for sample in samples:
        for name, value in (sample.get("scores") or {}).items():
            if isinstance(value, int | float) and not math.isnan(value):
                scores.setdefault(name, []).append(float(value))
    metrics.update({f"{prefix}_judge.{name}": round(statistics.fmean(v), 4) for name, v in scores.items()})
    if rows and all(is_ifeval_row(row.get("reference")) for row in rows):
        metrics.update(ifeval_metrics(ctx, rows, records, out, prefix))
    return metrics


def ifeval_metrics(ctx: RoundContext, rows: list[dict[str, Any]], records: list[dict[str, Any]], out: str,
                   prefix: str) -> dict[str, Any]:
    from synthloop.judges.verifiers.ifeval_metrics import IFEvalScores, compare_scores, ifeval_scores

    answers = {r.get("task_id"): (r["samples"][0]["text"] if r["samples"] else None) for r in records}
    scores = ifeval_scores([answers.get(row["task_id"]) for row in rows], [row["reference"] for row in rows])
    atomic_write(ctx.dir / f"{out}-ifeval.json", scores.model_dump_json())
    p = f"{prefix}_ifeval"
    metrics: dict[str, Any] = {f"{p}_{level}": round(getattr(scores, level), 4) for level in (
        "prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")}
    metrics[f"{p}_prompts"] = scores.prompts
    metrics.update({f"{p}_family.{name}": round(group.strict, 4) for name, group in scores.families.items()})
    baseline = ctx.run_dir / "round-000" / "eval-ifeval.json"
    if ctx.round > 0 and baseline.is_file():
        before = IFEvalScores.model_validate(json.loads(baseline.read_text()))
        if before.ids == scores.ids:  # the same prompts (a changed eval set is not compared)
            diff = compare_scores(before, scores, "prompt_strict")
            metrics.update({f"{p}_gained": diff.gained, f"{p}_lost": diff.lost,
                            f"{p}_p_value": round(diff.p_value, 4)})
    return metrics


def load_ifeval_scores(round_dir: Path, out: str = "eval"):
    """The IFEval scores an evaluation saved (`<out>-ifeval.json`), or None."""
    from synthloop.judges.verifiers.ifeval_metrics import IFEvalScores

    path = Path(round_dir) / f"{out}-ifeval.json"
    return IFEvalScores.model_validate(json.loads(path.read_text())) if path.is_file() else None
