"""LM backends behind one batch-first interface, the model registry, and the DSPy bridge.

engine = synthloop.engines.load("vllm", model="smollm2-135m-instruct")
results = engine.generate([ChatRequest(messages=({"role": "user", "content": "Hi"},))])
"""

from __future__ import annotations

from typing import Any

from synthloop.engines.base import Engine
from synthloop.engines.config import EngineConfig
from synthloop.engines.types import ChatRequest, ChatResult, Completion, EngineError, Sampling

__all__ = [
    "ChatRequest",
    "ChatResult",
    "Completion",
    "Engine",
    "EngineConfig",
    "EngineError",
    "Sampling",
    "load",
    "from_config",
    "describe_config",
    "resolve_kind",
]


def resolve_kind(kind: str) -> str:
    if kind != "auto":
        return kind
    from synthloop.engines.vllm_engine import vllm_available

    return "vllm" if vllm_available() else "transformers"


def describe_config(config: EngineConfig) -> dict[str, Any]:
    """What `from_config(config).describe()` will return, without building the engine (to check a run's
    identity before spending half a minute starting vLLM)."""
    kind = resolve_kind(config.kind)
    if kind == "openai":
        return {"engine": kind, "model": config.model}
    if config.dtype != "auto":
        dtype = config.dtype
    elif kind == "vllm":
        dtype = "bfloat16"
    else:
        import torch

        dtype = "bfloat16" if torch.cuda.is_available() else "float32"
    return {"engine": kind, "model": config.model, "dtype": dtype}


def from_config(config: EngineConfig, *, log=None) -> Engine:
    """Build the engine a config's `engine:` section describes."""
    kind = resolve_kind(config.kind)
    if kind == "openai":
        from synthloop.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(config)
    from synthloop.engines import registry

    path = registry.resolve(config.model, log=log)
    if kind == "vllm":
        from synthloop.engines.vllm_engine import VLLMEngine, vllm_available

        if not vllm_available():
            raise EngineError(
                "engine.kind=vllm but vLLM is not installed; run `make setup` or use engine.kind=transformers"
            )
        return VLLMEngine(path, name=config.model, config=config)
    if kind == "transformers":
        from synthloop.engines.transformers_engine import TransformersEngine

        return TransformersEngine(path, name=config.model, config=config)
    raise EngineError(f"unknown engine kind {kind!r}")


def load(kind: str = "auto", model: str = "smollm2-135m-instruct", **options: Any) -> Engine:
    """Python entry point: `load("vllm", model=..., max_model_len=4096)`."""
    return from_config(EngineConfig(kind=kind, model=model, **options))
