"""Run untrusted (model-written) Python in a sandbox: its own namespaces, no capabilities, hard limits.

What it stops (each is a test in tests/test_sandbox.py, shown to work outside the sandbox first): setns
back into the host's network, a setsid grandchild outliving the run, fork bombs, memory summed over
forks, writes outside its directory, reading the caller's environment (/proc/<pid>/environ),
signalling the caller, raw `_socket` connections. The design replaced a preexec_fn that only unshared
the network namespace (as root the child kept CAP_SYS_ADMIN and could setns back out).

How (`sandbox_launcher.py` does the work in a fresh `python -I -S`; this module supervises):
- A new user namespace mapping one uid (1000 inside) to `nobody` when the caller is root, to the
  caller itself otherwise. The program execs as that non-root uid: no capabilities in any namespace,
  so setns, mount, ptrace of others and raw network access are all refused by the kernel. Even as root
  the user namespace matters: RLIMIT_NPROC is counted per (user namespace, uid) since Linux 5.14, so a
  fresh namespace gives each run its own process count, and a process of uid 0 would be exempt from it.
- New PID, mount, network (only a downed loopback), IPC, UTS and cgroup namespaces. Its own init (PID 1)
  runs the program as PID 2 and reaps orphans; when the program exits or is killed, init exits and
  the kernel kills every process left in the namespace, setsid grandchildren included, before init is
  gone. `run_python` returns only after that (it waits on init's pidfd).
- A new root on a tmpfs, read-only: /usr, the Python install (base and venv) and /etc/ld.so.cache bound
  read-only, nosuid; null/zero/full/random/urandom; a /proc of its own PID namespace (it sees only its
  own processes); a fresh, empty, size-limited /tmp as working directory and HOME; the code at
  /sandbox/main.py. Nothing else of the host: not the project (only its .venv, read-only, when the venv
  lives there), not /home, /etc, /var, /sys. Nested user namespaces are off (max_user_namespaces=0 in its
  namespace), and no_new_privs is set.
- Limits: wall clock (the whole sandbox is killed) with RLIMIT_CPU as a backstop; RLIMIT_AS = memory_mb
  per process; RLIMIT_NPROC = max_processes; RLIMIT_FSIZE = max_file_mb, which also bounds stdout and
  stderr (they go to memfds, not into this process's memory); /tmp is tmp_mb.
- Total memory across processes: every 25 ms the supervisor sums the anonymous and shared-memory
  resident sizes (RssAnon + RssShmem) of the sandbox's processes (through the sandbox's /proc) and kills
  the whole sandbox above memory_mb. Memory that no process's resident set shows is refused instead:
  memfd_create, memfd_secret, System V shm and message queues fail with EPERM (a seccomp filter); POSIX
  shm (/dev/shm) is the size-limited /tmp. This is a sampled limit, not a hard one: measured at the
  kill, 8 forks x 400 MB under 512 MB were stopped at 512-546 MB (10 runs); the worst case between two
  checks is max_processes x memory_mb. A cgroup (memory.max, pids.max) would be exact, but is not
  used: on this machine (and many CI runners) cgroups are v1 and the session's memory cgroup belongs
  to the tool that runs the session; a child cgroup left behind by a crash would block that tool from
  removing its own, and cgroup v2 delegation needs the caller to move itself out of its cgroup first
  (no internal processes), which a library must not do.

Why hand-written rather than bubblewrap: bwrap run as root maps the sandbox to host uid 0 (exempt from
RLIMIT_NPROC, owner of root's files), Debian 12's bwrap 0.8 cannot size a tmpfs (a program could fill
RAM through /tmp), it has no total memory limit, and it would be one more system package for every
user; `unshare(1)` cannot build a root. The launcher needs only the standard library and ~20 syscalls.
The seccomp filter is a short deny list (the memory calls above, bpf, userfaultfd, perf_event_open,
io_uring_setup; any 32-bit or x32 call), not an allow list: the namespaces, the missing capabilities
and the absent nested user namespaces carry the isolation.

Where user namespaces are unavailable (some containers, kernels built or configured without them,
non-Linux), `run_python` raises `SandboxUnavailable` (one line, logged once) unless `allow_unisolated`
is set; then the code runs with the rlimits, its own session and a temporary directory only: no
network or filesystem isolation at all, and `SandboxResult.isolation` says "none". There is no
fallback that patches Python's socket module: `import _socket` goes around it.

Cost per run: the old design's (one `python -I` start-up) plus the launcher's own small interpreter
start-up (the "launcher" row of bench/sandbox_overhead.py) and ~5 ms of namespace set-up and tear-down.
Measured for `print(1)` on the shared 2-core machine under load (~8-9): median 171 ms against the old
design's 92 ms in a small caller; in a caller that has imported DSPy (whose fork the old preexec_fn paid)
156-159 ms against 123-138 ms (two runs), of which the launcher's start-up is ~38 ms. A long-lived
launcher forking per run would remove that part.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import marshal
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from synthloop.configs import Config

log = logging.getLogger(__name__)

LAUNCHER = Path(__file__).with_name("sandbox_launcher.py")
POLL_S = 0.025  # how often the wall clock and the sandbox's total memory are checked

Isolation = Literal["namespaces", "none"]


class SandboxConfig(Config):
    """Limits of one sandboxed run; `CodeVerifier(**fields)` takes the same fields."""

    timeout_s: float = Field(10.0, gt=0, description="Wall-clock limit; the whole sandbox is killed when it passes.")
    memory_mb: int = Field(512, ge=32, description="Memory budget: each process's address space, and the "
                           "resident memory of all its processes together (checked every 25 ms, then killed).")
    max_processes: int = Field(16, ge=1, description="Processes and threads the program may have at once, "
                               "itself included (RLIMIT_NPROC inside its own user namespace).")
    max_file_mb: int = Field(16, ge=1, description="Largest file it may write, stdout and stderr included.")
    tmp_mb: int = Field(64, ge=1, description="Size of its fresh, empty /tmp (its working directory).")
    allow_unisolated: bool = Field(False, description="Where namespaces are unavailable, run the code anyway with "
                                   "rlimits only (it can then read and write what the caller can). Default: refuse.")


class SandboxResult(BaseModel):
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    isolation: Isolation = Field(description="namespaces: everything in the module docstring held; none: only "
                                 "rlimits (allow_unisolated).")
    memory_exceeded: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out


class SandboxUnavailable(RuntimeError):
    """The code cannot be isolated here (and unisolated runs are not allowed); the message is one line."""


class IsolationProbe(BaseModel):
    isolated: bool
    reason: str = Field("", description="Why not, when not isolated.")


def run_python(code: str, *, stdin: str | None = None, max_output_chars: int = 20_000,
               config: SandboxConfig | None = None, **limits: Any) -> SandboxResult:
    """Run `code` with `python -I` in the sandbox. `limits` override fields of `config` (timeout_s=...).

    Never raises for anything the code does; raises `SandboxUnavailable` when it cannot isolate the code
    and `allow_unisolated` is false."""
    cfg = SandboxConfig(**{**(config.model_dump() if config else {}), **limits})
    probe = probe_isolation()
    if not probe.isolated:
        if not cfg.allow_unisolated:
            message = (f"cannot isolate model-written code on this machine ({probe.reason}); refusing to run it "
                       "(set allow_unisolated: true to run it with rlimits only)")
            _warn_once(message)
            raise SandboxUnavailable(message)
        _warn_once(f"running model-written code WITHOUT isolation ({probe.reason}); allow_unisolated is set")
    return _run(code, cfg, "namespaces" if probe.isolated else "none", stdin, max_output_chars)


@functools.cache
def probe_isolation() -> IsolationProbe:
    """Whether the full sandbox works here: one real run of a tiny program (about 50 ms, once per process)."""
    if not sys.platform.startswith("linux"):
        return IsolationProbe(isolated=False, reason=f"namespaces need Linux, this is {sys.platform}")
    try:
        # a generous timeout: a probe that failed because the machine was busy would refuse all later runs
        result = _run("import os\nprint(os.getuid(), os.getppid())\n", SandboxConfig(timeout_s=120), "namespaces",
                      None, 200)
    except SandboxUnavailable as exc:
        return IsolationProbe(isolated=False, reason=str(exc))
    if result.returncode != 0 or result.stdout.split() != ["1000", "1"]:
        return IsolationProbe(isolated=False, reason=f"the probe program failed: {_last_line(result.stderr)}")
    return IsolationProbe(isolated=True)


@functools.cache
def _warn_once(message: str) -> None:
    log.warning(message)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def _binds() -> list[str]:
    """Host paths the sandbox sees read-only: /usr and the Python install (base and venv), nothing else."""
    paths = sorted({os.path.normpath(p) for p in ("/usr", sys.base_prefix, sys.prefix)}, key=len)
    kept: list[str] = []
    for path in paths:
        if not any(path == k or path.startswith(k.rstrip("/") + "/") for k in kept):
            kept.append(path)
    return kept


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(f"synthloop-sandbox-{name}")
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _run(code: str, cfg: SandboxConfig, mode: Isolation, stdin: str | None, max_output_chars: int) -> SandboxResult:
    mb = 1024 * 1024
    with contextlib.ExitStack() as stack:
        workdir = None
        if mode == "none":  # (a program that outlived its run may still be writing there)
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="synthloop-sandbox-",
                                                                      ignore_cleanup_errors=True))
        launch = {
            "mode": mode, "python": sys.executable, "code": code, "binds": _binds(), "tmp_mb": cfg.tmp_mb,
            "workdir": workdir,
            "env": {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
                    "HOME": workdir or "/tmp", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"},
            # RLIMIT_NPROC only where it counts this run alone: in its own user namespace
            "limits": {"as": cfg.memory_mb * mb, "cpu": int(cfg.timeout_s) + 1, "fsize": cfg.max_file_mb * mb,
                       "nofile": 64, "nproc": cfg.max_processes if mode == "namespaces" else None},
        }
        fds = [_memfd("config", marshal.dumps(launch)), _memfd("stdout"), _memfd("stderr")]
        stack.callback(lambda: [os.close(fd) for fd in fds])
        config_fd, out_fd, err_fd = fds
        if stdin is not None:
            fds.append(_memfd("stdin", stdin.encode()))
        status_r, status_w = os.pipe()
        fds.append(status_r)
        started = time.monotonic()
        deadline = started + cfg.timeout_s
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(LAUNCHER), str(config_fd), str(status_w)],
                stdin=fds[3] if stdin is not None else subprocess.DEVNULL, stdout=out_fd, stderr=err_fd,
                pass_fds=(config_fd, status_w), start_new_session=True, env={},
            )
        finally:
            os.close(status_w)
        sandbox = _Sandbox(proc)
        stack.callback(sandbox.close)
        error = sandbox.read_status(status_r, deadline)
        if error:
            sandbox.kill()
            sandbox.wait_all()
            raise SandboxUnavailable(f"the sandbox could not start: {error}")
        timed_out = memory_exceeded = False
        while not sandbox.exited(POLL_S):
            if time.monotonic() >= deadline:
                timed_out = True
            elif mode == "namespaces" and sandbox.resident_bytes() > cfg.memory_mb * mb:
                memory_exceeded = True
            else:
                continue
            sandbox.kill()
            break
        sandbox.wait_all()
        seconds = time.monotonic() - started
        out = os.pread(out_fd, 4 * max_output_chars, 0).decode("utf-8", "replace")[:max_output_chars]
        err_size = os.fstat(err_fd).st_size
        err = os.pread(err_fd, 4 * max_output_chars, max(0, err_size - 4 * max_output_chars))
        err_text = err.decode("utf-8", "replace")[-max_output_chars:]
    returncode = proc.returncode
    timed_out = timed_out or returncode == -signal.SIGXCPU
    return SandboxResult(returncode=returncode, stdout=out, stderr=err_text, timed_out=timed_out,
                         seconds=round(seconds, 3), isolation=mode,
                         memory_exceeded=memory_exceeded or "MemoryError" in err_text)


class _Sandbox:
    """One launched sandbox seen from outside: the launcher process and the program's PID 1."""

    def __init__(self, proc: subprocess.Popen):
        self.proc = proc
        self.launcher_fd = os.pidfd_open(proc.pid)
        self.init_pid: int | None = None
        self.init_fd: int | None = None
        self._program: int | None = None
        self._pidns: int | None = None

    def read_status(self, status_r: int, deadline: float) -> str:
        """Wait until the program runs (EOF on the status pipe); return the setup error, if any."""
        buffer = b""
        while True:
            ready, _, _ = select.select([status_r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                return ""  # still setting up at the deadline: the wall-clock check kills it
            chunk = os.read(status_r, 4096)
            buffer += chunk
            for line in buffer.decode(errors="replace").splitlines():
                if line.startswith("pid ") and self.init_fd is None:
                    self.init_pid = int(line[4:])
                    with contextlib.suppress(ProcessLookupError):
                        self.init_fd = os.pidfd_open(self.init_pid)
            if not chunk:
                errors = [line[6:] for line in buffer.decode(errors="replace").splitlines()
                          if line.startswith("error ")]
                return errors[0] if errors else ("" if self.init_pid else "the launcher exited without starting")

    def exited(self, timeout: float) -> bool:
        return bool(select.select([self.launcher_fd], [], [], timeout)[0])

    def resident_bytes(self) -> int:
        """Anonymous and shared-memory resident pages of every process of the sandbox (read through its
        own /proc), not file-backed ones: what a fork or a MAP_SHARED mapping can grow. Pages shared
        between processes count once per process (so the estimate errs high)."""
        total = 0
        root, pids = self._sandbox_proc()
        for pid in pids:
            with contextlib.suppress(OSError, ValueError):
                for line in Path(f"{root}/{pid}/status").read_text().splitlines():
                    if line.startswith(("RssAnon:", "RssShmem:")):
                        total += int(line.split()[1]) * 1024
        return total

    def _sandbox_proc(self) -> tuple[str, list[str]]:
        """The sandbox's /proc seen from here, and its pids. Through init's root when we may (root);
        otherwise through the program's (init changed uid, so only root may look into it; the program
        exec'd inside the sandbox's user namespace, which we own). Without a /proc in the sandbox: the
        host's processes in its PID namespace."""
        for pid in (self.init_pid, self._program_pid()):
            if pid is None:
                continue
            with contextlib.suppress(OSError):
                pids = [p for p in os.listdir(f"/proc/{pid}/root/proc") if p.isdigit()]
                return (f"/proc/{pid}/root/proc", pids) if pids else ("/proc", self._host_pids())
        return "/proc", []

    def _program_pid(self) -> int | None:
        if self._program is None and self.init_pid is not None:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                with contextlib.suppress(OSError, ValueError, IndexError):
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == self.init_pid:
                        self._program = int(pid)
                        break
        return self._program

    def _host_pids(self) -> list[str]:
        try:
            self._pidns = self._pidns or os.stat(f"/proc/{self._program_pid()}/ns/pid").st_ino
        except OSError:
            return []
        found = []
        for pid in os.listdir("/proc"):
            with contextlib.suppress(OSError):
                if pid.isdigit() and os.stat(f"/proc/{pid}/ns/pid").st_ino == self._pidns:
                    found.append(pid)
        return found

    def kill(self) -> None:
        """SIGKILL the program's PID 1: the kernel kills the rest of its PID namespace, and the launchers
        reap it and exit (killing them too would leave PID 1 a zombie for the host's init to reap)."""
        if self.init_fd is not None and self.init_pid != self.proc.pid:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.init_fd, signal.SIGKILL)
        else:  # still setting up, or unisolated: the launcher's process group is all there is to kill
            self._kill_group()

    def _kill_group(self) -> None:
        with contextlib.suppress(OSError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait_all(self) -> None:
        """Return once the launcher is reaped and the program's PID 1 is gone (so is every descendant)."""
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._kill_group()
            self.proc.wait()
        if self.init_fd is not None and not select.select([self.init_fd], [], [], 10)[0]:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(self.init_fd, signal.SIGKILL)
            select.select([self.init_fd], [], [], 10)

    def close(self) -> None:
        for fd in (self.launcher_fd, self.init_fd):
            if fd is not None:
                os.close(fd)
