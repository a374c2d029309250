"""Memory of a long generation run: 100,000 records through `synthloop.generate` (a DSPy program, the openai
engine) against the loopback server, with the peak RSS of the generating process and its RSS as the run
grows (flat = inputs and records are streamed, nothing is kept per item).

Run under the shared lock:  flock /tmp/synthloop-heavy.lock python bench/memory.py
Saves bench/results/memory.json (`peak_rss_mb`; target: under 1 GB).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
from common import RespondProgram, machine, save  # noqa: E402

from synthloop.engines import load  # noqa: E402
from synthloop.synth.generate import generate  # noqa: E402
from synthloop.testing.openai_server import OpenAIServer  # noqa: E402

N = int(os.environ.get("BENCH_RECORDS", "100000"))


def main() -> None:
    info = machine()
    scratch = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    me = psutil.Process()
    samples: list[tuple[float, int, float]] = []  # (seconds, records kept, rss MB)
    done = threading.Event()
    run_dir = scratch / "run"

    def sample() -> None:
        start = time.monotonic()
        while not done.wait(0.5):
            try:
                kept = json.loads((run_dir / "manifest.json").read_text())["counts"].get("kept", 0)
            except (OSError, ValueError, KeyError):
                kept = 0
            samples.append((round(time.monotonic() - start, 1), kept, round(me.memory_info().rss / 2**20, 1)))

    try:
        with OpenAIServer(slots=512, latency_s=0.05, process=True) as server:
            engine = load("openai", model=server.model, base_url=server.base_url, max_concurrency=256)
            before = me.memory_info().rss / 2**20
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            started = time.perf_counter()
            try:
                summary = generate(RespondProgram(), engine=engine, run=run_dir, concurrency=256, progress=False,
                                   inputs=({"request": f"Request {i}: one tip about topic {i % 997}."}
                                           for i in range(N)))
            finally:
                done.set()
                samples.append((round(time.perf_counter() - started, 1), N, round(me.memory_info().rss / 2**20, 1)))
                engine.close()
            seconds = time.perf_counter() - started
        records = sum(1 for _ in summary.run.iter_records())
        disk_mb = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file()) / 2**20
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert records == N == summary.kept, (records, summary)

    def rss_at(fraction: float) -> float | None:
        hits = [rss for _, kept, rss in samples if kept >= fraction * N]
        return hits[0] if hits else None

    growth = {f"{int(f * 100)}%": rss_at(f) for f in (0.1, 0.25, 0.5, 0.75, 1.0)}
    data = {
        "peak_rss_mb": round(peak, 1),
        "target_mb": 1024,
        "records": records,
        "seconds": round(seconds, 1),
        "records_per_s": round(records / seconds, 1),
        "rss_before_run_mb": round(before, 1),
        "rss_mb_when_kept_reached": growth,
        "run_directory_mb": round(disk_mb, 1),
        "program": "RespondProgram (one dspy.Predict per item), concurrency 256, openai engine",
        "server": {"slots": 512, "latency_s": 0.05, "process": "separate"},
        "samples": samples[:: max(1, len(samples) // 60)],
        "machine": info,
    }
    print(f"{records} records in {seconds:.0f} s ({records / seconds:.0f}/s); peak RSS {peak:.0f} MB "
          f"(before the run {before:.0f} MB); RSS as the run grew: {growth}")
    save("memory", data)


if __name__ == "__main__":
    main()
