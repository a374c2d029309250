"""Latent-thought EM (BoLT) on SmolLM2-135M-Instruct, CPU: does training on self-inferred thought-augmented GSM8K
solutions beat training on the raw solutions for the same number of optimizer steps?

Runs the loop of configs/loop/latent_thought_em.yaml (any `--set` override applies) in runs/bench/<name>: round 0
scores the starting model; each round runs the E-step (N thoughts per document from the current checkpoint,
importance-weighted), the M-step (SFT on thought-augmented documents drawn by weight), the control arm (SFT on the
raw documents, the same steps) and the held-out evaluation of both arms: perplexity of held-out GSM8K test
solutions alone, and given their question in the thought slot (the task the documents teach).

    flock /tmp/synthloop-heavy.lock /work/main/.venv/bin/python experiments/latent_thought_em.py
    python experiments/latent_thought_em.py --name calibration --set rounds=1 --set tasks.per_round=16

Prints the per-round comparison and writes bench/results/<name>.json. The loop resumes from its run directory, so
a rerun after a crash only redoes the stage that was running.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # bench/common.py

ROUND_KEYS = ["eval_ppl", "control_eval_ppl", "eval_ppl_given_context", "control_eval_ppl_given_context",
              "eval_logprob", "control_eval_logprob", "eval_logprob_given_context",
              "control_eval_logprob_given_context", "estep_logp_per_token", "estep_marginal_per_token",
              "estep_gain_per_token", "estep_ess", "estep_thought_tokens", "estep_with_thought", "estep_plain",
              "estep_dropped_samples",
              "estep_tokens_per_s", "estep_failed", "sft_data", "sft_steps", "sft_loss", "control_sft_steps",
              "control_sft_loss", "seconds", "peak_rss_gib"]


def _ratio(a, b):
    return round(a / b, 4) if a is not None and b else None


def compare(rounds: list[dict]) -> list[dict]:
    """Per round: the thought arm against the control arm (ratio < 1: the thought arm's perplexity is lower)."""
    out = []
    for m in rounds:
        out.append({"round": m["round"],
                    "ppl_thought_arm": m.get("eval_ppl"), "ppl_control_arm": m.get("control_eval_ppl"),
                    "ppl_ratio": _ratio(m.get("eval_ppl"), m.get("control_eval_ppl")),
                    "ppl_given_question_thought_arm": m.get("eval_ppl_given_context"),
                    "ppl_given_question_control_arm": m.get("control_eval_ppl_given_context"),
                    "ppl_given_question_ratio": _ratio(m.get("eval_ppl_given_context"),
                                                       m.get("control_eval_ppl_given_context"))})
    return out


def paired(run: Path, rounds: list[dict], *, resamples: int = 2000) -> list[dict]:
    """Per round, document by document: the thought arm's log-probability minus the control arm's (per document
    token, summed over documents), how many held-out documents the thought arm finds likelier, and a 95% bootstrap
    interval over documents. Positive: the thought arm is better."""
    import json
    import random

    out = []
    for m in rounds:
        if not m["round"]:
            continue
        mine = run / f"round-{m['round']:03d}" / "evaluate.jsonl"
        theirs = run / f"round-{m['round']:03d}" / "evaluate-control.jsonl"
        if not (mine.is_file() and theirs.is_file()):
            continue
        a = {r["task_id"]: r for r in map(json.loads, mine.read_text().splitlines())}
        b = {r["task_id"]: r for r in map(json.loads, theirs.read_text().splitlines())}
        row: dict = {"round": m["round"], "documents": len(a)}
        for kind in ("alone", "given_context"):
            if not all(f"logprob_{kind}" in r for r in a.values()):
                continue
            diffs = [(a[k][f"logprob_{kind}"] - b[k][f"logprob_{kind}"], a[k][f"tokens_{kind}"]) for k in a]
            rng = random.Random(0)
            boot = sorted(sum(d for d, _ in sample) / sum(t for _, t in sample)
                          for sample in ([rng.choice(diffs) for _ in diffs] for _ in range(resamples)))
            row[kind] = {"logprob_diff_per_token": round(sum(d for d, _ in diffs) / sum(t for _, t in diffs), 4),
                         "ci95": [round(boot[int(0.025 * resamples)], 4), round(boot[int(0.975 * resamples)], 4)],
                         "thought_arm_better_docs": sum(1 for d, _ in diffs if d > 0)}
        out.append(row)
    return out


def stage_seconds(rounds: list[dict]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for m in rounds:
        for k, v in m.items():
            if k.startswith("seconds_") and v is not None:
                totals[k[len("seconds_"):]] = round(totals.get(k[len("seconds_"):], 0.0) + v, 1)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/loop/latent_thought_em.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="a config override, key=value")
    parser.add_argument("--name", default="latent_thought_em", help="run name and results file name")
    parser.add_argument("--analyze", action="store_true", help="only (re)compute the per-document paired comparison "
                        "of a finished run from its files and add it to bench/results/<name>.json (no model)")
    args = parser.parse_args()
    os.chdir(ROOT)
    if args.analyze:
        import json

        results = ROOT / "bench" / "results" / f"{args.name}.json"
        data = json.loads(results.read_text())
        data["paired"] = paired(Path(data["run"]), data["rounds"])
        results.write_text(json.dumps(data, indent=2) + "\n")
        print(json.dumps(data["paired"], indent=1))
        return

    from common import machine, save  # bench/common.py (this script's directory is on sys.path)

    from synthloop.cli.common import quiet_libraries
    from synthloop.configs import dump_yaml, load_config
    from synthloop.loops.config import LoopConfig
    from synthloop.loops.controller import LoopController

    quiet_libraries()
    import datasets

    datasets.disable_progress_bars()
    host = machine()
    cfg = load_config(LoopConfig, args.config, [*args.overrides, "output_dir=runs/bench", f"name={args.name}"])
    started = time.time()

    def log(message: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} [{time.time() - started:6.0f} s] {message}", flush=True)

    controller = LoopController(cfg, cfg.output_dir / args.name, config_yaml=dump_yaml(cfg), progress=False, log=log)
    summary = controller.run_loop()
    wall = time.time() - started
    rounds = summary["rounds"]
    table = compare(rounds)
    print("\nround  ppl thought-arm  ppl control  ratio   | ppl|question thought  control  ratio")
    for row in table:
        def f(v, fmt="{:.3f}"):
            return fmt.format(v) if v is not None else "-"
        print(f"{row['round']:>5}  {f(row['ppl_thought_arm']):>14}  {f(row['ppl_control_arm']):>11}  "
              f"{f(row['ppl_ratio'], '{:.4f}'):>6}  | {f(row['ppl_given_question_thought_arm']):>20}  "
              f"{f(row['ppl_given_question_control_arm']):>7}  {f(row['ppl_given_question_ratio'], '{:.4f}'):>6}")
    stages = stage_seconds(rounds)
    print(f"\nwall {wall:.0f} s (this session); seconds per stage over all rounds: {stages}")
    result = {
        "what": "Latent-thought EM (BoLT) vs training on the raw documents for the same optimizer steps; held-out "
                "perplexity of GSM8K test solutions (alone, and given their question in the thought slot)",
        "command": "flock /tmp/synthloop-heavy.lock /work/main/.venv/bin/python experiments/latent_thought_em.py "
                   + " ".join(f"--set {o}" for o in args.overrides) + (f" --name {args.name}"
                                                                      if args.name != "latent_thought_em" else ""),
        "config": cfg.model_dump(mode="json"),
        "comparison": table,
        "paired": paired(cfg.output_dir / args.name, rounds),
        "rounds": [{"round": m["round"], **{k: m.get(k) for k in ROUND_KEYS}} for m in rounds],
        "seconds_per_stage": stages,
        "wall_seconds_this_session": round(wall, 1),
        "loop_seconds_all_sessions": round(sum(m.get("seconds") or 0 for m in rounds), 1),
        "peak_rss_gib": summary.get("peak_rss_gib"),
        "run": str(cfg.output_dir / args.name),
        "machine": host,
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    }
    save(args.name, result)


if __name__ == "__main__":
    main()
