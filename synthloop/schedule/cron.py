"""`--print-cron`: a crontab line and a systemd service + timer pair that run `synthloop schedule CONFIG --once`
with absolute paths (interpreter, config, working directory), the same `--set` overrides, and the environment
variables synthloop reads (SYNTHLOOP_HOME, HF_HOME, PYTHONPATH) when they are set.

The systemd service treats exit code 75 (another tick still running) as success, so an overlap is not a
failure; the timer catches up a tick missed while the machine was off (Persistent=true).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from pathlib import Path

from synthloop.schedule.timing import ScheduleError, Timing

_ENV = ("SYNTHLOOP_HOME", "HF_HOME", "PYTHONPATH")
_DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]


def once_command(config: Path, overrides: list[str], resume: str = "if-unchanged") -> list[str]:
    cmd = [sys.executable, "-m", "synthloop", "schedule", "run", str(Path(config).resolve()), "--once"]
    for item in overrides:
        cmd += ["--set", item]
    if resume != "if-unchanged":
        cmd += ["--resume", resume]
    return cmd


def on_calendar(cron: str) -> str:
    """A 5-field cron expression as a systemd OnCalendar= value (fields expanded by croniter).

    Hand-written formatting: no maintained library converts cron to OnCalendar. Cron runs when the day of
    month OR the weekday matches if both are restricted; systemd needs both, so that case is refused."""
    from croniter import croniter

    minute, hour, dom, month, dow = croniter(cron).expanded[:5]
    if dom != ["*"] and dow != ["*"]:
        raise ScheduleError(f"--cron {cron!r}: both a day of month and a weekday; systemd cannot express cron's "
                            "'either' rule (use one of them)")

    def field(values: list, width: int = 2) -> str:
        return "*" if values == ["*"] else ",".join(f"{int(v):0{width}d}" for v in values)

    days = "" if dow == ["*"] else ",".join(_DAYS[int(d) % 7] for d in dow) + " "
    return f"{days}*-{field(month)}-{field(dom)} {field(hour)}:{field(minute)}:00"


def _unit_name(directory: Path) -> str:
    return "synthloop-" + (re.sub(r"[^A-Za-z0-9_.-]", "-", directory.name) or "schedule")


def snippets(config: Path, overrides: list[str], timing: Timing, directory: Path, *,
             resume: str = "if-unchanged") -> str:
    """The text `--print-cron` prints: a crontab line (where one exists) and the systemd unit pair."""
    cwd = Path.cwd().resolve()
    command = once_command(config, overrides, resume)
    env = {k: os.environ[k] for k in _ENV if os.environ.get(k)}
    log = (cwd / directory).resolve() / "schedule.log" if not directory.is_absolute() else directory / "schedule.log"
    shell = " ".join(shlex.quote(c) for c in command)
    env_prefix = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    lines = [f"# synthloop schedule {config}: {timing.describe()} (each tick: one round on what the inbox received)",
             "", "# --- crontab (crontab -e) ---"]
    cron = timing.cron_line()
    if cron is None:
        lines.append(f"# no crontab schedule runs exactly {timing.describe()}: use the systemd timer below, or the "
                     "foreground scheduler")
    else:
        # the log's directory first: a redirection into a missing directory would stop cron from running the tick
        line = f"cd {shlex.quote(str(cwd))} && mkdir -p {shlex.quote(str(log.parent))} && " \
               f"{env_prefix + ' ' if env_prefix else ''}{shell} >> {shlex.quote(str(log))} 2>&1"
        lines.append(f"{cron} {line.replace('%', chr(92) + '%')}")  # cron reads an unescaped % as a newline
    name = _unit_name(directory)
    if timing.cron:
        when = [f"OnCalendar={on_calendar(timing.cron)}", "Persistent=true"]
    elif cron is not None:
        when = [f"OnCalendar={on_calendar(cron)}", "Persistent=true"]
    else:
        seconds = int(timing.every.total_seconds()) if timing.every else 0
        when = ["OnBootSec=1min", f"OnUnitActiveSec={seconds}s"]
    service = ["[Unit]", f"Description=synthloop scheduled refinement ({directory.name})",
               "After=network-online.target", "", "[Service]", "Type=oneshot",
               f"WorkingDirectory={cwd}", *(f"Environment={k}={v}" for k, v in env.items()),
               f"ExecStart={' '.join(_systemd_quote(c) for c in command)}",
               "# exit 75: another tick of this schedule is still running (not a failure)",
               "SuccessExitStatus=75"]
    timer = ["[Unit]", f"Description=synthloop scheduled refinement ({directory.name}): {timing.describe()}", "",
             "[Timer]", *when, f"Unit={name}.service", "", "[Install]", "WantedBy=timers.target"]
    lines += ["", f"# --- systemd: ~/.config/systemd/user/{name}.service ---", *service,
              "", f"# --- systemd: ~/.config/systemd/user/{name}.timer ---", *timer,
              "", f"# enable: systemctl --user daemon-reload && systemctl --user enable --now {name}.timer",
              f"# logs:   journalctl --user -u {name}.service   ·   history: synthloop runs show {directory}"]
    return "\n".join(lines)


def _systemd_quote(arg: str) -> str:
    """systemd splits ExecStart= like a shell, with double quotes; % starts a specifier (%% is a literal)."""
    arg = arg.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'
