"""Per-run cost of the code sandbox: N runs of `print(1)` (the code verifier runs many small snippets).

Interleaved, so that load from other users hits them alike:
    plain      `python -I -c "print(1)"` as a subprocess: the floor of any process-based sandbox
    netns_only the design the sandbox replaced (setsid + unshare(CLONE_NEWNET) + rlimits in a preexec_fn)
    sandbox    `run_python` (launcher, user/PID/mount/net/IPC/UTS/cgroup namespaces, new root, init)
    launcher   just starting the launcher's interpreter with its imports: the part of the sandbox's
               cost that a long-lived launcher (forking per run) would save

Run:  python bench/sandbox_overhead.py   (BENCH_RUNS=50 by default; light: one core, a few seconds)
Saves bench/results/sandbox_overhead.json (ms per run: median, mean, p90).
"""

from __future__ import annotations

import ctypes
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import machine, save  # noqa: E402

from synthloop.judges.verifiers.sandbox import probe_isolation, run_python  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "50"))
CODE = "print(1)"


def plain() -> str:
    return subprocess.run([sys.executable, "-I", "-c", CODE], capture_output=True, text=True).stdout


def _netns_limits() -> None:
    os.setsid()
    ctypes.CDLL(None, use_errno=True).unshare(0x40000000)  # CLONE_NEWNET
    for limit, value in ((resource.RLIMIT_AS, 512 * 2**20), (resource.RLIMIT_CPU, 11), (resource.RLIMIT_NOFILE, 64)):
        resource.setrlimit(limit, (value, value))


def netns_only() -> str:
    return subprocess.run([sys.executable, "-I", "-c", CODE], capture_output=True, text=True,
                          preexec_fn=_netns_limits).stdout  # noqa: PLW1509 - this is the old design


def sandbox() -> str:
    return run_python(CODE).stdout


def launcher() -> str:
    imports = "import _signal, ctypes, errno, marshal, os, resource, struct, sys; print(1)"
    return subprocess.run([sys.executable, "-I", "-S", "-c", imports], capture_output=True, text=True).stdout


def summary(ms: list[float]) -> dict[str, float]:
    ordered = sorted(ms)
    return {"median_ms": round(statistics.median(ms), 1), "mean_ms": round(statistics.fmean(ms), 1),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 1)}


def main() -> None:
    info = machine()
    started = time.perf_counter()
    probe = probe_isolation()
    probe_ms = (time.perf_counter() - started) * 1000
    if not probe.isolated:
        sys.exit(f"error: the sandbox cannot isolate code here ({probe.reason})")
    ways = {"plain": plain, "netns_only": netns_only, "sandbox": sandbox, "launcher": launcher}
    for run in ways.values():  # warm the page cache
        assert run().strip() == "1"
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(RUNS):
        for name, run in ways.items():
            t0 = time.perf_counter()
            out = run()
            times[name].append((time.perf_counter() - t0) * 1000)
            assert out.strip() == "1", (name, out)
    result = {name: summary(ms) for name, ms in times.items()}
    overhead = result["sandbox"]["median_ms"] - result["netns_only"]["median_ms"]
    data = {"machine": info, "runs": RUNS, "code": CODE, "probe_ms_once_per_process": round(probe_ms, 1),
            **result, "sandbox_minus_netns_only_median_ms": round(overhead, 1)}
    print({k: v for k, v in data.items() if k != "machine"})
    save("sandbox_overhead", data)


if __name__ == "__main__":
    main()
