"""The recipe study behind the default trained judge: data mixtures x trainer x backbone x input length, each
run small (a subsample, one epoch), every run measured on the same held-out sets.

    flock /tmp/synthloop-heavy.lock python experiments/judge_study.py         # every variant (~1 h, 2 cores)
    python experiments/judge_study.py --only alpaca_hh_aug --train-pairs 500  # one variant, quicker

Evaluation sets (fixed for every variant, never trained on: each training source is decontaminated against
them by prompt): hh-rlhf harmless held-out part (human labels, sha256(prompt) split), and a held-out split of
alpaca_eval_prefs by prompt (GPT-4-turbo labels). For each: accuracy (ties half), the length baselines, and
`picks_longer` (the judge's share of longer picks; the labels' share is length_longer_wins). pairs/s is the
scoring rate on those sets (bf16, real lengths, 2 threads, while others may share the machine). Results
accumulate in bench/results/judge_study.json (a variant already there is skipped unless --rerun).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
HH = SHARED / "hh_rlhf" / "harmless-base_test.jsonl.gz"
ALPACA = SHARED / "alpaca_eval_prefs" / "pairs.jsonl.gz"
GSM8K = SHARED / "gsm8k" / "train.jsonl"
LOOP = ROOT / ".cache" / "judge_study" / "loops" / "quickstart_ranked"
OUT = ROOT / "bench" / "results" / "judge_study.json"


def variants(n: int) -> dict[str, dict]:
    """name -> (data, model, train) overrides. n = training pairs per run."""
    alpaca = {"path": str(ALPACA), "name": "alpaca_eval_prefs", "held_out_fraction": 0.2}
    aug = {"kinds": ["off_topic", "truncated", "repetitive", "confident_wrong"],
           "answers": [{"path": str(GSM8K), "limit": 2000}]}
    ranked = [{"path": str(LOOP), "score_field": "scores.verifier:math_answer", "limit": n // 10}]
    short = {"max_prompt_tokens": 64, "max_response_tokens": 96}
    long = {"max_prompt_tokens": 128, "max_response_tokens": 256}
    mix = {"hh_rlhf_limit": n // 4, "datasets": [{**alpaca, "train_limit": n // 2}],
           "augment": {**aug, "count": n // 4}}
    return {
        "hh_only": {"data": {"hh_rlhf_limit": n}, "model": short},
        "alpaca_only": {"data": {"hh_rlhf": None, "datasets": [{**alpaca, "train_limit": n}]}, "model": short},
        "alpaca_hh": {"data": {"hh_rlhf_limit": n // 3, "datasets": [{**alpaca, "train_limit": n - n // 3}]},
                      "model": short},
        "alpaca_hh_aug": {"data": mix, "model": short},
        "alpaca_hh_aug_long": {"data": mix, "model": long},
        "alpaca_hh_aug_trl_cross": {"data": mix, "model": {**short, "architecture": "cross_encoder"}},
        "alpaca_hh_aug_ranked": {"data": {**mix, "ranked": ranked}, "model": short},
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", nargs="*", help="variants to run (default: all)")
    ap.add_argument("--train-pairs", type=int, default=2000)
    ap.add_argument("--eval-pairs", type=int, default=600, help="per held-out set (a seeded sample)")
    ap.add_argument("--rerun", action="store_true")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for training (1: on a busy shared "
                                                           "machine two threads wait on each other)")
    args = ap.parse_args()

    from synthloop.cli.common import quiet_libraries

    quiet_libraries()
    from synthloop.judges.commands import JudgeTrainConfig, PreferenceData, evaluate_pairs, train_reward_model
    from synthloop.judges.reward_model import RewardModel

    results = json.loads(OUT.read_text()) if OUT.is_file() else {}
    results.setdefault("runs", {})
    eval_data = PreferenceData(hh_rlhf=HH, datasets=[{"path": ALPACA, "name": "alpaca_eval_prefs",
                                                      "held_out_fraction": 0.2}],
                               eval_limit=args.eval_pairs)
    sets = eval_data.eval_sets()
    results["eval_sets"] = {name: len(pairs) for name, pairs in sets.items()}
    results["notes"] = ("each run: --train-pairs pairs, 1 epoch, MiniLM backbone unless said; accuracies on the "
                        "same held-out sets; pairs_per_second measured on those sets on a shared 2-core machine")
    for name, spec in variants(args.train_pairs).items():
        if args.only and name not in args.only:
            continue
        if name in results["runs"] and not args.rerun:
            print(f"{name}: already measured (--rerun to redo)")
            continue
        cfg = JudgeTrainConfig.model_validate({"data": {"hh_rlhf": str(HH), **spec["data"]},
                                               "model": {"threads": args.threads, **spec.get("model", {})},
                                               "train": {"epochs": 1, **spec.get("train", {})}})
        run = ROOT / ".cache" / "judge_study" / name
        started = time.time()
        load = os.getloadavg()[0]
        def progress(step: int, total: int, loss: float, name: str = name, started: float = started) -> None:
            if step % 10 == 0 or step == total:
                print(f"{name}: step {step}/{total} loss {loss:.3f} ({time.time() - started:.0f} s)", flush=True)

        metrics = train_reward_model(cfg, run, resume="always", log=lambda m: print(m, flush=True),
                                     progress=progress, evaluate=False)
        train_seconds = time.time() - started
        rm = RewardModel.load(run / "model", threads=args.threads)
        row: dict = {"command": f"python experiments/judge_study.py --only {name} --train-pairs {args.train_pairs} "
                                f"--eval-pairs {args.eval_pairs}",
                     "config": json.loads(cfg.model_dump_json()), "train_pairs": metrics["train_pairs"],
                     "train_sources": metrics["train_sources"], "steps": metrics["steps"],
                     "train_seconds": round(train_seconds, 1), "loss_first": metrics["loss_first"],
                     "loss_last": metrics["loss_last"], "load_avg_start": round(load, 2), "sets": {}}
        for set_name, pairs in sets.items():
            t = time.perf_counter()
            figures = evaluate_pairs(rm, "reward_model", pairs)
            seconds = time.perf_counter() - t
            row["sets"][set_name] = {k: round(figures[k], 4) if isinstance(figures[k], float) else figures[k]
                                     for k in ("pairs", "accuracy", "length_longer_wins", "length_shorter_wins",
                                               "picks_longer", "length_bias")}
            row["sets"][set_name]["pairs_per_second"] = round(len(pairs) / seconds, 1)
        row["load_avg_end"] = round(os.getloadavg()[0], 2)
        results["runs"][name] = row
        OUT.write_text(json.dumps(results, indent=2))
        print(json.dumps({name: row["sets"]}, indent=1), flush=True)
    print(f"saved {OUT}")


if __name__ == "__main__":
    main()
