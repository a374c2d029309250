"""`synthloop runs list|show|export`: inspect and export run directories."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from synthloop.cli.common import fail, open_run, quiet_libraries
from synthloop.console.output import console, out

app = typer.Typer(help="Inspect and export run directories.", no_args_is_help=True)


@app.command("list")
def list_runs(root: Annotated[Path, typer.Argument(help="Folder holding run directories.")] = Path("runs")) -> None:
    """One line per run under ROOT: kind, status, counts, last update."""
    from synthloop.runs.run_dir import RunConflictError, RunDir

    runs = sorted(p for p in root.glob("*") if RunDir(p).exists()) if root.is_dir() else []
    if not runs:
        console.print(f"no runs under {root}/")
        return
    table = Table(title=f"runs under {root}/")
    for column in ("run", "kind", "status", "kept", "filtered", "failed", "updated"):
        table.add_column(column)
    for path in runs:
        try:
            m = RunDir(path).manifest()
        except RunConflictError:
            m = {"status": "corrupt manifest"}
        c = m.get("counts", {})
        table.add_row(
            path.name,
            m.get("kind", "?"),
            m.get("status", "?"),
            str(c.get("kept", "")),
            str(c.get("filtered", "")),
            str(c.get("failed", "")),
            m.get("updated", m.get("created", "")),
        )
    out.print(table)


@app.command("show")
def show(
    run_path: Annotated[Path, typer.Argument(help="A run directory.")],
    examples: Annotated[int, typer.Option(help="Records to print.")] = 2,
) -> None:
    """The run's manifest, counts, why items were filtered or failed, and a few records."""
    import json

    from synthloop.runs.lock import holder

    run = open_run(run_path)
    m = run.manifest()
    table = Table(show_header=False, title=str(run.path))
    if m.get("status") == "running" and holder(run.lock_path) is None:  # its writer died (SIGKILL, power loss)
        m["status"] = "running? no process writes it (killed); rerun its command to resume"
    if m.get("status") != "failed":
        m.pop("error", None)  # an earlier session's, since resumed
    for key in ("kind", "status", "created", "updated", "resumed", "seconds", "identity_hash", "error"):
        if key in m:
            table.add_row(key, str(m[key]))
    for key, value in m.get("counts", {}).items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    filtered = Counter(r["reason"].split("(")[0].split(":")[0].strip() for r in run.iter_filtered())
    for reason, n in filtered.most_common(8):
        table.add_row("filtered", f"{n} × {reason}")
    final, retried = Counter(), Counter()
    for e in run.iter_errors():  # `final` marks the attempt that gave an item up (absent: older runs)
        (final if e.get("final", True) else retried)[e["kind"]] += 1
    for kind, n in final.most_common(8):
        table.add_row("failed items", f"{n} × {kind}")
    for kind, n in retried.most_common(8):
        table.add_row("retried", f"{n} × {kind}")
    out.print(table)
    from synthloop.schedule.history import render_history

    history = render_history(run.path, title=f"ticks of the schedule {run.path}")
    if history is not None:  # a schedule's directory: every tick, its inputs, metrics and decision
        (out if out.is_terminal else type(out)(width=200)).print(history)  # logs and pipes: do not squeeze it
    for i, record in enumerate(run.iter_records()):
        if i >= examples:
            break
        out.print_json(json.dumps(record, ensure_ascii=False))


@app.command("export")
def export(
    run_path: Annotated[Path, typer.Argument(help="A run directory.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="hf (datasets.save_to_disk), parquet or jsonl.")] = "hf",
    dest: Annotated[Path | None, typer.Option("--out", "-o", help="Destination; default: <run>/export.<ext>.")] = None,
) -> None:
    """Write the run's records as a Hugging Face dataset directory, a Parquet file or a JSONL file."""
    from synthloop.runs.export import export as do_export

    quiet_libraries()
    if fmt not in ("hf", "parquet", "jsonl"):
        fail(f"--format {fmt!r}: expected hf, parquet or jsonl")
    run = open_run(run_path)
    target = dest or run.path / {"hf": "export", "parquet": "export.parquet", "jsonl": "export.jsonl"}[fmt]
    if target.resolve().is_relative_to(run.path.resolve()):
        run.lock()  # writing into the run: not while another process writes it
    out.print(str(do_export(run, fmt, target)))
