"""Scheduled refinement on the tiny model, through the real CLI in subprocesses: a foreground scheduler runs three
ticks while records keep arriving in the inbox (each used by exactly one tick), promotes only on improvement
and keeps `current` on the best checkpoint; a tick killed with SIGKILL mid-training resumes at the next tick
with its own claim; a second tick while one runs is refused with exit code 75. Plus the pure parts: promotion
rules, inbox records -> tasks, the cron/systemd snippets, one-line config errors."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from helpers import ROOT, popen_cli, run_cli, write_config

from synthloop.runs.jsonl import read_jsonl
from synthloop.schedule.config import InboxConfig, PromotionRules
from synthloop.schedule.inbox import Inbox
from synthloop.schedule.promotion import decide
from synthloop.schedule.stages import tasks_from_entries

TESTS = ROOT / "tests"


@pytest.fixture(autouse=True)
def _test_judges_importable(monkeypatch):
    """The configs name test judges (`schedule_judges:make`, `loop_judges:make`); the CLI subprocesses import them."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))


def schedule_config(tmp: Path, grades: dict[int, float], **overrides) -> dict:
    config = {
        "output_dir": str(tmp / "runs"),
        "name": "refine",
        "engine": {"kind": "transformers", "model": "tiny-random-chat", "batch_size": 64},
        "inbox": {"path": str(tmp / "inbox"), "prompt_column": "question", "reference_column": "answer.value"},
        "tasks": {"eval": {"kind": "arithmetic", "seed": 2}, "eval_count": 6},
        "prompt": {"template": "{prompt}\nEnd with: The answer is N."},
        "sampling": {"n": 2, "max_tokens": 8, "temperature": 1.0},
        "eval": {"max_tokens": 8},
        "judges": [{"kind": "python", "factory": "schedule_judges:make", "min_score": 0.0,
                    "options": {"grades": str(tmp / "grades.json"), "schedule": str(tmp / "runs" / "refine")}},
                   {"kind": "python", "factory": "loop_judges:make", "min_score": 0.0}],
        "recipe": {"kind": "expert_iteration", "include_truncated": True, "max_per_task": 1},
        "train": {"plan": ["sft"], "sft": {"max_steps": 2, "batch_size": 4, "learning_rate": 1e-3}},
        "promotion": {"metric": "judge.graded", "guards": [{"metric": "eval_accuracy", "max_drop": 0.0}]},
        "concurrency": 64,
        "plot": False,
    }
    (tmp / "grades.json").write_text(json.dumps({str(k): v for k, v in grades.items()}))
    config.update(overrides)
    return config


def record(i: int) -> dict:
    """An inbox record as a deployed model might log it; every 7th lacks its reference answer."""
    row = {"question": f"Q{i}: Maya has {i} apples and buys 2 more. How many apples does she have?",
           "answer": {"value": str(i + 2)}, "model_answer": "I think 3", "score": 0.1}
    if i % 7 == 6:
        del row["answer"]
    return row


def _state(run: Path) -> dict:
    return json.loads((run / "state.json").read_text())


def _history(run: Path) -> list[dict]:
    return list(read_jsonl(run / "history.jsonl"))


# -- pure parts ------------------------------------------------------------------------------------------
def test_promotion_rules():
    rules = PromotionRules(metric="eval_accuracy", min_gain=0.02,
                           guards=[{"metric": "eval_truncated", "max_drop": 0.05, "lower_is_better": True},
                                   {"metric": "judge.safety", "max_drop": 0.0}],
                           require={"judge.verifier:math_answer": 0.3})
    current = {"eval_accuracy": 0.40, "eval_truncated": 0.10, "judge.safety": 0.9, "judge.verifier:math_answer": 0.4}
    better = dict(current, eval_accuracy=0.45)
    assert decide(better, current, rules).promoted
    assert decide(dict(current, eval_accuracy=0.41), current, rules).reason.endswith("gain too small")
    assert decide(current, current, rules).reason.endswith("no gain")
    worse = decide(dict(current, eval_accuracy=0.3), current, rules)
    assert not worse.promoted and worse.gain == pytest.approx(-0.1)
    truncating = decide(dict(better, eval_truncated=0.2), current, rules)  # lower is better: 0.1 -> 0.2 is worse
    assert not truncating.promoted and "guard eval_truncated" in truncating.reason
    assert decide(dict(better, eval_truncated=0.14), current, rules).promoted  # within max_drop
    assert "guard judge.safety" in decide(dict(better, **{"judge.safety": 0.85}), current, rules).reason
    floor = decide(dict(better, **{"judge.verifier:math_answer": 0.2}), current, rules)
    assert not floor.promoted and "required 0.3" in floor.reason
    assert not decide({}, current, rules).promoted
    # exact decimal steps are not lost to float noise: 0.42 - 0.40 >= 0.02
    assert decide(dict(current, eval_accuracy=0.42), current, rules).promoted


def test_inbox_records_become_tasks_once(tmp_path):
    inbox_dir = tmp_path / "inbox"
    inbox_dir.mkdir()
    held_out = {"question": "What is 2 + 2?", "answer": {"value": "4"}, "score": 0}
    lines = [json.dumps(record(i)) for i in range(8)] + ["{not json", json.dumps(record(0)), "[1, 2]",
                                                          json.dumps(held_out)]
    (inbox_dir / "failures.jsonl").write_text("\n".join(lines) + "\n" + '{"question": "half-wri')
    inbox = Inbox(inbox_dir, tmp_path / "state")
    first = inbox.claim(tmp_path / "r1", 1, limit=5)
    assert first.records == 5 and inbox.pending()[0].records == len(lines) - 5  # the rest waits for the next claim
    second = inbox.claim(tmp_path / "r2", 2)
    cfg = InboxConfig(path=inbox_dir, prompt_column="question", reference_column="answer.value",
                      columns={"logged_score": "score"})
    rows1, dropped1 = tasks_from_entries(inbox.entries(first), cfg, held_out=set(), prefix="r1")
    rows2, dropped2 = tasks_from_entries(inbox.entries(second), cfg, held_out={"what is 2 + 2?"}, prefix="r2")
    assert [r["prompt"][:3] for r in rows1] == ["Q0:", "Q1:", "Q2:", "Q3:", "Q4:"] and not dropped1
    assert rows1[0] == {"task_id": "r1-0", "prompt": record(0)["question"], "logged_score": 0.1, "reference": "2",
                        "inbox": {"file": "failures.jsonl", "offset": 0}}
    assert [r["prompt"][:3] for r in rows2] == ["Q5:", "Q7:", "Q0:"]  # Q0 again in a later tick is a new task
    assert [d["reason"] for d in dropped2] == ["missing column", "invalid", "invalid", "held out"]
    offsets = [r["inbox"]["offset"] for r in rows1 + rows2] + [d["offset"] for d in dropped2]
    assert len(set(offsets)) == len(lines)  # every complete line accounted for once; the torn one waits
    assert inbox.pending() == []


def test_print_cron_snippets_are_valid(tmp_path):
    path = write_config(tmp_path / "refine.yaml", schedule_config(tmp_path, {0: 0.5}))
    result = run_cli("schedule", str(path), "--every", "6h", "--print-cron", "--set", "promotion.min_gain=0.01",
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    cron_line = next(line for line in text.splitlines() if line and not line.startswith("#") and "*" in line)
    assert cron_line.startswith("0 */6 * * * cd ") and f"cd {tmp_path}" in cron_line
    for part in (f"{sys.executable} -m synthloop schedule run {path.resolve()} --once",
                 "--set promotion.min_gain=0.01", f"mkdir -p {tmp_path}/runs/refine && ",
                 f">> {tmp_path}/runs/refine/schedule.log 2>&1"):
        assert part in cron_line
    assert "OnCalendar=*-*-* 00,06,12,18:00:00" in text and "SuccessExitStatus=75" in text
    nightly = run_cli("schedule", str(path), "--cron", "30 3 * * 1-5", "--print-cron", cwd=tmp_path)
    assert nightly.stdout.splitlines()[3].startswith("30 3 * * 1-5 cd ")
    assert "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 03:30:00" in nightly.stdout
    if shutil.which("systemd-analyze"):  # systemd itself parses what we generate
        for expr in ("*-*-* 00,06,12,18:00:00", "Mon,Tue,Wed,Thu,Fri *-*-* 03:30:00"):
            check = subprocess.run(["systemd-analyze", "calendar", expr], capture_output=True, text=True)
            assert check.returncode == 0, check.stderr
        units = tmp_path / "units"
        units.mkdir()
        blocks = text.split("# --- systemd: ~/.config/systemd/user/")[1:]
        for block in blocks:
            name, body = block.split(" ---\n", 1)
            (units / name).write_text(body.split("\n# enable:")[0])
        verify = subprocess.run(["systemd-analyze", "verify", *map(str, sorted(units.iterdir()))],
                                capture_output=True, text=True)
        assert verify.returncode == 0, verify.stderr
    odd = run_cli("schedule", str(path), "--every", "7h", "--print-cron", cwd=tmp_path)
    assert "no crontab schedule runs exactly every 7h" in odd.stdout and "OnUnitActiveSec=25200s" in odd.stdout


def test_config_errors_are_one_line(tmp_path):
    base = schedule_config(tmp_path, {0: 0.5})
    cases = [
        (dict(base, rounds=3), [], "rounds: has no meaning in a schedule"),
        (dict(base, promotion={"metric": "accuracy"}), [], "promotion.metric: unknown held-out metric"),
        (base, ["--once", "--every", "1h"], "--once runs one tick now"),
        (base, [], "give exactly one of --every"),
        (base, ["--cron", "0 3 * *"], "not a cron expression"),
    ]
    for i, (config, args, message) in enumerate(cases):
        path = write_config(tmp_path / f"c{i}.yaml", config)
        result = run_cli("schedule", str(path), *args, cwd=tmp_path)
        assert result.returncode == 2, (message, result.stderr[-2000:])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and message in lines[0], (message, result.stderr[-2000:])
    # a promotion rule naming a judge the config does not have: refused before anything is claimed
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / "a.jsonl").write_text(json.dumps(record(0)) + "\n")
    path = write_config(tmp_path / "judge.yaml", dict(base, promotion={"metric": "judge.safety"}))
    result = run_cli("schedule", str(path), "--once", cwd=tmp_path)
    assert result.returncode == 2 and "promotion: no judge named 'safety' (the judges are: graded" in result.stderr
    assert not (tmp_path / "runs" / "refine" / "round-001" / "claim.json").exists()


# -- the real scheduler ------------------------------------------------------------------------------------
class InboxWriter(threading.Thread):
    """A deployed model logging failures: appends records one by one, each in two writes (the inbox must not
    claim half a line), until stopped."""

    def __init__(self, path: Path, every_s: float = 0.4):
        super().__init__(daemon=True)
        self.path, self.every_s, self.count, self.halt = path, every_s, 0, threading.Event()

    def write(self, n: int) -> None:
        with open(self.path, "a") as handle:
            for _ in range(n):
                line = json.dumps(record(self.count)) + "\n"
                handle.write(line[:20])
                handle.flush()
                time.sleep(0.02)
                handle.write(line[20:])
                handle.flush()
                self.count += 1

    def run(self) -> None:
        while not self.halt.wait(self.every_s):
            self.write(1)


def test_three_ticks_with_a_live_inbox_promote_only_on_improvement(tmp_path):
    # held-out grades per round, as the test judge reports them: round 2 is worse than round 1, round 3 better
    config = schedule_config(tmp_path, {0: 0.4, 1: 0.6, 2: 0.5, 3: 0.7})
    config["inbox"]["max_records"] = 10  # a tick takes the 10 oldest; the rest waits (and the test stays short)
    path = write_config(tmp_path / "refine.yaml", config)
    run = tmp_path / "runs" / "refine"
    (tmp_path / "inbox").mkdir()
    writer = InboxWriter(tmp_path / "inbox" / "failures.jsonl")
    writer.write(6)
    writer.start()
    try:
        result = run_cli("schedule", str(path), "--every", "1s", "--max-ticks", "3", cwd=tmp_path, timeout=400)
    finally:
        writer.halt.set()
        writer.join()
    assert result.returncode == 0, result.stderr[-4000:]
    assert "next tick" in result.stderr and "done: 3 tick(s)" in result.stderr
    history = _history(run)
    assert [(h["tick"], h["round"], h["status"], h["decision"]) for h in history] == [
        (1, 1, "done", "promoted"), (2, 2, "done", "rejected"), (3, 3, "done", "promoted")]
    assert history[1]["heldout"]["current"]["judge.graded"] == 0.6 and history[1]["reason"].endswith("no gain")
    assert history[2]["heldout"]["current_source"] == "stored (round 1)"

    # exactly once: the claimed records are the first ones written, in order, each in one round; the rest waits
    used, dropped = [], 0
    for r in (1, 2, 3):
        claim = json.loads((run / f"round-{r:03d}" / "claim.json").read_text())
        assert claim["ranges"][0]["records"] == history[r - 1]["inputs"]["records"] > 0
        tasks = list(read_jsonl(run / f"round-{r:03d}" / "tasks.jsonl"))
        lost = list(read_jsonl(run / f"round-{r:03d}" / "inbox_dropped.jsonl"))
        assert {d["reason"] for d in lost} <= {"missing column"}
        assert len(tasks) + len(lost) == claim["ranges"][0]["records"]
        used += [int(t["prompt"].split(":")[0][1:]) for t in tasks]
        dropped += len(lost)
    waiting = sum(r.records for r in Inbox(tmp_path / "inbox", run).pending())
    claimed = len(used) + dropped
    assert claimed + waiting == writer.count
    assert used == [i for i in range(claimed) if i % 7 != 6]
    assert all(h["inputs"]["records"] == 10 for h in history) and waiting > 0

    # current: round 3's checkpoint; round 2's (rejected) is kept on disk but never served or built upon
    state = _state(run)
    r1, r2, r3 = (str(run / f"round-{r:03d}" / "train-sft" / "model") for r in (1, 2, 3))
    assert os.readlink(run / "current") == "round-003/train-sft/model"
    current = json.loads((run / "current.json").read_text())
    assert current["round"] == 3 and [h["round"] for h in current["history"]] == [0, 1]
    assert state["rounds"][3]["checkpoint_in"]["policy"] == r1  # trained from current, not the rejected round 2
    assert state["checkpoints"]["policy"] == r3 and (Path(r2) / "model.safetensors").is_file()
    from synthloop.engines import registry
    from synthloop.engines.serving import resolve_checkpoint

    assert resolve_checkpoint(str(run)) == (Path(r3).resolve(), "refine")
    assert registry.resolve(str(run / "current")) == Path(r3).resolve()  # engine.model: runs/refine/current

    shown = run_cli("runs", "show", str(run))
    assert shown.returncode == 0, shown.stderr
    for text in ("ticks of the schedule", "promoted", "rejected", "0.6 -> 0.5", "no gain"):
        assert text in shown.stdout, text
    status = run_cli("schedule", "status", str(run))
    assert status.returncode == 0 and "round-003/train-sft/model (round 3)" in status.stdout + status.stderr
    page = (run / "report.html").read_text()  # rewritten by every tick: the ticks, decisions and rounds
    assert 'id="tick-table"' in page and "no gain" in page and page.count('data-series="judge.graded"') == 4


def test_sigkill_mid_tick_resumes_and_a_second_tick_is_refused(tmp_path):
    # the graded judge scores by running round, so the current checkpoint is compared by its stored round-0 figure
    # (re-evaluating it inside round 1 would grade it like the candidate)
    config = schedule_config(tmp_path, {0: 0.4, 1: 0.6}, promotion={"metric": "judge.graded"})
    config["train"]["sft"] = {"max_steps": 30, "batch_size": 2, "learning_rate": 1e-3,
                              "checkpoint_every_minutes": 0.004}
    path = write_config(tmp_path / "refine.yaml", config)
    run = tmp_path / "runs" / "refine"
    (tmp_path / "inbox").mkdir()
    writer = InboxWriter(tmp_path / "inbox" / "failures.jsonl")
    writer.write(14)

    first = popen_cli("schedule", str(path), "--once", cwd=tmp_path)
    lock = run / "tick.lock"
    deadline = time.time() + 120
    while time.time() < deadline and not (lock.is_file() and f'"pid": {first.pid}' in lock.read_text()):
        assert first.poll() is None, first.stdout.read()[-3000:]
        time.sleep(0.05)
    second = run_cli("schedule", str(path), "--once", cwd=tmp_path, timeout=120)
    assert second.returncode == 75, second.stderr
    lines = [line for line in second.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and f"another tick of this schedule is running (pid {first.pid}" in lines[0]

    train = run / "round-001" / "train-sft"

    def mid_training() -> bool:
        checkpoints = [p for p in (train / "trainer").glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
        logged = len(list(read_jsonl(train / "log.jsonl"))) if (train / "log.jsonl").is_file() else 0
        return bool(checkpoints) and logged >= 8

    deadline = time.time() + 240
    while time.time() < deadline and first.poll() is None and not mid_training():
        time.sleep(0.02)
    assert first.poll() is None, f"the tick ended before it was killed: {first.stdout.read()[-3000:]}"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    claim_before = (run / "round-001" / "claim.json").read_text()
    assert json.loads(claim_before)["ranges"][0]["records"] == 14
    assert "train-sft" not in _state(run)["rounds"][1]["stages"] and not (run / "history.jsonl").exists()

    writer.write(5)  # arrives after the kill: not part of the killed tick's round
    resumed = run_cli("schedule", str(path), "--once", cwd=tmp_path, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "resuming round 1" in resumed.stderr
    assert (run / "round-001" / "claim.json").read_text() == claim_before
    [line] = _history(run)
    assert (line["round"], line["status"], line["resumed"], line["sessions"]) == (1, "done", True, 2)
    assert line["decision"] == "promoted" and line["heldout"]["current_source"] == "stored (round 0)"
    stages = _state(run)["rounds"][1]["stages"]
    assert list(stages) == ["tasks", "sample", "judge", "build", "train-sft", "evaluate", "promote"]
    steps = [r["step"] for r in read_jsonl(train / "log.jsonl") if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 30  # resumed from its checkpoint, no step twice
    prompts = [t["prompt"] for t in read_jsonl(run / "round-001" / "tasks.jsonl")]
    assert [int(p.split(":")[0][1:]) for p in prompts] == [i for i in range(14) if i % 7 != 6]
    pending = Inbox(tmp_path / "inbox", run).pending()
    assert sum(r.records for r in pending) == 5 and pending[0].start == json.loads(claim_before)["ranges"][0]["end"]
