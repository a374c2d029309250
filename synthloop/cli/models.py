"""`synthloop models list|prepare`: the model registry."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from synthloop.cli.common import quiet_libraries
from synthloop.console.output import console, out

app = typer.Typer(
    help="Registered models: the embedded default (offline) and the tiny test model.", no_args_is_help=True
)


@app.command("list")
def list_models() -> None:
    """Show registered models and whether they are prepared. Any local checkpoint directory or hub id works too."""
    from synthloop.engines import registry

    table = Table(title="models (engine.model accepts these names, a local directory, or a hub id)")
    table.add_column("name", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("description", overflow="fold")
    table.add_column("path", overflow="fold")
    for row in registry.list_models():
        table.add_row(row["name"], row["status"], row["description"], row["path"])
    out.print(table)


@app.command("prepare")
def prepare(
    name: Annotated[str, typer.Argument(help="A registered model name, e.g. smollm2-135m-instruct.")],
    force: Annotated[bool, typer.Option("--force", help="Rebuild even if already prepared.")] = False,
) -> None:
    """Build a registered model into $SYNTHLOOP_HOME/models once (offline); later runs reuse it."""
    quiet_libraries()
    from synthloop.engines import registry

    path = registry.prepare(name, force=force, log=console.print)
    out.print(str(path))
