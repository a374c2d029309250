"""What the benchmarks share: the machine's description, a one-call DSPy program, saving results."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Literal

import dspy
from pydantic import BaseModel

from synthloop.synth.base import SynthProgram

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict[str, Any]:
    import psutil

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
               platform.processor())
    others = [p.info for p in psutil.process_iter(["pid", "name", "cpu_percent"])]
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "python": platform.python_version(), "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
            "processes": len(others), "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "note": "2-core machine shared with other engineers; heavy jobs serialised by a lock, light ones "
                    "(tests, editors) may have run beside this benchmark"}


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    print(f"saved {path}")
    return path


class Respond(dspy.Signature):
    """Answer the user's request helpfully and concisely."""

    request: str = dspy.InputField()
    response: str = dspy.OutputField()


class _Config(BaseModel):
    kind: Literal["respond"] = "respond"


class RespondProgram(SynthProgram):
    """One model call per item: the request in, a response out (the shape of most generation steps)."""

    name = "respond"
    config_class = _Config

    def __init__(self):
        super().__init__()
        self.respond = dspy.Predict(Respond)

    async def aforward(self, request: str) -> dspy.Prediction:
        return await self.respond.acall(request=request)

    def forward(self, request: str) -> dspy.Prediction:
        return self.respond(request=request)
