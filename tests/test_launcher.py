"""Training steps in two processes under `accelerate launch` on CPU (data parallel over gloo), on the tiny model:
SFT learns and writes a checkpoint every engine loads; a loop whose SFT runs in 2 processes, SIGKILLed mid-training,
leaves no trainer behind and resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from helpers import ROOT, popen_cli, run_cli, write_config

from synthloop.configs import ConfigError
from synthloop.engines import ChatRequest, EngineConfig, Sampling
from synthloop.engines.transformers_engine import TransformersEngine
from synthloop.runs.jsonl import read_jsonl
from synthloop.train import SFTSettings, sft
from synthloop.train.config import LauncherSettings
from synthloop.train.launch import resolve_config

TWO_CPUS = {"kind": "accelerate", "config": "multi_cpu", "num_processes": 2}


def rows(n: int = 24) -> list[dict]:
    return [{"prompt": [{"role": "user", "content": f"What is {i} plus {i}?"}],
             "completion": [{"role": "assistant", "content": f"The answer is {2 * i}."}]} for i in range(n)]


def trainers(spec_dir: Path) -> list[psutil.Process]:
    """Processes running a launched step of this output directory (the launcher and its workers)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if str(spec_dir) in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def test_sft_in_two_processes_learns_and_writes_a_loadable_checkpoint(tmp_path, tiny_model_path):
    settings = SFTSettings(epochs=3, batch_size=2, learning_rate=3e-3, launcher=LauncherSettings(**TWO_CPUS))
    result = sft(model=tiny_model_path, data=rows(), out=tmp_path / "sft", config=settings, progress=False)
    # 24 examples x 3 epochs in global batches of 2 per process x 2 processes: 18 steps (one process would take 36)
    assert result.steps == 18 and result.examples == 24
    assert result.last_loss < result.first_loss
    log = [json.loads(line) for line in (tmp_path / "sft" / "log.jsonl").read_text().splitlines()]
    assert [row["step"] for row in log if "loss" in row] == list(range(1, 19))  # process 0 alone logs
    spec = json.loads((tmp_path / "sft" / "launch" / "spec.json").read_text())
    assert spec["method"] == "sft" and Path(spec["data"]).suffix == ".parquet"  # rows in memory went to a file
    engine = TransformersEngine(tmp_path / "sft" / "model",
                                config=EngineConfig(kind="transformers", model=str(tmp_path / "sft" / "model")))
    try:
        request = ChatRequest(messages=({"role": "user", "content": "What is 3 plus 3?"},),
                              sampling=Sampling(temperature=0, max_tokens=12))
        assert engine.generate([request])[0].completions[0].output_tokens > 0
    finally:
        engine.close()
    assert not trainers(tmp_path / "sft")


def test_launcher_choices_that_cannot_work_are_one_line_errors():
    with pytest.raises(ConfigError, match="launcher.config=zero3 needs DeepSpeed|launcher.config=zero3 needs GPUs"):
        resolve_config(LauncherSettings(kind="accelerate", config="zero3"))
    with pytest.raises(ConfigError, match="neither a shipped config"):
        resolve_config(LauncherSettings(kind="accelerate", config="no-such.yaml"))
    path, processes = resolve_config(LauncherSettings(kind="accelerate"))
    assert path.name == "multi_cpu.yaml" and path.is_file() and processes == 2  # auto, on this CPU machine


@pytest.fixture
def _test_judge_importable(monkeypatch):
    """The loop below names the test judge `loop_judges:make`; the CLI subprocesses must import it."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "tests"),
                                                                   os.environ.get("PYTHONPATH")])))


def test_a_loop_training_in_two_processes_resumes_after_sigkill(tmp_path, _test_judge_importable):
    steps = 24
    config = write_config(tmp_path / "loop.yaml", {
        "output_dir": str(tmp_path / "runs"),
        "engine": {"kind": "transformers", "model": "tiny-random-chat", "batch_size": 64},
        "tasks": {"train": {"kind": "arithmetic", "seed": 1}, "eval": {"kind": "arithmetic", "seed": 2},
                  "eval_count": 4, "per_round": 16},
        "sampling": {"n": 2, "max_tokens": 12, "temperature": 1.0},
        "eval": {"max_tokens": 8},
        "judges": [{"kind": "python", "factory": "loop_judges:make", "min_score": 0.0}],
        "recipe": {"kind": "expert_iteration", "include_truncated": True, "max_per_task": 2},
        "train": {"plan": ["sft"], "sft": {"max_steps": steps, "batch_size": 1, "learning_rate": 1e-3,
                                           "checkpoint_every_minutes": 0.004, "launcher": TWO_CPUS}},
        "rounds": 1,
        "concurrency": 8,
        "plot": False,
    })
    train = tmp_path / "runs" / "loop" / "round-001" / "train-sft"

    def mid_training() -> bool:
        done = [p for p in (train / "trainer").glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
        return bool(done) and len(list(read_jsonl(train / "log.jsonl"))) >= 4

    proc = popen_cli("loop", str(config))
    deadline = time.time() + 300
    while not mid_training():
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline, "the loop never reached the middle of its training step"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (train / "result.json").exists()
    deadline = time.time() + 60  # the launcher and its two processes follow their parent
    while trainers(train / "launch"):
        assert time.time() < deadline, f"training processes outlived the loop: {trainers(train / 'launch')}"
        time.sleep(0.1)

    result = run_cli("loop", str(config))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    state = json.loads((tmp_path / "runs" / "loop" / "state.json").read_text())
    outputs = state["rounds"][1]["stages"]["train-sft"]["outputs"]
    assert outputs["resumed_from_step"] is not None and 0 < outputs["resumed_from_step"] < steps
    assert outputs["steps"] == steps
    logged = [r["step"] for r in read_jsonl(train / "log.jsonl") if "loss" in r]
    assert sorted(Counter(logged)) == list(range(1, steps + 1)) and max(Counter(logged).values()) == 1
    assert (train / "model" / "config.json").is_file() and not (train / "trainer").exists()
    assert "evaluate" in state["rounds"][1]["stages"]  # the trained checkpoint served the round's evaluation
