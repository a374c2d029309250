"""Read a run directory of any kind into one JSON-able dict, the report's only input.

The kind comes from manifest.json `kind` (generate, filter, loop, schedule, compile, ...), else from the files
present (state.json: a loop; history.jsonl: a schedule; records/: generate-like). Generate and filter runs
get their records; loops and schedules their rounds; every run its manifest, config, versions and lineage.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from synthloop.report.records import RECORD_CAP, collect_records
from synthloop.report.rounds import collect_rounds
from synthloop.runs.lineage import run_lineage
from synthloop.runs.run_dir import RunDir

ROUND_KINDS = ("loop", "schedule")


class NotARunError(ValueError):
    """The path is not a run directory; the message is one line for the user."""


def run_kind(run: RunDir) -> str:
    kind = run.manifest().get("kind")
    if kind:
        return str(kind)
    if (run.path / "history.jsonl").is_file():
        return "schedule"
    if (run.path / "state.json").is_file():
        return "loop"
    return "generate"


def _json_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def collect(path: str | Path, *, cap: int = RECORD_CAP) -> dict[str, Any]:
    """Everything the report shows of the run at `path`; raises `NotARunError` for anything else."""
    run = RunDir(Path(path))
    if not run.path.is_dir():
        raise NotARunError(f"{run.path}: no such directory")
    if not run.exists():
        raise NotARunError(f"{run.path}: not a run directory (no manifest.json)")
    try:
        manifest = run.manifest()
    except (OSError, json.JSONDecodeError) as exc:
        raise NotARunError(f"{run.path}: manifest.json does not parse ({exc})") from exc
    kind = run_kind(run)
    config_path = run.path / "config.yaml"
    data: dict[str, Any] = {
        "path": str(run.path.resolve()),
        "name": run.path.name,
        "kind": kind,
        "status": manifest.get("status", "?"),
        "manifest": manifest,
        "config_yaml": config_path.read_text() if config_path.is_file() else "",
        "versions": _json_file(run.path / "versions.json"),
        "lineage": run_lineage(run),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "records": None,
        "loop": None,
        "extra": None,
    }
    if kind in ROUND_KINDS:
        data["loop"] = collect_rounds(run)
    elif run.records_dir.is_dir() or run.filtered_path.is_file():
        data["records"] = collect_records(run, cap=cap)
    extra = _json_file(run.path / "report.json")
    if extra and kind not in ("filter",):
        data["extra"] = extra  # e.g. a compile run's scores before and after
    return data
