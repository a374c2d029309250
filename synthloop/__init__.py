"""synthloop: make LLMs better with data they make themselves.

import synthloop as sl
engine = sl.engines.load("vllm", model="smollm2-135m-instruct")
summary = sl.generate(sl.synth.SelfInstruct(), engine=engine, run="runs/si", num_records=100)
"""

from __future__ import annotations

import importlib
from typing import Any

from synthloop import env as _env

_env.apply_defaults()  # before DSPy or vLLM are imported: their caches go under $SYNTHLOOP_HOME

__version__ = "0.1.0"
_SUBMODULES = {"engines", "synth", "prompts", "judges", "loops", "runs", "configs", "env"}


def __getattr__(name: str) -> Any:  # lazy: `import synthloop` stays fast; DSPy/torch load on first use
    if name in _SUBMODULES:
        return importlib.import_module(f"synthloop.{name}")
    if name == "generate":
        from synthloop.synth.generate import generate

        return generate
    raise AttributeError(f"module 'synthloop' has no attribute {name!r}")
