"""Code verifier: run the response's program against tests in the sandbox (`sandbox.py`: own namespaces,
no network, no view of the host, time, memory and process limits).

The reference is either test code (asserts run after the program, HumanEval style), or
{"tests": "..."}, or {"cases": [{"input": "...", "output": "..."}, ...]} (stdin -> expected stdout,
compared after stripping trailing whitespace). The program is the last ```python block of the
response, or the whole response when it has no fenced block. Where the sandbox cannot isolate code
(and `allow_unisolated` is not set), every verdict fails with the sandbox's one-line reason.
"""

from __future__ import annotations

import re
from typing import Any

from synthloop.judges.verifiers.base import Verdict
from synthloop.judges.verifiers.sandbox import SandboxConfig, SandboxUnavailable, run_python

_FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def extract_code(response: str) -> str:
    blocks = _FENCE.findall(response or "")
    return blocks[-1] if blocks else (response or "")


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


class CodeVerifier:
    name = "code"

    def __init__(self, timeout_s: float = 10.0, memory_mb: int = 512, **sandbox: Any):
        """`sandbox`: the other `SandboxConfig` fields (max_processes, allow_unisolated, ...)."""
        self.sandbox = SandboxConfig(timeout_s=timeout_s, memory_mb=memory_mb, **sandbox)

    def verify(self, response: str, reference: Any) -> Verdict:
        code = extract_code(response)
        if not code.strip():
            return Verdict(passed=False, score=0.0, reason="no code in the response")
        try:
            if isinstance(reference, dict) and "cases" in reference:
                return self._cases(code, reference["cases"])
            return self._tests(code, reference)
        except SandboxUnavailable as exc:
            return Verdict(passed=False, score=0.0, reason=str(exc), extracted=code)

    def _tests(self, code: str, reference: Any) -> Verdict:
        tests = reference.get("tests", "") if isinstance(reference, dict) else str(reference or "")
        result = run_python(f"{code}\n\n{tests}\n", config=self.sandbox)
        if result.timed_out:
            return Verdict(passed=False, score=0.0, reason=f"timed out after {self.sandbox.timeout_s:g} s",
                           extracted=code)
        if result.returncode != 0:
            why = "memory limit exceeded" if result.memory_exceeded else _last_line(result.stderr)
            return Verdict(passed=False, score=0.0, reason=f"failed: {why}", extracted=code)
        return Verdict(passed=True, score=1.0, reason="tests pass", extracted=code)

    def _cases(self, code: str, cases: list[dict[str, Any]]) -> Verdict:
        passed, first_failure = 0, ""
        for i, case in enumerate(cases):
            result = run_python(code, config=self.sandbox, stdin=str(case.get("input", "")))
            expected = str(case.get("output", "")).rstrip()
            if result.ok and result.stdout.rstrip() == expected:
                passed += 1
            elif not first_failure:
                why = ("timed out" if result.timed_out else f"error: {_last_line(result.stderr)}"
                       if result.returncode != 0 else f"printed {_last_line(result.stdout)!r}, expected "
                       f"{_last_line(expected)!r}")
                first_failure = f"case {i}: {why}"
        total = len(cases)
        score = passed / total if total else 0.0
        reason = f"{passed}/{total} cases pass" + (f"; {first_failure}" if first_failure else "")
        return Verdict(passed=total > 0 and passed == total, score=score, reason=reason, extracted=code)

    __call__ = verify
