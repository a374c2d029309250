"""Runs on disk: a generation killed with SIGKILL resumes with every record exactly once."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter

from cli_driver import run_main
from helpers import popen_cli, tiny_generate_config, write_config

from synthloop.runs.cache import RequestCache
from synthloop.runs.run_dir import RunDir


def _records(run: RunDir) -> list[dict]:
    return list(run.iter_records())


def test_sigkill_mid_run_then_resume_keeps_every_record_once(tmp_path):
    config = write_config(tmp_path / "gen.yaml", tiny_generate_config(tmp_path / "runs", num_records=24))
    run = RunDir(tmp_path / "runs" / "gen")
    proc = popen_cli("generate", str(config))
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if run.records_dir.is_dir() and sum(1 for _ in run.iter_records()) >= 6:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: " + proc.stdout.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = _records(run)
    assert 6 <= len(before) < 24
    assert json.loads(run.manifest_path.read_text())["status"] == "running"  # it never got to say otherwise
    cached_before = len(RequestCache(run.cache_path))
    assert cached_before >= len(before)

    result = run_main(["generate", str(config)])  # the rerun in this interpreter: no second start-up to wait for
    assert result.code == 0, result.err[-3000:]
    after = _records(run)
    ids = Counter(r["id"] for r in after)
    assert len(after) == 24 and max(ids.values()) == 1, ids.most_common(3)
    assert {r["id"] for r in before} <= set(ids)  # nothing kept before the kill was lost or redone
    assert [r for r in after if r["id"] in {b["id"] for b in before}] == before
    filtered = [row["id"] for row in run.iter_filtered()]
    assert not set(filtered) & set(ids) and len(filtered) == len(set(filtered))
    manifest = run.manifest()
    assert manifest["status"] == "completed" and manifest["resumed"] == 1
    assert manifest["counts"]["kept"] == 24
    assert len(run.record_parts()) == 2  # a new part per session: no append after a torn line


def test_changed_config_is_refused_unless_asked(tmp_path):
    data = tiny_generate_config(tmp_path / "runs", num_records=3)
    config = write_config(tmp_path / "gen.yaml", data)
    assert run_main(["generate", str(config)]).code == 0

    # a runtime-only change (more records, other concurrency) continues the same run
    more = run_main(["generate", str(config), "--set", "num_records=5", "--set", "concurrency=2"])
    assert more.code == 0, more.err
    assert len(_records(RunDir(tmp_path / "runs" / "gen"))) == 5

    changed = run_main(["generate", str(config), "--set", "sampling.temperature=0.3"])
    assert changed.code == 2
    lines = [line for line in changed.err.splitlines() if line.strip()]
    assert len(lines) == 1 and "was made by a different config (changed: sampling.temperature)" in lines[0]

    fresh = run_main(["generate", str(config), "--set", "sampling.temperature=0.3", "--resume", "never"])
    assert fresh.code == 0, fresh.err
    assert RunDir(tmp_path / "runs" / "gen-2").exists()

    forced = run_main(
        ["generate", str(config), "--set", "sampling.temperature=0.3", "--set", "num_records=6", "--resume", "always"]
    )
    assert forced.code == 0, forced.err
    assert len(_records(RunDir(tmp_path / "runs" / "gen"))) == 6


def test_torn_last_line_is_ignored(tmp_path):
    run = RunDir(tmp_path / "r")
    run.records_dir.mkdir(parents=True)
    (run.records_dir / "part-00000.jsonl").write_text('{"id": 0}\n{"id": 1}\n{"id": 2, "messa')
    assert [r["id"] for r in run.iter_records()] == [0, 1]
