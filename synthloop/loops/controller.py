"""The round controller: round 0 evaluates the starting policy; each round r >= 1 runs its recipe's stages
(e.g. tasks -> sample -> judge -> build -> train -> evaluate) with the policy of round r-1 and hands
its checkpoint to round r+1. Everything lives in the run directory:

    runs/<name>/
      manifest.json, config.yaml, identity.json, versions.json     (as every run)
      state.json           stages finished per round, current checkpoints (see `synthloop.loops.state`)
      eval_tasks.jsonl     the held-out tasks
      round-000/           eval/ (a generation run), eval-judged/, metrics.json
      round-001/           tasks.jsonl, samples/, judged/, data/sft.jsonl, train-sft/model/, eval/, ...
      rounds.png           metrics per round;  summary.json: per-round figures

Killed at any point, a rerun skips finished stages and re-enters the one it was in, which resumes its own
partial work (generation from its records and request cache, judging from its parts, training from
its last trainer checkpoint). The engine serving the policy is closed before a training stage and
restarted on the new checkpoint when a stage needs it, so the two never hold memory at once.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from synthloop.configs import output_view
from synthloop.console import output, progress
from synthloop.engines.pool import EnginePool
from synthloop.judges.panel import Panel
from synthloop.loops.config import LoopConfig, StopRule
from synthloop.loops.context import RoundContext
from synthloop.loops.recipes import registry as recipes
from synthloop.loops.state import LoopState, RoundRecord, StageRecord
from synthloop.memory import PeakRSS
from synthloop.runs.jsonl import atomic_write
from synthloop.runs.run_dir import ResumePolicy, RunDir


class LoopController:
    def __init__(self, config: LoopConfig, run_dir: str | Path, *, resume: ResumePolicy = "if-unchanged",
                 config_yaml: str | None = None, progress: bool = True, log: Callable[[str], None] | None = None):
        self.config = config
        self.progress = progress
        self._log = log
        #: every engine of the loop (the policy's, a teacher's, an LLM judge's): started on demand, one at a time
        self.engines = EnginePool(log=self.log)
        # the judges first: a bad judge config fails before anything is written or started
        self.panel = Panel.from_specs(config.judges, engines=self.engines, where="judges", log=self.log)
        self.run = RunDir.open(run_dir, identity=loop_identity(config), kind="loop", resume=resume,
                               config_yaml=config_yaml)
        self.state_path = self.run.path / "state.json"
        self.state = LoopState.load(self.state_path)
        self.recipe = recipes.build(config)
        self.meter = PeakRSS()

    def log(self, message: str) -> None:
        if self._log is not None:
            self._log(message)

    # -- the loop -----------------------------------------------------------------------------------
    def run_loop(self) -> dict[str, Any]:
        """Run (or resume) every round up to `rounds`, or until the stop rule fires; returns the summary."""
        self.run.lock()  # one writer while the loop runs (held since __init__; taken again for a second call)
        self.meter.start()
        self._load_start = os.getloadavg()
        self._started = time.time()
        status, reason = "completed", None
        try:
            for r in range(self.config.rounds + 1):
                reason = should_stop(self.state.done_rounds(), self.config.stop)
                if reason:
                    status = "stopped"
                    self.log(f"stopping before round {r}: {reason}")
                    break
                self._round(r)
        except BaseException:
            self.run.update_manifest(status="interrupted")
            raise
        finally:
            self.engines.close()
            self.meter.stop()
        summary = self.summary(status, reason)
        self.run.update_manifest(status=status, stop_reason=reason, rounds_done=len(self.state.done_rounds()))
        self.run.close()
        return summary

    def _round(self, r: int) -> None:
        record = self.state.round(r)
        if record is not None and record.status == "done":
            return
        if record is None:
            record = RoundRecord(round=r, label=self.recipe.describe(r), checkpoint_in=self._start_checkpoints(r))
            self.state.rounds.append(record)
            self.state.checkpoints = dict(record.checkpoint_in)
            self.state.save(self.state_path)
        stages = self.recipe.baseline() if r == 0 else self.recipe.stages(r)
        names = [s.name for s in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"round {r}: stage names repeat ({names}); give each stage its own name")
        ctx = RoundContext(config=self.config, run_dir=self.run.path, round=r, dir=self.run.path / f"round-{r:03d}",
                           record=record, checkpoints=self.state.checkpoints, engines=self.engines, panel=self.panel,
                           progress=self.progress, log_fn=self.log)
        ctx.dir.mkdir(parents=True, exist_ok=True)
        for i, stage in enumerate(stages):
            if stage.name in record.stages:
                continue
            if stage.frees_engine:
                self.engines.close()
            label = f"round {r} · {stage.name}"
            output.note(f"{label} ({i + 1}/{len(stages)})")
            self.run.update_manifest(status="running", round=r, stage=stage.name)
            self.meter.reset()
            started = time.time()
            with progress.stage(label, enabled=self.progress) as shown:
                outputs = stage.run(ctx)
            seconds = time.time() - started
            if shown.summary():  # a stage with bars says what it did in one line; the others are quick
                self.log(f"{label}  {shown.summary()} · {seconds:.0f} s")
            record.stages[stage.name] = StageRecord(outputs=outputs, seconds=round(seconds, 2),
                                                    peak_rss_gib=round(self.meter.peak_gib, 3),
                                                    finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
            self.state.checkpoints.update(ctx.pending)
            ctx.pending.clear()
            self.state.save(self.state_path)
        record.metrics = round_metrics(record, names, self.state.checkpoints)
        # this process alone (the engine's workers are children): the figure that would climb if a round leaked
        record.metrics["rss_main_gib"] = round(psutil.Process().memory_info().rss / 2**30, 3)
        record.status = "done"
        self.state.save(self.state_path)
        atomic_write(ctx.dir / "metrics.json", _dumps(record.metrics))
        self.log(round_line(record.metrics))

    def _start_checkpoints(self, r: int) -> dict[str, str]:
        if r == 0 or not self.state.checkpoints:
            return self.recipe.initial_checkpoints()
        if self.config.train.continue_from == "best":
            best = best_round(self.state.done_rounds(), self.config.stop.metric)
            if best is not None:
                return dict(best.metrics.get("checkpoints") or self.state.checkpoints)
        return dict(self.state.checkpoints)

    # -- reporting ----------------------------------------------------------------------------------
    def summary(self, status: str = "completed", reason: str | None = None) -> dict[str, Any]:
        from synthloop.loops.report import summarize

        summary = summarize(self.run.path, self.state, self.config, status=status, stop_reason=reason)
        # figures measured on a shared machine are only as good as its load: record it beside them
        started = getattr(self, "_started", None)
        if started is not None:  # this session: from run_loop's start, and before it since the process started
            summary["wall_seconds"] = round(time.time() - started, 1)
            summary["startup_seconds"] = round(started - psutil.Process().create_time(), 1)
        summary["machine"] = {"cpus": os.cpu_count(), "load_average_at_start": getattr(self, "_load_start", None),
                              "load_average_at_end": os.getloadavg()}
        atomic_write(self.run.path / "summary.json", _dumps(summary))
        if self.config.summary_json is not None:
            self.config.summary_json.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.config.summary_json, _dumps(summary))
        if self.config.plot and self.state.done_rounds():
            from synthloop.loops.report import plot_rounds

            plot_rounds(self.state, self.run.path / "rounds.png", metric=self.config.stop.metric)
        return summary


def _dumps(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, default=str)


def loop_identity(config: LoopConfig) -> dict[str, Any]:
    """What determines a loop's outputs (RUNTIME fields left out); a changed identity refuses the directory."""
    return {"kind": "loop", "config": output_view(config)}


def round_line(metrics: dict[str, Any]) -> str:
    """`round 1 done in 312 s: held-out accuracy 48.5% (95% CI 41.7-55.4%) · samples accepted 11.6%`."""
    parts = []
    if metrics.get("eval_accuracy") is not None:
        ci = metrics.get("eval_accuracy_ci95")
        parts.append(f"held-out accuracy {metrics['eval_accuracy']:.1%}"
                     + (f" (95% CI {ci[0]:.1%}-{ci[1]:.1%})" if ci else ""))
    if metrics.get("sample_accuracy") is not None:
        parts.append(f"samples accepted {metrics['sample_accuracy']:.1%}")
    return f"round {metrics['round']} done in {metrics['seconds']:.0f} s" + (f": {' · '.join(parts)}" if parts else "")


def round_metrics(record: RoundRecord, order: list[str], checkpoints: dict[str, str]) -> dict[str, Any]:
    metrics: dict[str, Any] = {"round": record.round, "label": record.label}
    seconds, peaks = 0.0, []
    for name in order:
        stage = record.stages[name]
        metrics.update(stage.outputs.get("metrics", {}))
        metrics[f"seconds_{name}"] = stage.seconds
        seconds += stage.seconds
        if stage.peak_rss_gib is not None:
            peaks.append(stage.peak_rss_gib)
    metrics["seconds"] = round(seconds, 2)
    metrics["peak_rss_gib"] = max(peaks) if peaks else None
    metrics["checkpoint"] = checkpoints.get("policy")
    metrics["checkpoints"] = dict(checkpoints)
    return metrics


def best_round(rounds: list[RoundRecord], metric: str) -> RoundRecord | None:
    scored = [r for r in rounds if r.metrics.get(metric) is not None]
    return max(scored, key=lambda r: (r.metrics[metric], -r.round)) if scored else None


def should_stop(rounds: list[RoundRecord], rule: StopRule) -> str | None:
    values = [(r.round, r.metrics.get(rule.metric)) for r in rounds if r.metrics.get(rule.metric) is not None]
    if not values:
        return None
    last_round, last = values[-1]
    if rule.target is not None and last >= rule.target:
        return f"{rule.metric} {last} reached the target {rule.target} in round {last_round}"
    if rule.patience is not None:
        best_value, best_at = values[0][1], values[0][0]
        for rnd, value in values[1:]:
            if value > best_value + rule.min_delta:
                best_value, best_at = value, rnd
        if last_round - best_at >= rule.patience:
            return (f"no new best {rule.metric} for {last_round - best_at} round(s) "
                    f"(best {best_value} in round {best_at})")
    return None
