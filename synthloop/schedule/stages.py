"""A scheduled round is the configured recipe's round with four changes (`ScheduledRecipe`), all on the controller:

- its `tasks` stage reads the records this tick claimed from the inbox (`InboxTasksStage`) instead of a dataset
  (with a program source instead of an inbox, the recipe's own tasks stage writes the tick's tasks);
- when the current checkpoint has no comparable stored evaluation (or `promotion.compare: reevaluate`), an
  `evaluate-current` stage evaluates it with the same settings before training frees the engine;
- the final `evaluate` is skipped when training produced no new checkpoint (no accepted samples, say);
- a `promote` stage decides, moves the `current` pointer on a promotion, and otherwise hands the current
  checkpoint (not the rejected one) to the next round.

Round 0 (the baseline evaluation) gains a `set-current` stage: the starting model becomes `current`.
"""

from __future__ import annotations

import hashlib
import json
import statistics
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synthloop.configs import ConfigError, output_view
from synthloop.loops.recipes.base import Recipe
from synthloop.loops.stages import EvaluateStage, Stage, eval_tasks
from synthloop.runs.jsonl import atomic_write, write_jsonl
from synthloop.schedule.config import EVAL_METRICS, InboxConfig
from synthloop.schedule.inbox import Inbox, InboxClaim, InboxEntry
from synthloop.schedule.pointer import Pointer, prune
from synthloop.schedule.promotion import Decision, decide
from synthloop.text import normal_form

if TYPE_CHECKING:
    from synthloop.loops.controller import RoundContext
    from synthloop.schedule.config import ScheduleConfig


# -- inbox records -> tasks --------------------------------------------------------------------------
def tasks_from_entries(entries: Iterable[InboxEntry], cfg: InboxConfig, held_out: set[str],
                       prefix: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Map claimed records to task rows ({task_id, prompt, reference, <columns>, inbox: {file, offset}}); the
    records that cannot be tasks come back with their reason (not JSON, a missing column, no reference, a
    held-out prompt, a repeat within the tick)."""
    from synthloop.runs.inputs import DatasetInput

    wanted = {"prompt": cfg.prompt_column, **cfg.columns}
    if cfg.reference_column is not None:
        wanted["reference"] = cfg.reference_column
    mapper = DatasetInput(path=cfg.path, columns=wanted)
    rows, dropped, seen = [], [], set()
    for entry in entries:
        where = {"file": entry.file, "offset": entry.offset}
        if entry.record is None:
            dropped.append({**where, "reason": "invalid", "detail": entry.error})
            continue
        try:
            mapped = mapper.map(entry.record)
        except KeyError as exc:
            dropped.append({**where, "reason": "missing column", "detail": str(exc.args[0])})
            continue
        prompt = mapped["prompt"]
        if not isinstance(prompt, str) or not prompt.strip():
            dropped.append({**where, "reason": "no prompt", "detail": f"prompt is {prompt!r:.60}"})
            continue
        if cfg.reference_column is not None and mapped.get("reference") in (None, ""):
            dropped.append({**where, "reason": "no reference", "detail": f"{cfg.reference_column} is empty"})
            continue
        key = normal_form(prompt)
        if key in held_out:
            dropped.append({**where, "reason": "held out", "detail": "equals a held-out task"})
            continue
        if key in seen:
            dropped.append({**where, "reason": "duplicate", "detail": "repeats an earlier record of this tick"})
            continue
        seen.add(key)
        row = {name: mapped[name] for name in wanted}
        rows.append({"task_id": f"{prefix}-{len(rows)}", **row, "inbox": where})
    return rows, dropped


class InboxTasksStage(Stage):
    """The round's training tasks: the records this tick claimed (round-XXX/claim.json) -> tasks.jsonl."""

    name = "tasks"

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        cfg: ScheduleConfig = ctx.config  # type: ignore[assignment]
        claim = InboxClaim.model_validate_json((ctx.dir / "claim.json").read_text())
        inbox = Inbox(cfg.inbox.path, ctx.run_dir)
        held_out = {normal_form(r["prompt"]) for r in eval_tasks(ctx)}
        rows, dropped = tasks_from_entries(inbox.entries(claim), cfg.inbox, held_out, prefix=f"r{ctx.round}")
        path = ctx.dir / "tasks.jsonl"
        write_jsonl(path, rows)
        write_jsonl(ctx.dir / "inbox_dropped.jsonl", dropped)
        reasons = dict(Counter(d["reason"] for d in dropped))
        if dropped:
            ctx.log(f"inbox: {len(dropped)} of {claim.records} record(s) are not tasks: "
                    + ", ".join(f"{n} {reason}" for reason, n in reasons.items())
                    + f" (see {ctx.dir / 'inbox_dropped.jsonl'})")
        return {"path": str(path), "count": len(rows), "records": claim.records, "dropped": reasons,
                "files": [r.model_dump() for r in claim.ranges],
                "metrics": {"inbox_records": claim.records, "tasks": len(rows), "inbox_dropped": len(dropped)}}


# -- held-out metrics --------------------------------------------------------------------------------
def judge_means(judged_dir: Path) -> dict[str, float]:
    """Each judge's mean score over the held-out answers: {"judge.<name>": mean}."""
    from synthloop.loops.judging import iter_judged

    scores: dict[str, list[float]] = {}
    for record in iter_judged(judged_dir):
        for sample in record["samples"]:
            for name, value in (sample.get("scores") or {}).items():
                if isinstance(value, int | float):
                    scores.setdefault(name, []).append(float(value))
    return {f"judge.{name}": round(statistics.fmean(v), 4) for name, v in scores.items() if v}


def heldout_metrics(outputs: dict[str, Any], prefix: str = "eval") -> dict[str, Any]:
    """An evaluate stage's outputs -> {eval_accuracy, ..., judge.<name>} (a prefixed evaluation renamed back)."""
    metrics = outputs.get("metrics", {})
    out = {name: metrics.get(f"{prefix}{name[len('eval'):]}") for name in EVAL_METRICS}
    if outputs.get("judged"):
        out.update(judge_means(Path(outputs["judged"])))
    return out


def eval_fingerprint(config: ScheduleConfig, schedule_dir: Path) -> str:
    """What makes two held-out evaluations comparable: the held-out tasks, prompt, eval sampling, judges and
    the engine's kind and precision (not the model)."""
    tasks = Path(schedule_dir) / "eval_tasks.jsonl"
    engine = {k: v for k, v in output_view(config.engine).items() if k != "model"}
    view = {"eval": output_view(config.eval), "prompt": output_view(config.prompt),
            "judges": output_view(config.judges), "engine": engine,
            "eval_tasks": hashlib.sha256(tasks.read_bytes()).hexdigest() if tasks.is_file() else None}
    return hashlib.sha256(json.dumps(view, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _rel(path: str | Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)


# -- stages ------------------------------------------------------------------------------------------
class SetCurrentStage(Stage):
    """Round 0: the starting model, just evaluated, becomes `current` (unless a current already exists)."""

    name = "set-current"

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.engines import registry

        pointer = Pointer(ctx.run_dir)
        current = pointer.load()
        if current is None:
            checkpoint = ctx.checkpoint()
            current = pointer.set(checkpoint, registry.resolve(checkpoint), round_=ctx.round,
                                  metrics=heldout_metrics(ctx.outputs("evaluate")),
                                  fingerprint=eval_fingerprint(ctx.config, ctx.run_dir))
        return {"current": current.checkpoint, "path": current.path, "metrics": {}}


class OnlyIfTrained(Stage):
    """Runs `stage` only when this round produced a new policy checkpoint (else: nothing new to evaluate)."""

    def __init__(self, stage: Stage):
        self.stage, self.name = stage, stage.name
        self.uses_engine, self.frees_engine = stage.uses_engine, stage.frees_engine

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        if ctx.checkpoint() == ctx.record.checkpoint_in.get("policy"):
            ctx.log(f"{self.name}: no new checkpoint this round; nothing to evaluate")
            return {"skipped": "no new checkpoint", "metrics": {}}
        return self.stage.run(ctx)


class PromoteStage(Stage):
    """Decide (round-XXX/decision.json, written before anything moves, so a resumed stage repeats the same
    decision), then move `current` on a promotion or hand the current checkpoint to the next round; prune."""

    name = "promote"

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        cfg: ScheduleConfig = ctx.config  # type: ignore[assignment]
        pointer = Pointer(ctx.run_dir)
        path = ctx.dir / "decision.json"
        if path.is_file():
            saved = json.loads(path.read_text())
        else:
            saved = self.decide(ctx, cfg, pointer)
            atomic_write(path, json.dumps(saved, indent=2, default=str))
        if saved["decision"] == "promoted":
            pointer.set(saved["candidate"], Path(saved["candidate_path"]), round_=ctx.round,
                        metrics=saved["heldout"]["candidate"], fingerprint=saved["eval_fingerprint"])
        elif saved["decision"] == "rejected":
            ctx.set_checkpoint(saved["current"])  # the next round trains from the current checkpoint
        pruned = self.prune(ctx, cfg, pointer)
        ctx.log(f"round {ctx.round}: {saved['decision']}: {saved['reason']}")
        return {**{k: saved[k] for k in ("decision", "reason", "candidate", "current", "heldout")},
                "pruned": pruned, "metrics": {"promoted": int(saved["decision"] == "promoted")}}

    def decide(self, ctx: RoundContext, cfg: ScheduleConfig, pointer: Pointer) -> dict[str, Any]:
        current = pointer.load()
        if current is None:
            raise RuntimeError(f"{pointer.json_path} is missing: the baseline round sets it; was it deleted?")
        candidate = ctx.checkpoint()
        base = {"candidate": candidate, "current": current.checkpoint, "current_round": current.round,
                "eval_fingerprint": eval_fingerprint(cfg, ctx.run_dir), "decided": _now()}
        if candidate == ctx.record.checkpoint_in.get("policy"):
            reason = "no new checkpoint this round (no training data)"
            return {**base, "decision": "kept", "reason": reason, "heldout": {}, "candidate": None,
                    "candidate_path": None}
        new = heldout_metrics(ctx.outputs("evaluate"))
        if "evaluate-current" in ctx.record.stages:
            old, source = heldout_metrics(ctx.outputs("evaluate-current"), prefix="current_eval"), "re-evaluated"
        else:
            old, source = current.metrics, f"stored (round {current.round})"
        decision: Decision = decide(new, old, cfg.promotion)
        from synthloop.engines import registry

        return {**base, "decision": "promoted" if decision.promoted else "rejected", "reason": decision.reason,
                "checks": [c.model_dump() for c in decision.checks], "gain": decision.gain,
                "candidate_path": str(registry.resolve(candidate)),
                "heldout": {"candidate": new, "current": old, "current_source": source}}

    def prune(self, ctx: RoundContext, cfg: ScheduleConfig, pointer: Pointer) -> list[str]:
        rules, current = cfg.promotion, pointer.load()
        protect = {Path(current.path).resolve()} if current else set()
        root = ctx.run_dir.resolve()
        rejected: list[Path] = []
        for decision_file in sorted(ctx.run_dir.glob("round-*/decision.json")):
            saved = json.loads(decision_file.read_text())
            if saved.get("decision") == "rejected" and saved.get("candidate_path"):
                rejected.append(Path(saved["candidate_path"]))
        superseded = [Path(h["path"]) for h in (current.history if current else []) if h.get("path")]
        pruned = []
        for paths, keep in ((rejected, rules.keep_rejected), (superseded, rules.keep_superseded)):
            ours = [p for p in paths if _within(p, root)]  # never the starting model's files
            pruned += prune(ours, keep, protect)
        for path in pruned:
            ctx.log(f"retention: deleted the weights of {_rel(path, ctx.run_dir)}")
        return [_rel(p, ctx.run_dir) for p in pruned]


def _within(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root)
        return True
    except ValueError:
        return False


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S")


# -- the recipe wrapper -------------------------------------------------------------------------------
class ScheduledRecipe(Recipe):
    """The configured recipe, fed by the inbox and ending with a promotion decision (see the module doc)."""

    name = "scheduled"

    def __init__(self, inner: Recipe, schedule_dir: Path):
        self.inner, self.loop, self.config, self.dir = inner, inner.loop, inner.config, Path(schedule_dir)

    def initial_checkpoints(self) -> dict[str, str]:
        return self.inner.initial_checkpoints()

    def baseline(self) -> list[Stage]:
        return [*self.inner.baseline(), SetCurrentStage()]

    def stages(self, round_: int) -> list[Stage]:
        stages = list(self.inner.stages(round_))
        if "tasks" not in [s.name for s in stages]:
            raise ConfigError(f"recipe {self.loop.recipe.kind}: it has no 'tasks' stage, which a schedule feeds "
                              "the inbox's records into; schedule a recipe that reads tasks")
        inbox = self.loop.inbox is not None  # type: ignore[attr-defined]  (else the recipe's program writes them)
        out: list[Stage] = []
        for stage in stages:
            if stage.name == "tasks" and inbox:
                stage = InboxTasksStage()
            elif stage.name == "evaluate":
                stage = OnlyIfTrained(stage)
            out.append(stage)
        if self.needs_current_eval():
            first_train = next((i for i, s in enumerate(out) if s.frees_engine), None)
            at = first_train if first_train is not None else [s.name for s in out].index("evaluate")
            out.insert(at, EvaluateStage(name="evaluate-current", out="eval-current", prefix="current_eval"))
        return [*out, PromoteStage()]

    def needs_current_eval(self) -> bool:
        cfg: ScheduleConfig = self.loop  # type: ignore[assignment]
        if cfg.promotion.compare == "reevaluate":
            return True
        current = Pointer(self.dir).load()
        return current is None or current.eval_fingerprint != eval_fingerprint(cfg, self.dir)

    def describe(self, round_: int) -> str:
        return self.inner.describe(round_)
