"""A loop's or a schedule's directory for the report: metrics per round, data counts per stage, the held-out
tasks answered before and after, the lineage of every round (checkpoints, judges, recipe, config), and a
schedule's ticks. Reads state.json, summary.json, round-NNN/ and history.jsonl; never the loop's code paths.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from synthloop.loops.judging import iter_judged
from synthloop.loops.report import table_columns
from synthloop.loops.state import LoopState, RoundRecord
from synthloop.report.records import clip_strings
from synthloop.runs.lineage import config_judges, read_config
from synthloop.runs.run_dir import RunDir
from synthloop.schedule.history import History

#: held-out tasks shown side by side at most (all are counted)
TASK_CAP = 500
#: rounds whose sample scores get a histogram (the last ones)
HISTOGRAM_ROUNDS = 6
#: output fields of a stage that count data (besides the integer metrics it reports)
_COUNT_KEYS = ("count", "kept", "failed", "records", "tasks", "samples", "accepted", "examples", "steps")


def headline_metric(config: dict[str, Any]) -> str:
    """The loop's stop metric, or a schedule's promotion metric; eval_accuracy by default."""
    for section in ("promotion", "stop"):
        metric = (config.get(section) or {}).get("metric") if isinstance(config.get(section), dict) else None
        if metric:
            return str(metric)
    return "eval_accuracy"


def _local(run: Path, path: str | None, round_dir: Path) -> Path | None:
    """A path recorded in state.json, or the same name under the round's directory when the run was moved."""
    if not path:
        return None
    p = Path(path)
    if p.exists():
        return p
    moved = round_dir / p.name
    return moved if moved.exists() else None


def _short(run: Path, path: str | None) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).relative_to(run))
    except ValueError:
        return str(path)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def stage_counts(rounds: list[RoundRecord]) -> list[dict[str, Any]]:
    """Rows (stage, what, {round: n}) in stage order: the integer metrics of each stage (else its count fields)."""
    rows: dict[tuple[str, str], dict[int, int]] = {}
    for r in rounds:
        for stage, record in r.stages.items():
            out = record.outputs
            found = {k: v for k, v in (out.get("metrics") or {}).items() if isinstance(v, int)
                     and not isinstance(v, bool)}
            if not found:  # a stage reporting no counts among its metrics (sampling): its output fields
                found = {k: out[k] for k in _COUNT_KEYS if isinstance(out.get(k), int) and not isinstance(out[k], bool)}
            for key, value in found.items():
                rows.setdefault((stage, key), {})[r.round] = value
    return [{"stage": stage, "what": what, "values": {str(k): v for k, v in values.items()}}
            for (stage, what), values in rows.items()]


def lineage(run: Path, rounds: list[RoundRecord], config: dict[str, Any]) -> list[dict[str, Any]]:
    """Per round: the checkpoints it started from and made, its stages, what each training stage did, the
    judges, the recipe, and a schedule's decision."""
    judges = config_judges(config)
    recipe = (config.get("recipe") or {}).get("kind") if isinstance(config.get("recipe"), dict) else None
    out = []
    for r in rounds:
        train = []
        decision = None
        for name, stage in r.stages.items():
            o = stage.outputs
            if o.get("method") or name.startswith("train"):
                train.append({"stage": name, "method": o.get("method"), "from": _short(run, o.get("base_model")),
                              "to": _short(run, o.get("checkpoint")), "examples": o.get("examples"),
                              "steps": o.get("steps"), "resumed_from_step": o.get("resumed_from_step")})
            if o.get("decision"):
                decision = {"decision": o["decision"], "reason": o.get("reason", "")}
        made = r.metrics.get("checkpoints") or ({"policy": r.metrics["checkpoint"]} if r.metrics.get("checkpoint")
                                                 else {})
        out.append({
            "round": r.round, "label": r.label, "status": r.status,
            "checkpoint_in": {k: _short(run, v) for k, v in r.checkpoint_in.items()},
            "checkpoint_out": {k: _short(run, v) for k, v in made.items()},
            "stages": [{"name": n, "seconds": s.seconds, "finished": s.finished} for n, s in r.stages.items()],
            "train": train, "judges": judges, "recipe": recipe, "decision": decision,
        })
    return out


def _eval_dir(run: Path, r: RoundRecord) -> Path | None:
    round_dir = run / f"round-{r.round:03d}"
    stage = r.stages.get("evaluate")
    found = _local(run, stage.outputs.get("judged"), round_dir) if stage else None
    if found is None and (round_dir / "eval-judged").is_dir():
        found = round_dir / "eval-judged"
    return found


def _answer(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    sample = (row.get("samples") or [{}])[0]
    return clip_strings({"text": sample.get("text", ""), "accepted": sample.get("accepted"),
                         "score": _number(sample.get("score")), "scores": sample.get("scores") or {},
                         "notes": sample.get("notes") or {}, "finish_reason": sample.get("finish_reason")}, 2000)


def _task_key(row: dict[str, Any]) -> str:
    return str(row.get("task_id") or row.get("prompt") or row.get("id"))


def before_after(run: Path, rounds: list[RoundRecord]) -> dict[str, Any] | None:
    """The held-out tasks as answered in the first evaluated round and in the last, side by side."""
    evaluated = [(r, d) for r in rounds if r.status == "done" and (d := _eval_dir(run, r)) is not None]
    if len(evaluated) < 2:
        return None
    (first, first_dir), (last, last_dir) = evaluated[0], evaluated[-1]
    before = {_task_key(row): row for row in iter_judged(first_dir)}
    after = {_task_key(row): row for row in iter_judged(last_dir)}
    counts = {"improved": 0, "regressed": 0, "same": 0, "only_one": 0}
    tasks = []
    for key in list(dict.fromkeys([*before, *after])):
        b, a = _answer(before.get(key)), _answer(after.get(key))
        if b is None or a is None:
            change = "only_one"
        elif bool(a["accepted"]) and not b["accepted"]:
            change = "improved"
        elif bool(b["accepted"]) and not a["accepted"]:
            change = "regressed"
        else:
            change = "same"
        counts[change] += 1
        if len(tasks) < TASK_CAP:
            row = before.get(key) or after.get(key) or {}
            tasks.append({"key": key, "prompt": clip_strings(str(row.get("prompt", "")), 2000),
                          "reference": clip_strings(str(row.get("reference", "")), 500), "before": b, "after": a,
                          "change": change})
    return {"before_round": first.round, "before_label": first.label, "after_round": last.round,
            "after_label": last.label, "counts": counts, "total": len(before.keys() | after.keys()),
            "tasks": tasks}


def sample_scores(run: Path, rounds: list[RoundRecord]) -> list[dict[str, Any]]:
    """Judge scores of every sample of the last rounds that judged samples, accepted vs rejected."""
    out = []
    for r in rounds:
        stage = r.stages.get("judge")
        folder = _local(run, stage.outputs.get("path"), run / f"round-{r.round:03d}") if stage else None
        if folder is None or not folder.is_dir():
            continue
        accepted, rejected = [], []
        for row in iter_judged(folder):
            for s in row.get("samples") or []:
                value = _number(s.get("score"))
                if value is not None:
                    (accepted if s.get("accepted") else rejected).append(value)
        if accepted or rejected:
            out.append({"round": r.round, "label": r.label, "accepted": accepted, "rejected": rejected})
    return out[-HISTOGRAM_ROUNDS:]


def fill_from_ticks(rounds: list[dict[str, Any]], ticks: list[dict[str, Any]], metric: str) -> None:
    """A schedule's promotion metric is measured when a tick decides (history.jsonl `heldout`), not stored in
    the round's metrics: put each round's figure there (the candidate's; the current one's for the round it
    was stored in, e.g. "stored (round 0)"), so the per-round chart has it."""
    by_round = {m["round"]: m for m in rounds}
    for tick in ticks:
        heldout = tick.get("heldout") or {}
        candidate, current = heldout.get("candidate") or {}, heldout.get("current") or {}
        if tick.get("round") in by_round and metric in candidate:
            by_round[tick["round"]].setdefault(metric, candidate[metric])
        stored = re.search(r"round (\d+)", str(heldout.get("current_source", "")))
        if stored and int(stored.group(1)) in by_round and metric in current:
            by_round[int(stored.group(1))].setdefault(metric, current[metric])


def collect_rounds(run: RunDir) -> dict[str, Any]:
    path = run.path
    state = LoopState.load(path / "state.json")
    config = read_config(run)
    done = state.done_rounds()
    metrics = [r.metrics for r in done]
    summary_path = path / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    summary.pop("rounds", None)  # the same figures as `metrics`
    history = History(path)
    ticks = [t.model_dump(mode="json") for t in history.records()] if history.path.is_file() else []
    metric = headline_metric(config)
    rounds = json.loads(json.dumps(metrics, default=str))
    fill_from_ticks(rounds, ticks, metric)
    columns = table_columns(rounds)
    if metric not in [c[0] for c in columns] and any(m.get(metric) is not None for m in rounds):
        columns.insert(1, (metric, metric, "{:.4g}"))  # the headline metric has no column of its own
    return {
        "metric": metric,
        "rounds": rounds,
        "running": [{"round": r.round, "label": r.label, "stages": list(r.stages)} for r in state.rounds
                    if r.status != "done"],
        "columns": columns,
        "stage_counts": stage_counts(state.rounds),
        "lineage": lineage(path, state.rounds, config),
        "checkpoints": {k: _short(path, v) for k, v in state.checkpoints.items()},
        "before_after": before_after(path, state.rounds),
        "sample_scores": sample_scores(path, done),
        "summary": summary,
        "ticks": ticks,
    }
