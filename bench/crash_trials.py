"""Crash trials: a 2,000-item generation run killed with SIGKILL at random moments (during start-up, mid-write, inside
the DSPy program), rerun each time with the same command, then compared with one uninterrupted run of the same config.

    flock /tmp/synthloop-heavy.lock python bench/crash_trials.py        # 20 trials (BENCH_TRIALS, BENCH_ITEMS)

Each trial starts a fresh run directory and launches `synthloop generate CONFIG` as a new user would; every launch
but the last is SIGKILLed at a random moment, between 1 and 6 kills per trial; the last launch runs to the end. A
third of the kills land during start-up (uniform between 0.1 s and 80% of the time the reference launch took to
write its first record); the rest while the run writes: at a record count drawn uniformly from what the run still
has to write (the kill comes as soon as that many new records are on disk). Drawing the moment by records written,
not by time from the launch, keeps the kills inside the run however loaded the machine and slow the start-up.

The program is `similar_problems` (a DSPy program: one
predictor, JSON/Chat adapter parsing) over 500 problems x 4 variants, against the fake OpenAI server on loopback
(its answers are seeded by the request, so a resumed item gets the same answer as in the reference run).

Per trial, and in total, against the reference run (outcome = kept record, or dropped by the program's filter):
  lost        items with an outcome in the reference and none after the trial
  duplicated  items with more than one outcome line (records + filtered)
  changed     items whose record (or filter decision) differs from the reference
Saves bench/results/crash_trials.json.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import machine, save  # noqa: E402

from synthloop.runs.run_dir import RunDir  # noqa: E402
from synthloop.testing.openai_server import OpenAIServer  # noqa: E402

TRIALS = int(os.environ.get("BENCH_TRIALS", "20"))
ITEMS = int(os.environ.get("BENCH_ITEMS", "2000"))
PER_PROBLEM = 4
MAX_KILLS = 6
SEED = int(os.environ.get("BENCH_SEED", "14"))


def write_config(scratch: Path, server: OpenAIServer, name: str) -> Path:
    problems = scratch / "problems.jsonl"
    if not problems.exists():
        problems.write_text("".join(json.dumps({"problem": f"Problem {i}: a farmer has {i} apples and buys {i % 7} "
                                                           f"more. How many apples does the farmer have now?"}) + "\n"
                                    for i in range(ITEMS // PER_PROBLEM)))
    config = scratch / f"{name}.yaml"
    config.write_text(json.dumps({
        "name": name, "output_dir": str(scratch / "runs"), "show_examples": 0, "seed": 3,
        "program": {"kind": "similar_problems", "inputs": {"path": str(problems)}, "per_problem": PER_PROBLEM,
                    "answer_key": "text", "min_words": 1},
        "engine": {"kind": "openai", "model": server.model, "base_url": server.base_url, "max_concurrency": 64},
        "sampling": {"temperature": 0.8, "max_tokens": 128},
    }))
    return config


def launch(config: Path) -> subprocess.Popen:
    log = open(config.with_suffix(".log"), "w")  # noqa: SIM115 - closed with the process (a pipe could fill up)
    proc = subprocess.Popen([sys.executable, "-m", "synthloop", "generate", str(config)], stdout=subprocess.DEVNULL,
                            stderr=log, cwd=Path(__file__).resolve().parents[1])
    proc.log = log  # type: ignore[attr-defined]
    return proc


def finish(proc: subprocess.Popen, config: Path) -> str:
    proc.log.close()  # type: ignore[attr-defined]
    return config.with_suffix(".log").read_text()[-2000:]


def wait_for_progress(proc: subprocess.Popen, run: RunDir, before: int) -> float:
    """Block until the launch has written a record past `before` (or ended); returns that moment."""
    while proc.poll() is None:
        if outcome_count(run) > before:
            break
        time.sleep(0.1)
    return time.time()


def outcome_count(run: RunDir) -> int:
    """Outcome lines on disk so far (0 before the run directory exists)."""
    return sum(len(v) for v in outcomes(run).values()) if run.exists() else 0


def outcomes(run: RunDir) -> dict[int, list]:
    """item id -> every outcome line for it: a kept record, or the program filter's decision (with the record).
    The provenance's run name differs between runs by design and is left out."""
    def same(record: dict) -> dict:
        return {**record, "provenance": {k: v for k, v in record.get("provenance", {}).items() if k != "run"}}

    found: dict[int, list] = {}
    for record in run.iter_records():
        found.setdefault(record["id"], []).append(("kept", same(record)))
    for row in run.iter_filtered():
        found.setdefault(row["id"], []).append(("dropped", row["reason"], same(row["record"])))
    return found


def compare(reference: dict[int, list], trial: dict[int, list]) -> dict[str, int]:
    lost = sum(1 for item in reference if item not in trial)
    duplicated = sum(1 for lines in trial.values() if len(lines) > 1)
    changed = sum(1 for item, lines in trial.items() if item in reference and lines[0] != reference[item][0])
    extra = sum(1 for item in trial if item not in reference)
    return {"lost": lost, "duplicated": duplicated, "changed": changed, "extra": extra}


def main() -> None:
    rng = random.Random(SEED)
    scratch = Path(tempfile.mkdtemp(prefix="synthloop-crash-"))
    started = time.time()
    results: dict = {"machine": machine(), "items": ITEMS, "trials": [], "program": "similar_problems (DSPy)",
                     "server": "fake OpenAI server, its own process, 64 slots x 20 ms"}
    try:
        with OpenAIServer(slots=64, latency_s=0.02, process=True) as server:
            config = write_config(scratch, server, "reference")
            t0 = time.time()
            ref = launch(config)
            startup = wait_for_progress(ref, RunDir(scratch / "runs" / "reference"), 0) - t0
            ref.wait(timeout=1800)
            wall = time.time() - t0
            err = finish(ref, config)
            if ref.returncode != 0:
                raise SystemExit(f"the reference run failed ({ref.returncode}): {err}")
            reference = outcomes(RunDir(scratch / "runs" / "reference"))
            kept = sum(1 for lines in reference.values() if lines[0][0] == "kept")
            results["reference"] = {"seconds": round(wall, 1), "startup_seconds": round(startup, 1),
                                    "outcomes": len(reference), "kept": kept, "dropped": len(reference) - kept}
            print(f"reference: {len(reference)} outcomes ({kept} kept) in {wall:.1f} s ({startup:.1f} s to the first)")
            totals = Counter()
            for trial in range(TRIALS):
                name = f"trial-{trial:02d}"
                config = write_config(scratch, server, name)
                plan = [("startup", round(rng.uniform(0.1, 0.8 * startup), 2)) if rng.random() < 1 / 3
                        else ("writing", rng.random()) for _ in range(rng.randint(1, MAX_KILLS))]
                kills, launches, killed_after = 0, 0, []
                run = RunDir(scratch / "runs" / name)
                for phase, delay in plan:
                    before = outcome_count(run)
                    proc = launch(config)
                    launches += 1
                    try:
                        if phase == "writing":  # `delay` is the share of the remaining records to wait for
                            target = before + max(1, int(delay * (ITEMS - before)))
                            wait_for_progress(proc, run, target - 1)
                            delay = 0.0
                        proc.wait(timeout=delay)  # finished before its kill: nothing left to kill
                        if proc.returncode != 0:
                            raise SystemExit(f"{name}: a launch failed ({proc.returncode}): {finish(proc, config)}")
                    except subprocess.TimeoutExpired:
                        proc.send_signal(signal.SIGKILL)
                        proc.wait()
                        kills += 1
                        done = outcome_count(run)
                        killed_after.append({"phase": phase, "outcomes_on_disk": done} if phase == "writing"
                                            else {"phase": phase, "after_s": delay})
                    finish(proc, config)
                before_final = outcome_count(run)
                final = launch(config)
                launches += 1
                final.wait(timeout=1800)
                err = finish(final, config)
                found = outcomes(run)
                row = {"trial": trial, "kills": kills, "killed_after_s": killed_after, "launches": launches,
                       "outcomes_before_final_run": before_final, "final_exit_code": final.returncode,
                       "final_status": run.manifest()["status"],
                       "sessions_that_opened_the_run": run.manifest().get("resumed", 0) + 1,
                       **compare(reference, found)}
                if final.returncode != 0:
                    row["final_stderr"] = err
                results["trials"].append(row)
                totals.update({k: row[k] for k in ("kills", "lost", "duplicated", "changed", "extra")})
                totals["kills_while_writing"] += sum(1 for k in killed_after if k["phase"] == "writing")
                totals["failed_final_runs"] += final.returncode != 0
                print(json.dumps(row))
                shutil.rmtree(scratch / "runs" / name, ignore_errors=True)
                save_totals(results, totals, trial + 1, started)  # a bench stopped early keeps its finished trials
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps(results["total"]))


def save_totals(results: dict, totals: Counter, done: int, started: float) -> None:
    results["total"] = {"trials": done, "trials_planned": TRIALS,
                        **{k: totals.get(k, 0) for k in ("kills", "kills_while_writing", "lost", "duplicated",
                                                         "changed", "extra", "failed_final_runs")}}
    results["seconds"] = round(time.time() - started, 1)
    save("crash_trials", results)


if __name__ == "__main__":
    main()
