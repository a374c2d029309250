"""`synthloop skills build|show|coverage`: the Instruct-SkillMix skill inventory and how runs cover it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from synthloop.cli.common import fail, open_run, quiet_libraries
from synthloop.console.output import console, out

app = typer.Typer(
    help="Instruct-SkillMix skills: build the inventory from a skill_extraction run, show it, check coverage.\n\n"
    "  synthloop generate configs/generate/skill_extraction.yaml      # stage 1: which skills do examples need\n\n"
    "  synthloop skills build runs/skill_extraction           # cluster names -> runs/skill_extraction/skills.yaml\n\n"
    "  synthloop generate configs/generate/skillmix.yaml               # stage 2: records mixing k drawn skills\n\n"
    "  synthloop skills coverage runs/skillmix                # how evenly kept records cover skill pairs",
    no_args_is_help=True,
)


@app.command("build")
def build(
    run_path: Annotated[Path, typer.Argument(help="A skill_extraction run directory.")],
    dest: Annotated[Path | None, typer.Option("--out", "-o", help="Inventory file; default <run>/skills.yaml.")] = None,
    similarity: Annotated[float, typer.Option(help="Merge names whose MiniLM cosine similarity is at least this "
                                                   "(1.0: merge exact duplicates only).")] = 0.85,
    min_count: Annotated[int, typer.Option(help="Keep skills named at least this often (after merging).")] = 1,
    max_skills: Annotated[int | None, typer.Option(help="Keep only the N most frequent skills.")] = None,
) -> None:
    """Cluster the skill names of an extraction run into an inventory file you can edit and reuse."""
    quiet_libraries()
    from synthloop.synth.skill_inventory import build_inventory

    run = open_run(run_path)
    if not 0 < similarity <= 1:
        fail(f"--similarity {similarity}: expected a value in (0, 1]")
    try:
        inventory = build_inventory(run.iter_records(), similarity=similarity, min_count=min_count,
                                    max_skills=max_skills, source=str(run.path))
    except ValueError as exc:
        fail(f"{run.path}: {exc}")
    path = inventory.save(dest or run.path / "skills.yaml")
    s = inventory.settings
    console.print(f"{s['names_seen']} distinct names from {s['mentions']} mentions -> {len(inventory.skills)} skills "
                  f"(similarity >= {similarity}, min count {min_count})")
    _table(inventory, 15)
    out.print(str(path), soft_wrap=True)


@app.command("show")
def show(
    inventory_path: Annotated[Path, typer.Argument(help="skills.yaml (or a .txt, one skill per line), or a run "
                                                        "directory holding skills.yaml.")],
    top: Annotated[int, typer.Option(help="Skills listed.")] = 50,
) -> None:
    """List an inventory's skills, most frequent first, with the names merged into each."""
    from synthloop.synth.skill_inventory import SkillInventory

    try:
        inventory = SkillInventory.load(inventory_path)
    except ValueError as exc:
        fail(str(exc))
    _table(inventory, top)


@app.command("coverage")
def coverage_cmd(
    run_path: Annotated[Path, typer.Argument(help="A skillmix run directory.")],
    inventory_path: Annotated[Path | None, typer.Option("--inventory", help="Default: the run's program.skills "
                                                                            "with its min_count/max_skills.")] = None,
) -> None:
    """How evenly the run's kept records cover the inventory's skills and skill pairs."""
    import yaml

    from synthloop.synth.skill_inventory import SkillInventory
    from synthloop.synth.skillmix import coverage

    run = open_run(run_path)
    if inventory_path is not None:
        names = SkillInventory.load(inventory_path).names()
    else:
        config = yaml.safe_load((run.path / "config.yaml").read_text()) if (run.path / "config.yaml").is_file() else {}
        program = (config or {}).get("program", {})
        if program.get("kind") != "skillmix":
            fail(f"{run.path}: not a skillmix run; pass --inventory")
        names = [s.name for s in SkillInventory.load(program["skills"]).select(program.get("min_count", 1),
                                                                                program.get("max_skills"))]
    stats = coverage((r.get("skills") or [] for r in run.iter_records()), names)
    table = Table(show_header=False, title=f"skill coverage of {run.path}")
    for key, value in stats.model_dump().items():
        table.add_row(key.replace("_", " "), str(value))
    out.print(table)
    out.print(stats.summary(), soft_wrap=True)


def _table(inventory, top: int) -> None:
    table = Table(title=f"{len(inventory.skills)} skills" + (f" (top {top})" if len(inventory.skills) > top else ""))
    for column in ("skill", "count", "merged names"):
        table.add_column(column, overflow="fold")
    for skill in inventory.skills[:top]:
        table.add_row(skill.name, str(skill.count), ", ".join(skill.aliases[:6]) + (" …" if len(skill.aliases) > 6
                                                                                    else ""))
    out.print(table)
