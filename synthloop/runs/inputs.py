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
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import Field

from synthloop.configs import Config

_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


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
        rows = islice(_raw_rows(Path(self.path), self.split), self.skip,
                      None if self.limit is None else self.skip + self.limit)
        for row in rows:
            yield self.map(row)

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
            raise KeyError(f"{path}: no column {column!r} (columns: {', '.join(row)})") from None
    return value


def _raw_rows(path: Path, split: str) -> Iterator[dict[str, Any]]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such dataset file or directory")
    if path.is_dir():
        if (path / "manifest.json").is_file():  # a synthloop run
            from synthloop.runs.run_dir import RunDir

            yield from RunDir(path).iter_records()
            return
        import datasets

        data = datasets.load_from_disk(str(path))
        if isinstance(data, datasets.DatasetDict):
            if split not in data:
                raise KeyError(f"{path}: no split {split!r} (splits: {', '.join(data)})")
            data = data[split]
        yield from data
        return
    suffixes = [s for s in path.suffixes if s != ".gz"]
    fmt = _FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise ValueError(f"{path}: unknown dataset format (expected one of {', '.join(_FORMATS)})")
    if suffixes[-1] == ".json" and path.suffix == ".json":
        keyed = _keyed_records(path)
        if keyed is not None:
            yield from keyed
            return
    import datasets

    yield from datasets.load_dataset(fmt, data_files=str(path), split="train", streaming=True)


def _keyed_records(path: Path) -> list[dict[str, Any]] | None:
    """A .json file holding one object whose values are records (`{"id1": {...}, ...}`): rows with their key
    as `id`, in file order. None for any other layout (a list of rows, JSON lines), left to `datasets`."""
    import json

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
