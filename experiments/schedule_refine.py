"""Scheduled refinement on SmolLM2 over three ticks: a "deployed model" logs new arithmetic questions (with their
reference answers) into the inbox before every tick; each tick is the real
`synthloop schedule configs/schedule/refine.yaml --once` in its own process (exactly what cron or a systemd timer
runs): claim the new records, one round of expert iteration on them (sample, math verifier, SFT), held-out
evaluation, promotion decision. Prints the history table
(`synthloop runs show`) and saves bench/results/schedule_refine.json with the wall time, inputs, held-out metrics
and decision of every tick.

    flock /tmp/synthloop-heavy.lock python experiments/schedule_refine.py          # ~10-12 min on 2 cores
    python experiments/schedule_refine.py --model tiny-random-chat --out schedule_refine_tiny   # the plumbing, ~1 min

The sizes are cut down from configs/schedule/refine.yaml so three ticks fit ~12 minutes on a shared 2-core CPU (see
`--per-tick`, `--eval-count`, `--n`); the overrides are saved in the JSON. The engine is transformers fp32 by
default: on this CPU a vLLM start costs ~24-90 s, and a tick would start it twice (sampling, evaluation) for
batches this small.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def inbox_records(start: int, count: int) -> list[dict]:
    """Logged failures of a deployed model: new problems (arithmetic seed 1; the held-out set is seed 2) with
    their reference answers. The first record of every batch lacks its answer (a logging gap: dropped, counted)."""
    from synthloop.loops.tasks import ArithmeticTasks

    source = ArithmeticTasks(seed=1, digits=1, operations=1, skills=["add", "sub", "mul"], count=start + count)
    rows = list(source.rows())[start:]
    out = []
    for i, row in enumerate(rows):
        record = {"question": row["prompt"], "answer": row["reference"], "model_answer": "?",
                  "logged": time.strftime("%Y-%m-%dT%H:%M:%S")}
        if i == 0:
            del record["answer"]
        out.append(record)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--engine", default="vllm", choices=["transformers", "vllm", "auto"])
    ap.add_argument("--ticks", type=int, default=3)
    ap.add_argument("--per-tick", type=int, default=40, help="inbox records arriving before each tick")
    ap.add_argument("--eval-count", type=int, default=100, help="held-out problems")
    ap.add_argument("--n", type=int, default=4, help="answers sampled per task")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--out", default="schedule_refine")
    args = ap.parse_args()

    from bench.common import machine, save

    work = ROOT / "bench" / "runs" / args.out
    shutil.rmtree(work, ignore_errors=True)
    (work / "inbox" / "refine").mkdir(parents=True)
    config = ROOT / "configs" / "schedule" / "refine.yaml"
    overrides = [f"engine.model={args.model}", f"engine.kind={args.engine}", f"tasks.eval_count={args.eval_count}",
                 f"sampling.n={args.n}", f"sampling.max_tokens={args.max_tokens}", f"eval.max_tokens={args.max_tokens}"]
    if args.model == "tiny-random-chat":
        overrides.append("train.sft.max_steps=2")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
               PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "synthloop", "schedule", "run", str(config), "--once"]
    for item in overrides:
        command += ["--set", item]
    print("tick command (cwd " + str(work) + "):\n  " + " ".join(command), flush=True)

    figures: dict = {"machine": machine(), "config": "configs/schedule/refine.yaml", "overrides": overrides,
                     "per_tick_records": args.per_tick, "ticks": []}
    started, written = time.time(), 0
    log = open(work / "ticks.log", "w")  # noqa: SIM115 - the whole run
    for tick in range(1, args.ticks + 1):
        records = inbox_records(written, args.per_tick)
        with open(work / "inbox" / "refine" / "failures.jsonl", "a") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
        written += len(records)
        print(f"\n== tick {tick}: {len(records)} new inbox records (total written {written}) "
              f"load {os.getloadavg()[0]:.2f}", flush=True)
        t0 = time.time()
        proc = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if not line.lstrip().startswith(("Attempted to load", "WARNING")):
                print("   " + line.rstrip()[:220], flush=True)
        code = proc.wait()
        wall = round(time.time() - t0, 1)
        print(f"== tick {tick}: exit {code} in {wall} s", flush=True)
        figures["ticks"].append({"tick": tick, "exit_code": code, "process_wall_seconds": wall,
                                 "records_written_before": len(records)})
        if code != 0:
            break
    figures["total_wall_seconds"] = round(time.time() - started, 1)

    run = work / "runs" / "refine"
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()] \
        if (run / "history.jsonl").is_file() else []
    keep = ("tick", "round", "status", "wall_seconds", "resumed", "inputs", "heldout", "decision", "reason",
            "candidate", "current")
    figures["history"] = [{k: h.get(k) for k in keep} | {"round_metrics": {
        k: v for k, v in h.get("round_metrics", {}).items() if not isinstance(v, dict | list)}} for h in history]
    shown = subprocess.run([sys.executable, "-m", "synthloop", "runs", "show", "runs/refine", "--examples", "0"],
                           cwd=work, env=env, capture_output=True, text=True)
    table = shown.stdout[shown.stdout.find("ticks of the schedule"):] if "ticks of the schedule" in shown.stdout \
        else shown.stdout + shown.stderr
    print("\n" + table)
    figures["runs_show"] = table.splitlines()
    current = run / "current"
    figures["current"] = os.readlink(current) if current.is_symlink() else None
    figures["current_json"] = json.loads((run / "current.json").read_text()) if (run / "current.json").is_file() \
        else None
    figures["inbox_ledger"] = json.loads((run / "inbox_ledger.json").read_text()) \
        if (run / "inbox_ledger.json").is_file() else None
    figures["records_written"] = written
    print(f"total {figures['total_wall_seconds']} s; current -> {figures['current']}")
    save(args.out, figures)


if __name__ == "__main__":
    main()
