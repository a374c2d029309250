"""Generation on a Ray cluster (executor kind ray): one local cluster for the module (`ray.init(num_cpus=2)`), the
tiny random model on the transformers engine in 2 replicas, greedy sampling.

- a replica SIGKILLed mid-run loses nothing: every item lands exactly once, and the records equal a local run's;
- a driver SIGKILLed mid-run (the CLI in a subprocess, joined to this cluster), then rerun: finished items are
  skipped, the rest completes, the replicas' cache shards are folded into the run's cache.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
from helpers import popen_cli, run_cli, write_config

from synthloop.engines import EngineConfig
from synthloop.engines.types import Sampling
from synthloop.runs.run_dir import RunDir
from synthloop.synth.chat import ChatSamples
from synthloop.synth.executor import RayExecutor
from synthloop.synth.generate import generate
from synthloop.synth.ray_executor import RayReplicas

ENGINE = EngineConfig(kind="transformers", model="tiny-random-chat", batch_size=16)
GREEDY = Sampling(temperature=0.0, max_tokens=32)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local cluster of 2 CPUs in this process; its address lets CLI subprocesses join it."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING,
             object_store_memory=256 * 2**20)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def prompts(n: int) -> list[dict[str, str]]:
    return [{"prompt": f"Item {i}: tell me one thing about the number {i}."} for i in range(n)]


def lines(records: Path) -> int:
    return sum(p.read_text().count("\n") for p in records.glob("part-*.jsonl")) if records.is_dir() else 0


def wait_for(condition, timeout: float = 240.0, what: str = "condition") -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def replica_pids() -> list[int]:
    """The replica actors' processes among this test process's descendants (Ray titles them after the class)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "MapBatches(Replica)" in " ".join(proc.cmdline()):
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def serving(run: Path) -> list[int]:
    """Replicas that have answered model calls: each writes its answers to its own cache shard, named
    <host>-<pid>-<id>.sqlite, as soon as its engine answers."""
    pids = set()
    for wal in (run / "cache-shards").glob("*.sqlite-wal"):
        if wal.stat().st_size > 0:
            pids.add(int(wal.name.removesuffix(".sqlite-wal").split("-")[-2]))
    return sorted(pids)


def by_id(path: Path) -> dict[int, dict]:
    records: dict[int, dict] = {}
    for record in RunDir(path).iter_records():
        assert record["id"] not in records, f"item {record['id']} written twice"
        records[record["id"]] = record
    return records


def test_a_killed_replica_loses_nothing_and_the_records_equal_a_local_run(ray_cluster, tmp_path, tiny_engine):
    n = 128
    run = tmp_path / "ray" / "run"
    remote = RayReplicas(RayExecutor(replicas=2, batch_size=4, batches_in_flight=1), ENGINE)
    outcome: dict = {}

    def go():
        try:
            outcome["summary"] = generate(ChatSamples(), remote=remote, run=run, inputs=prompts(n), sampling=GREEDY,
                                          progress=False)
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    driver = threading.Thread(target=go)
    driver.start()
    wait_for(lambda: len(serving(run)) == 2 and lines(run / "records") > 0, what="both replicas serving")
    victim = serving(run)[0]  # busy: it has answered calls, and batches are queued for it
    os.kill(victim, signal.SIGKILL)
    killed_at = lines(run / "records")
    driver.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    summary = outcome["summary"]
    assert killed_at < n, "the replica was killed after the run had finished: nothing was tested"
    assert summary.status == "completed" and summary.kept == n and summary.failed == 0
    assert victim not in replica_pids()
    ray_records = by_id(run)
    assert sorted(ray_records) == list(range(n))  # every item exactly once
    assert summary.output_tokens > 0
    assert not list((run / "cache-shards").glob("*.sqlite")), "replica cache shards were not folded into the run's"
    assert (run / "ray.log").is_file()

    local = generate(ChatSamples(), engine=tiny_engine, run=tmp_path / "local" / "run", inputs=prompts(n),
                     sampling=GREEDY, progress=False)
    assert local.kept == n
    assert by_id(tmp_path / "local" / "run") == ray_records
    assert json.loads((run / "identity.json").read_text()) == json.loads(
        (tmp_path / "local" / "run" / "identity.json").read_text())


def test_a_killed_driver_then_a_rerun_skips_the_finished_items(ray_cluster, tmp_path):
    n = 120
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in prompts(n)))
    config = write_config(tmp_path / "gen.yaml", {
        "output_dir": str(tmp_path / "runs"),
        "program": {"kind": "chat_samples", "inputs": {"path": str(data)}},
        "engine": ENGINE.model_dump(include={"kind", "model", "batch_size"}),
        "executor": {"kind": "ray", "address": ray_cluster, "replicas": 2, "batch_size": 4, "batches_in_flight": 1},
        "sampling": {"temperature": 0.0, "max_tokens": 24},
        "show_examples": 0,
    })
    run = tmp_path / "runs" / "gen"
    proc = popen_cli("generate", str(config))
    try:
        wait_for(lambda: lines(run / "records") >= 8 or proc.poll() is not None, what="the first records")
        assert proc.poll() is None, proc.stdout.read()
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    first = [r["id"] for r in RunDir(run).iter_records()]
    assert 0 < len(first) < n
    assert RunDir(run).manifest()["status"] == "running"  # killed: nobody closed the run
    wait_for(lambda: not replica_pids(), timeout=60, what="the dead driver's replicas to go")

    rerun = run_cli("generate", str(config))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    records = by_id(run)
    assert sorted(records) == list(range(n))  # every item exactly once across both sessions
    parts = RunDir(run).record_parts()
    assert len(parts) == 2
    again = {json.loads(line)["id"] for line in parts[1].read_text().splitlines()}
    assert not again & set(first), "the rerun redid finished items"
    manifest = RunDir(run).manifest()
    assert manifest["status"] == "completed" and manifest["resumed"] == 1 and manifest["counts"]["kept"] == n
    assert not list((run / "cache-shards").glob("*.sqlite"))
    assert "Traceback" not in rerun.stdout + rerun.stderr


def test_without_ray_the_executor_is_a_one_line_error(monkeypatch):
    """What a user without the extra sees: the extra to install, no traceback."""
    from synthloop.configs import ConfigError
    from synthloop.synth.ray_executor import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as it does when Ray is not installed
    with pytest.raises(ConfigError) as caught:
        import_ray()
    assert str(caught.value) == ("executor.kind=ray needs Ray, which is not installed: pip install 'synthloop[ray]' "
                                 "(scripts/setup.sh installs it)")
