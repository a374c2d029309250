"""The history of a schedule: `history.jsonl`, one line per tick, appended when the tick ends.

    {"tick": 3, "round": 3, "status": "done", "started": "...", "finished": "...", "wall_seconds": 312.4,
     "resumed": false, "sessions": 1,
     "inputs": {"records": 64, "files": [{"file": "failures.jsonl", "start": 0, "end": 20488, "records": 64}],
                "tasks": 63, "dropped": {"held_out": 1}},
     "datasets": {"tasks": "round-003/tasks.jsonl", "samples": "round-003/samples", "sft": "round-003/data/sft.jsonl"},
     "heldout": {"candidate": {"eval_accuracy": 0.45, ...}, "current": {"eval_accuracy": 0.41, ...},
                 "current_source": "stored (round 1)"},
     "round_metrics": {...every figure of the round...},
     "decision": "promoted", "reason": "eval_accuracy 0.41 -> 0.45 (+0.04): improved",
     "candidate": "round-003/train-sft/model", "current": "round-003/train-sft/model"}

status: done (a round ran and was decided), idle (too few new records; nothing claimed), failed (the round
raised; the next tick resumes it), interrupted (Ctrl-C / SIGTERM; the next tick resumes it). A tick killed
outright (SIGKILL, power loss) writes nothing; the tick that resumes its round says `resumed` and counts the
sessions. Paths inside the schedule's directory are relative to it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from synthloop.runs.jsonl import read_jsonl

Status = Literal["done", "idle", "failed", "interrupted"]


class TickRecord(BaseModel):
    tick: int
    round: int | None = None
    status: Status
    started: str
    finished: str
    wall_seconds: float
    resumed: bool = False
    sessions: int = 1
    round_started: str | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    datasets: dict[str, str] = Field(default_factory=dict)
    heldout: dict[str, Any] = Field(default_factory=dict)
    round_metrics: dict[str, Any] = Field(default_factory=dict)
    decision: str | None = None
    reason: str = ""
    candidate: str | None = None
    current: str | None = None
    error: str | None = None
    note: str | None = None


class History:
    def __init__(self, schedule_dir: Path):
        self.path = Path(schedule_dir) / "history.jsonl"

    def records(self) -> list[TickRecord]:
        return [TickRecord.model_validate(row) for row in read_jsonl(self.path)]

    def next_tick(self) -> int:
        return sum(1 for _ in read_jsonl(self.path)) + 1

    def append(self, record: TickRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record.model_dump(mode="json"), ensure_ascii=False) + "\n")
            handle.flush()

    def decided_rounds(self) -> set[int]:
        return {r.round for r in self.records() if r.status == "done" and r.round is not None}


def _seconds(value: float) -> str:
    value = int(round(value))
    if value < 120:
        return f"{value} s"
    if value < 7200:
        return f"{value // 60} min {value % 60:02d} s"
    return f"{value // 3600} h {value % 3600 // 60:02d} min"


def history_table(records: list[TickRecord], metric: str = "eval_accuracy", title: str | None = None):
    """The ticks as a rich table; runs of idle ticks collapse into one row."""
    from rich.table import Table

    table = Table(title=title)
    for name, justify in (("tick", "right"), ("round", "right"), ("started", "left"), ("wall", "right"),
                          ("inbox", "right"), ("tasks", "right"), ("train rows", "right"),
                          (f"{metric}\ncurrent -> new", "right"), ("decision", "left"), ("reason", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    rows: list[list[str]] = []
    idle_run: list[TickRecord] = []

    def flush_idle() -> None:
        if not idle_run:
            return
        first, last = idle_run[0], idle_run[-1]
        ticks = str(first.tick) if len(idle_run) == 1 else f"{first.tick}-{last.tick}"
        label = "idle" if len(idle_run) == 1 else f"idle ×{len(idle_run)}"
        rows.append([ticks, "", first.started.replace("T", " "), "", "0", "", "", "", label, last.reason])
        idle_run.clear()

    for r in records:
        if r.status == "idle":
            idle_run.append(r)
            continue
        flush_idle()
        files = r.inputs.get("files") or []
        inbox = str(r.inputs.get("records", ""))
        if files:
            inbox += f" ({len(files)} file{'s' if len(files) != 1 else ''})"
        m = r.round_metrics
        train = " + ".join(f"{m[k]} {label}" for k, label in (("sft_data", "sft"), ("dpo_pairs", "pairs"),
                                                                 ("grpo_examples", "grpo")) if m.get(k) is not None)
        cur, new = (r.heldout.get("current") or {}).get(metric), (r.heldout.get("candidate") or {}).get(metric)
        compare = "" if cur is None and new is None else f"{_num(cur)} -> {_num(new)}"
        decision = r.decision or r.status
        if r.resumed:
            decision += f" (resumed, {r.sessions} sessions)"
        rows.append([str(r.tick), "" if r.round is None else str(r.round), r.started.replace("T", " "),
                     _seconds(r.wall_seconds), inbox, str(r.inputs.get("tasks", "")), train, compare, decision,
                     r.error or r.reason])
    flush_idle()
    for row in rows:
        table.add_row(*row)
    return table


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def schedule_metric(schedule_dir: Path) -> str:
    """The promotion metric named in the schedule's resolved config (config.yaml), else eval_accuracy."""
    import yaml

    path = Path(schedule_dir) / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text()) if path.is_file() else {}
        return (data.get("promotion") or {}).get("metric") or "eval_accuracy"
    except (OSError, yaml.YAMLError, AttributeError):
        return "eval_accuracy"


def render_history(schedule_dir: Path, title: str | None = None):
    """The history table of a schedule's directory, or None when it has no history.jsonl."""
    history = History(schedule_dir)
    if not history.path.is_file():
        return None
    return history_table(history.records(), metric=schedule_metric(schedule_dir), title=title)
