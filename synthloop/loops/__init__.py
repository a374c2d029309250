"""Loops: TRL training steps (`synthloop.train`), the round controller, and recipes on it.

    from synthloop.loops import LoopConfig, run_loop
    summary = run_loop(LoopConfig.model_validate(yaml.safe_load(open("configs/loop/quickstart.yaml"))), "runs/q")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def run_loop(config, run_dir: str | Path, **options: Any) -> dict[str, Any]:
    """Run (or resume) the loop `config` describes in `run_dir`; returns the summary (also in summary.json)."""
    from synthloop.loops.controller import LoopController

    return LoopController(config, run_dir, **options).run_loop()


def __getattr__(name: str) -> Any:  # lazy: importing synthloop.loops does not import TRL
    if name == "LoopConfig":
        from synthloop.loops.config import LoopConfig

        return LoopConfig
    if name == "LoopController":
        from synthloop.loops.controller import LoopController

        return LoopController
    raise AttributeError(f"module 'synthloop.loops' has no attribute {name!r}")
