"""TT-SI and TT-D on SmolLM2-135M-Instruct (CPU): does a temporary LoRA adapter, trained for a few steps on
similar problems the model writes for the test inputs it is unsure of, answer those inputs better?

    flock /tmp/synthloop-heavy.lock python experiments/tt_si.py                  # ~10-12 min on 2 cores
    python experiments/tt_si.py --model tiny-random-chat --engine transformers   # a smoke run of the mechanism

It runs the real recipes (`synthloop loop` on configs/loop/tt_si.yaml, then configs/loop/tt_d.yaml) with a few sizes set
from the command line, and saves, per recipe: the baseline (greedy answers without adaptation, round 0) vs the
adapted answers on the same test inputs (uncertain subset and overall), the majority vote of the probe samples
on the uncertain subset (the adaptation-free alternative), how many similar problems were written, verified
and trained on, and the seconds of every stage, to bench/results/tt_si.json. TT-D runs only when TT-SI left
enough of the time budget (`--budget-minutes`); offline its teacher is the same SmolLM2 weights in a second,
separately configured engine (bf16; see configs/loop/tt_d.yaml), so it measures the mechanism, not distillation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIGURES = ["base_accuracy", "eval_accuracy", "base_acc_uncertain", "tt_acc_uncertain", "majority_acc_uncertain",
           "base_acc_confident", "tt_fixed", "tt_broken", "tt_inputs", "tt_uncertain", "tt_written", "tt_problems",
           "tt_solved", "tt_verified", "tt_inputs_with_data", "tt_sft_rows", "sft_steps", "sft_loss"]


def overrides(args: argparse.Namespace, kind: str) -> dict[str, Any]:
    """The sizes and engine of this benchmark run over the recipe's config."""
    data: dict[str, Any] = {
        "engine": {"kind": args.engine, "model": args.model, "dtype": "float32"},
        "tasks": {"eval_count": args.inputs},
        "sampling": {"n": args.probe_samples},
        "recipe": {"synthesis": {"per_input": args.per_input}, "verify": {"samples": args.solutions}},
        "train": {"sft": {"max_steps": args.steps}},
        "rounds": 1, "plot": False, "concurrency": 64,
    }
    if kind == "tt_d":
        data["recipe"]["teacher"] = {"kind": args.engine, "model": args.model, "dtype": args.teacher_dtype}
    return data


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def run_recipe(kind: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    import yaml

    from synthloop.loops import run_loop
    from synthloop.loops.config import LoopConfig

    data = merge(yaml.safe_load((ROOT / "configs" / "loop" / f"{kind}.yaml").read_text()), overrides(args, kind))
    config = LoopConfig.model_validate(data)
    run_dir = work / kind
    started = time.time()
    summary = run_loop(config, run_dir, progress=False)
    seconds = time.time() - started
    state = json.loads((run_dir / "state.json").read_text())
    r1 = state["rounds"][1]
    metrics = r1["metrics"]
    table = [json.loads(line) for line in (run_dir / "round-001" / "answers.jsonl").read_text().splitlines()]
    rows = (run_dir / "round-001" / "data" / "sft.jsonl").read_text().splitlines()
    return {
        "status": summary["status"],
        "config": config.model_dump(mode="json", exclude={"output_dir", "summary_json"}),
        "figures": {k: metrics.get(k) for k in FIGURES},
        "seconds": round(seconds, 1),
        "stage_seconds": {"round-000/" + k: round(v["seconds"], 1) for k, v in state["rounds"][0]["stages"].items()}
        | {k: round(v["seconds"], 1) for k, v in r1["stages"].items()},
        "peak_rss_gib": max((v.get("peak_rss_gib") or 0) for v in r1["stages"].values()),
        "adapter_discarded": r1["stages"]["report"]["outputs"].get("adapter_discarded"),
        "uncertain_inputs": [{k: r[k] for k in ("task_id", "prompt", "reference", "share", "majority_answer",
                                                "base_answer", "base_correct", "final_answer", "final_correct")}
                             for r in table if r["uncertain"]],
        "training_examples_sample": [json.loads(line) for line in rows[:3]],
    }


def save(args: argparse.Namespace, results: dict[str, Any], load: tuple[float, ...], started: float) -> None:
    """The report so far (written after every recipe: a later one cut off keeps the earlier figures)."""
    report = {
        "what": "test-time self-improvement (tt_si) and test-time distillation (tt_d) on SmolLM2-135M-Instruct, "
                "CPU, held-out arithmetic word problems; baseline = greedy answers without adaptation, same inputs",
        "command": "flock /tmp/synthloop-heavy.lock python experiments/tt_si.py " + " ".join(sys.argv[1:]),
        "model": args.model,
        "teacher_note": "offline there is no stronger model: the tt_d teacher is the same SmolLM2-135M weights in a "
                        f"second vLLM engine ({args.teacher_dtype}, synthesis/verify temperature 0.6 vs 0.8)",
        "recipes": results,
        "seconds": round(time.time() - started, 1),
        "machine": {"cpus": os.cpu_count(), "load_average_at_start": load, "load_average_at_end": os.getloadavg(),
                    "note": "2-core machine shared with other engineers; measured under the heavy-job lock, light "
                            "jobs (tests, editors) may have run beside it"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"saved {args.out} ({report['seconds']} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--engine", default="auto", help="auto (vLLM when installed), vllm or transformers")
    parser.add_argument("--inputs", type=int, default=48, help="test inputs (held-out arithmetic problems)")
    parser.add_argument("--probe-samples", type=int, default=8)
    parser.add_argument("--per-input", type=int, default=4, help="similar problems written per uncertain input")
    parser.add_argument("--solutions", type=int, default=4, help="fresh solutions per written problem")
    parser.add_argument("--steps", type=int, default=16, help="LoRA SFT steps (batch 8)")
    parser.add_argument("--teacher-dtype", default="bfloat16")
    parser.add_argument("--recipes", default="tt_si,tt_d")
    parser.add_argument("--budget-minutes", type=float, default=12.0,
                        help="skip TT-D when TT-SI took more than half of this")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tt_si.json")
    parser.add_argument("--work", type=Path, default=None, help="run directories (default: a temp dir, deleted)")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="synthloop-tt-bench-"))
    load = os.getloadavg()
    started = time.time()
    results: dict[str, Any] = {}
    for kind in args.recipes.split(","):
        elapsed = (time.time() - started) / 60
        if results and elapsed > args.budget_minutes / 2:
            results[kind] = {"status": f"skipped: {elapsed:.1f} of {args.budget_minutes} budget minutes used"}
            print(f"{kind}: {results[kind]['status']}")
            save(args, results, load, started)
            continue
        results[kind] = run_recipe(kind, args, work)
        f = results[kind]["figures"]
        print(f"{kind}: {f['tt_uncertain']}/{f['tt_inputs']} uncertain; accuracy on them: base "
              f"{f['base_acc_uncertain']} -> adapted {f['tt_acc_uncertain']} "
              f"(majority vote {f['majority_acc_uncertain']}); overall {f['base_accuracy']} -> {f['eval_accuracy']}; "
              f"{f['tt_written']} written, {f['tt_problems']} "
              f"kept by the filters, {f['tt_verified']} verified, {f['tt_sft_rows']} rows trained "
              f"({f['sft_steps']} steps); {results[kind]['seconds']} s")
        save(args, results, load, started)
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
