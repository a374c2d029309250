"""The `synthloop` command: thin. It parses, loads a config, calls the library, says where outputs are.

Every command that takes a config also takes `--set path.to.key=value` overrides. A bad config or input, a
missing model or a run-directory conflict is reported in one line (exit code 2), never a traceback; the exit
codes are listed in `synthloop.cli.common`.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from synthloop.cli import common, generate, judge, loop, models, runs, serve, skills
from synthloop.cli import compile as compile_cli
from synthloop.cli import filter as filter_cli
from synthloop.cli import report as report_cli
from synthloop.cli import schedule as schedule_cli
from synthloop.cli.common import CommandGroup, friendly_errors

app = typer.Typer(
    cls=CommandGroup,
    name="synthloop",
    help="Make LLMs better with data they make themselves: DSPy programs generate data on a local engine, "
    "judges filter it, TRL trains on it, loops repeat.\n\n"
    "Start with:  synthloop loop configs/loop/quickstart.yaml   (or: make quickstart)",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def options(
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Show everything: vLLM/torch/transformers output and warnings on the console "
        "(by default they go to the run's log.txt) and tracebacks.")] = False,
) -> None:
    if verbose:
        os.environ["SYNTHLOOP_VERBOSE"] = "1"  # read by synthloop.console.output.verbose(), also in child processes
        common.VERBOSE = True


app.add_typer(models.app, name="models")
app.add_typer(runs.app, name="runs")
app.add_typer(loop.app, name="loop")
app.command("generate")(generate.generate)
app.command("serve")(serve.serve)
app.command("compile")(compile_cli.compile_cmd)
app.add_typer(skills.app, name="skills")
app.add_typer(judge.app, name="judge")
app.command("filter")(filter_cli.filter_command)
app.add_typer(schedule_cli.app, name="schedule")
app.command("report")(report_cli.report)


def main(args: list[str] | None = None) -> None:
    """The command line: exits with the code of the table in `synthloop.cli.common`."""
    with friendly_errors():
        try:  # not standalone: errors (and Ctrl-C, see CommandGroup) come here, to friendly_errors
            code = app(args=args, standalone_mode=False)
        except typer.TyperException as exc:  # usage errors: click's own message and code (2); typer >= 0.25 vendors
            show = getattr(exc, "show", None)  # click, so its exceptions derive from TyperException, not click's
            if show is None:
                raise
            show()
            code = exc.exit_code
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
