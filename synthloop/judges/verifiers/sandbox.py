"""Run untrusted code in a subprocess with time and memory limits and no network.

Limits, applied in the child before it runs anything:
- wall clock: the whole process group is killed when `timeout_s` passes (plus RLIMIT_CPU as a backstop);
- memory: RLIMIT_AS (address space), RLIMIT_FSIZE (files written), RLIMIT_NOFILE, no core dumps;
- network: the child moves into a new, empty network namespace (`unshare(CLONE_NEWNET)`; as root, or
  with an unprivileged user namespace where the kernel allows it): no interface but a downed loopback,
  so every connection fails, to 127.0.0.1 as well. Where namespaces are not permitted, sockets are
  disabled inside the child's Python instead (`socket.socket` and friends raise) — weaker, since
  native code could still open one. `network_isolation()` says which holds on this machine;
- isolation: `python -I` (no user site, no PYTHONPATH), a fresh temporary working directory, an
  environment with only PATH/LANG, its own session (killable as a group), stdin closed unless given.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from functools import cache
from typing import Literal

from pydantic import BaseModel

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000

_NO_SOCKETS = """\
import socket as _s
def _blocked(*a, **k):
    raise PermissionError("network access is disabled in the synthloop sandbox")
for _n in ("socket", "create_connection", "socketpair", "fromfd", "getaddrinfo", "create_server"):
    setattr(_s, _n, _blocked)
del _s, _n, _blocked
"""

Isolation = Literal["netns", "userns+netns", "sockets-disabled"]


class SandboxResult(BaseModel):
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    isolation: Isolation
    memory_exceeded: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


def _unshare(flags: int) -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(flags) == 0


@cache
def network_isolation() -> Isolation:
    """Which network isolation the sandbox gets here (probed once in a throwaway child)."""
    for mode, flags in (("netns", CLONE_NEWNET), ("userns+netns", CLONE_NEWUSER | CLONE_NEWNET)):
        pid = os.fork()
        if pid == 0:  # child: try, report through the exit code, never return into the caller's code
            os._exit(0 if _unshare(flags) else 1)
        _, status = os.waitpid(pid, 0)
        if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
            return mode  # type: ignore[return-value]
    return "sockets-disabled"


def _limits(timeout_s: float, memory_mb: int, isolation: Isolation, max_file_mb: int):
    def apply() -> None:
        os.setsid()
        if isolation == "netns":
            _unshare(CLONE_NEWNET)
        elif isolation == "userns+netns":
            _unshare(CLONE_NEWUSER | CLONE_NEWNET)
        mem = memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = int(timeout_s) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_mb * 1024 * 1024,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_python(code: str, *, timeout_s: float = 10.0, memory_mb: int = 512, stdin: str | None = None,
               max_file_mb: int = 16, max_output_chars: int = 20_000) -> SandboxResult:
    """Run `code` with `python -I` in the sandbox; never raises for anything the code does."""
    isolation = network_isolation()
    prelude = _NO_SOCKETS if isolation == "sockets-disabled" else ""
    with tempfile.TemporaryDirectory(prefix="synthloop-sandbox-") as work:
        script = os.path.join(work, "main.py")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write(prelude + code)
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "HOME": work}
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-I", script], cwd=work, env=env, text=True,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_limits(timeout_s, memory_mb, isolation, max_file_mb),  # noqa: PLW1509 - limits must apply pre-exec
        )
        timed_out = False
        try:
            out, err = proc.communicate(stdin, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        seconds = time.monotonic() - started
    if proc.returncode is not None and proc.returncode == -signal.SIGXCPU:
        timed_out = True
    return SandboxResult(returncode=proc.returncode, stdout=out[:max_output_chars], stderr=err[-max_output_chars:],
                         timed_out=timed_out, seconds=round(seconds, 3), isolation=isolation,
                         memory_exceeded="MemoryError" in err)
