"""The code sandbox: time and memory limits, no network, and the code verifier on top of it."""

from __future__ import annotations

import socket
import threading

from synthloop.judges.base import JudgeItem, VerifierJudge
from synthloop.judges.verifiers.code import CodeVerifier, extract_code
from synthloop.judges.verifiers.sandbox import network_isolation, run_python


def test_infinite_loop_is_killed():
    result = run_python("while True:\n    pass\n", timeout_s=1.5)
    assert result.timed_out and not result.ok
    assert result.seconds < 10


def test_network_call_is_blocked():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)\nprint('connected')\n"
    # the same connection works outside the sandbox, so the check below can fail
    socket.create_connection(("127.0.0.1", port), timeout=3).close()
    result = run_python(code, timeout_s=5)
    server.close()
    assert result.returncode != 0 and "connected" not in result.stdout
    expected = "Network is unreachable" if network_isolation() != "sockets-disabled" else "network access is disabled"
    assert expected in result.stderr
    assert len(accepted) == 1  # only the connection made outside the sandbox arrived


def test_memory_limit():
    result = run_python("x = bytearray(3 * 1024 ** 3)\nprint('allocated')\n", memory_mb=256)
    assert result.returncode != 0 and result.memory_exceeded and "allocated" not in result.stdout


def test_sandbox_starts_clean():
    result = run_python("import os, sys\nprint(os.getcwd().startswith('/tmp'), sorted(os.environ).count('HOME'))\n")
    assert result.ok and result.stdout.split() == ["True", "1"]


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
