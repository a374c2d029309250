"""`synthloop schedule CONFIG --every 6h | --cron "0 3 * * *" | --once | --print-cron` and
`synthloop schedule status DIR`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from synthloop.cli.common import SetOption, fail, load, quiet_libraries, quiet_training_libraries
from synthloop.cli.loop import RunByDefault
from synthloop.console.output import console, out

app = typer.Typer(
    cls=RunByDefault,
    help="Scheduled refinement: each tick claims what arrived in the inbox since the last one, runs one round of "
    "the loop's recipe on it, evaluates, and promotes the new checkpoint only if it beats the current one.\n\n"
    "  synthloop schedule configs/schedule/refine.yaml --every 6h\n\n"
    "  synthloop schedule configs/schedule/refine.yaml --once     (from cron, a systemd timer, a cluster scheduler)\n\n"
    "  synthloop schedule configs/schedule/refine.yaml --every 6h --print-cron\n\n"
    "  synthloop schedule status runs/refine",
    no_args_is_help=True,
)


def say(message: str) -> None:
    console.print(message, highlight=False, soft_wrap=True)


@app.command("run")
def run(
    config: Annotated[Path, typer.Argument(help="A schedule config, e.g. configs/schedule/refine.yaml.")],
    every: Annotated[str | None, typer.Option("--every", help="Tick every interval: 30m, 6h, 1h30m, 1d (counted "
                                              "from the last tick's start).", show_default=False)] = None,
    cron: Annotated[str | None, typer.Option("--cron", help='Tick at cron times: "0 3 * * *" (03:00 daily).',
                                             show_default=False)] = None,
    once: Annotated[bool, typer.Option("--once", help="Run one tick now and exit (for cron, systemd timers and "
                                       "cluster schedulers).")] = False,
    print_cron: Annotated[bool, typer.Option("--print-cron", help="Print a crontab line and a systemd service + "
                                             "timer that run --once at the --every/--cron times, then exit.")] = False,
    max_ticks: Annotated[int | None, typer.Option("--max-ticks", min=1, help="Stop the foreground scheduler after "
                                                  "this many ticks.", show_default=False)] = None,
    set_: SetOption = None,
    resume: Annotated[str, typer.Option("--resume", help="if-unchanged: refuse a config that changed what the "
                                        "schedule produces; always: continue with the changed config.")] =
    "if-unchanged",
) -> None:
    """Run a schedule in the foreground (--every / --cron), one tick (--once), or print the cron/systemd setup.

    Each tick: claim the inbox records that arrived since the last claim (each record goes to exactly one
    tick), map them to tasks, run one round of the recipe (sample, judge, build data, train), evaluate the new
    checkpoint on the held-out set and promote it to `current` only if it beats the current one by the config's
    `promotion` rules. The first tick also evaluates the starting model (round 0).

    Exit codes of --once: 0 tick done (or idle: too few new records), 75 another tick of this schedule is still
    running (skipped; not a failure), 2 a problem to fix (config, inbox), 1 the tick failed (the next tick
    resumes its round), 130 interrupted (the next tick resumes it). A tick killed outright (SIGKILL, power
    loss) is resumed the same way: its claim is reused, finished stages are skipped.

    Examples:

      synthloop schedule configs/schedule/refine.yaml --every 6h

      synthloop schedule configs/schedule/refine.yaml --cron "0 3 * * *"

      synthloop schedule configs/schedule/refine.yaml --once --set promotion.min_gain=0.02

      synthloop schedule configs/schedule/refine.yaml --every 6h --print-cron
    """
    from synthloop.schedule.config import ScheduleConfig
    from synthloop.schedule.tick import schedule_dir
    from synthloop.schedule.timing import ScheduleError, Timing

    if resume not in ("if-unchanged", "always"):
        fail(f"--resume {resume!r}: expected if-unchanged or always (a schedule continues in its one directory)")
    cfg = load(ScheduleConfig, config, set_)
    directory = schedule_dir(cfg, config)
    if once and (every or cron or print_cron or max_ticks):
        fail("--once runs one tick now: drop --every/--cron/--max-ticks (or use them without --once)")
    if once:
        _once(cfg, config, directory, resume)
        return
    try:
        timing = Timing.from_options(every, cron)
        if print_cron:
            from synthloop.schedule.cron import snippets

            out.print(snippets(config, list(set_ or []), timing, directory, resume=resume), markup=False,
                      highlight=False, soft_wrap=True)
            return
    except ScheduleError as exc:
        fail(str(exc))
    from synthloop.schedule.scheduler import Scheduler

    code = Scheduler(cfg, config, list(set_ or []), timing, directory, resume=resume, max_ticks=max_ticks,
                     console=console).run()
    raise typer.Exit(code)


def _once(cfg, config: Path, directory: Path, resume: str) -> None:
    from synthloop.configs import dump_yaml
    from synthloop.console.output import library_output
    from synthloop.runs.lock import EXIT_LOCKED, Locked
    from synthloop.schedule.inbox import InboxError
    from synthloop.schedule.tick import run_tick, tick_summary

    quiet_libraries()
    try:
        with library_output(directory / "log.txt"):  # engine and library output; the console keeps our lines
            record = run_tick(cfg, directory, resume=resume, config_yaml=dump_yaml(cfg),  # type: ignore[arg-type]
                              log=lambda m: say(f"[dim]{time.strftime('%H:%M:%S')}[/] {m}"),
                              progress=console.is_terminal, on_start=quiet_training_libraries)
    except Locked as exc:
        say(f"skipped: {exc}")
        raise typer.Exit(EXIT_LOCKED) from None
    except InboxError as exc:
        fail(str(exc))
    for line in tick_summary(record, directory):
        say(line)
    from synthloop.cli.report import after_run
    after_run(directory)


@app.command("status")
def status(directory: Annotated[Path, typer.Argument(help="A schedule's directory, e.g. runs/refine.")]) -> None:
    """The history of every tick, the current checkpoint, records waiting in the inbox, and what is running."""
    import json

    import yaml

    from synthloop.schedule.history import render_history
    from synthloop.schedule.inbox import Inbox, InboxError
    from synthloop.schedule.tick import describe_dir

    table = render_history(directory, title=f"schedule {directory}")
    if table is None:
        fail(f"{directory}: not a schedule's directory (no history.jsonl); run a tick first")
    (out if out.is_terminal else type(out)(width=200)).print(table)  # logs and pipes: do not squeeze it
    info = describe_dir(directory)
    say(f"current:   {directory / 'current'} -> {info.get('current', '-')} (round {info.get('current_round', '-')})")
    try:
        data = yaml.safe_load((directory / "config.yaml").read_text()) or {}
        if data.get("inbox") is None:
            say(f"tasks:     written by the {data['tasks']['train']['program']['kind']} program at every tick")
        else:
            inbox = Path(data["inbox"]["path"])
            waiting = sum(r.records for r in Inbox(inbox, directory).pending())
            say(f"inbox:     {waiting} new record(s) waiting in {inbox}")
    except (OSError, KeyError, TypeError, InboxError, yaml.YAMLError) as exc:
        say(f"inbox:     unknown ({exc})")
    running = info.get("running")
    say(f"running:   tick since {running['started']} (pid {running['pid']})" if running else "running:   no tick")
    scheduler = directory / "scheduler.json"
    if scheduler.is_file():
        sched = json.loads(scheduler.read_text())
        import psutil

        if psutil.pid_exists(int(sched["pid"])):
            say(f"scheduler: {sched['timing']}, next tick {sched['next_tick']} (pid {sched['pid']})")
