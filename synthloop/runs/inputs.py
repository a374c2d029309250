"""Reading a dataset as a program's inputs: any file `datasets` reads, a saved dataset, or a run directory.

    inputs:
      path: runs/skillmix            # a synthloop run (its records), a `save_to_disk` directory,
                                     # or a .jsonl/.json/.jsonl.gz/.parquet/.csv file
      columns: {passage: text}       # program input <- dataset column (unmapped names pass through)
      limit: 500

Rows are streamed in file order (row i is the same on every run, which resume relies on); nothing
is loaded into memory as a whole. One program's output run is the next program's input by path.
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
                                    description="Program input name -> dataset column, e.g. {passage: text}.")
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
        missing = [col for col in self.columns.values() if col not in row]
        if missing:
            raise KeyError(f"{self.path}: no column {missing[0]!r} (columns: {', '.join(row)})")
        renamed = set(self.columns.values())
        out = {k: v for k, v in row.items() if k not in renamed}
        out.update({name: row[col] for name, col in self.columns.items()})
        return out


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
    import datasets

    yield from datasets.load_dataset(fmt, data_files=str(path), split="train", streaming=True)
