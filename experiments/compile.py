"""Compiling the extractive-QA task generator on SmolLM2-135M-Instruct (vLLM, fp32) with DSPy's optimizers,
side by side, against the span verifier: the metric on the same 40 held-out PubMedQA passages (same seeds)
before and after, the demos found, and the time each optimizer took.

    flock /tmp/synthloop-heavy.lock python experiments/compile.py [--optimizers bootstrap_fewshot,mipro_v2]

Saves bench/results/compile.json; run directories go under bench/runs/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--optimizers", default="bootstrap_fewshot,bootstrap_random_search,mipro_v2")
    args = parser.parse_args()
    from synthloop import engines, synth
    from synthloop.configs import load_config
    from synthloop.judges.panel import Panel
    from synthloop.synth.compile import CompileConfig, compile_program

    config_path = ROOT / "configs" / "compile" / "compile_task_generation.yaml"
    cfg = load_config(CompileConfig, config_path, ["engine.max_model_len=8192"])  # room for MIPROv2's proposer
    started = time.time()
    engine = engines.from_config(cfg.engine)
    results = {"config": str(config_path.relative_to(ROOT)), "engine": engine.describe(),
               "engine_start_s": round(time.time() - started, 1), "train_size": cfg.train_size,
               "held_out": cfg.held_out, "metric": cfg.metric.model_dump(),
               "machine": "2 cores, shared with other engineers' jobs while measured", "optimizers": {}}
    try:
        for kind in args.optimizers.split(","):
            optimizer = cfg.optimizer.model_copy(update={"kind": kind})
            out = ROOT / "bench" / "runs" / f"compile-{kind}"
            shutil.rmtree(out, ignore_errors=True)
            t = time.time()
            try:
                judge = Panel.from_specs([cfg.metric], where="metric").members[0]
                result = compile_program(synth.build(cfg.program), engine=engine, judge=judge,
                                         out=out, train_size=cfg.train_size, held_out=cfg.held_out,
                                         optimizer=optimizer, sampling=cfg.sampling,
                                         seed=cfg.seed, json_max_chars=cfg.engine.json_string_max_chars)
            except Exception as exc:  # reported, not hidden: e.g. an optimizer that cannot run on this model
                results["optimizers"][kind] = {"error": f"{type(exc).__name__}: {exc}"[:500],
                                               "traceback": traceback.format_exc()[-1500:],
                                               "seconds": round(time.time() - t, 1)}
                print(f"{kind}: failed: {exc}", flush=True)
                continue
            b, a = result.before, result.after
            results["optimizers"][kind] = {
                "before": {"mean": round(b.mean, 4), "passed": b.passed, "kept": b.kept, "n": b.n,
                           "reasons": b.reasons},
                "after": {"mean": round(a.mean, 4), "passed": a.passed, "kept": a.kept, "n": a.n, "reasons": a.reasons},
                "after_over_before": round(a.mean / b.mean, 3) if b.mean else None,
                "demos": result.demos, "seconds": round(result.seconds, 1),
            }
            print(f"{kind}: {b.mean:.3f} -> {a.mean:.3f} ({b.passed}/{b.n} -> {a.passed}/{a.n}), demos {result.demos}, "
                  f"{result.seconds:.0f} s", flush=True)
    finally:
        engine.close()
    out = ROOT / "bench" / "results" / "compile.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(out)


if __name__ == "__main__":
    main()
