"""`synthloop loop CONFIG` (run or resume a loop) and `synthloop loop status RUN` (table + plot)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from synthloop.cli.common import SetOption, fail, quiet_libraries, quiet_training_libraries
from synthloop.console.output import new_console, say
from synthloop.console.output import out as _out

# the round table is wide: when stdout is not a terminal (CI logs, pipes) do not squeeze it into 80 columns
out = _out if _out.is_terminal else new_console(width=200)


class RunByDefault(TyperGroup):
    """`synthloop loop CONFIG` means `synthloop loop run CONFIG`."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=RunByDefault,
    help="Self-improvement loops: generate with the policy -> judge/verify -> build data -> train -> evaluate, "
    "round after round.\n\n  synthloop loop configs/loop/quickstart.yaml\n\n  synthloop loop status runs/quickstart",
    no_args_is_help=True,
)

ResumeOption = Annotated[
    str,
    typer.Option("--resume", help="if-unchanged: continue the run if its config is unchanged, else refuse; "
                 "always: continue it even if the config changed; never: start a new run beside it."),
]


@app.command("run")
def run(
    config: Annotated[Path, typer.Argument(help="A loop config, e.g. configs/loop/quickstart.yaml.")],
    set_: SetOption = None,
    resume: ResumeOption = "if-unchanged",
) -> None:
    """Run a loop: round 0 evaluates the starting policy on the held-out tasks; each round then samples the
    policy, judges the samples, builds training data, trains a new checkpoint and evaluates it.

    Kill it at any point (Ctrl-C, SIGTERM, SIGKILL) and rerun the same command: finished stages are
    skipped and the one that was running resumes (generation from its records and cache, training from
    its last checkpoint). Raise `rounds` to continue a finished loop.

    Examples:

      synthloop loop configs/loop/quickstart.yaml

      synthloop loop configs/loop/quickstart.yaml --set rounds=3 --set train.plan=[sft,sft,dpo]

      synthloop loop configs/loop/gsm8k_loop.yaml --set engine.kind=transformers
    """
    if resume not in ("if-unchanged", "always", "never"):
        fail(f"--resume {resume!r}: expected if-unchanged, always or never")
    quiet_libraries()
    quiet_training_libraries()
    from synthloop.cli.common import load
    from synthloop.configs import dump_yaml
    from synthloop.console.output import library_output
    from synthloop.loops.config import LoopConfig
    from synthloop.loops.controller import LoopController, loop_identity
    from synthloop.runs.run_dir import RunDir

    cfg = load(LoopConfig, config, set_)
    target = RunDir.target(cfg.output_dir / (cfg.name or config.stem), identity=loop_identity(cfg), resume=resume)
    if target.exists():  # one writer: a second process exits here, at once, before it loads anything (a new run
        target.lock()  # is locked when it is created: nothing is written for a command that fails before that)
    verb = "resuming" if target.exists() else "starting"
    say(f"[bold]{verb}[/] loop {target.path}  ·  recipe {cfg.recipe.kind}  ·  policy {cfg.engine.model}  "
                  f"·  {cfg.rounds} round(s) after the baseline")
    started = time.time()
    # the controller checks the judges before it writes anything; engines start in run_loop, inside the redirection
    controller = LoopController(cfg, target.path, resume=resume, config_yaml=dump_yaml(cfg),
                                log=lambda m: say(f"[dim]{time.strftime('%H:%M:%S')}[/] {m}"))
    with library_output(controller.run.log_path) as log:
        if log is not None:
            say(f"[dim]engine and library output: {log}[/]")
        summary = controller.run_loop()
    _report(controller.run.path, controller.state, summary, time.time() - started)
    from synthloop.cli.report import after_run
    after_run(controller.run.path)


@app.command("status")
def status(run_path: Annotated[Path, typer.Argument(help="A loop run directory, e.g. runs/quickstart.")]) -> None:
    """The per-round table of a loop (finished or still running) and its plot, rounds.png."""
    from synthloop.loops.report import plot_rounds, round_table
    from synthloop.loops.state import LoopState
    from synthloop.runs.run_dir import RunDir

    run = RunDir(run_path)
    if not run.exists() or not (run.path / "state.json").is_file():
        fail(f"{run_path}: not a loop run directory (no state.json)")
    state = LoopState.load(run.path / "state.json")
    manifest = run.manifest()
    out.print(round_table(state, title=f"{run.path}  ·  {manifest.get('status', '?')}", width=out.width))
    if state.done_rounds():
        out.print(f"plot: {plot_rounds(state, run.path / 'rounds.png', metric=_stop_metric(run.path))}")


def _stop_metric(path: Path) -> str:
    """The loop's headline metric (stop.metric of its resolved config.yaml), which the plot leads with."""
    import yaml

    config = path / "config.yaml"
    data = yaml.safe_load(config.read_text()) if config.is_file() else None
    return ((data or {}).get("stop") or {}).get("metric") or "eval_accuracy"


def _report(path: Path, state, summary: dict, wall: float) -> None:
    from synthloop.loops.report import round_table

    out.print(round_table(state, title=f"loop {path}  ·  {summary['status']}", width=out.width))
    if summary.get("stop_reason"):
        say(f"stopped: {summary['stop_reason']}")
    base, final = summary.get("baseline_accuracy"), summary.get("final_accuracy")
    if base is not None and final is not None:
        def ci(key: str) -> str:
            low_high = summary.get(f"{key}_ci95")
            return f" [{low_high[0] * 100:.1f}, {low_high[1] * 100:.1f}]" if low_high else ""

        say(f"held-out accuracy: baseline {base:.1%}{ci('baseline_accuracy')} -> final {final:.1%}"
            f"{ci('final_accuracy')}: {(final - base) * 100:+.1f} points [95% intervals] · best round "
            f"{summary.get('best_round')}")
    say(f"wall time {wall:.0f} s · peak memory {summary.get('peak_rss_gib') or 0:.2f} GiB (process tree)")
    say(f"plot:        {path / 'rounds.png'}")
    say(f"summary:     {path / 'summary.json'}")
    say(f"data:        {path}/round-NNN/ (tasks.jsonl, samples/, judged/, data/*.jsonl, eval/)")
    say(f"checkpoint:  {summary.get('final_checkpoint')}")
    say(f"status:      synthloop loop status {path}")
