"""The `synthloop` command run in this interpreter (no ~3 s import per call): `run_main(args)` -> (exit code, stdout,
stderr). Also a script: `python tests/cli_driver.py cases.json` runs each case's argv in one process and prints the
results as JSON (used to run cases as another user, e.g. where a read-only directory must really be read-only)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        """The non-empty lines the user saw on stderr."""
        return [line for line in self.err.splitlines() if line.strip()]


def run_main(args: list[str], env: dict[str, str] | None = None) -> Result:
    from synthloop.cli import common, main

    out, err = io.StringIO(), io.StringIO()
    # `--verbose` sets SYNTHLOOP_VERBOSE for child processes: restored too, or every later command would be verbose
    saved = {k: os.environ.get(k) for k in {*(env or {}), "SYNTHLOOP_VERBOSE"}}
    os.environ.update(env or {})
    verbose = common.VERBOSE
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        common.VERBOSE = verbose
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Result(code, out.getvalue(), err.getvalue())


def run_in_process(*args: str, cwd: Path | None = None, timeout: float | None = None):
    """`helpers.run_cli`'s interface (a CompletedProcess) for commands that need no process of their own (no
    signals, no engine subprocess to outlive): the same `main`, minus the interpreter start and heavy imports."""
    import subprocess

    before = Path.cwd()
    if cwd is not None:
        os.chdir(cwd)
    try:
        result = run_main(list(args))
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(["synthloop", *args], result.code, result.out, result.err)


if __name__ == "__main__":
    cases = json.loads(Path(sys.argv[1]).read_text())
    print(json.dumps([asdict(run_main(case)) for case in cases]))
