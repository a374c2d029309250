"""Run directories on disk: `run_dir` (manifest, identity, records), `jsonl`, `cache`, `inputs`, `export`, `lock`
(one writer per run), `fingerprint` (what files and models hold, for run identities).

    import synthloop as sl
    dataset = sl.runs.export.load_dataset("runs/self_instruct")      # submodules load on first use
"""

from __future__ import annotations

import importlib
from typing import Any

_SUBMODULES = {"cache", "export", "fingerprint", "inputs", "jsonl", "lock", "run_dir"}


def __getattr__(name: str) -> Any:  # lazy: `import synthloop.runs` stays light (export imports datasets)
    if name in _SUBMODULES:
        return importlib.import_module(f"synthloop.runs.{name}")
    raise AttributeError(f"module 'synthloop.runs' has no attribute {name!r}")
