"""Generation on a Ray cluster: the same program, the same records, replicas of the engine on many GPUs or nodes.

`RayReplicas` is the `executor: {kind: ray}` of a generate or loop config. The run's pending items (the driver
skips finished ones, as a local run does) become a Ray Dataset of `(item, inputs)` rows; `map_batches` feeds them in
batches to an actor pool of `Replica`s (`ActorPoolStrategy`: a fixed number of replicas, `batches_in_flight`
batches running in each). A replica owns one synthloop engine (vLLM in-process on its GPU or pinned CPU cores, the
transformers engine, or an OpenAI client) behind its own request cache, rebuilds the program from its class and
config, and runs `attempts.ItemAttempts` on every item: the local runner's per-item code (retries, failure
classification, provenance). The driver gets back each item's record or final error, writes them through the
runner's own `_handle` (program filter, records/filtered/errors files, counts) as they finish, and keeps the
manifest. A replica that dies (a lost node, a killed process) is restarted by Ray and its batch retried (Ray Data's
actor-pool defaults: `max_restarts=-1`, `max_task_retries=-1`); a killed driver loses only items in flight: the
rerun skips finished items, exactly as a local run.

Request cache. Each replica writes its answers to its own SQLite shard, `<run>/cache-shards/<host>-<pid>-<id>.sqlite`
(one writer per file, so no locking between processes or nodes), and reads the run's `cache.sqlite` read-only
beside it. The driver folds the shards into `cache.sqlite` before the replicas start (shards a killed session left)
and after they stop. Chosen over a cache in the driver (every model call would cross the network twice) and over
one shared SQLite file (concurrent writers from several nodes corrupt it on network file systems). On a cluster
without shared storage the shards stay on each node's disk: records and resume still work (they go through the
driver), only a rerun's reuse of in-flight model calls is lost.

Ray is optional (`pip install 'synthloop[ray]'`); it is imported only here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import socket
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from synthloop.configs import ConfigError
from synthloop.engines import describe_config, resolve_kind
from synthloop.engines.config import EngineConfig
from synthloop.engines.types import EngineError
from synthloop.synth.executor import LocalExecutor, RayExecutor
from synthloop.synth.remote import AttemptSpec, RemoteBatch

EXTRA_HINT = "pip install 'synthloop[ray]' (scripts/setup.sh installs it)"
#: Ray's own loggers (the driver side), routed to <run>/ray.log instead of the terminal
_RAY_LOGGERS = ("ray", "ray.data", "ray.util", "ray._private")


def replicas_for(executor: LocalExecutor | RayExecutor, engine: EngineConfig) -> RayReplicas | None:
    """What `synth.generate(remote=...)` takes for a config's `executor:` section (None: run in this process)."""
    return None if executor.kind == "local" else RayReplicas(executor, engine)


def import_ray():
    """`ray` with Ray Data, or a one-line error naming the extra that installs it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ConfigError(f"executor.kind=ray needs Ray, which is not installed: {EXTRA_HINT}") from None
    return ray


def connect(executor: RayExecutor, log_path: Path) -> bool:
    """Join (or, for address `local`, start) the cluster unless this process already did; Ray's logs go to
    `log_path`. Returns whether this call connected (and so should disconnect at the end)."""
    ray = import_ray()
    _route_logs(log_path)
    if ray.is_initialized():
        return False
    # The driver's C++ core worker writes its warnings straight to stderr (e.g. one per actor pool about constructor
    # arguments in the object store), and names its log level there when started: fatal only, and its start-up
    # lines go to the log file.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    local = executor.address == "local"
    try:
        with _stderr_to(log_path):
            ray.init(address=None if local else executor.address, num_cpus=executor.local_num_cpus if local else None,
                     include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
                     configure_logging=False)
    except ConnectionError as exc:
        raise ConfigError(f"executor.address={executor.address}: no Ray cluster there ({_first_line(exc)}); start "
                          "one with `ray start --head`, or set executor.address: local") from None
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the runner draws its own
    context.print_on_execution_start = False
    return True


def _route_logs(log_path: Path) -> None:
    """Ray's driver-side loggers write to `log_path` only (until the next run routes them to its own)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    for name in _RAY_LOGGERS:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
            old.close()
        logger.addHandler(handler)
        logger.propagate = False


@contextlib.contextmanager
def _stderr_to(path: Path):
    """File descriptor 2 (what C++ code writes to) appended to `path` for the duration."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "a") as handle:
        os.dup2(handle.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


class RayReplicas:
    """`RemoteItems` on a Ray cluster (see the module docstring)."""

    def __init__(self, executor: RayExecutor, engine: EngineConfig):
        self.executor = executor
        self.engine = engine

    def describe_engine(self) -> dict[str, Any]:
        return describe_config(self.engine)

    def results(self, pending: Iterable[tuple[int, dict[str, Any]]], spec: AttemptSpec) -> Iterator[RemoteBatch]:
        from synthloop.runs.cache import merge_caches

        ray = import_ray()
        if resolve_kind(self.engine.kind) != "openai":  # a model no replica can load: one line, before any starts
            from synthloop.engines.registry import check

            check(self.engine.model)
        shards = spec.run_path / "cache-shards"
        merged = spec.run_path / "cache.sqlite"
        merge_caches(merged, sorted(shards.glob("*.sqlite")))  # what a killed session left
        ours = connect(self.executor, spec.run_path / "ray.log")
        try:
            rows = [{"item": item, "inputs": pickle.dumps(inputs)} for item, inputs in pending]
            if rows:
                yield from self._run(ray, rows, spec)
        finally:
            if ours:
                ray.shutdown()
            merge_caches(merged, sorted(shards.glob("*.sqlite")))

    def _run(self, ray, rows: list[dict[str, Any]], spec: AttemptSpec) -> Iterator[RemoteBatch]:
        ex = self.executor
        res = ex.resources_per_replica
        remote_args: dict[str, Any] = {"num_cpus": res.num_cpus}
        if res.num_gpus:
            remote_args["num_gpus"] = res.num_gpus
        if res.memory_gib:
            remote_args["memory"] = int(res.memory_gib * 2**30)
        pool = ray.data.ActorPoolStrategy(size=ex.replicas, max_tasks_in_flight_per_actor=ex.batches_in_flight,
                                          max_concurrent_calls_per_actor=ex.batches_in_flight)
        cores = ex.cores_per_replica
        dataset = ray.data.from_items(rows, override_num_blocks=max(1, len(rows) // ex.batch_size))
        out = dataset.map_batches(Replica, fn_constructor_args=(spec, self.engine, cores, ex.replicas),
                                  batch_size=ex.batch_size, batch_format="numpy", compute=pool, **remote_args)
        try:
            for block in out.iter_batches(batch_size=None, batch_format="numpy"):
                yield _batch_of(block)
        except ray.exceptions.RayError as exc:  # e.g. every replica failed to start its engine: one line
            raise EngineError(f"executor: the replicas failed: {_root_cause(exc)} (Ray's log: "
                              f"{spec.run_path / 'ray.log'})", transient=False) from None


def _root_cause(exc: BaseException) -> str:
    """The innermost error of a Ray exception (whose text ends with the remote traceback's last line)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    last = lines[-1] if lines else type(exc).__name__
    name, sep, message = last.partition(": ")
    return f"{name.rsplit('.', 1)[-1]}: {message}"[:400] if sep else last[:400]


def _batch_of(block: dict[str, Any]) -> RemoteBatch:
    batch = RemoteBatch(items=[])
    for item, result, info in zip(block["item"].tolist(), block["result"], block["info"], strict=True):
        batch.items.append((item, *pickle.loads(result)))
        if info:
            info = pickle.loads(info)
            batch.retry_errors += info["retried"]
            spent = info["spent"]
            batch.output_tokens += spent[0]
            batch.prompt_tokens += spent[1]
            batch.cache_hits += spent[2]
    return batch


# -- the replica (runs in a Ray actor) ---------------------------------------------------------------
def claim_cores(count: int) -> list[int] | None:
    """Pin this process to `count` cores no other replica on this node holds (a lock file per slot, held until the
    process exits, whatever kills it); None when every slot is taken (the engine then shares the cores)."""
    import fcntl

    cores = sorted(os.sched_getaffinity(0))
    count = min(count, len(cores))
    locks = Path(tempfile.gettempdir()) / f"synthloop-cores-{os.getuid()}"
    locks.mkdir(exist_ok=True)
    for slot in range(len(cores) // count):
        handle = open(locks / f"{','.join(map(str, cores))}-{count}-{slot}.lock", "w")  # noqa: SIM115 - held for life
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        mine = cores[slot * count:(slot + 1) * count]
        os.sched_setaffinity(0, mine)
        _HELD.append(handle)
        return mine
    return None


_HELD: list[Any] = []  # the core locks this process holds (released when it exits)


class Replica:
    """One engine serving batches of items (Ray Data instantiates it in each actor of the pool)."""

    def __init__(self, spec: AttemptSpec, engine: EngineConfig, cores_per_replica: int | None, replicas: int):
        from synthloop import engines, env
        from synthloop.runs.cache import CachedEngine, ReplicaCache
        from synthloop.synth.attempts import ItemAttempts

        env.apply_defaults()
        self.cores = None
        if _cpu_engine(engine):
            count = cores_per_replica or max(1, len(os.sched_getaffinity(0)) // replicas)
            self.cores = claim_cores(count)
            if self.cores is not None:  # the engine's threads go to these cores only
                bind = ",".join(map(str, self.cores))
                os.environ["VLLM_CPU_OMP_THREADS_BIND"] = bind
                import torch

                torch.set_num_threads(len(self.cores))
        self._lock = threading.Lock()
        self._retried: list[dict[str, Any]] = []
        self._reported = (0, 0, 0)
        inner = engines.from_config(engine)
        shard = spec.run_path / "cache-shards" / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.sqlite"
        self.cache = ReplicaCache(shard, spec.run_path / "cache.sqlite")
        self.engine = CachedEngine(inner, self.cache)
        inner.on_retry = lambda row: self._retry({"id": row.pop("item", None), **row, "final": False})
        self.attempts = ItemAttempts(spec.build_program(), self.engine, sampling=spec.sampling, seed=spec.seed,
                                     max_attempts=spec.max_attempts, run_name=spec.run_path.name,
                                     json_max_chars=spec.json_max_chars, adapter=spec.adapter,
                                     on_retry_error=self._retry)

    def _retry(self, row: dict[str, Any]) -> None:
        with self._lock:
            self._retried.append({**row, "time": time.strftime("%Y-%m-%dT%H:%M:%S")})

    async def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Run a batch's items together (their model calls are batched in the engine); one output row per item,
        the first also carrying what the replica's engine retried and spent since the last batch returned."""
        import numpy as np

        items = batch["item"].tolist()
        inputs = [pickle.loads(blob) for blob in batch["inputs"]]

        async def run_all():
            return await asyncio.gather(*(self.attempts.run(item, row) for item, row in zip(items, inputs,
                                                                                           strict=True)))

        thread = self.engine.loop_thread
        if thread is None:
            results = await run_all()
        else:  # items run on the engine's own loop, as in a local run (no thread hop per model call)
            results = await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(run_all(), thread.loop))
        with self._lock:
            retried, self._retried = self._retried, []
            now = (self.engine.output_tokens, self.engine.prompt_tokens, self.engine.hits)
            spent = tuple(a - b for a, b in zip(now, self._reported, strict=True))
            self._reported = now
        info = [pickle.dumps({"retried": retried, "spent": spent})] + [b""] * (len(items) - 1)
        return {"item": np.array(items, dtype=np.int64),
                "result": np.array([pickle.dumps((record, error)) for _, record, error in results], dtype=object),
                "info": np.array(info, dtype=object)}

    def __del__(self):
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.inner.close()
            engine.close()


def _cpu_engine(engine: EngineConfig) -> bool:
    if resolve_kind(engine.kind) == "openai":
        return False
    import torch

    return not torch.cuda.is_available()
