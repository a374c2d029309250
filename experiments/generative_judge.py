"""A generative judge (JudgeLM-style SFT of SmolLM2 on the hh-rlhf human labels) vs the other judges.

Trains with `synthloop judge train` semantics (kind: generative, teacher: labels) on the first N hh-rlhf
*train* pairs, then measures pairwise accuracy and swap consistency on the first 200 *held-out* pairs with
the same seed-0 order flips as experiments/judge_accuracy.py (so the LLM judge's figures there are on the very
same pairs, shown in the same order), on vLLM fp32. Run it under the heavy lock:

    flock /tmp/synthloop-heavy.lock /work/main/.venv/bin/python experiments/generative_judge.py
    python experiments/generative_judge.py --pairs 16 --eval-pairs 8 --engine transformers \
        --model tiny-random-chat  # smoke
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.chdir(ROOT)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=128, help="hh-rlhf train pairs (x2 SFT records with swap)")
    ap.add_argument("--eval-pairs", type=int, default=200, help="held-out pairs judged (both orders)")
    ap.add_argument("--max-chars", type=int, default=400, help="cut of questions and answers (train and judge)")
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--engine", default="vllm", choices=["vllm", "transformers"])
    ap.add_argument("--base", action="store_true", help="also judge with the untuned base model (JudgeLM prompt)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "generative_judge.json"))
    args = ap.parse_args()

    from bench.common import machine
    from synthloop.judges.commands import JudgeEvalConfig, JudgeTrainConfig, PreferenceData, evaluate_judge
    from synthloop.judges.generative_train import GenerativeTrainSettings, train_generative_judge
    from synthloop.judges.spec import JudgeSpec
    from synthloop.train.config import SFTSettings

    results: dict = {"machine": machine()}
    work = ROOT / ".cache" / "bench"
    data = PreferenceData(limit=args.pairs, held_out_fraction=0.2)
    settings = GenerativeTrainSettings(base_model=args.model, teacher="labels", swap=True, reference_drop=0.5,
                                       max_input_chars=args.max_chars,
                                       sft=SFTSettings(learning_rate=5e-5, epochs=1, batch_size=8, max_length=640))
    cfg = JudgeTrainConfig(kind="generative", output_dir=work, name=f"generative_judge-{args.model}", data=data,
                           generative=settings)
    started = time.time()
    metrics = train_generative_judge(cfg, work / cfg.name, log=lambda m: print(m, flush=True))
    results["train"] = {**metrics, "wall_seconds": round(time.time() - started, 1),
                        "config": json.loads(cfg.model_dump_json())}
    print(json.dumps(results["train"]["loss_first"]), json.dumps(results["train"]["loss_last"]), flush=True)

    held_out = data.eval_pairs()[: args.eval_pairs]
    pairs_file = work / "generative_eval_pairs.jsonl"
    with open(pairs_file, "w") as handle:
        for p in held_out:
            handle.write(json.dumps({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected}) + "\n")
    engine = {"kind": args.engine, "dtype": "float32"}
    spec = JudgeSpec(kind="generative", path=work / cfg.name / "model", engine=engine)
    started = time.time()
    out = evaluate_judge(JudgeEvalConfig(judge=spec, pairs={"path": pairs_file}, seed=0), work / f"{cfg.name}-eval",
                         log=lambda m: print(m, flush=True))
    results["generative_judge"] = {**out, "wall_seconds_incl_engine_start": round(time.time() - started, 1)}
    print(json.dumps({k: v for k, v in out.items() if k != "judge"}, indent=1), flush=True)

    if args.base:  # the same prompt on the untuned model: what the fine-tuning changed
        from synthloop import engines
        from synthloop.engines.config import EngineConfig
        from synthloop.judges.base import PairItem
        from synthloop.judges.commands import _accuracy, _text
        from synthloop.judges.generative_judge import GenerativeJudge, GenerativeJudgeConfig
        from synthloop.judges.llm_judge import combine
        from synthloop.judges.preference_data import render_response

        rng = random.Random(0)  # the flips evaluate_judge draws
        flips = [rng.random() < 0.5 for _ in held_out]
        items = [PairItem(prompt=_text(p.prompt), a=render_response(p.rejected if f else p.chosen),
                          b=render_response(p.chosen if f else p.rejected))
                 for p, f in zip(held_out, flips, strict=True)]
        started = time.time()
        with engines.from_config(EngineConfig(kind=args.engine, model=args.model, dtype="float32")) as eng:
            orders = GenerativeJudge(eng, GenerativeJudgeConfig(max_input_chars=args.max_chars)).compare_orders(items)
        results["base_model_same_prompt"] = {
            "model": args.model, "pairs": len(items),
            "accuracy_first_order": _accuracy([o[0] for o in orders], flips),
            "accuracy_swap": _accuracy([combine(o) for o in orders], flips),
            "swap_consistency": sum(len({v.winner for v in o}) == 1 for o in orders) / len(orders),
            "failed_verdicts": sum(v.rationale.startswith("judge failed") for o in orders for v in o),
            "wall_seconds_incl_engine_start": round(time.time() - started, 1)}
        print(json.dumps(results["base_model_same_prompt"]), flush=True)

    reference = json.loads((ROOT / "bench" / "results" / "judge_accuracy.json").read_text())
    gen = results["generative_judge"]
    results["summary"] = {
        "held_out_pairs": gen["pairs"],
        "generative_judge_accuracy_first_order": round(gen["accuracy_first_order"], 4),
        "generative_judge_accuracy_swap": round(gen["accuracy_swap"], 4),
        "generative_judge_swap_consistency": round(gen["swap_consistency"], 4),
        "generative_judge_failed_verdicts": gen["failed_verdicts"],
        "llm_judge_accuracy_first_order (judge_accuracy.json, same 200 pairs and flips)":
            reference.get("llm_judge_accuracy"),
        "llm_judge_accuracy_swap": reference.get("llm_judge_swap_accuracy"),
        "llm_judge_swap_consistency": reference.get("swap_consistency"),
        "reward_model_accuracy (436 held-out pairs)": reference.get("reward_model_accuracy"),
        "reward_model_accuracy_same_200_pairs": reference.get("llm_judge", {}).get("reward_model_accuracy_same_pairs"),
        "length_longer_wins": round(gen["baselines"]["length_longer_wins"], 4),
        "chance": 0.5,
        "note": "accuracy counts a tie as half; the LLM judge saw 1500-character inputs, the generative judge "
                f"{args.max_chars} (as trained); eval pairs are the first {len(held_out)} held-out pairs",
    }
    Path(args.out).write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results["summary"], indent=1))
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
