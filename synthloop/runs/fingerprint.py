"""What a file or directory holds, as a short hash: runs are identified by the content of their inputs and models,
not by their paths (an input edited in place or a checkpoint retrained at the same path is a different run).

    fingerprint(Path("data/tasks.jsonl"))      -> "3f9a…" (sha256 of the bytes, 16 hex digits)
    fingerprint(Path("runs/loop/round-002/model"))   a directory: its files' relative paths, sizes and contents

Files are read in 1 MiB chunks. Each file's hash is remembered under `$SYNTHLOOP_HOME/fingerprints.sqlite`, keyed
by (absolute path, size, mtime in ns), so an unchanged multi-GB checkpoint is hashed once, not at every run. A
synthloop run directory given as an input is identified by its records (`records/*.jsonl`), the rows it gives.

`config_files(config)` finds the files a config names (every `Path` field that affects outputs) and returns their
fingerprints by dotted key, for a run's identity. `engine_identity(engine.describe())` adds the fingerprint of the
model's weights (`model_fingerprint`), which run identities and request-cache keys carry.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from synthloop import env
from synthloop.engines import registry

_CHUNK = 1 << 20
#: files whose content never changes what a checkpoint computes (the registry's "prepared at" marker)
_IGNORED = {"synthloop-prepared.json"}
_memo: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def fingerprint(path: Path) -> str:
    """sha256 (16 hex digits) of a file's bytes, or of a directory's files (relative path, size, content)."""
    path = Path(path).resolve()
    if path.is_dir():
        if (path / "manifest.json").is_file() and (path / "records").is_dir():  # a synthloop run: its records
            path = path / "records"
        digest = hashlib.sha256(b"dir\0")
        for relative, size, sha in _tree(path):
            digest.update(f"{relative}\0{size}\0{sha}\n".encode())
        return digest.hexdigest()[:16]
    return _file_sha(path)


def _tree(root: Path) -> Iterator[tuple[str, int, str]]:
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            if name in _IGNORED or name.startswith(".") and ".tmp-" in name:  # atomic_write's half-written files
                continue
            files.append(Path(dirpath) / name)
    for file in sorted(files):
        yield file.relative_to(root).as_posix(), file.stat().st_size, _file_sha(file)


def _file_sha(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    with _lock:
        known = _memo.get(key)
    if known is not None:
        return known
    known = _stored(key)
    if known is None:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        known = digest.hexdigest()[:16]
        _store(key, known)
    with _lock:
        _memo[key] = known
    return known


def _db() -> sqlite3.Connection:
    path = env.home() / "fingerprints.sqlite"
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30, isolation_level=None)
    db.execute("CREATE TABLE IF NOT EXISTS files (path TEXT, size INTEGER, mtime_ns INTEGER, sha TEXT, "
               "PRIMARY KEY (path, size, mtime_ns))")
    return db


def _stored(key: tuple[str, int, int]) -> str | None:
    # the cache only saves time: a home that cannot be written (read-only, full disk) means hashing again
    with contextlib.suppress(sqlite3.Error, OSError), contextlib.closing(_db()) as db:
        row = db.execute("SELECT sha FROM files WHERE path = ? AND size = ? AND mtime_ns = ?", key).fetchone()
        return row[0] if row else None
    return None


def _store(key: tuple[str, int, int], sha: str) -> None:
    with contextlib.suppress(sqlite3.Error, OSError), contextlib.closing(_db()) as db:
        db.execute("DELETE FROM files WHERE path = ?", key[:1])  # the file's older versions
        db.execute("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)", (*key, sha))


def model_fingerprint(model: str) -> str:
    """What identifies a model's weights: the fingerprint of a registered model's prepared directory or of a local
    checkpoint directory (retrained at the same path, it is another model); a hub id without a local directory is
    identified by the id itself."""
    if model in registry.REGISTRY:
        return fingerprint(registry.prepare(model))
    path = Path(model).expanduser()
    if path.is_dir():
        return fingerprint(path)
    if path.exists() or model.startswith((".", "/", "~")):  # meant as a local checkpoint: say so before anything runs
        raise registry.ModelNotFoundError(f"{model}: no such model checkpoint directory")
    return model


def engine_identity(described: dict[str, Any]) -> dict[str, Any]:
    """An engine's `describe()` plus `model_sha256`, the fingerprint of the weights it serves (not for an
    OpenAI-compatible server: its model is whatever the server serves under that name)."""
    if described.get("engine") == "openai" or "model" not in described or "model_sha256" in described:
        return described
    sha = model_fingerprint(str(described["model"]))
    return described if sha == described["model"] else {**described, "model_sha256": sha}


def config_files(config: BaseModel, *, skip: frozenset[str] = frozenset()) -> dict[str, str]:
    """{dotted key: fingerprint} of every existing file or directory a config's output-affecting `Path` fields name
    (fields marked RUNTIME, such as output directories, are not inputs). `skip`: field names left out (e.g. files
    the caller identifies another way)."""
    found: dict[str, str] = {}
    _walk(config, "", found, skip)
    return found


def _walk(value: Any, prefix: str, found: dict[str, str], skip: frozenset[str]) -> None:
    if isinstance(value, BaseModel):
        for name, field in type(value).model_fields.items():
            extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
            if name in skip or not extra.get("affects_output", True):
                continue
            _walk(getattr(value, name), f"{prefix}{name}.", found, skip)
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(item, f"{prefix}{key}.", found, skip)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk(item, f"{prefix}{i}.", found, skip)
    elif isinstance(value, Path) and value.exists():
        found[prefix.rstrip(".")] = fingerprint(value)
