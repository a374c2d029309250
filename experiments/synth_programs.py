"""Each synthesis program from its config on SmolLM2-135M-Instruct (vLLM in-process), one engine for all:
records kept, why the others were dropped, wall time, tokens, two example records. Then the chain in Python:
skill extraction -> inventory -> SkillMix -> rewriter. SmolLM2-135M is weak; the figures say how weak.

    flock /tmp/synthloop-heavy.lock python experiments/synth_programs.py [--records 60]

Saves bench/results/synth_programs.json; run directories go under bench/runs/ (not committed).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import time
from collections import Counter
from itertools import chain
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "bench" / "runs"


def _clip(value, n=300):
    if isinstance(value, str):
        return value if len(value) <= n else value[:n] + "…"
    if isinstance(value, list):
        return [_clip(v, n) for v in value]
    if isinstance(value, dict):
        return {k: _clip(v, n) for k, v in value.items() if k not in ("provenance", "passage", "source")}
    return value


def run_program(name, config_path, engine, overrides, records, inputs=None):
    from synthloop import synth
    from synthloop.configs import load_config
    from synthloop.synth.generate import generate
    from synthloop.synth.generate_config import GenerateConfig

    cfg = load_config(GenerateConfig, config_path, overrides)
    program = synth.build(cfg.program)
    out = RUNS / name
    shutil.rmtree(out, ignore_errors=True)
    started = time.time()
    summary = generate(program, engine=engine, run=out, inputs=inputs, num_records=records,
                       sampling=cfg.sampling, seed=cfg.seed, concurrency=cfg.concurrency,
                       json_max_chars=cfg.engine.json_string_max_chars, progress=False)
    seconds = time.time() - started
    reasons = Counter(re.sub(r"\d+(?:\.\d+)?", "N", r["reason"].split("(")[0]).strip()
                      for r in summary.run.iter_filtered())
    kept = list(summary.run.iter_records())
    result = {
        "config": str(config_path.relative_to(ROOT)), "overrides": overrides, "target": records,
        "kept": summary.kept, "filtered": summary.filtered, "failed": summary.failed,
        "failure_reasons": summary.failure_reasons, "filtered_reasons": dict(reasons.most_common()),
        "seconds": round(seconds, 1), "output_tokens": summary.output_tokens, "prompt_tokens": summary.prompt_tokens,
        "generated_tok_per_s": round(summary.output_tokens / seconds, 1), "examples": [_clip(r) for r in kept[:2]],
    }
    print(f"{name}: kept {summary.kept}, filtered {summary.filtered} {dict(reasons.most_common(4))}, "
          f"failed {summary.failed}, {seconds:.0f} s", flush=True)
    return result, summary


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=60)
    parser.add_argument("--engine", default="vllm", help="vllm, or transformers for a quick smoke run")
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "synth_programs.json"))
    args = parser.parse_args()
    from synthloop import engines
    from synthloop.runs.inputs import DatasetInput
    from synthloop.runs.run_dir import RunDir
    from synthloop.synth import build_inventory
    from synthloop.synth.skillmix import coverage

    configs = ROOT / "configs" / "generate"
    started = time.time()
    engine = engines.load(args.engine, model=args.model)
    results = {"machine": "2 cores, shared with other engineers' jobs (load average ~4 while measured)",
               "engine": engine.describe(), "engine_start_s": round(time.time() - started, 1), "programs": {}}
    n = args.records
    try:
        res = results["programs"]
        res["task_generation"], _ = run_program("task_generation", configs / "task_generation.yaml", engine, [], n)
        res["skill_extraction"], se = run_program("skill_extraction", configs / "skill_extraction.yaml", engine, [], n)
        res["skill_extraction_topics"], st = run_program("skill_extraction_topics",
                                                         configs / "skill_extraction_topics.yaml", engine, [], None)
        t = time.time()
        inventory = build_inventory(chain(se.run.iter_records(), st.run.iter_records()), min_count=2,
                                    source="bench: skill_extraction + skill_extraction_topics")
        path = inventory.save(RUNS / "skills.yaml")
        res["inventory"] = {"skills": len(inventory.skills), "seconds": round(time.time() - t, 1),
                            **{k: inventory.settings[k] for k in ("names_seen", "mentions", "similarity", "min_count")},
                            "top": [(s.name, s.count, s.aliases[:4]) for s in inventory.skills[:15]]}
        print(f"inventory: {len(inventory.skills)} skills from {inventory.settings['names_seen']} names", flush=True)
        res["skillmix"], mix = run_program("skillmix", configs / "skillmix.yaml", engine,
                                           [f"program.skills={path}"], max(10, n * 2 // 3))
        res["skillmix"]["coverage"] = coverage((r["skills"] for r in mix.run.iter_records()),
                                               inventory.names()).model_dump()
        res["rewrite"], _ = run_program("rewrite", configs / "rewrite.yaml", engine, [], max(10, n * 2 // 3))
        rows = DatasetInput(path=mix.run.path, columns={"text": "messages.-1.content"}).rows()
        res["skillmix_then_rewrite"], chained = run_program(
            "skillmix_then_rewrite", configs / "rewrite.yaml", engine,
            ["program.styles=[textbook]", "program.keep_columns=[skills, id]", "program.min_text_chars=40"], None,
            inputs=rows)
        carried = [r for r in RunDir(chained.run.path).iter_records() if r.get("skills")]
        res["skillmix_then_rewrite"]["records_with_skills_carried"] = len(carried)
    finally:
        engine.close()
    results["total_s"] = round(time.time() - started, 1)
    out = Path(args.out)
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(out)


if __name__ == "__main__":
    main()
