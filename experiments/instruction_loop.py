"""The instruction-following loop measured: IFEval on all 541 prompts for the base model (round 0) and every round
of `configs/loop/instruction_following.yaml`, from the loop's own run directory.

    synthloop judge train configs/judge/judge.yaml                                     # once: the ranking judge
    flock /tmp/synthloop-heavy.lock synthloop loop configs/loop/instruction_following.yaml
    python experiments/instruction_loop.py [--run runs/instruction_following]          # -> bench/results/...

Writes bench/results/instruction_loop.json: IFEval prompt-level strict / loose and instruction-level accuracy per
round (round 0 = the base model, greedy, in the same run), per constraint family before / after, the paired
comparison base vs final at each level (prompts gained / lost, McNemar's exact p), the data funnel per round
(instructions written, kept by the decontamination, with an answer the IFEval verifier passed, with an answer the
whole panel accepted, trained on), and the quality figures of the held-out answers (the reward model's mean
score, mean length in words and tokens, the share cut at max_tokens).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LEVELS = ("prompt_strict", "prompt_loose", "instruction_strict", "instruction_loose")
RM = "reward_model"
IFEVAL = "verifier:ifeval"


def funnel(run: Path, round_: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """How many instructions were written, kept, passed and trained on in one round."""
    from synthloop.loops.judging import iter_judged
    from synthloop.runs.jsonl import read_jsonl

    judged = list(iter_judged(run / f"round-{round_:03d}" / "judged"))
    samples = [s for r in judged for s in r["samples"]]
    dropped = list(read_jsonl(run / f"round-{round_:03d}" / "tasks_dropped.jsonl"))
    reasons: dict[str, int] = {}
    for row in dropped:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    return {
        "instructions_written": metrics.get("tasks_written"),
        "instructions_filtered_by_program": metrics.get("tasks_program_filtered"),
        "instructions_dropped_as_eval_copies": len(dropped), "dropped_by_reason": reasons,
        "instructions_kept": metrics.get("tasks"),
        "instructions_with_a_verifier_pass": sum(any(s["scores"].get(IFEVAL) == 1.0 for s in r["samples"])
                                                 for r in judged),
        "instructions_with_an_accepted_answer": sum(any(s["accepted"] for s in r["samples"]) for r in judged),
        "samples": len(samples),
        "samples_verifier_pass": sum(s["scores"].get(IFEVAL) == 1.0 for s in samples),
        "samples_accepted": sum(s["accepted"] for s in samples),
        "samples_rejected_by_guard_only": sum(s["scores"].get(IFEVAL) == 1.0 and not s["accepted"] for s in samples),
        "sft_rows": metrics.get("sft_data"), "dpo_pairs": metrics.get("dpo_pairs"),
    }


def summarize(run: Path) -> dict[str, Any]:
    from synthloop.judges.verifiers.ifeval_metrics import compare_scores
    from synthloop.loops.heldout import load_ifeval_scores

    state = json.loads((run / "state.json").read_text())
    summary_path = run / "summary.json"  # absent while the loop runs or after it was killed
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    done = [r for r in state["rounds"] if r["status"] == "done"]
    if not done:
        raise SystemExit(f"error: {run}: no finished round yet (not even round 0's baseline evaluation)")
    scores = {r["round"]: load_ifeval_scores(run / f"round-{r['round']:03d}") for r in done}
    base, final = scores[done[0]["round"]], scores[done[-1]["round"]]
    rounds = []
    for r in done:
        m, s = r["metrics"], scores[r["round"]]
        row = {"round": r["round"], "label": r["label"], **{f"ifeval_{lvl}": getattr(s, lvl) for lvl in LEVELS},
               "families_instruction_strict": {k: round(g.strict, 4) for k, g in s.families.items()},
               "heldout_reward_model_mean": m.get(f"eval_judge.{RM}"), "heldout_words_mean": m.get("eval_words"),
               "heldout_tokens_mean": m.get("eval_tokens"), "heldout_truncated": m.get("eval_truncated"),
               "heldout_panel_accepted": m.get("eval_accuracy"), "seconds": m.get("seconds"),
               "seconds_per_stage": {k[len("seconds_"):]: v for k, v in m.items() if k.startswith("seconds_")},
               "peak_rss_gib": m.get("peak_rss_gib")}
        if r["round"] > 0:
            row["vs_base_prompt_strict"] = {k: m.get(f"eval_ifeval_{k}") for k in ("gained", "lost", "p_value")}
            row["data"] = funnel(run, r["round"], m)
            row["train"] = {k: m.get(k) for k in ("sft_examples", "sft_steps", "sft_loss", "dpo_examples",
                                                  "dpo_steps", "dpo_loss")}
        rounds.append(row)
    comparison = {lvl: compare_scores(base, final, lvl).model_dump() for lvl in LEVELS}
    families = {name: {"instructions": change["instructions"], "before": round(change["before"], 4),
                       "after": round(change["after"], 4)}
                for name, change in comparison["instruction_strict"]["families"].items()}
    for level in comparison.values():
        level.pop("families")
    gain = final.prompt_strict - base.prompt_strict
    return {
        "ifeval_prompt_strict_base": base.prompt_strict, "ifeval_prompt_strict_final": final.prompt_strict,
        "ifeval_prompt_loose_base": base.prompt_loose, "ifeval_prompt_loose_final": final.prompt_loose,
        "ifeval_instruction_strict_base": base.instruction_strict,
        "ifeval_instruction_strict_final": final.instruction_strict,
        "ifeval_instruction_loose_base": base.instruction_loose,
        "ifeval_instruction_loose_final": final.instruction_loose,
        "eval_prompts": base.prompts,
        "target": "+5 points prompt-level strict over the base model",
        "gain_prompt_strict_points": round(100 * gain, 2), "target_met": gain >= 0.05,
        "comparison_base_vs_final": comparison, "families_instruction_strict_base_vs_final": families,
        "rounds": rounds,
        "rounds_finished": [r["round"] for r in done],
        "run": str(run), "status": summary.get("status", "unfinished (no summary.json)"),
        "machine": summary.get("machine"),
        "wall_seconds": round(sum(r.get("seconds") or 0 for r in rounds), 1),
        "config": (run / "config.yaml").read_text() if (run / "config.yaml").is_file() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "instruction_following",
                        help="The loop's run directory.")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "instruction_loop.json")
    parser.add_argument("--command", default=None, help="The exact command that ran the loop (recorded as is).")
    parser.add_argument("--note", action="append", default=[], help="A note recorded in the JSON (repeatable).")
    args = parser.parse_args()
    result = summarize(args.run)
    result["command"] = args.command
    result["notes"] = args.note
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"IFEval prompt-level strict {result['ifeval_prompt_strict_base']:.3f} -> "
          f"{result['ifeval_prompt_strict_final']:.3f} ({result['gain_prompt_strict_points']:+.1f} points; "
          f"McNemar p={result['comparison_base_vs_final']['prompt_strict']['p_value']:.3g}), loose "
          f"{result['ifeval_prompt_loose_base']:.3f} -> {result['ifeval_prompt_loose_final']:.3f}")
    for row in result["rounds"]:
        data = row.get("data", {})
        print(f"round {row['round']} ({row['label']}): strict {row['ifeval_prompt_strict']:.3f}, loose "
              f"{row['ifeval_prompt_loose']:.3f}, instr. {row['ifeval_instruction_strict']:.3f}; RM "
              f"{row['heldout_reward_model_mean']}, {row['heldout_words_mean']} words"
              + (f"; written {data['instructions_written']}, kept {data['instructions_kept']}, verifier pass "
                 f"{data['instructions_with_a_verifier_pass']}, SFT {data['sft_rows']}, pairs {data['dpo_pairs']}"
                 if data else ""))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
