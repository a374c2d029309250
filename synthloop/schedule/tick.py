"""One tick: claim what arrived in the inbox, run one round of the recipe on it, decide, record.

The schedule's directory is a loop run directory (state.json, round-NNN/, ... see `synthloop.loops.controller`)
with a few more files:

    tick.lock           held (flock) for the whole tick: a second tick exits at once (exit code 75)
    inbox_ledger.json   per inbox file: the byte offset claimed so far (see `synthloop.schedule.inbox`)
    round-NNN/claim.json   the records round N consumes (files, byte ranges, counts); written before the ledger
    round-NNN/tick.json    the sessions (ticks) that worked on round N
    round-NNN/decision.json, inbox_dropped.jsonl
    current, current.json  the promoted checkpoint (see `synthloop.schedule.pointer`)
    history.jsonl       one line per tick (see `synthloop.schedule.history`)

A tick first finishes a round an earlier tick left unfinished (killed, failed, interrupted): its claim is
reused, its finished stages are skipped and the one it was in resumes. Otherwise it claims what is new and,
if at least `inbox.min_records` records wait, runs the next round; the very first tick also runs round 0
(the starting model's held-out evaluation, which makes it `current`). A schedule whose tasks a program writes
(`tasks.train: {kind: program}`, no inbox) runs the next round at every tick.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synthloop.configs import ConfigError
from synthloop.runs.jsonl import atomic_write
from synthloop.runs.lock import FileLock
from synthloop.runs.run_dir import ResumePolicy, RunDir
from synthloop.schedule.config import ScheduleConfig
from synthloop.schedule.history import History, TickRecord
from synthloop.schedule.inbox import Inbox


def schedule_dir(config: ScheduleConfig, config_path: Path | None = None) -> Path:
    return Path(config.output_dir) / (config.name or (config_path.stem if config_path else "schedule"))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def relative_to_run(path: str | None, root: Path) -> str | None:
    """`path` relative to the schedule directory `root` when inside it (history lines stay valid if it moves)."""
    if not path:
        return path
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


def run_tick(config: ScheduleConfig, directory: Path, *, resume: ResumePolicy = "if-unchanged",
             config_yaml: str | None = None, progress: bool = True, log: Callable[[str], None] | None = None,
             on_start: Callable[[], None] | None = None) -> TickRecord:
    """Run one tick of the schedule in `directory`. Raises `runs.lock.Locked` (at once) when another tick runs;
    `on_start` is called once the lock is held (heavy set-up belongs there, so a refusal stays instant)."""
    from synthloop.loops.controller import loop_identity

    if resume == "never":
        raise ConfigError("--resume never: a schedule continues in its one directory; use if-unchanged or always")
    identity = loop_identity(config)
    run = RunDir.target(directory, identity=identity, resume=resume)  # a changed config is refused here
    if not run.exists():  # the manifest first: the lock file must not make a fresh directory look foreign
        RunDir.open(run.path, identity=identity, kind="schedule", resume=resume, config_yaml=config_yaml).close()
    with FileLock(run.path / "tick.lock", busy="another tick of this schedule is running"):
        if on_start is not None:
            on_start()
        return Tick(config, run.path, resume, config_yaml, progress, log or (lambda m: None)).run()


class Tick:
    def __init__(self, config: ScheduleConfig, path: Path, resume: ResumePolicy, config_yaml: str | None,
                 progress: bool, log: Callable[[str], None]):
        self.config, self.path, self.resume, self.config_yaml = config, path, resume, config_yaml
        self.progress, self.log = progress, log
        self.history = History(path)
        self.started, self.clock = _now(), time.time()

    def controller(self, rounds: int):
        from synthloop.schedule.controller import TickController

        controller = TickController(self.config.model_copy(update={"rounds": rounds}), self.path,
                                    resume=self.resume, config_yaml=self.config_yaml, progress=self.progress,
                                    log=self.log)
        missing = self.config.promotion.judge_names() - set(controller.panel.names)
        if missing:
            raise ConfigError(f"promotion: no judge named {sorted(missing)[0]!r} (the judges are: "
                              f"{', '.join(controller.panel.names)}); use judge.<one of those>")
        return controller

    def run(self) -> TickRecord:
        from synthloop.loops.state import LoopState

        self.reconcile()
        tick = self.history.next_tick()
        state = LoopState.load(self.path / "state.json")
        done = {r.round for r in state.done_rounds()}
        round_ = max(done) + 1 if done else 1
        round_dir = self.path / f"round-{round_:03d}"
        inbox_config = self.config.inbox
        if inbox_config is None:  # a program writes each tick's tasks: every tick runs a round
            resumed = (round_dir / "tick.json").is_file()
            controller = self.controller(round_)
            round_dir.mkdir(parents=True, exist_ok=True)
            inputs: dict[str, Any] = {"program": self.config.tasks.train.program.kind}
            self.log(f"tick {tick}: {'resuming' if resumed else 'starting'} round {round_} on tasks the "
                     f"{inputs['program']} program writes")
        else:
            inbox_config.path.mkdir(parents=True, exist_ok=True)
            inbox = Inbox(inbox_config.path, self.path)
            resumed = (round_dir / "claim.json").is_file()
            if not resumed:
                waiting = sum(r.records for r in inbox.pending(inbox_config.max_records))
                if waiting < inbox_config.min_records:
                    return self.idle(tick, waiting, baseline=0 not in done)
            controller = self.controller(round_)
            claim = inbox.claim(round_dir, round_, limit=inbox_config.max_records)
            inputs = {"records": claim.records, "files": [r.model_dump() for r in claim.ranges]}
            files = ", ".join(f"{r.file} [{r.start}:{r.end}] {r.records}" for r in claim.ranges)
            self.log(f"tick {tick}: {'resuming' if resumed else 'starting'} round {round_} on {claim.records} inbox "
                     f"record(s): {files}")
        sessions = self.session(round_dir, tick)
        try:
            controller.run_loop()
        except BaseException as exc:
            status = "interrupted" if isinstance(exc, KeyboardInterrupt | SystemExit) else "failed"
            self.history.append(TickRecord(
                tick=tick, round=round_, status=status, started=self.started, finished=_now(),
                wall_seconds=round(time.time() - self.clock, 1), resumed=sessions > 1, sessions=sessions,
                inputs=inputs,
                error=f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                reason="the next tick resumes this round"))
            raise
        record = self.done_record(tick, round_, sessions)
        self.history.append(record)
        self.finish(record)
        return record

    # -- pieces ---------------------------------------------------------------------------------------
    def idle(self, tick: int, waiting: int, baseline: bool) -> TickRecord:
        if baseline:  # the first tick evaluates the starting model even with an empty inbox: `current` exists
            self.log(f"tick {tick}: evaluating the starting model {self.config.engine.model} (round 0)")
            self.controller(0).run_loop()
        inbox = self.config.inbox
        reason = (f"no new records in {inbox.path}" if not waiting else
                  f"{waiting} new record(s) in {inbox.path}, fewer than min_records {inbox.min_records}")
        record = TickRecord(tick=tick, round=0 if baseline else None, status="idle", started=self.started,
                            finished=_now(), wall_seconds=round(time.time() - self.clock, 1), reason=reason,
                            decision="baseline" if baseline else None, current=self.current_rel())
        self.history.append(record)
        self.finish(record)
        return record

    def session(self, round_dir: Path, tick: int) -> int:
        path = round_dir / "tick.json"
        data = json.loads(path.read_text()) if path.is_file() else {"sessions": []}
        data["sessions"].append({"tick": tick, "pid": os.getpid(), "started": self.started})
        atomic_write(path, json.dumps(data, indent=2))
        return len(data["sessions"])

    def current_rel(self) -> str | None:
        from synthloop.schedule.pointer import Pointer

        current = Pointer(self.path).load()
        return relative_to_run(current.path, self.path) if current else None

    def done_record(self, tick: int, round_: int, sessions: int, note: str | None = None) -> TickRecord:
        from synthloop.loops.state import LoopState

        record = LoopState.load(self.path / "state.json").round(round_)
        assert record is not None and record.status == "done"
        outputs = {name: stage.outputs for name, stage in record.stages.items()}
        tasks, promote = outputs.get("tasks", {}), outputs.get("promote", {})
        datasets = {}
        for key, stage, field in (("tasks", "tasks", "path"), ("samples", "sample", "run"),
                                  ("judged", "judge", "path"), ("sft", "build", "sft"), ("pairs", "build", "pairs"),
                                  ("eval", "evaluate", "run"), ("eval_current", "evaluate-current", "run")):
            value = outputs.get(stage, {}).get(field)
            if value:
                datasets[key] = relative_to_run(value, self.path)
        round_started = self.started
        tick_file = self.path / f"round-{round_:03d}" / "tick.json"
        if tick_file.is_file():
            round_started = json.loads(tick_file.read_text())["sessions"][0]["started"]
        return TickRecord(
            tick=tick, round=round_, status="done", started=self.started, round_started=round_started,
            finished=_now(),
            wall_seconds=round(time.time() - self.clock, 1), resumed=sessions > 1, sessions=sessions,
            inputs={k: v for k, v in {"records": tasks.get("records"), "files": tasks.get("files", []),
                                      "written": tasks.get("written"), "tasks": tasks.get("count"),
                                      "dropped": tasks.get("dropped", {})}.items() if v is not None},
            datasets=datasets, heldout=promote.get("heldout", {}),
            round_metrics={k: v for k, v in record.metrics.items() if k != "checkpoints"},
            decision=promote.get("decision"), reason=promote.get("reason", ""),
            candidate=relative_to_run(promote.get("candidate"), self.path), current=self.current_rel(), note=note)

    def reconcile(self) -> None:
        """A round finished by a tick that died before writing its history line gets its line now."""
        from synthloop.loops.state import LoopState

        state = LoopState.load(self.path / "state.json")
        recorded = self.history.decided_rounds()
        for r in state.done_rounds():
            if r.round >= 1 and r.round not in recorded and "promote" in r.stages:
                tick_file = self.path / f"round-{r.round:03d}" / "tick.json"
                sessions = len(json.loads(tick_file.read_text())["sessions"]) if tick_file.is_file() else 1
                line = self.done_record(self.history.next_tick(), r.round, sessions,
                                        note="recorded by the next tick (the tick that ran it ended first)")
                self.history.append(line.model_copy(update={"wall_seconds": r.metrics.get("seconds", 0.0)}))

    def finish(self, record: TickRecord) -> None:
        RunDir(self.path).update_manifest(status="idle", ticks=record.tick, last_tick=record.finished,
                                          last_decision=record.decision or record.status, current=record.current)


def tick_summary(record: TickRecord, directory: Path) -> list[str]:
    """What `--once` prints at the end of a tick."""
    lines: list[str] = []
    if record.status == "idle":
        lines.append(f"tick {record.tick}: idle: {record.reason}")
    else:
        if "records" in record.inputs:
            what = f"{record.inputs.get('records')} inbox record(s) -> {record.inputs.get('tasks')} task(s)"
        else:
            what = f"{record.inputs.get('written')} task(s) written -> {record.inputs.get('tasks')} kept"
        lines.append(f"tick {record.tick} · round {record.round} · {what} · {record.decision}: {record.reason}")
    lines.append(f"current:  {directory / 'current'} -> {record.current}")
    lines.append(f"history:  synthloop runs show {directory}")
    return lines


def describe_dir(directory: Path) -> dict[str, Any]:
    """A snapshot for status lines: current checkpoint, last tick, pending inbox records, running tick."""
    from synthloop.schedule.pointer import Pointer

    out: dict[str, Any] = {}
    current = Pointer(directory).load()
    if current is not None:
        out["current"] = relative_to_run(current.path, directory)
        out["current_round"] = current.round
    records = History(directory).records()
    if records:
        out["last"] = records[-1]
    lock = directory / "tick.lock"
    if lock.is_file() and lock.read_text().strip():  # the holder writes itself in; a killed holder's text stays
        import psutil

        try:
            holder = json.loads(lock.read_text())
            if psutil.pid_exists(int(holder["pid"])):
                out["running"] = holder
        except (ValueError, KeyError, TypeError):
            pass
    return out
