"""Learning from negatives on SmolLM2-135M-Instruct: SFT+REDI and TOPR against SFT+DPO (and plain SFT, expert
iteration) in the same verifiable-task loop. Held-out accuracy per arm and round.

    flock /tmp/synthloop-heavy.lock python experiments/negatives.py                 # ~12 min on 2 cores (1 round)
    python experiments/negatives.py --model tiny-random-chat --engine transformers --per-round 8 --eval-count 12 \
        --max-steps 2 --work /tmp/neg-smoke                                    # a smoke run (control flow only)

Every arm is one loop of `configs/loop/negatives.yaml` (recipe `negatives`) with the same seed, differing only in
`train.plan`. The first arm runs in full; the others (by default, `--share`) start from its finished stages: the
baseline evaluation (round 0) and round 1's tasks, samples and verdicts, plus its SFT stage for the arms whose plan
starts with sft. So every arm trains on exactly the same judged samples (the brief's "reuse one sampling stage's
judged data for all arms"): SFT+DPO and SFT+REDI train on the same pairs (data/pairs.jsonl) from the same SFT
checkpoint; TOPR trains on the accepted and rejected samples (data/topr.jsonl) from the sampling policy; plain SFT is
the expert-iteration reference. The forked loops are ordinary loop directories (state.json with the shared stages
recorded as done, their files copied, the SFT checkpoint symlinked), so the controller runs only what differs.
Rounds after the first sample from each arm's own policy, as a loop does. `--no-share` runs every arm as an
independent loop instead (same seeds: the same tasks and round-1 samples, at the cost of repeating them).
Loops resume if killed: rerun the same command. Saves bench/results/negatives.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

ARMS = ["sft+dpo", "sft+redi", "topr", "sft"]


def _slug(arm: str) -> str:
    return arm.replace("+", "-")


def _eval_correct(run: Path, round_: int) -> dict[str, bool]:
    from synthloop.loops.judging import iter_judged

    return {str(r["id"]): bool(r["samples"][0]["accepted"])
            for r in iter_judged(run / f"round-{round_:03d}" / "eval-judged")}


def _samples_digest(run: Path, round_: int) -> str:
    from synthloop.runs.run_dir import RunDir

    records = sorted(RunDir(run / f"round-{round_:03d}" / "samples").iter_records(), key=lambda r: str(r["id"]))
    text = json.dumps([[str(r["id"]), [s["text"] for s in r["samples"]]] for r in records])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SHARED_STAGES = ("tasks", "sample", "judge")
SHARED_FILES = ("tasks.jsonl", "samples", "judged")


def _fork(source: Path, dest: Path, cfg, *, share_sft: bool, log):
    """A loop controller for `cfg` in `dest` whose round 0 and round-1 stages tasks, sample, judge (and train-sft
    when `share_sft`) are those of the finished loop in `source`: their files are copied (the SFT checkpoint
    symlinked) and recorded as done in dest's state.json, with paths pointing into dest."""
    from synthloop.loops.controller import LoopController
    from synthloop.loops.state import LoopState, RoundRecord

    controller = LoopController(cfg, dest, progress=False, log=log)
    if controller.state.rounds:  # forked before (a rerun resumes it)
        return controller
    src = LoopState.load(source / "state.json")
    r0, r1 = src.round(0), src.round(1)
    stages = [*SHARED_STAGES, *(["train-sft"] if share_sft else [])]
    if r0 is None or r0.status != "done" or r1 is None or any(s not in r1.stages for s in stages):
        raise RuntimeError(f"{source}: the source loop has not finished round 0 and {', '.join(stages)} of round 1")

    def moved(record):  # the record with every path under source pointing under dest
        return type(record).model_validate_json(record.model_dump_json().replace(str(source), str(dest)))

    shutil.copy2(source / "eval_tasks.jsonl", dest / "eval_tasks.jsonl")
    shutil.copytree(source / "round-000", dest / "round-000", dirs_exist_ok=True)
    (dest / "round-001").mkdir(exist_ok=True)
    for name in SHARED_FILES:
        src_path, dst_path = source / "round-001" / name, dest / "round-001" / name
        if src_path.is_dir():
            shutil.copytree(src_path, dst_path, dirs_exist_ok=True)
        else:
            shutil.copy2(src_path, dst_path)
    round1 = RoundRecord(round=1, label=controller.recipe.describe(1), checkpoint_in=dict(r1.checkpoint_in),
                         stages={s: moved(r1.stages[s]) for s in stages})
    checkpoints = dict(r1.checkpoint_in)
    sft_dir = source / "round-001" / "train-sft"
    if share_sft and sft_dir.is_dir():  # (a skipped SFT stage, no accepted answers, has no checkpoint)
        link = dest / "round-001" / "train-sft"
        if not link.exists():
            link.symlink_to(sft_dir.resolve(), target_is_directory=True)
        checkpoints["policy"] = round1.stages["train-sft"].outputs["checkpoint"]
    controller.state = LoopState(checkpoints=checkpoints, rounds=[moved(r0), round1])
    controller.state.save(controller.state_path)
    return controller


def paired(report: dict) -> dict:
    """Round-1 held-out answers of every two arms, task by task (the same 200 tasks): how many only one arm got right,
    and the exact McNemar test's two-sided p (a binomial test on the discordant tasks)."""
    from scipy.stats import binomtest

    arms = {arm: _eval_correct(Path(data["run"]), 1) for arm, data in report["arms"].items()}
    out = {}
    names = list(arms)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            only_a = sum(arms[a][k] and not arms[b][k] for k in arms[a])
            only_b = sum(arms[b][k] and not arms[a][k] for k in arms[a])
            p = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
            out[f"{a} vs {b}"] = {"only_first_right": only_a, "only_second_right": only_b, "mcnemar_p": round(p, 4)}
    return out


def _stderr(p: float, n: int) -> float:
    return round(math.sqrt(p * (1 - p) / n), 4) if n else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arms", default=",".join(ARMS), help="train.plan of each arm, comma-separated")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "loop" / "negatives.yaml")
    parser.add_argument("--model", default=None, help="override engine.model")
    parser.add_argument("--engine", default=None, help="override engine.kind")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--share", action=argparse.BooleanOptionalAction, default=True,
                        help="later arms reuse the first arm's baseline, round-1 samples and verdicts (and SFT stage)")
    parser.add_argument("--per-round", type=int, default=None, help="override tasks.per_round")
    parser.add_argument("--eval-count", type=int, default=None, help="override tasks.eval_count")
    parser.add_argument("--max-steps", type=int, default=None, help="cap every training step (smoke runs)")
    parser.add_argument("--set", dest="sets", action="append", default=[], help="more config overrides")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-negatives")
    parser.add_argument("--out", default="negatives", help="results name (bench/results/<out>.json)")
    parser.add_argument("--paired-only", action="store_true",
                        help="only add the paired per-task comparison to an existing bench/results/<out>.json")
    args = parser.parse_args()
    if args.paired_only:
        from common import RESULTS, save

        report = json.loads((RESULTS / f"{args.out}.json").read_text())
        report["paired_round1"] = paired(report)
        save(args.out, report)
        print(json.dumps(report["paired_round1"], indent=1))
        return
    args.work = args.work.resolve()  # state.json paths are absolute: forks rewrite them by prefix

    from common import machine, save

    from synthloop.configs import load_config
    from synthloop.loops import run_loop
    from synthloop.loops.config import LoopConfig
    from synthloop.memory import PeakRSS

    overrides = [f"rounds={args.rounds}", "plot=false", f"output_dir={args.work}", *args.sets]
    if args.model:
        overrides.append(f"engine.model={args.model}")
    if args.engine:
        overrides.append(f"engine.kind={args.engine}")
    if args.per_round:
        overrides.append(f"tasks.per_round={args.per_round}")
    if args.eval_count:
        overrides.append(f"tasks.eval_count={args.eval_count}")
    if args.max_steps:
        overrides += [f"{k}.max_steps={args.max_steps}" for k in ("train.sft", "train.dpo", "recipe.redi",
                                                                   "recipe.topr")]
    report: dict = {"what": "held-out accuracy per arm and round; arms are loops of configs/loop/negatives.yaml that "
                            "differ only in train.plan (same seed, tasks, round-1 samples)",
                    "shared": "later arms reuse the first arm's round 0 and round-1 tasks/samples/verdicts (and its "
                              "SFT stage when their plan starts with sft)" if args.share else "independent loops",
                    "config": str(args.config.relative_to(ROOT)) if args.config.is_relative_to(ROOT) else
                    str(args.config), "overrides": overrides, "machine": machine(), "arms": {}}
    started = time.time()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    source: Path | None = None
    for arm in arms:
        name = f"negatives-{_slug(arm)}"
        cfg = load_config(LoopConfig, args.config, [*overrides, f"train.plan=[{arm}]", f"name={name}"])
        run = args.work / name
        print(f"== arm {arm}: {run}", flush=True)
        t0 = time.time()

        def say(message: str) -> None:
            print(message, flush=True)

        with PeakRSS() as meter:
            if source is None or not args.share:
                summary = run_loop(cfg, run, progress=False, log=say)
                source = run
            else:
                share_sft = arms[0].startswith("sft") and arm.startswith("sft")
                summary = _fork(source, run, cfg, share_sft=share_sft, log=say).run_loop()
        rounds = summary["rounds"]
        n = rounds[0].get("eval_tasks") or 0
        per_round = []
        for m in rounds:
            acc = m.get("eval_accuracy")
            keep = {k: v for k, v in m.items() if k.startswith(("sample_", "sft_", "dpo_", "redi_", "topr_",
                                                                 "seconds_train"))}
            per_round.append({"round": m["round"], "label": m["label"], "eval_accuracy": acc,
                              "eval_stderr": _stderr(acc, n) if acc is not None else None,
                              "eval_tokens": m.get("eval_tokens"), "seconds": m.get("seconds"), **keep})
        base, last = _eval_correct(run, 0), _eval_correct(run, rounds[-1]["round"])
        report["arms"][arm] = {
            "run": str(run), "plan": arm, "rounds": per_round,
            "accuracy_by_round": [r["eval_accuracy"] for r in per_round],
            "final_vs_baseline_tasks": {"gained": sum(last[k] and not base[k] for k in base),
                                        "lost": sum(base[k] and not last[k] for k in base), "tasks": len(base)},
            "round1_samples_sha": _samples_digest(run, 1) if len(rounds) > 1 else None,
            "shared_from": str(source) if args.share and source != run else None,
            "wall_seconds": round(time.time() - t0, 1), "peak_rss_gib": round(meter.peak_gib, 3),
        }
        print(f"== arm {arm}: held-out accuracy by round {report['arms'][arm]['accuracy_by_round']}", flush=True)
        save(args.out, report)  # partial results survive a kill between arms
    digests = {a["round1_samples_sha"] for a in report["arms"].values() if a["round1_samples_sha"]}
    report["round1_samples_identical_across_arms"] = len(digests) == 1
    report["baseline_identical_across_arms"] = len({a["accuracy_by_round"][0] for a in report["arms"].values()}) == 1
    report["wall_seconds"] = round(time.time() - started, 1)
    report["paired_round1"] = paired(report)
    save(args.out, report)
    print(f"{'arm':10s} " + " ".join(f"round {r}" for r in range(args.rounds + 1)))
    for arm, data in report["arms"].items():
        print(f"{arm:10s} " + " ".join(f"{a:7.1%}" if a is not None else "      -"
                                       for a in data["accuracy_by_round"]))
    print(f"round-1 samples identical across arms: {report['round1_samples_identical_across_arms']}; "
          f"wall time {report['wall_seconds'] / 60:.1f} min")


if __name__ == "__main__":
    main()
