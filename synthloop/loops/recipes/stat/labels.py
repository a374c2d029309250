"""Skills of task sets for STAT: the inventory, the labels of each set, the probe set, the teacher engine.

    runs/<loop>/skills/inventory.yaml     the skills (programmatic: those the tasks name; teacher: given or listed)
    runs/<loop>/skills/extract/           teacher, no inventory given: its skill lists (a generation run)
    runs/<loop>/skills/eval.jsonl         {task_id, skills, source} per held-out task
    runs/<loop>/skills/probe.jsonl        ... per probe task;  probe_tasks.jsonl: the probe set itself
    round-XXX/skills.jsonl                ... per training task of the round (labels-pool/: the teacher's run)

A label file is written once, atomically, when the whole set is labeled; teacher runs resume like any run.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from synthloop.configs import ConfigError
from synthloop.engines.base import Engine
from synthloop.engines.types import Sampling
from synthloop.loops.context import RoundContext
from synthloop.loops.recipes.stat.config import StatConfig
from synthloop.loops.stages import StageIncomplete, eval_tasks
from synthloop.runs.jsonl import read_jsonl, write_jsonl
from synthloop.synth.skill_inventory import Skill, SkillInventory
from synthloop.text import normal_form


def skills_dir(ctx: RoundContext) -> Path:
    return ctx.run_dir / "skills"


def inventory_path(ctx: RoundContext) -> Path:
    return skills_dir(ctx) / "inventory.yaml"


def read_labels(path: Path) -> dict[str, list[str]]:
    return {row["task_id"]: list(row["skills"]) for row in read_jsonl(path)}


def probe_tasks(ctx: RoundContext, cfg: StatConfig) -> list[dict[str, Any]]:
    """The probe set, materialized once (probe_tasks.jsonl): the first `probe_count` tasks of `recipe.probe`
    that are not held-out tasks."""
    path = ctx.run_dir / "probe_tasks.jsonl"
    if not path.is_file():
        if cfg.probe is None:
            raise ConfigError("recipe.probe: this variant needs a probe set")
        held_out = {normal_form(r["prompt"]) for r in eval_tasks(ctx)}
        rows = (r for r in cfg.probe.rows() if normal_form(r["prompt"]) not in held_out)
        first = itertools.islice(rows, cfg.probe_count)
        write_jsonl(path, (dict(r, task_id=f"probe-{i}") for i, r in enumerate(first)))
    return list(read_jsonl(path))


def teacher_engine(ctx: RoundContext, cfg: StatConfig) -> Engine:
    """The teacher: `recipe.teacher` (its own engine), or by default the loop's engine on the starting model; both
    owned by the loop's engine pool (one engine at a time: the policy's is closed first)."""
    if cfg.teacher is None:
        return ctx.engine_for("teacher", ctx.config.engine)
    return ctx.engine_for("teacher", cfg.teacher)


def run_program(ctx: RoundContext, program, engine, out: Path, *, purpose: str, sampling: Sampling,
                inputs: list[dict[str, Any]] | None = None, num_records: int | None = None):
    """One generation run of a program inside a stage (resumable; an unfinished run stops the stage)."""
    from synthloop.synth.generate import generate

    summary = generate(program, engine=engine, run=out, inputs=inputs, num_records=num_records, sampling=sampling,
                       seed=ctx.seed(purpose), concurrency=ctx.config.concurrency, progress=ctx.progress)
    if summary.status == "incomplete":  # every attempt made, fewer records kept than asked: go on with them
        ctx.log(f"{out.name}: {summary.kept} kept of {num_records} asked after all attempts ({summary.filtered} "
                f"filtered, {summary.failed} failed; see {out}/filtered.jsonl)")
    elif summary.status != "completed":
        raise StageIncomplete(f"{out}: generation {summary.status}; rerun the loop to resume it")
    return summary


# -- the inventory ----------------------------------------------------------------------------------
def programmatic_skills(row: dict[str, Any], cfg: StatConfig) -> list[str]:
    if cfg.skills_column not in row:
        raise ConfigError(f"recipe.labels is programmatic but task {row.get('task_id')} has no column "
                          f"{cfg.skills_column!r} (columns: {', '.join(row)}); set recipe.skills_column, or use "
                          "labels: teacher")
    value = row[cfg.skills_column]
    names = [value] if isinstance(value, str) else list(value or [])
    return list(dict.fromkeys(str(n) for n in names))


def ensure_inventory(ctx: RoundContext, cfg: StatConfig, rows: Sequence[dict[str, Any]]) -> list[Skill]:
    """skills/inventory.yaml: built once (programmatic: the names `rows` carry; teacher: `recipe.inventory`, or
    what the teacher lists for training tasks, clustered)."""
    path = inventory_path(ctx)
    if path.is_file():
        return SkillInventory.load(path).skills
    if cfg.labels == "programmatic":
        counts = Counter(s for row in rows for s in programmatic_skills(row, cfg))
        inventory = SkillInventory(skills=[Skill(name=n, count=c) for n, c in counts.most_common()],
                                   source=f"programmatic: task column {cfg.skills_column!r}")
    elif cfg.inventory is not None:
        from synthloop.synth.skill_labels import load_skills

        try:
            skills = load_skills(cfg.inventory)
        except (ValueError, FileNotFoundError) as exc:
            raise ConfigError(f"recipe.inventory: {exc}") from None
        inventory = SkillInventory(skills=skills, source=f"recipe.inventory: {cfg.inventory}")
    else:
        inventory = _extract_inventory(ctx, cfg)
    if not inventory.skills:
        raise ConfigError(f"no skills to build an inventory from ({inventory.source})")
    inventory.save(path)
    ctx.log(f"skill inventory ({len(inventory.skills)}): {', '.join(inventory.names())} -> {path}")
    return inventory.skills


def _extract_inventory(ctx: RoundContext, cfg: StatConfig) -> SkillInventory:
    """The teacher lists the skills of the first `inventory_tasks` training tasks; the names are clustered."""
    from synthloop.runs.inputs import DatasetInput
    from synthloop.runs.run_dir import RunDir
    from synthloop.synth.skill_extraction import SkillExtraction
    from synthloop.synth.skill_inventory import build_inventory

    held_out = {normal_form(r["prompt"]) for r in eval_tasks(ctx)}
    tasks_file = skills_dir(ctx) / "extract_tasks.jsonl"
    if not tasks_file.is_file():
        rows = (r for r in ctx.config.tasks.train.rows() if normal_form(r["prompt"]) not in held_out)
        write_jsonl(tasks_file, ({"prompt": r["prompt"]} for r in itertools.islice(rows, cfg.inventory_tasks)))
    program = SkillExtraction(inputs=DatasetInput(path=tasks_file, columns={"instruction": "prompt"}))
    out = skills_dir(ctx) / "extract"
    engine = teacher_engine(ctx, cfg)
    run_program(ctx, program, engine, out, purpose="extract-skills", sampling=cfg.teacher_sampling)
    try:
        return build_inventory(RunDir(out).iter_records(), max_skills=cfg.max_skills,
                               source=f"teacher skill lists of {cfg.inventory_tasks} training tasks")
    except ValueError:
        raise ConfigError(f"the teacher named no usable skill for {cfg.inventory_tasks} training tasks ({out}); "
                          "give the skills in recipe.inventory (a list or a skills.yaml)") from None


# -- labels -----------------------------------------------------------------------------------------
def label_rows(ctx: RoundContext, cfg: StatConfig, rows: Sequence[dict[str, Any]], out: Path,
               name: str) -> dict[str, list[str]]:
    """Skills per task_id of `rows`, written to `out` (.jsonl) once; an existing file is read back."""
    if out.is_file():
        return read_labels(out)
    if cfg.labels == "programmatic":
        labels = {row["task_id"]: programmatic_skills(row, cfg) for row in rows}
    else:
        labels = _teacher_labels(ctx, cfg, rows, out.with_name(f"labels-{name}"), name)
    write_jsonl(out, ({"task_id": t, "skills": s, "source": cfg.labels} for t, s in labels.items()))
    return labels


def _teacher_labels(ctx: RoundContext, cfg: StatConfig, rows: Sequence[dict[str, Any]], run: Path,
                    name: str) -> dict[str, list[str]]:
    from synthloop.runs.run_dir import RunDir
    from synthloop.synth.skill_labels import SkillLabels

    program = SkillLabels(skills=inventory_path(ctx), max_labels=cfg.max_labels)
    inputs = [{"task": row["prompt"], "task_id": row["task_id"]} for row in rows]
    engine = teacher_engine(ctx, cfg)
    run_program(ctx, program, engine, run, purpose=f"label-{name}", sampling=cfg.teacher_sampling, inputs=inputs)
    found = {r["task_id"]: r["skills"] for r in RunDir(run).iter_records()}
    return {row["task_id"]: found.get(row["task_id"], []) for row in rows}  # filtered or failed: no skill
