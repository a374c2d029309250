"""Reading a dataset as a program's inputs: any file `datasets` reads, a saved dataset, or a run directory.

    inputs:
      path: runs/skillmix            # a synthloop run (its records), a `save_to_disk` directory,
                                     # or a .jsonl/.json/.jsonl.gz/.parquet/.csv file
      columns: {passage: text}       # program input <- dataset column (unmapped names pass through);
                                     # a dotted path reaches inside: {text: messages.-1.content}
      limit: 500

Rows are streamed in file order (row i is the same on every run, which resume relies on); nothing
is loaded into memory as a whole (except a .json file holding one object of records keyed by id,
e.g. PubMedQA's `ori_pqal.json`: each value becomes a row with its key as `id`). One program's output
run is the next program's input by path.

A file that cannot be read as rows (not JSON, a torn line, rows that are not objects, a corrupt Parquet file, a
mapped column that is missing, no permission) raises `InputError`: one line naming the file (and the line).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import Field

from synthloop.configs import Config, ConfigError

_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class InputError(ConfigError):
    """An input dataset that cannot be read as rows; the message is one line naming the file."""


class MissingColumnError(InputError, KeyError):
    """A mapped column a row does not have; also a `KeyError`, which callers that skip such rows catch (a schedule's
    inbox drops the record)."""

    __str__ = Exception.__str__  # the message as written (KeyError would quote it)


class DatasetInput(Config):
    path: Path = Field(description="A synthloop run directory, a `datasets.save_to_disk` directory, or a "
                                   ".jsonl/.json/.parquet/.csv file (optionally .gz).")
    columns: dict[str, str] = Field(default_factory=dict,
                                    description="Program input name -> dataset column, e.g. {passage: text}; a "
                                                "dotted path reaches into nested values: {text: messages.-1.content}.")
    split: str = Field("train", description="The split to read from a saved DatasetDict.")
    skip: int = Field(0, ge=0, description="Rows skipped at the start (e.g. to hold out the first ones).")
    limit: int | None = Field(None, ge=1, description="Most rows read.")

    def rows(self) -> Iterator[dict[str, Any]]:
        path = Path(self.path)
        rows = islice(_raw_rows(path, self.split), self.skip, None if self.limit is None else self.skip + self.limit)
        try:
            for row in rows:
                yield self.map(row)
        except InputError:
            raise
        except OSError as exc:
            raise InputError(f"{path}: cannot read ({exc.strerror or exc}; check the path and its permissions)") \
                from None
        except Exception as exc:  # what `datasets` and pyarrow raise on a file they cannot parse (many types)
            raise InputError(f"{path}: cannot read as {_kind(path)} ({_first_line(exc)})") from None

    def map(self, row: dict[str, Any]) -> dict[str, Any]:
        if not self.columns:
            return dict(row)
        values = {name: _lookup(row, col, self.path) for name, col in self.columns.items()}
        renamed = set(self.columns.values())
        out = {k: v for k, v in row.items() if k not in renamed}
        out.update(values)
        return out


def _lookup(row: dict[str, Any], column: str, path: Path) -> Any:
    """`row[column]`, or a dotted path into nested dicts and lists (`messages.-1.content`)."""
    if column in row:
        return row[column]
    value: Any = row
    for part in column.split("."):
        try:
            value = value[int(part)] if isinstance(value, list | tuple) else value[part]
        except (KeyError, IndexError, ValueError, TypeError):
            columns = ", ".join(map(str, row))
            raise MissingColumnError(f"{path}: no column {column!r} (columns: {columns}; fix inputs.columns)") \
                from None
    return value


def _raw_rows(path: Path, split: str) -> Iterator[dict[str, Any]]:
    if not path.exists():
        raise InputError(f"{path}: no such dataset file or directory")
    if path.is_dir():
        if (path / "manifest.json").is_file():  # a synthloop run
            from synthloop.runs.run_dir import RunDir

            yield from RunDir(path).iter_records()
            return
        import datasets

        data = datasets.load_from_disk(str(path))
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise InputError(f"{path}: no split {split!r} (splits: {', '.join(data)})")
            data = data[split]
        yield from data
        return
    suffixes = [s for s in path.suffixes if s != ".gz"]
    fmt = _FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise InputError(f"{path}: unknown dataset format (expected one of {', '.join(_FORMATS)}, optionally .gz, "
                         "or a dataset directory)")
    if suffixes[-1] == ".jsonl":
        yield from _json_lines(path)
        return
    if suffixes[-1] == ".json" and path.suffix == ".json":
        keyed = _keyed_records(path)
        if keyed is not None:
            yield from keyed
            return
    import datasets

    yield from datasets.load_dataset(fmt, data_files=str(path), split="train", streaming=True)


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    """JSON lines, one object per line (blank lines skipped). Read here rather than by `datasets`' Arrow reader:
    that one infers a single schema for all rows (a column holding a number in one row and text in another fails
    the whole file), logs its own error lines, and names no line in its errors."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        number = 0
        try:
            for number, line in enumerate(handle, 1):  # noqa: B007 - `number` names the line in errors
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise InputError(f"{path}:{number}: a row must be a JSON object, got {type(row).__name__}")
                yield row
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: not a JSON line ({exc.msg}; expected one JSON object per line)") \
                from None
        except (UnicodeDecodeError, gzip.BadGzipFile, EOFError) as exc:
            raise InputError(f"{path}:{number + 1}: not UTF-8 JSON lines ({_first_line(exc)})") from None


def _kind(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return "a dataset directory" if path.is_dir() else f"{suffixes[-1] if suffixes else path.name} data"


def _first_line(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) and isinstance(exc.__cause__ or exc.__context__, StopIteration):
        return "no rows: the file is empty"
    text = (str(exc).strip().splitlines() or [""])[0].strip()
    return (f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:200]


def _keyed_records(path: Path) -> list[dict[str, Any]] | None:
    """A .json file holding one object whose values are records (`{"id1": {...}, ...}`): rows with their key
    as `id`, in file order. None for any other layout (a list of rows, JSON lines), left to `datasets`."""
    with open(path, encoding="utf-8") as handle:
        head = handle.read(1 << 16).lstrip()
    if not head.startswith("{"):
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None  # JSON lines
    if not data or not all(isinstance(v, dict) for v in data.values()):
        return None
    return [{"id": key, **value} for key, value in data.items()]
