"""Accuracy of the default trained judge (configs/judge/judge.yaml) on every preference set we hold out, beside the
length baselines, chance, and its length bias.

    flock /tmp/synthloop-heavy.lock python experiments/judge_accuracy.py          # trains the default judge if needed
    python experiments/judge_accuracy.py --model-dir runs/judge                   # measure an existing run
    python experiments/judge_accuracy.py --model-dir .cache/bench/judge_x --set model.architecture=cross_encoder \
        --out bench/results/judge_accuracy_cross_encoder.json                   # a variant, in its own file

Sets (none is ever trained on: every training source is decontaminated against them by prompt):
- hh_rlhf_held_out: hh-rlhf harmless, the sha256(prompt) < 0.2 part (436 pairs; human labels);
- alpaca_eval_prefs_held_out: alpaca_eval_prefs split by prompt, the sha256(prompt) < 0.2 part (GPT-4-turbo labels,
  length-balanced by construction);
- no other human-labelled pairwise set installs offline here (see `other_sets_searched`).

Per set: `accuracy` (ties count half; which response is shown first is randomised, seeded), `length_longer_wins`
(= the share of pairs whose labels preferred the longer response), `length_shorter_wins`, `picks_longer` (the
judge's share of longer picks) and `length_bias` = picks_longer - length_longer_wins. The target: beat both
length baselines and chance on every set, |length_bias| <= 0.10. Saves bench/results/judge_accuracy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CONFIG = ROOT / "configs" / "judge" / "judge.yaml"
OTHER_SETS = {
    "bigbench (PyPI)": "only version 0.0.1 is served: the BIG-bench API code, no task JSONs (no hhh_alignment)",
    "fschat 0.2.36": "the llm_judge code only; MT-Bench human judgments are fetched from the hub at run time",
    "alpaca-farm 0.2.0 / alpaca-eval 0.6.6": "annotator prompts and leaderboards; no human cross-annotations",
    "inverse-cai 0.4.8": "code only",
    "rewardbench 0.1.4": "code only (62 files, no data: RewardBench's LLMBar / MT-Bench subsets come from the hub)",
    "llmbar": "not on PyPI",
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-dir", default=str(ROOT / ".cache" / "bench" / "judge"),
                    help="a run of `synthloop judge train configs/judge/judge.yaml` (trained here if absent)")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--train-threads", type=int, default=1,
                    help="torch threads while training (1: on a busy shared machine two threads wait on each other)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of the judge config (as `synthloop judge train --set`), e.g. to measure a "
                         "candidate mixture before it becomes the default")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "judge_accuracy.json"),
                    help="where the results go (the default judge's file unless a variant is measured)")
    args = ap.parse_args()

    from synthloop.cli.common import quiet_libraries

    quiet_libraries()
    from synthloop.configs import load_config
    from synthloop.judges.commands import JudgeTrainConfig, evaluate_pairs, train_reward_model
    from synthloop.judges.reward_model import RewardModel

    os.chdir(ROOT)  # the config's data paths are relative to the project
    cfg = load_config(JudgeTrainConfig, CONFIG, args.set)
    train_cfg = load_config(JudgeTrainConfig, CONFIG, [*args.set, f"model.threads={args.train_threads}"])
    run = Path(args.model_dir)
    results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                 "load_avg_start": round(os.getloadavg()[0], 2),
                                 "note": "shared 2-core machine: other engineers' jobs ran meanwhile (timings only)"},
                     "config": str(CONFIG.relative_to(ROOT)), "overrides": args.set,
                     "command": "python experiments/judge_accuracy.py " + " ".join(sys.argv[1:])}
    if args.retrain or not (run / "model" / "config.json").is_file():
        started = time.time()
        def progress(step: int, total: int, loss: float) -> None:
            if step % 20 == 0 or step == total:
                print(f"step {step}/{total} loss {loss:.3f} ({time.time() - started:.0f} s)", flush=True)

        train_reward_model(train_cfg, run, resume="always", log=lambda m: print(m, flush=True), progress=progress,
                           evaluate=False)
        results["train_wall_seconds"] = round(time.time() - started, 1)
    metrics = json.loads((run / "model" / "metrics.json").read_text())
    results["trained_by"] = f"{run}: a run of {CONFIG.relative_to(ROOT)} (synthloop judge train, or the study's run)"
    results["training"] = {k: metrics.get(k) for k in ("train_pairs", "train_sources", "steps", "train_seconds",
                                                       "loss_first", "loss_last", "trainer")}
    rm = RewardModel.load(run / "model", threads=None)  # scoring: every core
    results["judge"] = rm.describe() | {"config": rm.config.model_dump(mode="json")}
    sets = cfg.data.eval_sets()
    results["sets"] = {}
    for name, pairs in sets.items():
        started = time.perf_counter()
        figures = evaluate_pairs(rm, "reward_model", pairs)
        seconds = time.perf_counter() - started
        row = {k: round(figures[k], 4) if isinstance(figures[k], float) else figures[k]
               for k in ("pairs", "accuracy", "length_longer_wins", "length_shorter_wins", "picks_longer",
                         "length_bias", "ties")}
        row["chance"] = 0.5
        row["labels"] = ("human (hh-rlhf harmless)" if name.startswith("hh_rlhf")
                         else "GPT-4-turbo (alpaca_eval_prefs)" if name.startswith("alpaca") else "see config")
        row["beats_length_baselines_and_chance"] = row["accuracy"] > max(row["length_longer_wins"],
                                                                         row["length_shorter_wins"], 0.5)
        row["length_bias_within_10_points"] = abs(row["length_bias"]) <= 0.10
        row["pairs_per_second_while_measuring"] = round(len(pairs) / seconds, 1)
        results["sets"][name] = row
        print(name, json.dumps(row), flush=True)
    results["target_met"] = all(r["beats_length_baselines_and_chance"] and r["length_bias_within_10_points"]
                                for r in results["sets"].values())
    results["other_sets_searched"] = OTHER_SETS
    results["machine"]["load_avg_end"] = round(os.getloadavg()[0], 2)
    out = Path(args.out)
    previous = json.loads(out.read_text()) if out.is_file() else {}
    for key in ("llm_judge", "llm_judge_accuracy", "llm_judge_swap_accuracy", "swap_consistency", "llm_judge_pairs"):
        if key in previous:  # SmolLM2 as an LLM judge, measured by the earlier version of this bench (kept as is)
            results[key] = previous[key]
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"target met: {results['target_met']}; saved {out}")


if __name__ == "__main__":
    main()
