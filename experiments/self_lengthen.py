"""Self-Lengthen on SmolLM2-135M-Instruct on CPU: the loop of configs/loop/self_lengthen.yaml, measured per round.

    flock /tmp/synthloop-heavy.lock .venv/bin/python experiments/self_lengthen.py  # the full config: 30+ min, 2 cores
    flock /tmp/synthloop-heavy.lock bash experiments/self_lengthen_measured.sh      # the measured run: 2 small rounds
    .venv/bin/python experiments/self_lengthen.py --results-only                    # the JSON again, from the run dir

Runs (or resumes: rerun the same command after a kill) the loop in .cache/bench/self_lengthen/, then writes
bench/results/self_lengthen.json: per round the length target, drafts and extensions (words, growth, what the
filters dropped and why), training rows and losses of both roles, and the held-out figures (S_l overall and per
set, words, repetition, relevance to the prompt, the LLM judge's quality score, truncation), the change from the
baseline, examples (held-out answers before/after, one draft and its extension), seconds and memory per stage.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROUND_KEYS = [
    "label", "target_words", "tasks", "drafts", "draft_words", "extended", "extended_words", "growth",
    "extensions_kept", "generator_rows", "extender_rows", "data_words", "generator_sft_loss", "generator_sft_steps",
    "extender_sft_loss", "extender_sft_steps", "eval_sl", "eval_sl_en", "eval_sl_ruler", "eval_words",
    "eval_words_en", "eval_words_ruler", "eval_required", "eval_tokens", "eval_truncated", "eval_repetition",
    "eval_relevance", "eval_quality", "eval_quality_failed", "eval_accuracy", "sample_tokens_per_s",
    "extend_tokens_per_s", "seconds", "peak_rss_gib",
]
QUALITY_JUDGE_NOTE = (
    "Quality: synthloop's LLM judge (judges/llm_judge.py, pointwise 1-10) on the base SmolLM2-135M-Instruct in "
    "the engine's dtype (bf16 in the measured run), the same fixed model in every round. "
    "Chosen over the MiniLM reward model because the reward model was "
    "trained on hh-rlhf harmlessness pairs and reads only the first 96 tokens of a response, so it cannot see "
    "the added length or judge writing; the LLM judge reads the instruction and up to 3,000 characters of the "
    "answer. Caveat: SmolLM2-135M is a weak judge (bench/results/judge_accuracy.json: 0.48 pairwise accuracy on "
    "held-out hh-rlhf, chance 0.5), so the quality column is weak evidence; repetition (share of repeated "
    "3-grams) and relevance (MiniLM cosine of answer to prompt) are reported beside it as programmatic checks.")


def _short(text: str, n: int = 700) -> str:
    return text if len(text) <= n else text[:n] + " [...]"


def examples(run: Path, last: int) -> dict[str, Any]:
    from synthloop.runs.jsonl import read_jsonl
    from synthloop.runs.run_dir import RunDir

    out: dict[str, Any] = {}
    answers = {r: {rec["id"]: rec for rec in RunDir(run / f"round-{r:03d}" / "eval").iter_records()}
               for r in (0, last)}
    lengths = {r: {row["id"]: row for row in read_jsonl(run / f"round-{r:03d}" / "eval-length.jsonl")}
               for r in (0, last)}
    picked = []
    for wanted in ("en", "ruler"):
        picked += [i for i, row in sorted(lengths[0].items()) if row["set"] == wanted][:1]
    out["held_out"] = [{
        "prompt": _short(answers[0][i]["messages"][-1]["content"], 300), "required": lengths[0][i]["required"],
        "baseline": {"words": lengths[0][i]["words"], "sl": lengths[0][i]["sl"], "quality": lengths[0][i]["quality"],
                     "text": _short(answers[0][i]["samples"][0]["text"])},
        f"round_{last}": {"words": lengths[last][i]["words"], "sl": lengths[last][i]["sl"],
                          "quality": lengths[last][i]["quality"],
                          "text": _short(answers[last][i]["samples"][0]["text"])},
    } for i in picked]
    kept = list(RunDir(run / "round-001" / "filtered").iter_records()) if (run / "round-001/filtered").is_dir() else []
    if kept:
        item = kept[0]
        out["extension_round_1"] = {"instruction": item["instruction"], "draft_words": item["draft_words"],
                                    "words": item["words"], "draft": _short(item["draft"]),
                                    "parts": [_short(p, 300) for p in item["parts"]],
                                    "extended": _short(item["text"], 1200)}
    dropped_path = run / "round-001" / "filtered" / "filtered.jsonl"
    dropped = list(read_jsonl(dropped_path))[:3] if dropped_path.is_file() else []
    out["dropped_round_1"] = [{"reason": d["reason"], "text": _short(d["record"]["text"], 400)} for d in dropped]
    return out


def answer_figures(run: Path, round_: int) -> dict[str, Any]:
    """Figures recomputed from a round's eval-length.jsonl: looping answers (their S_l counted as 0, and S_l over
    the others), finished (not cut at max_tokens) answers, and how the quality judge's scores spread."""
    from collections import Counter

    from synthloop.loops.recipes.self_lengthen.stages import LOOPING_SHARE
    from synthloop.runs.jsonl import read_jsonl

    rows = list(read_jsonl(run / f"round-{round_:03d}" / "eval-length.jsonl"))
    clean = [r for r in rows if r["repetition"] <= LOOPING_SHARE]
    mean = lambda xs: round(sum(xs) / len(xs), 2) if xs else None  # noqa: E731
    return {"eval_looping": mean([float(r["repetition"] > LOOPING_SHARE) for r in rows]),
            "eval_sl_loops_zero": mean([r["sl"] if r["repetition"] <= LOOPING_SHARE else 0.0 for r in rows]),
            "eval_sl_nonlooping": mean([r["sl"] for r in clean]), "eval_nonlooping": len(clean),
            "eval_words_nonlooping": mean([r["words"] for r in clean]),
            "eval_finished": mean([float(r["finish_reason"] == "stop") for r in rows]),
            "eval_quality_counts": dict(sorted(Counter(r["quality"] for r in rows if r["quality"] is not None)
                                               .items()))}


def results(run: Path, summary: dict[str, Any], config, wall: float, argv: list[str]) -> dict[str, Any]:
    from bench.common import machine
    from synthloop.loops.state import LoopState

    state = LoopState.load(run / "state.json")
    rounds = []
    for record in state.done_rounds():
        m = record.metrics
        row = {"round": record.round, **{k: m.get(k) for k in ROUND_KEYS if m.get(k) is not None},
               **answer_figures(run, record.round)}
        stages = record.stages
        if "extend" in stages:
            row["extend_failed"] = stages["extend"].outputs.get("failed", {})
        if "filter" in stages:
            row["filter_dropped"] = stages["filter"].outputs.get("dropped", {})
        row["seconds_per_stage"] = {name: s.seconds for name, s in stages.items()}
        row["peak_rss_gib_per_stage"] = {name: s.peak_rss_gib for name, s in stages.items()}
        rounds.append(row)
    base, final = rounds[0], rounds[-1]
    change = {k: round(final[k] - base[k], 3) for k in ("eval_sl", "eval_sl_en", "eval_sl_ruler", "eval_sl_loops_zero",
                                                       "eval_sl_nonlooping", "eval_looping", "eval_finished",
                                                       "eval_words", "eval_quality", "eval_repetition",
                                                       "eval_relevance")
              if final.get(k) is not None and base.get(k) is not None}
    ev = config.tasks.eval
    return {
        "what": f"Self-Lengthen (Generator + Extender, both {config.engine.model}; engine {config.engine.kind}, "
                f"dtype {config.engine.dtype}) on CPU, "
                f"evaluated on held-out LongBench-Write prompts (sets {ev.sets}: English prompts asking for "
                f"<= {ev.max_length} words, and the English LongWrite-Ruler prompts rewritten at {ev.ruler_lengths} "
                "words): S_l is LongWriter's length score (0-100, judges/length.py); eval_sl_loops_zero scores 0 "
                "for answers whose repeated-3-gram share exceeds 0.25 (they loop until max_tokens)",
        "command": "flock /tmp/synthloop-heavy.lock bash experiments/self_lengthen_measured.sh  # = python "
                   "experiments/self_lengthen.py " + " ".join(argv),
        "machine": machine(),
        "run_dir": str(run),
        "status": summary["status"],
        "wall_seconds_this_session": round(wall, 1) if wall else None,
        "loop_seconds_all_sessions": round(sum(r.get("seconds") or 0 for r in rounds), 1),
        "peak_rss_gib": summary.get("peak_rss_gib") or max((r.get("peak_rss_gib") or 0 for r in rounds), default=None),
        "quality_judge": QUALITY_JUDGE_NOTE,
        "change_final_vs_baseline": change,
        "rounds": rounds,
        "examples": examples(run, rounds[-1]["round"]),
        "config": config.model_dump(mode="json"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "loop" / "self_lengthen.yaml")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="key=value overrides")
    parser.add_argument("--run-dir", type=Path, default=ROOT / ".cache" / "bench" / "self_lengthen")
    parser.add_argument("--name", default="self_lengthen", help="results file: bench/results/<name>.json")
    parser.add_argument("--results-only", action="store_true",
                        help="Recompute the results file from a finished run directory (no model runs); keeps the "
                             "wall time and command the results file already holds.")
    args = parser.parse_args()

    import warnings

    warnings.filterwarnings("ignore", message="TRL currently supports vLLM")
    from bench.common import save
    from synthloop.configs import dump_yaml, load_config
    from synthloop.loops.config import LoopConfig
    from synthloop.loops.controller import LoopController
    from synthloop.loops.report import round_table

    if args.results_only:
        saved = ROOT / "bench" / "results" / f"{args.name}.json"
        if saved.is_file():
            old = json.loads(saved.read_text())
        else:  # a run stopped before it wrote its results (e.g. interrupted after its first rounds)
            manifest = json.loads((args.run_dir / "manifest.json").read_text())
            old = {"status": manifest.get("status"), "peak_rss_gib": None, "wall_seconds_this_session": None,
                   "command": "flock /tmp/synthloop-heavy.lock bash experiments/self_lengthen_measured.sh"}
        config = load_config(LoopConfig, args.run_dir / "config.yaml", [])
        data = results(args.run_dir.resolve(), old, config, old["wall_seconds_this_session"] or 0.0, [])
        data["command"] = old["command"]
        if old.get("note"):
            data["note"] = old["note"]
        print(json.dumps(data["change_final_vs_baseline"], indent=1))
        save(args.name, data)
        return
    config = load_config(LoopConfig, args.config, args.sets)
    started = time.time()
    controller = LoopController(config, args.run_dir, config_yaml=dump_yaml(config), progress=False,
                                log=lambda m: print(time.strftime("%H:%M:%S"), m, flush=True))
    summary = controller.run_loop()
    data = results(controller.run.path, summary, config, time.time() - started, sys.argv[1:])
    from rich.console import Console

    Console(width=220).print(round_table(controller.state, title=str(controller.run.path)))
    print(json.dumps(data["change_final_vs_baseline"], indent=1))
    save(args.name, data)


if __name__ == "__main__":
    main()
