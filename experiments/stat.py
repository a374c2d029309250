"""STAT (skill-targeted training) on SmolLM2-135M, CPU: per-skill accuracy before and after one round of
STAT-Sel, STAT-Syn and the unweighted baseline (same SFT budget), plus how good a teacher SmolLM2 is.

    flock /tmp/synthloop-heavy.lock /work/main/.venv/bin/python experiments/stat.py          (~10-12 min)
    python experiments/stat.py --model tiny-random-chat --small                               (control flow only)

Part 1, three loops of one round each on arithmetic word problems (add, sub, mul, div; 1-2 steps), with the
generator's own skill labels (programmatic), greedy held-out evaluation, the math verifier as judge:
  uniform  the policy's verified answers to `per_round` new tasks, `budget` SFT rows drawn without weights;
  sel      the same answers (same seeds), drawn with STAT-Sel weights from the probe set's Missing-Skill-Profile;
  syn      `per_round` new tasks chosen from generator candidates in proportion to the profile (STAT-Syn).
Part 2, SmolLM2 as the teacher (one engine): (a) label every held-out task with skills of the inventory under
constrained decoding, scored against the generator's labels; (b) list the skills of training tasks itself
(SkillExtraction, clustered: what a weak teacher's inventory looks like); (c) Instruct-SkillMix word problems
over the missing skills, kept when the teacher's own answers agree (self-consistency).
Saves bench/results/stat.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))  # bench/common.py

from common import machine, save  # noqa: E402

SKILLS = ["add", "sub", "mul", "div"]
DESCRIPTIONS = {
    "add": "addition: the amount grows by a number (buys, finds, gets more)",
    "sub": "subtraction: the amount shrinks by a number (gives away, loses, sells)",
    "mul": "multiplication: the amount becomes k times as large",
    "div": "division: the amount is split into k equal groups and one is kept",
}
TEMPLATE = "{prompt}\nAnswer in one short sentence."


def loop_config(args, out: Path, variant: str) -> dict[str, Any]:
    arithmetic = {"kind": "arithmetic", "skills": SKILLS, "digits": 1, "operations": 2}
    recipe: dict[str, Any] = {"kind": "stat", "variant": variant, "budget": args.budget, "max_per_task": 2}
    if variant != "uniform":
        recipe.update(probe={**arithmetic, "seed": 3}, probe_count=args.probe)
    if variant == "syn":
        recipe["syn"] = {"source": "generator", "oversample": 4}
    return {
        "output_dir": str(out),
        "engine": {"kind": args.engine, "model": args.model, "dtype": "float32"},
        "tasks": {"train": {**arithmetic, "seed": 1}, "eval": {**arithmetic, "seed": 2},
                  "eval_count": args.eval, "per_round": args.per_round},
        "prompt": {"template": TEMPLATE},
        "sampling": {"n": args.n, "temperature": 0.8, "max_tokens": args.max_tokens},
        "eval": {"temperature": 0.0, "max_tokens": args.max_tokens},
        "judges": [{"kind": "math_answer"}],
        "recipe": recipe,
        "train": {"plan": ["sft"], "sft": {"learning_rate": args.lr, "epochs": 1, "batch_size": 8}},
        "rounds": 1,
        "seed": 0,
        "plot": False,
    }


def run_variant(args, variant: str) -> dict[str, Any]:
    from synthloop.loops import run_loop
    from synthloop.loops.config import LoopConfig

    path = args.out / variant
    started = time.time()
    summary = run_loop(LoopConfig.model_validate(loop_config(args, args.out, variant)), path, progress=False,
                       log=lambda m: print(f"  [{variant}] {m}", flush=True))
    state = json.loads((path / "state.json").read_text())
    before, after = state["rounds"][0]["metrics"], state["rounds"][1]["metrics"]
    acc = {s: {"before": before.get(f"eval_acc_{s}"), "after": after.get(f"eval_acc_{s}")} for s in SKILLS}
    for v in acc.values():
        v["delta"] = round(v["after"] - v["before"], 4) if None not in (v["before"], v["after"]) else None
    keep = ("sft_pool", "sft_data", "sft_distinct", "sft_steps", "sft_loss", "probe_accuracy", "tasks",
            "syn_candidates", "syn_shortfall", "sample_accuracy", "sample_tasks")
    out = {
        "status": summary["status"],
        "eval_accuracy": {"before": before.get("eval_accuracy"), "after": after.get("eval_accuracy")},
        "per_skill_accuracy": acc,
        "eval_tasks_per_skill": {a["skill"]: a["tasks"] for a in
                                 json.loads((path / "round-001" / "skills_eval.json").read_text())},
        "round1": {k: after[k] for k in keep if k in after},
        "pool_shares": {k[len("pool_share_"):]: v for k, v in after.items() if k.startswith("pool_share_")},
        "sft_shares": {k[len("sft_share_"):]: v for k, v in after.items() if k.startswith("sft_share_")},
        "syn_task_shares": {k[len("syn_share_"):]: v for k, v in after.items() if k.startswith("syn_share_")},
        "seconds": {"round0": before.get("seconds"), "round1": after.get("seconds"),
                    "stages_round1": {k[len("seconds_"):]: v for k, v in after.items() if k.startswith("seconds_")},
                    "wall": round(time.time() - started, 1)},
        "peak_rss_gib": after.get("peak_rss_gib"),
    }
    profile_file = path / "round-001" / "profile.json"
    if profile_file.is_file():
        profile = json.loads(profile_file.read_text())
        out["missing_skill_profile"] = {
            "missing": profile["missing"], "overall_failure_rate": profile["overall_failure_rate"],
            "skills": {s["skill"]: {"probe_tasks": s["tasks"], "failure_rate": s["failure_rate"],
                                    "target_share": s["target"]} for s in profile["skills"]}}
    print(f"{variant}: eval {out['eval_accuracy']} per skill "
          + ", ".join(f"{s} {v['before']}->{v['after']}" for s, v in acc.items()), flush=True)
    return out


# -- part 2: SmolLM2 as the teacher ---------------------------------------------------------------------
def teacher(args, missing: list[str]) -> dict[str, Any]:
    from synthloop import engines
    from synthloop.engines.config import EngineConfig
    from synthloop.engines.types import Sampling
    from synthloop.loops.recipes.stat.stages import majority_answer
    from synthloop.loops.tasks.arithmetic import ArithmeticTasks
    from synthloop.runs.run_dir import RunDir
    from synthloop.synth.chat import ChatSamples
    from synthloop.synth.generate import generate
    from synthloop.synth.skill_extraction import SkillExtraction
    from synthloop.synth.skill_inventory import Skill, SkillInventory, build_inventory
    from synthloop.synth.skill_labels import SkillLabels
    from synthloop.synth.skillmix import SkillMix

    base = args.out / "teacher"
    base.mkdir(parents=True, exist_ok=True)
    inventory = SkillInventory(skills=[Skill(name=s, description=DESCRIPTIONS[s]) for s in SKILLS],
                               source="the arithmetic generator's operations").save(base / "inventory.yaml")
    tasks = list(ArithmeticTasks(skills=SKILLS, digits=1, operations=2, seed=2, count=args.label_tasks).rows())
    engine = engines.from_config(EngineConfig(kind=args.engine, model=args.model, dtype="float32"))
    result: dict[str, Any] = {}
    try:
        # (a) labels under constrained decoding, against the generator's own labels
        started = time.time()
        labels_run = base / "labels"
        generate(SkillLabels(skills=inventory, max_labels=2), engine=engine, run=labels_run, progress=False,
                 inputs=[{"task": t["prompt"], "task_id": f"t{i}"} for i, t in enumerate(tasks)],
                 sampling=Sampling(temperature=0.0, max_tokens=96))
        got = {r["task_id"]: set(r["skills"]) for r in RunDir(labels_run).iter_records()}
        truth = {f"t{i}": set(t["skills"]) for i, t in enumerate(tasks)}
        tp, fp, fn = Counter(), Counter(), Counter()
        for tid, gold in truth.items():
            pred = got.get(tid, set())
            for s in SKILLS:
                tp[s] += s in pred and s in gold
                fp[s] += s in pred and s not in gold
                fn[s] += s not in pred and s in gold
        per_skill = {s: {"precision": round(tp[s] / (tp[s] + fp[s]), 4) if tp[s] + fp[s] else None,
                         "recall": round(tp[s] / (tp[s] + fn[s]), 4) if tp[s] + fn[s] else None,
                         "predicted": tp[s] + fp[s], "true": tp[s] + fn[s]} for s in SKILLS}
        first = sum(1 for tid, gold in truth.items()
                    if (r := next((x for x in RunDir(labels_run).iter_records() if x["task_id"] == tid), None))
                    and r["skills"] and r["skills"][0] in gold)
        predicted = Counter(s for labels in got.values() for s in labels)
        result["labels"] = {
            "tasks": len(truth), "labeled": len(got),
            "exact_set_match": round(sum(got.get(t, set()) == g for t, g in truth.items()) / len(truth), 4),
            "first_label_correct": round(first / len(truth), 4),
            "per_skill": per_skill, "predicted_counts": dict(predicted),
            "true_counts": dict(Counter(s for g in truth.values() for s in g)),
            "seconds": round(time.time() - started, 1)}
        print(f"teacher labels: {result['labels']}", flush=True)

        # (b) the teacher lists skills of training tasks itself (no inventory given)
        started = time.time()
        train = list(ArithmeticTasks(skills=SKILLS, digits=1, operations=2, seed=1, count=args.extract_tasks).rows())
        tasks_file = base / "extract_tasks.jsonl"
        tasks_file.write_text("".join(json.dumps({"instruction": t["prompt"]}) + "\n" for t in train))
        from synthloop.runs.inputs import DatasetInput

        extract_run = base / "extract"
        generate(SkillExtraction(inputs=DatasetInput(path=tasks_file)), engine=engine, run=extract_run,
                 progress=False, sampling=Sampling(temperature=0.0, max_tokens=96))
        records = list(RunDir(extract_run).iter_records())
        try:
            listed = build_inventory(records, max_skills=8).names()
        except ValueError:
            listed = []
        result["inventory_listed_by_teacher"] = {"tasks": len(train), "kept_records": len(records),
                                                 "skills": listed, "seconds": round(time.time() - started, 1)}
        print(f"teacher inventory: {result['inventory_listed_by_teacher']}", flush=True)

        # (c) SkillMix problems over the missing skills, verified by the teacher's self-consistency
        started = time.time()
        mix_skills = [s for s in SKILLS if s in missing] or SKILLS[2:]
        if len(mix_skills) < 2:
            mix_skills = [*mix_skills, *(s for s in SKILLS if s not in mix_skills)][:2]
        mix_inventory = SkillInventory(skills=[Skill(name=s, description=DESCRIPTIONS[s]) for s in mix_skills],
                                       source="missing skills").save(base / "mix_skills.yaml")
        mix_run, votes_run = base / "skillmix", base / "self-consistency"
        generate(SkillMix(skills=mix_inventory, k=2, seed=0, min_response_words=5, query_types=["word problem"]),
                 engine=engine, run=mix_run, num_records=args.skillmix, max_items=3 * args.skillmix, progress=False,
                 sampling=Sampling(temperature=0.8, max_tokens=args.mix_tokens))
        mixed = list(RunDir(mix_run).iter_records())
        rows = [{"prompt": r["messages"][0]["content"], "teacher_response": r["messages"][1]["content"],
                 "task_id": f"mix-{i}"} for i, r in enumerate(mixed)]
        generate(ChatSamples(template=TEMPLATE, n=args.votes), engine=engine, run=votes_run, inputs=rows,
                 progress=False, sampling=Sampling(temperature=0.7, max_tokens=args.mix_tokens))
        agreements, kept, examples = [], 0, []
        for record in RunDir(votes_run).iter_records():
            answer, agreement = majority_answer([record["teacher_response"], *(s["text"] for s in record["samples"])])
            agreements.append(agreement)
            if answer is not None and agreement >= 0.6:
                kept += 1
                if len(examples) < 3:
                    examples.append({"prompt": record["prompt"][:400], "majority_answer": answer,
                                     "agreement": round(agreement, 3)})
        result["skillmix"] = {
            "skills": mix_skills, "requested": args.skillmix, "generated": len(mixed),
            "filtered": RunDir(mix_run).manifest().get("counts", {}),
            "votes_per_problem": args.votes + 1, "kept_by_self_consistency": kept,
            "mean_agreement": round(sum(agreements) / len(agreements), 4) if agreements else None,
            "examples_kept": examples, "seconds": round(time.time() - started, 1)}
        print(f"teacher skillmix: {result['skillmix']}", flush=True)
    finally:
        engine.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--out", type=Path, default=Path(".cache/bench-stat"))
    parser.add_argument("--variants", default="uniform,sel,syn")
    parser.add_argument("--small", action="store_true", help="tiny sizes (control-flow check)")
    parser.add_argument("--no-teacher", action="store_true")
    parser.add_argument("--name", default="stat")
    parser.add_argument("--keep", default="", help="comma list of variants to keep from the saved results "
                        "(same sizes) instead of rerunning them, e.g. --keep uniform")
    args = parser.parse_args()
    sizes = dict(eval=120, probe=120, per_round=64, n=4, budget=128, max_tokens=48, lr=2e-5, label_tasks=96,
                 extract_tasks=24, skillmix=16, votes=4, mix_tokens=160)
    if args.small:
        sizes = dict(eval=12, probe=16, per_round=12, n=2, budget=16, max_tokens=8, lr=1e-3, label_tasks=8,
                     extract_tasks=4, skillmix=4, votes=2, mix_tokens=32)
    for k, v in sizes.items():
        setattr(args, k, v)
    if args.out.exists():
        import shutil

        shutil.rmtree(args.out)  # a measured run starts fresh (a resumed one would time nothing)
    started = time.time()
    data: dict[str, Any] = {"machine": machine(), "model": args.model, "engine": args.engine, "dtype": "float32",
                            "sizes": sizes, "task": "arithmetic word problems, skills add/sub/mul/div, 1-2 steps, "
                            "1-digit operands; prompt: " + TEMPLATE, "variants": {}}
    kept = [k for k in args.keep.split(",") if k]
    if kept:
        results = Path(__file__).resolve().parents[1] / "bench" / "results"
        saved = json.loads((results / f"{args.name}.json").read_text())
        if saved.get("sizes") != sizes:
            raise SystemExit(f"--keep: the saved {args.name}.json used other sizes ({saved.get('sizes')})")
        for variant in kept:
            data["variants"][variant] = {**saved["variants"][variant], "kept_from": saved["machine"]["when"]}
    for variant in args.variants.split(","):
        if variant not in kept:
            data["variants"][variant] = run_variant(args, variant)
        save(args.name, data)
    if not args.no_teacher:
        missing = data["variants"].get("sel", {}).get("missing_skill_profile", {}).get("missing", [])
        data["teacher"] = teacher(args, missing)
    v = data["variants"]
    if "sel" in v and "uniform" in v:
        data["sel_minus_uniform_after"] = {
            s: round(v["sel"]["per_skill_accuracy"][s]["after"] - v["uniform"]["per_skill_accuracy"][s]["after"], 4)
            for s in SKILLS}
    if "syn" in v and "uniform" in v:
        data["syn_minus_uniform_after"] = {
            s: round(v["syn"]["per_skill_accuracy"][s]["after"] - v["uniform"]["per_skill_accuracy"][s]["after"], 4)
            for s in SKILLS}
    data["wall_seconds"] = round(time.time() - started, 1)
    data["machine"]["load_avg_1m_at_end"] = round(__import__("os").getloadavg()[0], 2)
    save(args.name, data)


if __name__ == "__main__":
    main()
