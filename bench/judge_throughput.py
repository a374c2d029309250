"""Reward-model throughput: hh-rlhf pairs scored per second on this machine (target >= 1,000 on 2 cores).

    flock /tmp/synthloop-heavy.lock python bench/judge_throughput.py

Side by side, on the same 1,024 held-out pairs (real lengths):
- cross-encoder baseline (the Cappy/TRL RewardTrainer shape): [CLS] prompt [SEP] response through
  MiniLM, two forward passes per pair, fp32, 160 tokens;
- synthloop's bi-encoder, fp32: each prompt encoded once for both responses, truncation (prompt end
  64 tokens, response start 96), length-sorted batches;
- the same in bfloat16 (AMX / AVX-512-BF16), the default;
- bfloat16 with 1 torch thread instead of 2;
- GRPO-shaped scoring: 128 prompts x 8 completions (the 8 share one prompt encoding), per completion.
Also: held-out accuracy in fp32 vs bf16 of the trained model (when experiments/judge_accuracy.py saved it),
so the speed-up is shown not to cost accuracy. Saves bench/results/judge_throughput.json.
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
HH = ROOT.parent / "shared" / "data" / "hh_rlhf" / "harmless-base_test.jsonl.gz"
MODEL = ROOT / ".cache" / "bench" / "judge_hh" / "model"
N_PAIRS = 1024


def timed(fn, repeats: int = 2) -> float:
    fn()  # warm-up (first call allocates, picks kernels)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    import torch

    from synthloop.cli.common import quiet_libraries

    quiet_libraries()
    from synthloop.judges.base import PairItem
    from synthloop.judges.preference_data import load_hh_rlhf
    from synthloop.judges.reward_model import RewardModel

    pairs = load_hh_rlhf(HH, split="all")
    pairs = (pairs * (N_PAIRS // len(pairs) + 1))[:N_PAIRS]
    items = [PairItem(prompt=p.prompt, a=p.chosen, b=p.rejected) for p in pairs]
    trained = (MODEL / "head.pt").is_file()
    load = (lambda **kw: RewardModel.load(MODEL, **kw)) if trained else (lambda **kw: RewardModel.create(**kw))
    results: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                 "torch": torch.__version__, "load_avg_start": round(os.getloadavg()[0], 2),
                                 "note": os.environ.get("BENCH_NOTE", "shared 2-core machine; other engineers "
                                                                     "ran light jobs meanwhile")},
                     "pairs": N_PAIRS, "model": str(MODEL) if trained else "untrained head (same compute)"}
    variants = {}

    # cross-encoder baseline: what a sequence-classification reward model costs per pair
    rm32 = load(inference_dtype="float32", threads=2)
    tok, enc = rm32.tokenizer, rm32.net.encoder.eval()

    def cross():
        with torch.inference_mode():
            for start in range(0, N_PAIRS, 64):
                chunk = items[start:start + 64]
                for side in ("a", "b"):
                    batch = tok([i.prompt for i in chunk], [getattr(i, side) for i in chunk], truncation=True,
                                max_length=160, padding=True, return_tensors="pt")
                    enc(**batch)

    variants["cross_encoder_fp32"] = N_PAIRS / timed(cross, 1)
    print(f"cross-encoder fp32: {variants['cross_encoder_fp32']:.0f} pairs/s", flush=True)
    variants["bi_encoder_fp32"] = N_PAIRS / timed(lambda: rm32.compare(items))
    print(f"bi-encoder fp32: {variants['bi_encoder_fp32']:.0f} pairs/s", flush=True)
    rm16 = load(inference_dtype="bfloat16", threads=2)
    variants["bi_encoder_bf16"] = N_PAIRS / timed(lambda: rm16.compare(items), 3)
    print(f"bi-encoder bf16: {variants['bi_encoder_bf16']:.0f} pairs/s", flush=True)
    torch.set_num_threads(1)
    variants["bi_encoder_bf16_1_thread"] = N_PAIRS / timed(lambda: rm16.compare(items))
    torch.set_num_threads(2)
    print(f"bi-encoder bf16, 1 thread: {variants['bi_encoder_bf16_1_thread']:.0f} pairs/s", flush=True)

    # dynamic int8 quantization of the encoder's Linear layers (fbgemm/oneDNN VNNI), scored in fp32 otherwise
    import copy

    rm8 = load(inference_dtype="float32", threads=2)
    net8 = copy.deepcopy(rm8.net).eval()
    net8.encoder = torch.ao.quantization.quantize_dynamic(net8.encoder, {torch.nn.Linear}, dtype=torch.qint8)
    rm8._inference_net = net8
    variants["bi_encoder_int8_dynamic"] = N_PAIRS / timed(lambda: rm8.compare(items))
    print(f"bi-encoder int8 (dynamic): {variants['bi_encoder_int8_dynamic']:.0f} pairs/s", flush=True)
    # shorter truncation: 32 prompt + 32 response tokens (the trained model, evaluated at this length)
    rm_short = load(inference_dtype="bfloat16", threads=2, max_prompt_tokens=32, max_response_tokens=32)
    variants["bi_encoder_bf16_32_tokens"] = N_PAIRS / timed(lambda: rm_short.compare(items), 3)
    print(f"bi-encoder bf16, 32+32 tokens: {variants['bi_encoder_bf16_32_tokens']:.0f} pairs/s", flush=True)

    prompts = [p.prompt for p in pairs[:128]]
    completions = [r for p in pairs[:128] for r in (p.chosen, p.rejected, p.chosen[:40], p.rejected[:40],
                                                     p.chosen[::-1][:80], p.rejected[-60:], "No.", "Sure.")]
    grpo_prompts = [p for p in prompts for _ in range(8)]
    reward = rm16.as_reward_function()
    grpo_s = timed(lambda: reward(prompts=grpo_prompts, completions=completions), 2)
    variants["grpo_completions_per_second_bf16"] = len(completions) / grpo_s
    print(f"GRPO-shaped reward function: {variants['grpo_completions_per_second_bf16']:.0f} completions/s",
          flush=True)

    results["variants_pairs_per_second"] = {k: round(v, 1) for k, v in variants.items()}
    results["ratios"] = {
        "bi_fp32_vs_cross_fp32": round(variants["bi_encoder_fp32"] / variants["cross_encoder_fp32"], 2),
        "bi_bf16_vs_bi_fp32": round(variants["bi_encoder_bf16"] / variants["bi_encoder_fp32"], 2),
        "bi_bf16_vs_cross_fp32": round(variants["bi_encoder_bf16"] / variants["cross_encoder_fp32"], 2),
        "2_threads_vs_1": round(variants["bi_encoder_bf16"] / variants["bi_encoder_bf16_1_thread"], 2),
    }
    if trained:
        held_out = load_hh_rlhf(HH, split="held_out")
        results["held_out_accuracy"] = {"fp32": rm32.accuracy(held_out), "bf16": rm16.accuracy(held_out),
                                        "int8_dynamic": rm8.accuracy(held_out),
                                        "bf16_32_tokens": rm_short.accuracy(held_out)}
    tokens = [len(rm16.tokenizer(t)["input_ids"]) for p in pairs[:256] for t in (p.chosen, p.rejected)]
    results["mean_response_tokens_untruncated"] = round(sum(tokens) / len(tokens), 1)
    results["pairs_per_second"] = round(variants["bi_encoder_bf16"], 1)
    results["target_pairs_per_second"] = 1000
    results["target_met"] = results["pairs_per_second"] >= 1000
    results["machine"]["load_avg_end"] = round(os.getloadavg()[0], 2)
    out = ROOT / "bench" / "results" / "judge_throughput.json"
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=1))
    print(f"saved {out}")


if __name__ == "__main__":
    main()
