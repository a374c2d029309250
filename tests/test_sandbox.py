"""The code sandbox: limits, isolation, a hostile-code suite, and the code verifier on top of it.

Every hostile test first shows that the same action works outside the sandbox (a plain subprocess, or
one in a bare network namespace: the design this sandbox replaced), then that the sandbox blocks it.
"""

from __future__ import annotations

import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from synthloop.judges.base import JudgeItem, VerifierJudge
from synthloop.judges.verifiers.code import CodeVerifier, extract_code
from synthloop.judges.verifiers.sandbox import probe_isolation, run_python

ROOT = Path(__file__).resolve().parents[1]
PROBE = probe_isolation()
isolated = pytest.mark.skipif(not PROBE.isolated, reason=f"no sandbox isolation here: {PROBE.reason}")


def plain(code: str, timeout: float = 20, **kwargs) -> subprocess.CompletedProcess:
    """The control: the same code as an ordinary subprocess of the test."""
    return subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True, timeout=timeout,
                          start_new_session=True, **kwargs)


def processes_named(comm: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                found.append(int(pid))
        except OSError:
            continue
    return found


class Listener:
    """A loopback TCP server that counts the connections it accepts."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def settle(self) -> int:
        time.sleep(0.2)
        self.server.close()
        return self.accepted


def test_infinite_loop_is_killed():
    result = run_python("while True:\n    pass\n", timeout_s=1.5)
    assert result.timed_out and not result.ok
    assert result.seconds < 10


def test_memory_limit():
    result = run_python("x = bytearray(3 * 1024 ** 3)\nprint('allocated')\n", memory_mb=256)
    assert result.returncode != 0 and result.memory_exceeded and "allocated" not in result.stdout


def test_sandbox_starts_clean():
    result = run_python("import os, sys\nprint(os.getcwd().startswith('/tmp'), sorted(os.environ).count('HOME'))\n")
    assert result.ok and result.stdout.split() == ["True", "1"]


@isolated
def test_sandbox_is_unprivileged_and_sees_an_empty_world():
    code = ("import json, os\nstatus = dict(l.split(':', 1) for l in open('/proc/self/status'))\n"
            "print(json.dumps([os.getuid(), os.getpid(), os.getppid(), status['CapEff'].strip(),\n"
            "      status['CapPrm'].strip(), sorted(p for p in os.listdir('/proc') if p.isdigit()), os.listdir('.'),\n"
            "      sorted(os.listdir('/'))]))\n")
    result = run_python(code)
    uid, pid, ppid, cap_eff, cap_prm, pids, cwd, root = json.loads(result.stdout)
    assert result.isolation == "namespaces"
    assert (uid, cap_eff, cap_prm) == (1000, "0" * 16, "0" * 16)  # not root, no capabilities
    assert (pid, ppid) == (2, 1) and pids == ["1", "2"]  # sees only itself and the sandbox's init
    assert cwd == []  # a fresh, empty working directory
    python_install = {Path(p).parts[1] for p in (sys.prefix, sys.base_prefix)}
    assert set(root) - python_install <= {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sandbox",
                                          "sbin", "tmp", "usr"}
    assert os.getpid() != 1 and Path("/proc/1").exists()  # (outside, of course, the host's PID 1 is there)


@isolated
@pytest.mark.parametrize("client", [
    "import socket\nsocket.create_connection(('127.0.0.1', PORT), timeout=3)\nprint('connected')\n",
    # the raw C module: monkey-patching `socket` (the old fallback) does not stop this one
    "import _socket\ns = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)\ns.settimeout(3)\n"
    "s.connect(('127.0.0.1', PORT))\nprint('connected')\n",
], ids=["socket", "raw_socket"])
def test_network_is_unreachable(client):
    listener = Listener()
    code = client.replace("PORT", str(listener.port))
    control = plain(code)
    result = run_python(code, timeout_s=5)
    assert "connected" in control.stdout  # the same code connects from outside the sandbox
    assert result.returncode != 0 and "connected" not in result.stdout
    assert "Network is unreachable" in result.stderr
    assert listener.settle() == 1  # only the control's connection arrived


SETNS = """\
import ctypes, glob, os, socket
libc = ctypes.CDLL(None, use_errno=True)
for path in ['/proc/1/ns/net'] + sorted(glob.glob('/proc/[0-9]*/ns/net')):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        continue
    if libc.setns(fd, 0x40000000) == 0:
        try:
            socket.create_connection(('127.0.0.1', PORT), timeout=3).close()
            print('connected through', path)
            break
        except OSError:
            pass
"""


@isolated
def test_setns_back_into_the_host_network_is_blocked():
    listener = Listener()
    code = SETNS.replace("PORT", str(listener.port))
    if os.geteuid() == 0:  # control: a network namespace alone (the old sandbox) lets root setns back out
        control = subprocess.run(["unshare", "--net", sys.executable, "-I", "-c", code], capture_output=True,
                                 text=True, timeout=20)
        assert "connected through" in control.stdout, control.stderr
    result = run_python(code, timeout_s=5)
    assert result.ok and "connected" not in result.stdout
    assert listener.settle() == (1 if os.geteuid() == 0 else 0)


GRANDCHILD = """\
import ctypes, os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, CANARY.encode(), 0, 0, 0)  # PR_SET_NAME: findable in the host's /proc
        for fd in (0, 1, 2):
            os.close(fd)
        time.sleep(0.5)
        try:
            open(MARKER, 'w').write('outlived the sandbox')
        except OSError:
            pass
        os._exit(0)
    os._exit(0)
os.wait()
print('spawned', flush=True)
"""


@isolated
def test_setsid_grandchild_dies_with_the_sandbox(tmp_path):
    def hostile(name: str, tail: str = "") -> tuple[str, Path, str]:
        canary = f"slc{uuid.uuid4().hex[:12]}"
        marker = tmp_path / f"{name}.marker"
        return GRANDCHILD.replace("CANARY", repr(canary)).replace("MARKER", repr(str(marker))) + tail, marker, canary

    code, control_marker, control_canary = hostile("control")
    assert "spawned" in plain(code).stdout
    assert processes_named(control_canary)  # outside, the grandchild outlives its parent...
    for name, tail, timeout in (("exit", "", 10.0), ("timeout", "while True:\n    pass\n", 2.0)):
        code, marker, canary = hostile(name, tail)
        result = run_python(code, timeout_s=timeout)
        assert "spawned" in result.stdout and result.timed_out == (name == "timeout")
        assert processes_named(canary) == [], f"a sandbox process survived ({name})"
    deadline = time.monotonic() + 5
    while not control_marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert control_marker.read_text() == "outlived the sandbox"  # ...and writes its file 0.5 s later
    time.sleep(0.3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["control.marker"]


@isolated
def test_sandbox_dies_with_its_caller():
    canary = f"slp{uuid.uuid4().hex[:12]}"
    code = f"import ctypes, time\nctypes.CDLL(None).prctl(15, {canary!r}.encode(), 0, 0, 0)\ntime.sleep(60)\n"
    caller = subprocess.Popen([sys.executable, "-c", "from synthloop.judges.verifiers.sandbox import run_python\n"
                               f"run_python({code!r}, timeout_s=60)"], cwd=ROOT)
    deadline = time.monotonic() + 20
    while not processes_named(canary) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_named(canary), "the sandboxed program never started"
    caller.kill()
    caller.wait()
    deadline = time.monotonic() + 5
    while processes_named(canary) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert processes_named(canary) == []


FORKS = """\
import os, time
made = 0
try:
    for _ in range(20):
        if os.fork() == 0:
            time.sleep(0.3)
            os._exit(0)
        made += 1
except OSError as exc:
    print('fork refused:', exc.strerror)
print('forked', made)
"""


@isolated
def test_process_count_is_limited_and_a_fork_bomb_is_contained():
    assert "forked 20" in plain(FORKS).stdout  # the control: 20 forks are no problem outside
    result = run_python(FORKS, max_processes=6, timeout_s=5)
    assert "fork refused: Resource temporarily unavailable" in result.stdout
    assert "forked 5" in result.stdout  # 5 children + itself = 6 (the sandbox's init is not counted)
    canary = f"slb{uuid.uuid4().hex[:12]}"
    bomb = (f"import ctypes, os\nctypes.CDLL(None).prctl(15, {canary!r}.encode(), 0, 0, 0)\n"
            "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n")
    started = time.monotonic()
    result = run_python(bomb, max_processes=4, timeout_s=1.0)
    assert result.timed_out and time.monotonic() - started < 5
    assert processes_named(canary) == []


FORKS_X_MEMORY = """\
import mmap, os, time
children = []
for _ in range(3):
    pid = os.fork()
    if pid == 0:
        ALLOCATE
        time.sleep(1.0)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.waitpid(pid, 0)
print('all allocated')
"""


@isolated
@pytest.mark.parametrize("allocate", [
    "block = b'x' * (100 * 1024 * 1024)  # written, so resident",
    # MAP_SHARED: shared memory, not anonymous; a limit that summed only anonymous memory would miss it
    "block = mmap.mmap(-1, 100 * 1024 * 1024)\n        for i in range(0, len(block), 4096):\n"
    "            block[i] = 1",
], ids=["private", "shared_mmap"])
def test_total_memory_across_forks_is_limited(allocate):
    def per_process_limit():
        resource.setrlimit(resource.RLIMIT_AS, (128 * 1024 ** 2,) * 2)

    code = FORKS_X_MEMORY.replace("ALLOCATE", allocate)
    # the control: a per-process limit of 128 MB (the old sandbox's kind) lets 3 x 100 MB through
    control = plain(code, preexec_fn=per_process_limit)  # noqa: PLW1509
    assert "all allocated" in control.stdout, control.stderr
    result = run_python(code, memory_mb=128, timeout_s=20)
    assert result.memory_exceeded and result.returncode != 0 and "all allocated" not in result.stdout


UNSEEN_MEMORY = """\
import ctypes, os
try:
    held = []
    for _ in range(3):
        fd = os.memfd_create('hold')
        for _ in range(50):
            os.write(fd, b'x' * 1024 * 1024)
        held.append(fd)
    print('memfd MB held:', 50 * len(held))
except OSError as exc:
    print('memfd:', exc.strerror)
libc = ctypes.CDLL(None, use_errno=True)
segment = libc.shmget(0, 1 << 20, 0o1000 | 0o600)  # IPC_PRIVATE, IPC_CREAT
print('sysv segment:', 'created' if segment >= 0 else os.strerror(ctypes.get_errno()))
if segment >= 0:
    libc.shmctl(segment, 0, None)  # IPC_RMID: the control leaves nothing behind
"""


@isolated
def test_memory_that_no_process_holds_is_refused():
    """memfds and System V segments hold memory outside every process's resident set: the control
    keeps 150 MB of memfds under a 64 MB per-process limit; the sandbox refuses to create them."""
    def per_process_limit():
        resource.setrlimit(resource.RLIMIT_AS, (64 * 1024 ** 2,) * 2)

    control = plain(UNSEEN_MEMORY, preexec_fn=per_process_limit)  # noqa: PLW1509
    assert "memfd MB held: 150" in control.stdout and "sysv segment: created" in control.stdout, control.stderr
    result = run_python(UNSEEN_MEMORY, memory_mb=64)
    assert result.ok and result.stdout.splitlines() == ["memfd: Operation not permitted",
                                                         "sysv segment: Operation not permitted"]


@isolated
def test_no_writes_outside_and_no_view_of_the_project(tmp_path):
    outside = tmp_path / "outside.txt"
    code = (f"import os\nprint('project visible:', os.path.exists({str(ROOT / 'pyproject.toml')!r}))\n"
            f"open({str(outside)!r}, 'w').write('escaped')\nprint('wrote')\n")
    control = plain(code)
    assert "project visible: True" in control.stdout and "wrote" in control.stdout
    outside.unlink()
    result = run_python(code)
    assert "project visible: False" in result.stdout and "wrote" not in result.stdout
    assert not outside.exists()
    readonly = run_python("open('/sandbox/main.py', 'a')\n")  # its own file, on its read-only root
    assert "Read-only file system" in readonly.stderr
    # the verifier: "tests pass" only if the side effect really happened, which it cannot
    verdict = CodeVerifier(timeout_s=5).verify(f"```python\n{code}```", f"assert open({str(outside)!r}).read()")
    assert not verdict.passed and not outside.exists()


PARENT = """\
import json, os, signal, subprocess, sys
from synthloop.judges.verifiers.sandbox import run_python
received = []
signal.signal(signal.SIGUSR1, lambda *_: received.append(1))
code = sys.stdin.read().replace('PARENT_PID', str(os.getpid()))
control = subprocess.run([sys.executable, '-I', '-c', code], capture_output=True, text=True, env={}, timeout=20,
                         start_new_session=True)
signals_from_control = len(received)
boxed = run_python(code, timeout_s=10)
print(json.dumps({'control': control.stdout, 'control_signals': signals_from_control, 'boxed': boxed.stdout,
                  'boxed_signals': len(received) - signals_from_control, 'boxed_ok': boxed.ok}))
"""

SNOOP = """\
import glob, os, signal
leaks = 0
for path in ['/proc/%d/environ' % os.getppid()] + glob.glob('/proc/[0-9]*/environ'):
    try:
        leaks += SECRET.encode() in open(path, 'rb').read()
    except OSError:
        pass
print('environ leaks:', leaks)
for target in (PARENT_PID, os.getppid()):
    try:
        os.kill(target, signal.SIGUSR1)
    except OSError as exc:
        print('kill', target, exc.strerror)
try:
    os.kill(-1, 0)  # signal 0: a permission probe that delivers nothing
    print('others reachable')
except OSError as exc:
    print('others:', exc.strerror)
"""


@pytest.fixture(scope="module")
def snooping_child():
    """Hostile code run by a parent whose environment holds a secret: once plainly, once sandboxed."""
    if not PROBE.isolated:
        pytest.skip(f"no sandbox isolation here: {PROBE.reason}")
    secret = f"sk-{uuid.uuid4().hex}"
    parent = subprocess.run([sys.executable, "-c", PARENT], input=SNOOP.replace("SECRET", repr(secret)),
                            capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ, "SYNTHLOOP_TEST_SECRET": secret})
    assert parent.returncode == 0, parent.stderr
    return json.loads(parent.stdout)


def test_parent_environment_is_not_readable(snooping_child):
    assert "environ leaks: 0" not in snooping_child["control"]  # the control reads the secret
    assert snooping_child["boxed_ok"] and "environ leaks: 0" in snooping_child["boxed"]


def test_parent_cannot_be_signalled(snooping_child):
    assert snooping_child["control_signals"] >= 1 and "others reachable" in snooping_child["control"]
    assert snooping_child["boxed_signals"] == 0
    assert "No such process" in snooping_child["boxed"] and "others: No such process" in snooping_child["boxed"]


UNAVAILABLE = """\
import json, logging
from synthloop.judges.verifiers.code import CodeVerifier
from synthloop.judges.verifiers.sandbox import SandboxUnavailable, probe_isolation, run_python
warnings = []
class Collect(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())
logging.getLogger('synthloop.judges.verifiers.sandbox').addHandler(Collect())
errors = []
for _ in range(2):
    try:
        run_python('print(1)')
    except SandboxUnavailable as exc:
        errors.append(str(exc))
verdict = CodeVerifier().verify('print(1)', '')
loose = [run_python('import os; print(os.getuid())', allow_unisolated=True) for _ in range(2)]
print(json.dumps({'probe': probe_isolation().model_dump(), 'errors': errors, 'verdict': verdict.model_dump(),
                  'loose': [r.model_dump() for r in loose], 'warnings': warnings}))
"""


def test_refuses_to_run_unisolated_unless_allowed():
    """A real machine without user namespaces: a namespace whose max_user_namespaces is 0."""
    script = f"echo 0 > /proc/sys/user/max_user_namespaces && exec {sys.executable} -c \"$0\""
    proc = subprocess.run(["unshare", "--user", "--map-root-user", "sh", "-c", script, UNAVAILABLE],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    if proc.returncode != 0 and "unshare" in proc.stderr and "Traceback" not in proc.stderr:
        pytest.skip(f"cannot make a user namespace to simulate the machine: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert not out["probe"]["isolated"] and "No space left on device" in out["probe"]["reason"]
    assert len(out["errors"]) == 2 and all("\n" not in e and "allow_unisolated: true" in e for e in out["errors"])
    assert not out["verdict"]["passed"] and out["verdict"]["reason"] == out["errors"][0]
    assert [r["isolation"] for r in out["loose"]] == ["none", "none"] and out["loose"][0]["stdout"] == "0\n"
    refusals = [w for w in out["warnings"] if "refusing" in w]
    unisolated = [w for w in out["warnings"] if "WITHOUT isolation" in w]
    assert len(refusals) == 1 and len(unisolated) == 1  # said once each, not per run


def test_code_verifier_runs_tests_and_stdin_cases():
    good = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\n"
    bad = "```python\ndef add(a, b):\n    return a - b\n```"
    tests = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
    judge = VerifierJudge(CodeVerifier(timeout_s=5))
    ok, wrong = judge.score([JudgeItem(prompt="p", response=good, reference=tests),
                             JudgeItem(prompt="p", response=bad, reference={"tests": tests})])
    assert ok.passed and ok.score == 1.0
    assert not wrong.passed and "AssertionError" in wrong.rationale
    cases = {"cases": [{"input": "3\n", "output": "9"}, {"input": "5\n", "output": "25"}]}
    half = CodeVerifier().verify("n = int(input())\nprint(9 if n == 3 else n)", cases)
    assert half.score == 0.5 and "case 1" in half.reason
    loop = CodeVerifier(timeout_s=1).verify("while True: pass", "")
    assert not loop.passed and "timed out" in loop.reason
    assert extract_code("no fences at all") == "no fences at all"
