"""Training steps in several processes under `accelerate launch` (`launcher: {kind: accelerate, ...}`).

A step whose settings say `launcher.kind: accelerate` is not trained in the calling process: `launch_step` writes what
the step needs (the step's name, model, data, output directory, settings, and arguments such as TOPR's behaviour model
or GRPO's reward functions as a `Factory`) to `out/launch/spec.json`, and runs

    python -m accelerate.commands.launch --config_file <config> --num_processes N --main_process_port P \\
        -m synthloop.train out/launch/spec.json

Each of the N processes (`main` below) calls the same step function, which runs the same `common.run_training` flow
(data, policy, TRL trainer, time-based checkpoints, resume): TRL and accelerate make it data parallel (or ZeRO/FSDP
per the config). Process 0 alone writes log.jsonl, model/ and result.json; every process resumes from the same last
complete checkpoint, so a step killed mid-training resumes like a single-process one. The caller then reads
result.json. The processes die with the caller (a parent-death signal at each level), so a killed loop leaves no
trainer behind to race the rerun.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from synthloop.configs import ConfigError
from synthloop.runs.jsonl import atomic_write
from synthloop.train.config import LauncherSettings, TrainCommon

#: set in the launched processes: the step runs there instead of launching again
CHILD_ENV = "SYNTHLOOP_LAUNCHED_STEP"
CONFIGS = Path(__file__).with_name("accelerate")
#: shipped accelerate configs (synthloop/train/accelerate/<name>.yaml)
NAMED = ("multi_cpu", "multi_gpu", "zero2", "zero3", "fsdp")


class Factory(BaseModel):
    """A callable named by its import path, with JSON arguments: what another process can rebuild (a closure
    cannot cross processes). GRPO under accelerate takes its reward functions this way."""

    target: str = Field(description="`package.module:function`; called with `kwargs`.")
    kwargs: dict[str, Any] = Field(default_factory=dict)

    def build(self) -> Any:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)(**self.kwargs)


def in_launched_process() -> bool:
    return os.environ.get(CHILD_ENV) == "1"


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def wants_launch(settings: TrainCommon) -> bool:
    """Whether a step with these settings must be launched in other processes (it is not one of them already)."""
    return settings.launcher.kind == "accelerate" and not in_launched_process()


def resolve_config(launcher: LauncherSettings) -> tuple[Path, int]:
    """The accelerate config file and the number of processes; unusable choices are one-line `ConfigError`s."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    name = launcher.config
    if name == "auto":
        name = "multi_gpu" if gpus else "multi_cpu"
    if name in NAMED:
        path = CONFIGS / f"{name}.yaml"
        if name in ("zero2", "zero3") and importlib.util.find_spec("deepspeed") is None:
            raise ConfigError(f"launcher.config={name} needs DeepSpeed: pip install deepspeed (on a GPU machine)")
        if name != "multi_cpu" and not gpus:
            raise ConfigError(f"launcher.config={name} needs GPUs and this machine has none (use multi_cpu)")
    else:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(f"launcher.config={name}: neither a shipped config ({', '.join(NAMED)}, auto) nor an "
                              "accelerate config file")
    processes = launcher.num_processes or (gpus if gpus and name != "multi_cpu" else 2)
    return path.resolve(), processes


# -- the calling process -----------------------------------------------------------------------------
def launch_step(method: str, *, model: str | Path, data: Any, out: Path, settings: TrainCommon,
                extra: dict[str, Any] | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Train the step in `num_processes` processes under `accelerate launch`; returns `out` once its result.json is
    written (the caller reads it). A failure is one line naming the log (out/launch/launch.log)."""
    config, processes = resolve_config(settings.launcher)
    launch_dir = out / "launch"
    launch_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str | Path):
        data_path = str(Path(data).resolve())
    else:  # rows or a Dataset in memory: the processes read them from a file
        import datasets

        data_path = str(launch_dir / "data.parquet")
        dataset = data if isinstance(data, datasets.Dataset) else datasets.Dataset.from_list(list(data))
        dataset.to_parquet(data_path)
    spec = {"method": method, "model": str(model), "data": data_path, "out": str(out.resolve()),
            "settings_class": type(settings).__name__, "settings": settings.model_dump(mode="json"),
            "extra": extra or {}}
    spec_path = launch_dir / "spec.json"
    atomic_write(spec_path, json.dumps(spec, indent=2))
    port = settings.launcher.main_process_port or _free_port()
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config),
           "--num_processes", str(processes), "--main_process_port", str(port),
           "-m", "synthloop.train", str(spec_path)]
    env = dict(os.environ, **{CHILD_ENV: "1", "PYTHONUNBUFFERED": "1"})
    if config.name == "multi_cpu.yaml" and "OMP_NUM_THREADS" not in env:  # the cores shared, not oversubscribed
        env["OMP_NUM_THREADS"] = str(max(1, len(os.sched_getaffinity(0)) // processes))
    log_path = launch_dir / "launch.log"
    if log:
        log(f"{method}: training in {processes} processes under accelerate ({config.stem}); log: {log_path}")
    with open(log_path, "a") as handle:
        handle.write(f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(cmd)}\n")
        handle.flush()
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=lambda: _die_with_parent(signal.SIGTERM))
        try:
            code = proc.wait()
        finally:
            if proc.poll() is None:  # we were interrupted: the launcher stops its processes on SIGTERM
                proc.terminate()
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
    if code != 0 or not (out / "result.json").is_file():
        raise RuntimeError(f"{method}: training under accelerate failed (exit {code}): {_last_error(log_path)}; "
                           f"see {log_path}")
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent(sig: int) -> None:
    """Linux: deliver `sig` to this process when its parent dies (even by SIGKILL)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, sig)  # PR_SET_PDEATHSIG


def _last_error(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
    for line in reversed(lines):
        if "Error" in line or "error:" in line:
            return line[:300]
    return lines[-1][:300] if lines else "no output"


# -- the launched processes ---------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    _die_with_parent(signal.SIGKILL)  # the launcher (torchrun's agent) died: so do we
    spec = json.loads(Path((argv or sys.argv[1:])[0]).read_text())
    from synthloop import train
    from synthloop.train import config as configs

    settings = getattr(configs, spec["settings_class"]).model_validate(spec["settings"])
    extra = dict(spec["extra"])
    if "reward_funcs" in extra:
        extra["reward_funcs"] = Factory.model_validate(extra["reward_funcs"])
    step = getattr(train, spec["method"])
    data_key = "prompts" if spec["method"] == "grpo" else "data"
    step(model=spec["model"], out=spec["out"], config=settings, progress=False,
         log=lambda message: print(message, flush=True), **{data_key: spec["data"]}, **extra)
    return 0
