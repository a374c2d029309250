"""The round controller on the tiny model, through the real CLI in subprocesses: every stage runs, the state,
data, checkpoints, table and plot are written, and a loop killed with SIGKILL while generating or while
training resumes to the structure of an uninterrupted run (same rounds, no record or log line twice)."""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest
from helpers import ROOT, kill_when, popen_cli, run_cli, write_config

from synthloop.loops import run_loop
from synthloop.loops.config import LoopConfig
from synthloop.runs.jsonl import read_jsonl
from synthloop.runs.run_dir import RunDir

TESTS = ROOT / "tests"


@pytest.fixture(autouse=True)
def _test_judge_importable(monkeypatch):
    """The configs below name the test judge `loop_judges:make`; the CLI subprocesses must import it."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))


def loop_config(out: Path, **overrides) -> dict:
    config = {
        "output_dir": str(out),
        "engine": {"kind": "transformers", "model": "tiny-random-chat", "batch_size": 64},
        "tasks": {"train": {"kind": "arithmetic", "seed": 1}, "eval": {"kind": "arithmetic", "seed": 2},
                  "eval_count": 12, "per_round": 8},
        "prompt": {"template": "{prompt}\nEnd with: The answer is N."},
        "sampling": {"n": 4, "max_tokens": 12, "temperature": 1.0},
        "eval": {"max_tokens": 12},
        "judges": [{"kind": "math_answer", "min_score": 0.0},
                   {"kind": "python", "factory": "loop_judges:make", "min_score": 0.0}],
        "recipe": {"kind": "expert_iteration", "include_truncated": True, "max_per_task": 2},
        "train": {"plan": ["sft"], "sft": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-3}},
        "rounds": 1,
        "concurrency": 8,
    }
    config.update(overrides)
    return config


def _state(run: Path) -> dict:
    return json.loads((run / "state.json").read_text())


def test_loop_runs_every_stage_and_reports(tmp_path):
    config = loop_config(
        tmp_path / "runs", rounds=2,
        judges=[{"kind": "math_answer", "min_score": 0.0},
                {"kind": "python", "factory": "loop_judges:noisy", "min_score": 0.0}],
        train={"plan": ["sft+dpo", "grpo"],
               "sft": {"max_steps": 3, "batch_size": 4, "learning_rate": 1e-3},
               "dpo": {"max_steps": 2, "batch_size": 4, "learning_rate": 1e-3},
               "grpo": {"max_steps": 2, "batch_size": 4, "num_generations": 4, "max_completion_length": 8}})
    path = write_config(tmp_path / "every.yaml", config)
    result = run_cli("loop", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "runs" / "every"
    state = _state(run)
    assert [(r["round"], r["status"], list(r["stages"])) for r in state["rounds"]] == [
        (0, "done", ["evaluate"]),
        (1, "done", ["tasks", "sample", "judge", "build", "train-sft", "train-dpo", "evaluate"]),
        (2, "done", ["tasks", "train-grpo", "evaluate"]),
    ]
    # the checkpoint chain: round 1 trains from the base model, SFT then DPO; round 2 (GRPO) from round 1's DPO
    r1, r2 = state["rounds"][1], state["rounds"][2]
    assert r1["checkpoint_in"] == {"policy": "tiny-random-chat"}
    assert r1["stages"]["train-dpo"]["outputs"]["base_model"] == r1["stages"]["train-sft"]["outputs"]["checkpoint"]
    assert r2["checkpoint_in"]["policy"] == r1["stages"]["train-dpo"]["outputs"]["checkpoint"]
    assert state["checkpoints"]["policy"] == str(run / "round-002" / "train-grpo" / "model")
    assert (run / "round-002" / "train-grpo" / "model" / "model.safetensors").is_file()
    # the round's data, as files
    assert len(list(read_jsonl(run / "round-001" / "tasks.jsonl"))) == 8
    samples = list(RunDir(run / "round-001" / "samples").iter_records())
    assert len(samples) == 8 and all(len(r["samples"]) == 4 for r in samples)
    sft_rows = list(read_jsonl(run / "round-001" / "data" / "sft.jsonl"))
    pairs = list(read_jsonl(run / "round-001" / "data" / "pairs.jsonl"))
    assert 8 <= len(sft_rows) <= 16 and 1 <= len(pairs) <= 8
    grpo_log = list(read_jsonl(run / "round-002" / "train-grpo" / "log.jsonl"))
    assert [r["step"] for r in grpo_log if "reward" in r] == [1, 2]
    # held-out tasks are never training tasks
    held_out = {r["prompt"] for r in read_jsonl(run / "eval_tasks.jsonl")}
    assert len(held_out) == 12 and not held_out & {r["prompt"] for r in read_jsonl(run / "round-001/tasks.jsonl")}
    # per-round metrics, summary, plot
    metrics = [r["metrics"] for r in state["rounds"]]
    for key in ("eval_accuracy", "eval_tokens", "seconds", "seconds_evaluate", "peak_rss_gib", "checkpoint"):
        assert all(key in m for m in metrics), key
    for key in ("sample_accuracy", "sample_pass_at_n", "sample_tokens", "sft_data", "dpo_pairs", "sft_loss",
                "dpo_loss", "seconds_train-sft", "seconds_sample"):
        assert key in metrics[1], key
    assert metrics[2]["grpo_reward_first"] is not None and metrics[2]["grpo_steps"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["baseline_accuracy"] == metrics[0]["eval_accuracy"]
    assert summary["final_accuracy"] == metrics[2]["eval_accuracy"]
    assert len(summary["seconds_per_round"]) == 3 and summary["peak_rss_gib"] > 0
    assert (run / "rounds.png").stat().st_size > 10_000
    assert "held-out accuracy: baseline" in result.stderr and "rounds.png" in result.stderr
    # the console: our lines only, every stage's line with its total; library output went to the run's log.txt
    log = (run / "log.txt").read_text()
    for marker in ("LIB-NOISE-WARNING", "LIB-NOISE-LOGGER", "LIB-NOISE-CHILD"):
        assert marker in log and marker not in result.stderr + result.stdout, marker
    assert "warn" not in result.stderr.lower() and "Traceback" not in result.stderr
    stage_lines = [line for line in result.stderr.splitlines() if re.search(r"round \d · [\w+-]+  ", line)]
    assert len(stage_lines) >= 8 and all(re.search(r"\b\d+/\d+\b", line) for line in stage_lines), stage_lines
    assert len(result.stderr.splitlines()) <= 40, result.stderr
    (run / "rounds.png").unlink()
    status = run_cli("loop", "status", str(run))
    assert status.returncode == 0, status.stderr
    assert "held-out acc" in status.stdout and "sft+dpo" in status.stdout and "grpo" in status.stdout
    assert (run / "rounds.png").is_file()
    # a finished loop reruns as a no-op; raising `rounds` continues it (plan: the last method repeats)
    again = run_cli("loop", str(path), "--set", "rounds=2")
    assert again.returncode == 0 and _state(run) == state


def _structure(run: Path) -> dict:
    """What must be equal between an interrupted-then-resumed loop and an uninterrupted one."""
    state = _state(run)
    out = {"rounds": [(r["round"], r["status"], sorted(r["stages"])) for r in state["rounds"]],
           "checkpoints": {k: str(Path(v).relative_to(run)) if v.startswith(str(run)) else v
                           for k, v in state["checkpoints"].items()}}
    for sub in ("round-000/eval", "round-001/samples", "round-001/eval"):
        ids = [r["id"] for r in RunDir(run / sub).iter_records()]
        assert max(Counter(ids).values()) == 1, f"{sub}: a record twice"
        out[sub] = sorted(ids)
    for sub in ("round-000/eval-judged", "round-001/judged", "round-001/eval-judged"):
        ids = [row["id"] for part in sorted((run / sub).glob("part-*.jsonl")) for row in read_jsonl(part)]
        assert max(Counter(ids).values()) == 1, f"{sub}: a record judged twice"
        out[sub] = sorted(ids)
    steps = [r["step"] for r in read_jsonl(run / "round-001" / "train-sft" / "log.jsonl") if "loss" in r]
    assert max(Counter(steps).values()) == 1, "a training step logged twice"
    out["train_steps"] = steps
    out["sft_rows"] = len(list(read_jsonl(run / "round-001" / "data" / "sft.jsonl")))
    out["files"] = sorted(str(p.relative_to(run)) for p in run.glob("round-*/*") if p.name != "records")
    return out


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reference")
    data = loop_config(tmp / "runs", tasks={"train": {"kind": "arithmetic", "seed": 1},
                                            "eval": {"kind": "arithmetic", "seed": 2},
                                            "eval_count": 12, "per_round": 48})
    data["train"]["sft"] = {"max_steps": 30, "batch_size": 2, "learning_rate": 1e-3, "checkpoint_every_minutes": 0.004}
    data["concurrency"] = 4
    # in-process, through the Python API (the kill tests below use the CLI)
    summary = run_loop(LoopConfig.model_validate(data), tmp / "runs" / "loop", progress=False)
    assert summary["status"] == "completed" and summary["rounds_done"] == 1
    return data, _structure(tmp / "runs" / "loop")


def test_sigkill_while_generating_then_resume(tmp_path, uninterrupted):
    data, reference = uninterrupted
    data = dict(data, output_dir=str(tmp_path / "runs"))
    path = write_config(tmp_path / "loop.yaml", data)
    run = tmp_path / "runs" / "loop"
    samples = RunDir(run / "round-001" / "samples")
    proc = popen_cli("loop", str(path))
    kill_when(proc, lambda: samples.records_dir.is_dir() and sum(1 for _ in samples.iter_records()) >= 10,
               "round 1 sampling")
    kept_before = list(samples.iter_records())
    assert 10 <= len(kept_before) < 48
    assert "sample" not in _state(run)["rounds"][1]["stages"]
    result = run_cli("loop", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert _structure(run) == reference
    after = list(samples.iter_records())
    assert after[: len(kept_before)] == kept_before  # nothing sampled before the kill was lost or redone
    assert samples.manifest()["resumed"] == 1


def test_sigkill_while_training_then_resume(tmp_path, uninterrupted):
    data, reference = uninterrupted
    data = dict(data, output_dir=str(tmp_path / "runs"))
    path = write_config(tmp_path / "loop.yaml", data)
    run = tmp_path / "runs" / "loop"
    train = run / "round-001" / "train-sft"

    def mid_training() -> bool:
        checkpoints = [p for p in (train / "trainer").glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
        logged = len(list(read_jsonl(train / "log.jsonl"))) if (train / "log.jsonl").is_file() else 0
        return bool(checkpoints) and logged >= 8

    proc = popen_cli("loop", str(path))
    kill_when(proc, mid_training, "the middle of round 1 training")
    assert not (train / "result.json").exists()
    assert "train-sft" not in _state(run)["rounds"][1]["stages"]
    result = run_cli("loop", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert _structure(run) == reference
    outputs = _state(run)["rounds"][1]["stages"]["train-sft"]["outputs"]
    assert outputs["resumed_from_step"] is not None and 0 < outputs["resumed_from_step"] < 30
    assert outputs["steps"] == 30
    assert not (train / "trainer").exists()


def test_bad_config_and_bad_run_are_one_line_errors(tmp_path):
    path = write_config(tmp_path / "bad.yaml", loop_config(tmp_path / "runs"))
    for override, expected in [
        ("train.plan=[sfx]", "train.plan.0: input should be 'sft', 'dpo', 'grpo', 'sft+dpo'"),
        ("sampling.nn=3", "sampling.nn: unknown key; did you mean 'n'?"),
        ("tasks.train.kind=csv", "tasks.train"),
    ]:
        result = run_cli("loop", str(path), "--set", override)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1 and expected in lines[0], result.stderr
    judge = run_cli("loop", str(path), "--set", "judges=[{kind: python, factory: 'nowhere:judge'}]")
    assert judge.returncode == 2 and "judges[0] (python): cannot build the judge: No module named 'nowhere'" in \
        judge.stderr, judge.stderr
    assert not (tmp_path / "runs").exists()  # nothing was written
    status = run_cli("loop", "status", str(tmp_path))
    assert status.returncode == 2 and "not a loop run directory" in status.stderr
