"""Throughput of the default trained judge on this machine's 2 cores, next to the generator's records/s: the judge
must not be the loop's bottleneck (target: >= 20x the generator's rate).

    flock /tmp/synthloop-heavy.lock python bench/judge_throughput.py     # after experiments/judge_accuracy.py

Measured on real pairs at their real lengths: hh-rlhf (short dialogue turns, ~45 tokens per response) and
alpaca_eval_prefs (long instruction answers, ~300 tokens before truncation), in the judge's own config
(bfloat16, truncation, length-sorted batches, one encoding per distinct prompt), then at longer inputs (128 prompt
/ 256 response tokens, the study's `long` variant) to show what they would cost, and GRPO-shaped (8 completions
share a prompt). The generator's rate is synthloop's vLLM runner on SmolLM2-135M from
bench/results/engine_overhead.json (records/s = items / seconds), or, with `--generator N`, measured in the same
run: the runner answers N requests (engine_overhead's mix, max 128 tokens) and the judge then scores exactly those
records, one reward per record as a loop's panel does. Saves bench/results/judge_throughput.json.

    JUDGE_MODEL=.cache/bench/judge_large/model python bench/judge_throughput.py --generator 512
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


def same_run_generator(n: int, rm) -> dict:
    """The generator in this run (synthloop's runner, vLLM, SmolLM2-135M bf16, engine_overhead's requests and
    max_tokens) and the judge scoring exactly its records, after a 64-request warm-up."""
    import tempfile

    from common import RespondProgram
    from engine_overhead import prompts

    from synthloop.engines import EngineConfig, Sampling, registry
    from synthloop.engines.vllm_engine import VLLMEngine
    from synthloop.judges.base import JudgeItem
    from synthloop.runs.run_dir import RunDir
    from synthloop.synth.generate import generate

    texts = prompts(n + 64)
    engine = VLLMEngine(registry.prepare("smollm2-135m-instruct"), name="smollm2-135m-instruct",
                        config=EngineConfig(kind="vllm", dtype="bfloat16", kv_cache_gib=1.0))
    sampling = Sampling(temperature=0.7, max_tokens=128)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            generate(RespondProgram(), engine=engine, run=Path(scratch) / "warmup", sampling=sampling,
                     inputs=({"request": t} for t in texts[n:]), progress=False)
            started = time.perf_counter()
            summary = generate(RespondProgram(), engine=engine, run=Path(scratch) / "run", sampling=sampling,
                               inputs=({"request": t} for t in texts[:n]), progress=False)
            seconds = time.perf_counter() - started
        finally:
            engine.close()
        records = list(RunDir(Path(scratch) / "run").iter_records())
    items = [JudgeItem(prompt=r["request"], response=r["response"]) for r in records]
    judge_seconds = timed(lambda: rm.score(items))
    return {"records": len(records), "seconds": round(seconds, 2),
            "records_per_second": round(len(records) / seconds, 2),
            "output_tokens_per_record": round(summary.output_tokens / max(1, len(records)), 1),
            "judge_records_per_second_on_these_records": round(len(items) / judge_seconds, 1),
            "source": f"measured in this run: synthloop generate, RespondProgram, vLLM bf16, {n} requests"}


def main() -> None:
    import argparse

    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--generator", type=int, default=0, metavar="N",
                    help="measure the generator in this run on N requests (0: take it from engine_overhead.json)")
    args = ap.parse_args()

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
                     "pairs_per_set": N_PAIRS,
                     "command": "python bench/judge_throughput.py " + " ".join(sys.argv[1:])}
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
    gen = same_run_generator(args.generator, rm) if args.generator else generator_rate()
    results["generator"] = gen
    if args.generator:
        results["judge_records_per_second_to_generator_records_per_second"] = round(
            gen["judge_records_per_second_on_these_records"] / gen["records_per_second"], 1)
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
