"""Throughput of the default trained judge on this machine's 2 cores, next to the generator's records/s: the judge
must not be the loop's bottleneck (target: >= 20x the generator's rate).

    flock /tmp/synthloop-heavy.lock python bench/judge_throughput.py     # after experiments/judge_accuracy.py

Measured on real pairs at their real lengths: hh-rlhf (short dialogue turns, ~45 tokens per response) and
alpaca_eval_prefs (long instruction answers, ~300 tokens before truncation), in the judge's own config
(bfloat16, truncation, length-sorted batches, one encoding per distinct prompt), then at longer inputs (128 prompt
/ 256 response tokens, the study's `long` variant) to show what they would cost, and GRPO-shaped (8 completions
share a prompt). The generator's rate is synthloop's vLLM runner on SmolLM2-135M from
bench/results/engine_overhead.json (records/s = items / seconds). Saves bench/results/judge_throughput.json.
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data"
HH = SHARED / "hh_rlhf" / "harmless-base_test.jsonl.gz"
ALPACA = SHARED / "alpaca_eval_prefs" / "pairs.jsonl.gz"
MODEL = ROOT / ".cache" / "bench" / "judge" / "model"
N_PAIRS = 512


def timed(fn, repeats: int = 2) -> float:
    fn()  # warm-up (first call allocates, picks kernels)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def generator_rate() -> dict:
    data = json.loads((ROOT / "bench" / "results" / "engine_overhead.json").read_text())["vllm"]["synthloop"]
    return {"records_per_second": round(data["items"] / data["seconds"], 2), "items": data["items"],
            "seconds": data["seconds"], "output_tokens_per_record": round(data["output_tokens"] / data["items"], 1),
            "source": "bench/results/engine_overhead.json: vllm.synthloop (SmolLM2-135M, synthloop's runner)"}


def main() -> None:
    import torch

    from synthloop.cli.common import quiet_libraries

    quiet_libraries()
    from synthloop.judges.base import PairItem
    from synthloop.judges.preference_data import load_hh_rlhf, read_pairs
    from synthloop.judges.reward_model import RewardModel
    from synthloop.runs.inputs import DatasetInput

    model = Path(os.environ.get("JUDGE_MODEL", MODEL))
    hh = load_hh_rlhf(HH, split="all")[:N_PAIRS]
    alpaca = read_pairs(DatasetInput(path=ALPACA, limit=N_PAIRS))
    sets = {"hh_rlhf": [PairItem(prompt=p.prompt, a=p.chosen, b=p.rejected) for p in hh],
            "alpaca_eval_prefs": [PairItem(prompt=p.prompt, a=p.chosen, b=p.rejected) for p in alpaca]}
    rm = RewardModel.load(model, threads=2)
    results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                                 "load_avg_start": round(os.getloadavg()[0], 2),
                                 "note": os.environ.get("BENCH_NOTE", "shared 2-core machine; other engineers' jobs "
                                                                     "may have run meanwhile")},
                     "model": str(model), "judge": rm.describe() | {"config": rm.config.model_dump(mode="json")},
                     "pairs_per_set": N_PAIRS, "command": "python bench/judge_throughput.py"}
    rates: dict = {}
    for name, items in sets.items():
        rates[name] = round(len(items) / timed(lambda items=items: rm.compare(items)), 1)
        print(f"{name}: {rates[name]} pairs/s", flush=True)
    longer = RewardModel.load(model, threads=2, max_prompt_tokens=128, max_response_tokens=256)
    for name, items in sets.items():
        rates[f"{name}_at_128_256_tokens"] = round(len(items) / timed(lambda items=items: longer.compare(items)), 1)
        print(f"{name} at 128+256 tokens: {rates[f'{name}_at_128_256_tokens']} pairs/s", flush=True)
    prompts = [p.prompt for p in hh[:64]]
    completions = [r for p in hh[:64] for r in (p.chosen, p.rejected, p.chosen[:40], p.rejected[:40],
                                                 p.chosen[::-1][:80], p.rejected[-60:], "No.", "Sure.")]
    reward = rm.as_reward_function()
    grpo = timed(lambda: reward(prompts=[p for p in prompts for _ in range(8)], completions=completions))
    rates["grpo_completions_per_second_hh"] = round(len(completions) / grpo, 1)
    results["pairs_per_second"] = rates
    gen = generator_rate()
    results["generator"] = gen
    slowest = min(rates["hh_rlhf"], rates["alpaca_eval_prefs"])
    results["judge_pairs_per_second_slowest_set"] = slowest
    results["ratio_to_generator_records_per_second"] = round(slowest / gen["records_per_second"], 1)
    results["target_ratio"] = 20
    results["target_met"] = results["ratio_to_generator_records_per_second"] >= 20
    results["machine"]["load_avg_end"] = round(os.getloadavg()[0], 2)
    out = ROOT / "bench" / "results" / "judge_throughput.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k not in ("machine", "judge")}, indent=1))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
