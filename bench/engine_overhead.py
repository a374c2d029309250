"""What synthloop's DSPy path costs on a local engine: the same 1,000 prompts through a DSPy program run by
`synthloop.generate`, and straight into the engine's own batched API, side by side in one run.

  vllm (SmolLM2-135M-Instruct, in-process):
    synthloop     RespondProgram over 1,000 self-instruct-style requests (SchemaJSONAdapter, JSON schema
                  enforced by vLLM), the library's default concurrency (vLLM: max_num_seqs 256 + 25%);
                  every request it sent is recorded
    raw           the recorded requests (same token ids, sampling, seeds, schemas) into vLLM's AsyncLLM,
                  all at once: vLLM's own batched API, nothing of synthloop's in between
    dspy_batch    DSPy's default `Module.batch` (8 threads) on the same program and engine (a subset)
    parse_rate    a two-field signature (answer: str, confidence: float) on 200 prompts, one attempt each
                  through the DSPy bridge: with constrained decoding (synthloop's default), and without
                  (DSPy's ChatAdapter and JSONAdapter, prompt only) -- the share of answers that parse
    close         RSS of this process and its children before the engine, with it, and after close()
  transformers (same model, float32): synthloop vs `TransformersEngine.generate` on the recorded requests

synthloop and raw alternate in `--chunks` rounds (on a shared machine the load drifts; both see the same drift);
each synthloop round is a run over prompts/chunks items streamed through the run's concurrency slots. Per variant
the JSON also holds the retries (answers cut off at max_tokens are retried with a fresh sample after they end,
which raw replays all at once), when the requests finished (`after_p90_s`: the wall time after 90% were done), and
the CPU seconds of this process and of vLLM's EngineCore.
The prefix cache is reset between vLLM variants, so none profits from another's prompts. Parts after the main
comparison are skipped near `--budget-s` (and say so in the JSON).
Run under the shared lock:  flock /tmp/synthloop-heavy.lock python bench/engine_overhead.py
Saves bench/results/engine_overhead.json; `ratio` = synthloop tokens/s over raw AsyncLLM tokens/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import dspy  # noqa: E402
import psutil  # noqa: E402
from common import RespondProgram, machine, save  # noqa: E402
from parse_rate import parse_rates  # noqa: E402
from raw_vllm import raw_request  # noqa: E402

from synthloop.engines import EngineConfig, Sampling  # noqa: E402
from synthloop.engines.base import Engine  # noqa: E402
from synthloop.synth.generate import generate  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def prompts(n: int) -> list[str]:
    """Self-instruct-style requests from the shared data: seed tasks, Vicuna, MT-Bench, IFEval, then GSM8K."""
    out = []
    for line in (DATA / "self_instruct" / "seed_tasks.jsonl").read_text().splitlines():
        row = json.loads(line)
        first = (row.get("instances") or [{}])[0].get("input", "")
        out.append(f"{row['instruction']}\n{first}".strip())
    for name in ("vicuna_bench_question.jsonl", "question.jsonl"):
        out += [json.loads(line)["turns"][0] for line in (DATA / "mt_bench" / name).read_text().splitlines()]
    out += [json.loads(line)["prompt"] for line in (DATA / "ifeval" / "input_data.jsonl").read_text().splitlines()]
    out += [json.loads(line)["question"] for line in (DATA / "gsm8k" / "test.jsonl").read_text().splitlines()]
    return out[:n]


class Recording(Engine):
    """Passes every request on, remembering it (the raw variant replays exactly these) and when it finished."""

    def __init__(self, inner: Engine):
        super().__init__(inner.model)
        self.inner, self.requests, self.output_tokens = inner, [], 0
        self.kind = inner.kind  # type: ignore[misc]
        self.t0, self.done, self.truncated = time.perf_counter(), [], 0
        self.preferred_in_flight = inner.preferred_in_flight

    @property
    def loop_thread(self):  # type: ignore[override]
        return self.inner.loop_thread

    def describe(self):
        return self.inner.describe()

    def submit(self, request):
        self.requests.append(request)
        future = self.inner.submit(request)
        future.add_done_callback(lambda f: self._count(f.result()) if f.exception() is None else None)
        return future

    async def agenerate(self, request):
        self.requests.append(request)
        return self._count(await self.inner.agenerate(request))

    def _count(self, result):
        self.output_tokens += result.output_tokens
        self.done.append(time.perf_counter() - self.t0)
        self.truncated += sum(c.finish_reason == "length" for c in result.completions)
        return result


def tail(done: list[float], seconds: float) -> dict:
    """When the requests finished: the share of the wall time spent after 90% / 99% of them were done."""
    done = sorted(done)
    n = len(done)
    if not n:
        return {}
    return {"p50_done_s": round(done[n // 2], 1), "p90_done_s": round(done[int(n * 0.9)], 1),
            "p99_done_s": round(done[min(n - 1, int(n * 0.99))], 1), "last_done_s": round(done[-1], 1),
            "after_p90_s": round(seconds - done[int(n * 0.9)], 1)}


def cpu_seconds() -> dict:
    """CPU seconds used so far by this process and by its children (vLLM's EngineCore)."""
    me = psutil.Process()
    children = 0.0
    for p in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            t = p.cpu_times()
            children += t.user + t.system
    t = me.cpu_times()
    return {"main_process": t.user + t.system, "children": children}


def cpu_used(before: dict) -> dict:
    after = cpu_seconds()
    return {f"{k}_cpu_s": round(after[k] - before[k], 1) for k in before}


def tree_rss_mb() -> dict:
    """RSS of this process and of its children (name: MB)."""
    me = psutil.Process()
    out = {"self_mb": round(me.memory_info().rss / 2**20, 1), "children": {}}
    for p in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            out["children"][f"{p.pid}:{p.name()}"] = round(p.memory_info().rss / 2**20, 1)
    out["total_mb"] = round(out["self_mb"] + sum(out["children"].values()), 1)
    return out


def run_synthloop(engine: Engine, texts: list[str], scratch: Path, name: str, sampling: Sampling,
                  concurrency: int | None = None) -> tuple[dict, Recording]:
    recording = Recording(engine)
    cpu = cpu_seconds()
    started = recording.t0 = time.perf_counter()
    summary = generate(RespondProgram(), engine=recording, run=scratch / name, concurrency=concurrency,
                       sampling=sampling, inputs=({"request": t} for t in texts), progress=False)
    seconds = time.perf_counter() - started
    return {"items": len(texts), "kept": summary.kept, "failed": summary.failed, "seconds": round(seconds, 2),
            "output_tokens": summary.output_tokens, "tok_per_s": round(summary.output_tokens / seconds, 1),
            "model_calls": len(recording.requests), "retries": len(recording.requests) - len(texts),
            "truncated_outputs": recording.truncated, "finish_times": tail(recording.done, seconds),
            "concurrency": concurrency or engine.preferred_in_flight,
            **cpu_used(cpu)}, recording


def run_raw_vllm(engine, requests) -> dict:
    done: list[float] = []

    async def one(r) -> int:
        final = await raw_request(engine, r)
        done.append(time.perf_counter() - started)
        return sum(len(o.token_ids) for o in final.outputs)

    async def all_of() -> list[int]:
        return await asyncio.gather(*(one(r) for r in requests))

    cpu = cpu_seconds()
    started = time.perf_counter()
    counts = engine._loop.call(all_of())
    seconds = time.perf_counter() - started
    tokens = sum(counts)
    return {"requests": len(requests), "seconds": round(seconds, 2), "output_tokens": tokens,
            "tok_per_s": round(tokens / seconds, 1), "finish_times": tail(done, seconds), **cpu_used(cpu)}


def run_dspy_batch(engine: Engine, texts: list[str], sampling: Sampling) -> dict:
    from synthloop.engines.dspy_adapter import SchemaJSONAdapter
    from synthloop.engines.dspy_bridge import dspy_lm

    counter = Recording(engine)
    lm = dspy_lm(counter, sampling.model_copy(update={"seed": 0}))
    examples = [dspy.Example(request=t).with_inputs("request") for t in texts]
    started = time.perf_counter()
    with dspy.context(lm=lm, adapter=SchemaJSONAdapter(), disable_history=True):
        results = RespondProgram().batch(examples, disable_progress_bar=True)  # DSPy's default num_threads
    seconds = time.perf_counter() - started
    return {"items": len(texts), "parsed": sum(r is not None for r in results), "seconds": round(seconds, 2),
            "output_tokens": counter.output_tokens, "tok_per_s": round(counter.output_tokens / seconds, 1),
            "threads": dspy.settings.num_threads}


def secondary(part) -> dict:
    """A part after the main comparison: its failure is recorded, and the figures measured so far are kept."""
    try:
        return part()
    except Exception as exc:  # noqa: BLE001
        print(f"  failed: {type(exc).__name__}: {exc}", flush=True)
        return {"failed": f"{type(exc).__name__}: {exc}"}


def vllm_phase(args, texts: list[str], scratch: Path) -> dict:
    from synthloop.engines import registry
    from synthloop.engines.vllm_engine import VLLMEngine

    path = registry.prepare(args.model)
    memory = {"before_engine": tree_rss_mb()}
    started = time.perf_counter()
    engine = VLLMEngine(path, name=args.model,
                        config=EngineConfig(kind="vllm", dtype=args.dtype, kv_cache_gib=1.0))
    start_s = time.perf_counter() - started
    memory["with_engine"] = tree_rss_mb()
    sampling = Sampling(temperature=0.7, max_tokens=args.max_tokens)
    result: dict = {"engine_start_s": round(start_s, 1), "dtype": engine.dtype}
    try:
        run_synthloop(engine, texts[:64], scratch, "warmup", sampling)  # kernels, schema compiler, caches
        # Interleaved chunks (synthloop, then raw on the same recorded requests, chunk after chunk): on a shared
        # machine the load drifts over minutes, and both variants then see the same drift.
        chunks = [texts[i::args.chunks] for i in range(args.chunks)]
        per_chunk = []
        sums = {"synthloop": dict.fromkeys(("output_tokens", "seconds", "kept", "model_calls", "retries",
                                            "truncated_outputs", "main_process_cpu_s", "children_cpu_s"), 0),
                "raw": dict.fromkeys(("output_tokens", "seconds", "requests", "main_process_cpu_s",
                                      "children_cpu_s"), 0)}
        for k, chunk in enumerate(chunks):
            engine._loop.call(engine._llm.reset_prefix_cache())
            ours, recording = run_synthloop(engine, chunk, scratch, f"synthloop-{k}", sampling)
            engine._loop.call(engine._llm.reset_prefix_cache())
            raw = run_raw_vllm(engine, recording.requests)
            per_chunk.append({"synthloop": ours, "raw": raw, "load_avg_1m": round(os.getloadavg()[0], 2)})
            for name, fig in (("synthloop", ours), ("raw", raw)):
                for key in sums[name]:
                    sums[name][key] += fig[key]
            print(f"  chunk {k}: synthloop {ours['tok_per_s']} tok/s ({ours['retries']} retries, "
                  f"{ours['finish_times']['after_p90_s']} s after 90% done), raw {raw['tok_per_s']} tok/s "
                  f"({raw['finish_times']['after_p90_s']} s after 90% done); load {per_chunk[-1]['load_avg_1m']}",
                  flush=True)
        ours = {"items": len(texts), **{k: round(v, 2) for k, v in sums["synthloop"].items()},
                "tok_per_s": round(sums["synthloop"]["output_tokens"] / sums["synthloop"]["seconds"], 1)}
        raw = {**{k: round(v, 2) for k, v in sums["raw"].items()},
               "tok_per_s": round(sums["raw"]["output_tokens"] / sums["raw"]["seconds"], 1)}
        print(f"  synthloop : {ours['tok_per_s']} tok/s ({ours['output_tokens']} tokens, {ours['seconds']} s)")
        print(f"  raw vLLM  : {raw['tok_per_s']} tok/s ({raw['output_tokens']} tokens, {raw['seconds']} s)",
              flush=True)
        batch = parse = None
        reuse = set(filter(None, args.reuse.split(",")))
        if "dspy_batch" not in reuse and args.dspy_batch_prompts:
            engine._loop.call(engine._llm.reset_prefix_cache())
            batch = secondary(lambda: run_dspy_batch(engine, texts[: args.dspy_batch_prompts], sampling))
            print(f"  DSPy batch: {batch.get('tok_per_s')} tok/s on {batch.get('items')} items", flush=True)
        if "parse_rate" not in reuse and args.parse_prompts:
            if time.perf_counter() - args.started < args.budget_s - 150:
                parse = secondary(lambda: parse_rates(engine, texts[: args.parse_prompts]))
            else:
                parse = {"skipped": f"the run had used {time.perf_counter() - args.started:.0f} s of its "
                                    f"{args.budget_s} s budget"}
                print(f"  parse rates skipped: {parse['skipped']}")
        memory["with_engine_after_work"] = tree_rss_mb()
    finally:
        engine.close()
    time.sleep(2)
    memory["after_close"] = tree_rss_mb()
    time.sleep(8)
    memory["after_close_10s"] = tree_rss_mb()
    result.update({"synthloop": ours, "raw_asyncllm": raw, "dspy_module_batch": batch, "parse_rate": parse,
                   "ratio": round(ours["tok_per_s"] / raw["tok_per_s"], 4), "chunks": per_chunk,
                   "memory_tree_rss_mb_and_children": memory})
    print(f"  memory (MB, child processes): {memory}")
    return result


def transformers_phase(args, texts: list[str], scratch: Path) -> dict:
    from synthloop.engines import registry
    from synthloop.engines.transformers_engine import TransformersEngine

    path = registry.prepare(args.model)
    engine = TransformersEngine(path, name=args.model,
                                config=EngineConfig(kind="transformers", dtype="float32", batch_size=64))
    sampling = Sampling(temperature=0.7, max_tokens=args.max_tokens)
    try:
        run_synthloop(engine, texts[:16], scratch, "tf-warmup", sampling)
        ours, recording = run_synthloop(engine, texts, scratch, "tf-synthloop", sampling)
        started = time.perf_counter()
        results = engine.generate(recording.requests)
        seconds = time.perf_counter() - started
    finally:
        engine.close()
    tokens = sum(r.output_tokens for r in results)
    raw = {"requests": len(results), "seconds": round(seconds, 2), "output_tokens": tokens,
           "tok_per_s": round(tokens / seconds, 1)}
    print(f"  transformers synthloop {ours['tok_per_s']} tok/s, engine.generate {raw['tok_per_s']} tok/s")
    return {"dtype": "float32", "synthloop": ours, "engine_generate": raw,
            "ratio": round(ours["tok_per_s"] / raw["tok_per_s"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--model", default="smollm2-135m-instruct", help="tiny-random-chat to try the code paths")
    parser.add_argument("--no-vllm", dest="vllm", action="store_false", help="skip the vLLM phase")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--dtype", default="bfloat16", help="vLLM dtype (the engine's default is bfloat16)")
    parser.add_argument("--dspy-batch-prompts", type=int, default=24, help="DSPy's Module.batch (8 threads) is slow")
    parser.add_argument("--parse-prompts", type=int, default=48)
    parser.add_argument("--transformers-prompts", type=int, default=16, help="0 skips the transformers phase")
    parser.add_argument("--chunks", type=int, default=2,
                        help="interleaved synthloop/raw rounds (each a run over prompts/chunks items, streamed "
                             "through `concurrency` slots as a real run is)")
    parser.add_argument("--budget-s", type=int, default=690,
                        help="wall-time budget: the parse rates and the transformers phase are skipped (and say "
                             "so in the JSON) when the run is too close to it")
    parser.add_argument("--reuse", default="", help="comma list of phases to keep from the saved results instead "
                                                    "of measuring again: dspy_batch, parse_rate, transformers")
    args = parser.parse_args()
    args.started = time.perf_counter()
    info = machine()
    texts = prompts(args.prompts)
    scratch = Path(tempfile.mkdtemp(prefix="bench-engine-overhead-"))
    try:
        vllm = None
        if args.vllm:
            print(f"vLLM phase: {len(texts)} prompts, max_tokens {args.max_tokens}")
            vllm = vllm_phase(args, texts, scratch)
        tf = None
        if args.transformers_prompts and "transformers" not in args.reuse:
            if time.perf_counter() - args.started < args.budget_s - 120:
                print(f"transformers phase: {args.transformers_prompts} prompts", flush=True)
                tf = secondary(lambda: transformers_phase(args, texts[: args.transformers_prompts], scratch))
            else:
                tf = {"skipped": f"the run had used {time.perf_counter() - args.started:.0f} s of its "
                                 f"{args.budget_s} s budget"}
                print(f"transformers phase skipped: {tf['skipped']}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    data = {"ratio": vllm["ratio"] if vllm else None, "target": 0.9,
            "ratio_definition": "synthloop (DSPy program via synthloop.generate) generated tokens/s over the same "
                                "recorded requests sent straight into vLLM's AsyncLLM",
            "model": args.model, "prompts": len(texts), "max_tokens": args.max_tokens, "chunks": args.chunks,
            "vllm": vllm, "transformers": tf, "wall_s": round(time.perf_counter() - args.started, 1),
            "command": "python " + " ".join(sys.argv), "machine": info}
    if args.reuse:
        saved_path = Path(__file__).resolve().parent / "results" / "engine_overhead.json"
        saved = json.loads(saved_path.read_text()) if saved_path.is_file() else {}
        when = saved.get("machine", {}).get("when")
        kept = []
        for phase, (section, key) in {"transformers": (None, "transformers"),
                                      "dspy_batch": ("vllm", "dspy_module_batch"),
                                      "parse_rate": ("vllm", "parse_rate")}.items():
            if phase in args.reuse:
                source = saved if section is None else saved.get(section, {})
                target = data if section is None else data["vllm"]
                target[key] = source.get(key)
                kept.append(key)
        data["from_earlier_run"] = f"{', '.join(kept)} measured at {when}"
        tf = data["transformers"]
    print(f"ratio {data['ratio']} (target 0.90)" + (f"; transformers {tf['ratio']:.3f}" if tf and "ratio" in tf
                                                     else ""))
    if args.model != "smollm2-135m-instruct" or not args.vllm:
        print("(a trial run: results not saved)")
        return
    save("engine_overhead", data)


if __name__ == "__main__":
    main()
