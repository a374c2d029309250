"""Where synthloop's DSPy path loses throughput against raw AsyncLLM: a small run (~200 prompts) with timing
counters, the CPU time of every thread of this process and of vLLM's EngineCore, and cProfile of the event loop.

Variants on the same prompts (prefix cache reset before each):
  synthloop       RespondProgram via synthloop.generate (the benchmark's path), every request timed
  raw             the recorded requests into AsyncLLM, all at once (the benchmark's reference)
  raw_staggered   the same, each request sent at the moment synthloop sent it (isolates the arrival pattern)
  synthloop_prof  synthloop again with cProfile on the event loop thread (slower; for the hot spots only)

Run under the shared lock:  flock /tmp/synthloop-heavy.lock python bench/engine_overhead_profile.py
Prints figures; saves bench/results/engine_overhead_profile.json and the profile as .txt beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import psutil  # noqa: E402
from common import RESULTS, RespondProgram, machine, save  # noqa: E402
from engine_overhead import prompts  # noqa: E402
from raw_vllm import raw_request  # noqa: E402

from synthloop.engines import EngineConfig, Sampling  # noqa: E402
from synthloop.engines.base import Engine  # noqa: E402
from synthloop.synth.generate import generate  # noqa: E402


class Timed(Engine):
    """Passes every request on, remembering when it was sent and when it finished."""

    def __init__(self, inner: Engine):
        super().__init__(inner.model)
        self.inner, self.rows = inner, []
        self.kind = inner.kind  # type: ignore[misc]
        self.preferred_in_flight = inner.preferred_in_flight
        self.t0 = time.perf_counter()

    @property
    def loop_thread(self):  # type: ignore[override]
        return self.inner.loop_thread

    def describe(self):
        return self.inner.describe()

    def submit(self, request):
        raise NotImplementedError

    async def agenerate(self, request):
        sent = time.perf_counter() - self.t0
        result = await self.inner.agenerate(request)
        c = result.completions[0]
        self.rows.append({"request": request, "sent": sent, "done": time.perf_counter() - self.t0,
                          "tokens": result.output_tokens, "prompt_tokens": result.prompt_tokens,
                          "finish": c.finish_reason, "attempt": request.sample_index})
        return result


def cpu_snapshot() -> dict:
    me = psutil.Process()
    threads = {t.id: t.user_time + t.system_time for t in me.threads()}
    children = {}
    for p in me.children(recursive=True):
        try:
            t = p.cpu_times()
            children[f"{p.pid}:{p.name()}"] = t.user + t.system
        except psutil.Error:
            pass
    t = me.cpu_times()
    return {"self": t.user + t.system, "threads": threads, "children": children}


def cpu_delta(a: dict, b: dict, names: dict) -> dict:
    threads = {}
    for tid, v in b["threads"].items():
        d = v - a["threads"].get(tid, 0.0)
        if d > 0.05:
            threads[names.get(tid, str(tid))] = round(threads.get(names.get(tid, str(tid)), 0) + d, 2)
    return {"main_process_s": round(b["self"] - a["self"], 2), "by_thread_s": threads,
            "children_s": {k: round(v - a["children"].get(k, 0.0), 2) for k, v in b["children"].items()}}


def thread_names() -> dict:
    import threading

    return {t.native_id: t.name for t in threading.enumerate()}


def summarize(rows: list[dict], seconds: float) -> dict:
    done = sorted(r["done"] for r in rows)
    sent = sorted(r["sent"] for r in rows)
    tokens = sum(r["tokens"] for r in rows)
    n = len(rows)
    return {"requests": n, "seconds": round(seconds, 2), "output_tokens": tokens,
            "tok_per_s": round(tokens / seconds, 1),
            "prompt_tokens": sum(r["prompt_tokens"] for r in rows),
            "retries": sum(r["attempt"] > 0 for r in rows), "truncated": sum(r["finish"] == "length" for r in rows),
            "last_first_attempt_sent_s": round(max((r["sent"] for r in rows if r["attempt"] == 0), default=0), 2),
            "sent_p50_s": round(sent[n // 2], 2), "done_p50_s": round(done[n // 2], 2),
            "done_p90_s": round(done[int(n * 0.9)], 2), "done_p99_s": round(done[min(n - 1, int(n * 0.99))], 2),
            "done_last_s": round(done[-1], 2),
            "tokens_after_p90_done": sum(r["tokens"] for r in rows if r["done"] > done[int(n * 0.9)])}


def raw(engine, rows: list[dict], staggered: bool) -> tuple[dict, list[dict]]:

    t0 = time.perf_counter()
    out_rows: list[dict] = []

    async def one(row) -> None:
        r = row["request"]
        if staggered:
            await asyncio.sleep(max(0.0, row["sent"] - (time.perf_counter() - t0)))
        sent = time.perf_counter() - t0
        final = await raw_request(engine, r)
        ids = engine.prompt_ids(r.messages)
        out_rows.append({"sent": sent, "done": time.perf_counter() - t0, "tokens": len(final.outputs[0].token_ids),
                         "prompt_tokens": len(ids), "finish": final.outputs[0].finish_reason,
                         "attempt": row["attempt"]})

    async def all_of() -> None:
        await asyncio.gather(*(one(r) for r in rows))

    engine._loop.call(all_of())
    return summarize(out_rows, time.perf_counter() - t0), out_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=200)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--concurrency", type=int, default=None, help="default: the library's (the engine's)")
    parser.add_argument("--skip-profile", action="store_true")
    args = parser.parse_args()
    from synthloop.engines import registry
    from synthloop.engines.vllm_engine import VLLMEngine

    info = machine()
    texts = prompts(args.prompts)
    scratch = Path(tempfile.mkdtemp(prefix="bench-eo-profile-"))
    sampling = Sampling(temperature=0.7, max_tokens=args.max_tokens)
    started = time.perf_counter()
    engine = VLLMEngine(registry.prepare(args.model), name=args.model,
                        config=EngineConfig(kind="vllm", dtype=args.dtype, kv_cache_gib=1.0))
    out: dict = {"engine_start_s": round(time.perf_counter() - started, 1), "prompts": len(texts),
                 "max_tokens": args.max_tokens, "dtype": args.dtype, "concurrency": args.concurrency}
    print(f"engine up in {out['engine_start_s']} s", flush=True)

    def ours(name: str, profile: bool = False) -> tuple[dict, list[dict]]:
        engine._loop.call(engine._llm.reset_prefix_cache())
        timed = Timed(engine)
        prof = cProfile.Profile() if profile else None
        if prof is not None:
            engine._loop.call(_enable(prof))
        a = cpu_snapshot()
        t = time.perf_counter()
        summary = generate(RespondProgram(), engine=timed, run=scratch / name, concurrency=args.concurrency,
                           sampling=sampling, inputs=({"request": x} for x in texts), progress=False)
        seconds = time.perf_counter() - t
        b = cpu_snapshot()
        if prof is not None:
            engine._loop.call(_disable(prof))
            text = io.StringIO()
            stats = pstats.Stats(prof, stream=text)
            stats.sort_stats("tottime").print_stats(45)
            stats.sort_stats("cumulative").print_stats(60)
            (RESULTS / "engine_overhead_profile.txt").write_text(text.getvalue())
        fig = summarize(timed.rows, seconds)
        fig.update({"kept": summary.kept, "failed": summary.failed, "failure_reasons": summary.failure_reasons,
                    "cpu": cpu_delta(a, b, thread_names())})
        return fig, timed.rows

    try:
        ours("warmup")
        out["synthloop"], rows = ours("synthloop")
        print("synthloop", out["synthloop"], flush=True)
        for label, staggered in (("raw", False), ("raw_staggered", True)):
            engine._loop.call(engine._llm.reset_prefix_cache())
            a = cpu_snapshot()
            out[label], _ = raw(engine, rows, staggered)
            out[label]["cpu"] = cpu_delta(a, cpu_snapshot(), thread_names())
            print(label, out[label], flush=True)
        if not args.skip_profile:
            out["synthloop_prof"], _ = ours("synthloop-prof", profile=True)
            print("synthloop_prof", out["synthloop_prof"], flush=True)
    finally:
        engine.close()
        shutil.rmtree(scratch, ignore_errors=True)
    out["ratio"] = round(out["synthloop"]["tok_per_s"] / out["raw"]["tok_per_s"], 4)
    out["ratio_staggered"] = round(out["synthloop"]["tok_per_s"] / out["raw_staggered"]["tok_per_s"], 4)
    out["machine"] = info
    print(f"ratio {out['ratio']} (raw staggered: {out['ratio_staggered']})")
    save("engine_overhead_profile", out)


async def _enable(prof: cProfile.Profile) -> None:
    prof.enable()


async def _disable(prof: cProfile.Profile) -> None:
    prof.disable()


if __name__ == "__main__":
    main()
