"""Export a run's records as a Hugging Face `datasets` directory (with a dataset card, README.md), Parquet, or
JSONL."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Literal

from synthloop.runs.run_dir import RunConflictError, RunDir

ExportFormat = Literal["hf", "parquet", "jsonl"]


def load_dataset(run: RunDir | str | Path, cache_dir: str | Path | None = None):
    """The run's records (a `RunDir` or its path) as a `datasets.Dataset` (streamed from the shards, not held in a
    list)."""
    from datasets import Dataset

    run = run if isinstance(run, RunDir) else RunDir(Path(run))

    def rows():
        yield from run.iter_records()

    return Dataset.from_generator(rows, cache_dir=str(cache_dir) if cache_dir else None)


def export(run: RunDir, fmt: ExportFormat, out: str | Path) -> Path:
    """Write the run's records to `out`; a run without records exports to JSONL only (an empty file): Parquet and
    datasets need at least one row to know the columns (`RunConflictError`, one line)."""
    out = Path(out)
    if fmt != "jsonl" and next(run.iter_records(), None) is None:
        raise RunConflictError(f"{run.path}: no records to export as {fmt} (none were kept yet); --format jsonl "
                               "writes an empty file")
    if fmt == "jsonl":
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out, "w", encoding="utf-8") as handle:
            for record in run.iter_records():
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        return out
    with tempfile.TemporaryDirectory(prefix="synthloop-export-") as tmp:
        dataset = load_dataset(run, cache_dir=tmp)
        if fmt == "hf":
            from synthloop.runs.card import dataset_card

            dataset.save_to_disk(str(out))
            (out / "README.md").write_text(dataset_card(run, dataset), encoding="utf-8")
        elif fmt == "parquet":
            out.parent.mkdir(parents=True, exist_ok=True)
            dataset.to_parquet(str(out))
        else:
            raise ValueError(f"unknown export format {fmt!r}; expected hf, parquet or jsonl")
    return out
