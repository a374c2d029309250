"""Judge accuracy on the hh-rlhf (harmless) held-out prompts: the trained MiniLM reward model, the LLM
judge (SmolLM2-135M on vLLM, fp32) with and without swap augmentation, length baselines and chance.

    flock /tmp/synthloop-heavy.lock python experiments/judge_accuracy.py            # ~15-25 min on 2 cores
    python experiments/judge_accuracy.py --llm-pairs 50 --epochs 1                  # quicker

Accuracy counts a tie as half right (so chance is 0.5 for every method, and a judge that abstains by
calling ties is neither rewarded nor punished beyond chance); strict accuracy (ties wrong) and tie rates
are reported beside it. Which response is shown as A is randomised per pair (seeded), so position bias
cannot pass for accuracy. Saves bench/results/judge_accuracy.json.
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
HH = ROOT.parent / "shared" / "data" / "hh_rlhf" / "harmless-base_test.jsonl.gz"


def load_avg() -> float:
    return round(os.getloadavg()[0], 2)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--llm-pairs", type=int, default=200, help="held-out pairs the LLM judge sees (it is slow)")
    ap.add_argument("--skip-llm", action="store_true")
    ap.add_argument("--engine", default="vllm", choices=["vllm", "transformers"],
                    help="engine of the LLM judge (fp32 either way; their greedy outputs agree on SmolLM2)")
    ap.add_argument("--train-limit", type=int, default=None, help="smoke runs: fewer training pairs")
    ap.add_argument("--retrain", action="store_true",
                    help="train even if --model-dir already holds a model trained by `synthloop judge train "
                         "configs/judge/judge_hh.yaml --set output_dir=.cache/bench --set name=judge_hh`")
    ap.add_argument("--model-dir", default=str(ROOT / ".cache" / "bench" / "judge_hh"))
    args = ap.parse_args()

    from synthloop.cli.common import quiet_libraries

    quiet_libraries()
    from synthloop.judges.commands import (
        JudgeEvalConfig,
        JudgeTrainConfig,
        PreferenceData,
        baselines,
        evaluate_judge,
        train_reward_model,
    )
    from synthloop.judges.reward_model import RewardModel
    from synthloop.judges.spec import JudgeSpec

    results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                 "load_avg_start": load_avg(),
                                 "note": "shared 2-core machine; other engineers ran light jobs meanwhile"}}
    data = PreferenceData(hh_rlhf=HH, held_out_fraction=0.2, limit=args.train_limit)
    held_out = data.eval_pairs()
    results["data"] = {"file": str(HH.relative_to(ROOT.parent)), "train_pairs": len(data.train_pairs()),
                       "held_out_pairs": len(held_out), "split": "sha256(prompt) < 0.2 -> held out"}

    # 1. the reward model
    started = time.time()
    run = Path(args.model_dir)
    cfg = JudgeTrainConfig(data=data)
    cfg.train.epochs = args.epochs
    if (run / "model" / "head.pt").is_file() and not args.retrain:
        metrics = json.loads((run / "metrics.json").read_text())
        results["reward_model_trained_by"] = (
            "synthloop judge train configs/judge/judge_hh.yaml --set output_dir=.cache/bench --set name=judge_hh "
            "--set model.threads=1, run outside the heavy-job lock on one thread while the shared machine was "
            "busy (train_seconds is inflated by that; accuracies do not depend on load)")
    else:
        metrics = train_reward_model(cfg, run, resume="always", log=lambda m: print(m, flush=True))
    results["reward_model"] = {k: v for k, v in metrics.items() if k not in ("losses",)}
    results["reward_model"]["loss_curve_every_10_steps"] = metrics["losses"][::10]
    results["reward_model"]["wall_seconds"] = round(time.time() - started, 1)
    rm = RewardModel.load(run / "model", threads=os.cpu_count())
    acc_bf16 = rm.accuracy(held_out)
    rm_fp32 = RewardModel.load(run / "model", inference_dtype="float32", threads=os.cpu_count())
    acc_fp32 = rm_fp32.accuracy(held_out)
    results["reward_model"]["held_out_accuracy_bf16"] = acc_bf16
    results["reward_model"]["held_out_accuracy_fp32"] = acc_fp32
    print(f"reward model held-out accuracy: bf16 {acc_bf16:.3f}, fp32 {acc_fp32:.3f}", flush=True)
    base = baselines(held_out)
    results["baselines"] = base

    # 2. the LLM judge on SmolLM2 (vLLM, fp32: greedy verdicts match the transformers engine)
    if not args.skip_llm:
        subset = held_out[: args.llm_pairs]
        sub_file = ROOT / ".cache" / "bench" / "llm_pairs.jsonl"
        sub_file.parent.mkdir(parents=True, exist_ok=True)
        with open(sub_file, "w") as handle:
            for p in subset:
                handle.write(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n")
        spec = JudgeSpec(kind="llm", engine={"kind": args.engine, "model": "smollm2-135m-instruct", "dtype": "float32"},
                         llm={"swap": True, "temperature": 0.0, "max_tokens": 96, "max_input_chars": 1500})
        ecfg = JudgeEvalConfig(judge=spec, data=data, pairs={"path": sub_file}, seed=0)
        started = time.time()
        out = evaluate_judge(ecfg, ROOT / ".cache" / "bench" / "llm_eval", log=lambda m: print(m, flush=True))
        results["llm_judge"] = {**out, "wall_seconds_incl_engine_start": round(time.time() - started, 1)}
        # the other judges on the very same pairs, for a like-for-like comparison
        results["llm_judge"]["reward_model_accuracy_same_pairs"] = rm.accuracy(subset)
        results["llm_judge"]["baselines_same_pairs"] = baselines(subset)
        print(json.dumps({k: v for k, v in out.items() if k != "judge"}, indent=1), flush=True)

    results["reward_model_accuracy"] = round(acc_bf16, 4)
    results["length_baseline_accuracy"] = round(base["length_longer_wins"], 4)
    results["length_baseline_note"] = ("longer response wins; on this harmless split the shorter one wins more "
                                       f"often ({base['length_shorter_wins']:.3f})")
    results["chance_accuracy"] = 0.5
    if "llm_judge" in results:
        llm = results["llm_judge"]
        results["llm_judge_accuracy"] = round(llm["accuracy_first_order"], 4)
        results["llm_judge_swap_accuracy"] = round(llm["accuracy_swap"], 4)
        results["swap_consistency"] = round(llm["swap_consistency"], 4)
        results["llm_judge_pairs"] = llm["pairs"]
    results["machine"]["load_avg_end"] = load_avg()
    out_path = ROOT / "bench" / "results" / "judge_accuracy.json"
    out_path.write_text(json.dumps(results, indent=2, default=str))
    top = {k: v for k, v in results.items() if not isinstance(v, dict)}
    print(json.dumps(top, indent=1))
    print(f"saved {out_path}")


if __name__ == "__main__":
    main()
