"""Shared test helpers: running the real CLI in a subprocess, writing configs, a scripted engine."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from synthloop.engines.base import Engine
from synthloop.engines.types import ChatResult, Completion

ROOT = Path(__file__).resolve().parents[1]
SEED_TASKS = ROOT.parent / "shared" / "data" / "self_instruct" / "seed_tasks.jsonl"


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_cli(*args: str, cwd: Path = ROOT, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "synthloop", *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default. A shell without job control starts a background job
    (`make test &`) with SIGINT ignored, every process below inherits that, and Python then never raises
    KeyboardInterrupt; a Ctrl-C test's command must take SIGINT as it does in a user's terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def popen_cli(*args: str, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "synthloop", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_default_sigint,
    )


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], what: str, timeout: float = 240) -> None:
    """SIGKILL `proc` (a `popen_cli`) as soon as `ready()` holds; fail the test, with the process's output, if
    it exits or `timeout` passes first."""
    import pytest

    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if ready():
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            return
        time.sleep(0.02)
    output = proc.stdout.read()[-3000:] if proc.stdout and proc.poll() is not None else ""
    proc.kill()
    pytest.fail(f"the process never reached {what} (exit {proc.poll()}): {output}")


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def tiny_generate_config(out_dir: Path, **overrides) -> dict:
    """A self-instruct run on the tiny random model (transformers engine): seconds, any machine."""
    config = {
        "output_dir": str(out_dir),
        "program": {"kind": "self_instruct", "seed_tasks": str(SEED_TASKS), "num_examples": 2, "min_words": 1},
        "engine": {"kind": "transformers", "model": "tiny-random-chat", "batch_size": 16},
        "sampling": {"temperature": 1.0, "max_tokens": 48},
        "num_records": 30,
        "seed": 0,
        "concurrency": 8,
        "show_examples": 0,
    }
    for key, value in overrides.items():
        config[key] = value
    return config


class ScriptedEngine(Engine):
    """Answers each request with `reply(last user message)` (a text, or an exception to raise): for testing
    parsing and control flow only, never as proof that a feature works with a model."""

    kind = "scripted"

    def __init__(self, reply, *, output_tokens: int = 4):
        super().__init__("scripted")
        self.reply, self.output_tokens, self.requests = reply, output_tokens, []

    def submit(self, request):
        self.requests.append(request)
        future = concurrent.futures.Future()
        text = self.reply(request.messages[-1]["content"])
        if isinstance(text, Exception):
            future.set_exception(text)
        else:
            future.set_result(ChatResult(completions=[Completion(text=text, finish_reason="stop",
                                                                 output_tokens=self.output_tokens)], prompt_tokens=100))
        return future
