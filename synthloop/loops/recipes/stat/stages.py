"""The stages STAT adds to the controller's building blocks (see `synthloop.loops.recipes.stat.recipe`):

- `LabelStage`         skills of the held-out and probe tasks (round 0) or of the round's training tasks
- `ProbeStage`         the student answers the probe set -> the Missing-Skill-Profile (round-XXX/profile.json)
- `SynthesizeStage`    STAT-Syn: new tasks for the missing skills -> round-XXX/tasks.jsonl (named `tasks`, so
                       the sample stage answers them)
- `SelectStage`        the SFT budget drawn from the round's examples, by STAT-Sel weights or uniformly
- `SkillEvaluateStage` held-out evaluation plus accuracy per skill (round-XXX/skills_eval.json)
"""

from __future__ import annotations

import json
import re
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

from synthloop.configs import ConfigError
from synthloop.loops.context import RoundContext
from synthloop.loops.recipes.stat import labels as L
from synthloop.loops.recipes.stat.config import StatConfig
from synthloop.loops.recipes.stat.profile import (
    UNLABELED,
    SkillProfile,
    allocate,
    build_profile,
    example_weights,
    skill_accuracy,
    skill_shares,
    weighted_draw,
)
from synthloop.loops.stages import EvaluateStage, Stage, eval_tasks, sample_chat
from synthloop.runs.jsonl import atomic_write, read_jsonl, write_jsonl
from synthloop.text import normal_form


def metric_key(skill: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", skill.lower()).strip("_") or "skill"


def _inventory_names(ctx: RoundContext) -> list[str]:
    from synthloop.synth.skill_inventory import SkillInventory

    return SkillInventory.load(L.inventory_path(ctx)).names()


def _dump(path: Path, data: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, json.dumps(data, indent=2, default=str))
    return str(path)


class LabelStage(Stage):
    """Round 0 (`sets` eval, probe): the inventory, then the skills of the held-out and probe tasks. Later rounds
    (`sets` pool): the skills of the round's training tasks."""

    name = "label"

    def __init__(self, cfg: StatConfig, sets: tuple[str, ...]):
        self.cfg, self.sets = cfg, sets

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        cfg, skills = self.cfg, L.skills_dir(ctx)
        rows = {"eval": eval_tasks(ctx) if "eval" in self.sets else [],
                "probe": L.probe_tasks(ctx, cfg) if "probe" in self.sets else []}
        if "pool" in self.sets:
            rows["pool"] = list(read_jsonl(Path(ctx.outputs("tasks")["path"])))
        inventory = [s.name for s in L.ensure_inventory(ctx, cfg, rows["eval"] + rows["probe"])]
        out: dict[str, Any] = {"inventory": inventory, "files": {}, "metrics": {}}
        for name in self.sets:
            path = ctx.dir / "skills.jsonl" if name == "pool" else skills / f"{name}.jsonl"
            labels = L.label_rows(ctx, cfg, rows[name], path, name if name != "pool" else f"pool-r{ctx.round}")
            out["files"][name] = str(path)
            out["metrics"][f"unlabeled_{name}"] = sum(1 for s in labels.values() if not s)
            out[f"shares_{name}"] = skill_shares(labels.values())
        return out


class ProbeStage(Stage):
    """Greedy answers of the current policy on the probe set, judged; their failures per skill are the profile."""

    name = "probe"
    uses_engine = True

    def __init__(self, cfg: StatConfig):
        self.cfg = cfg

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.loops.judging import iter_judged, judge_records
        from synthloop.runs.run_dir import RunDir

        cfg, rows = self.cfg, L.probe_tasks(ctx, self.cfg)
        sample_chat(ctx, rows, ctx.dir / "probe", ctx.config.eval, seed=ctx.seed("probe"))
        with ctx.bar("judge probe", len(rows)) as advance:
            for _ in judge_records(RunDir(ctx.dir / "probe").iter_records(), ctx.panel, ctx.dir / "probe-judged",
                                   on_progress=advance):
                pass
        labels = L.read_labels(L.skills_dir(ctx) / "probe.jsonl")
        profile = build_profile(iter_judged(ctx.dir / "probe-judged"), labels, _inventory_names(ctx),
                                smoothing=cfg.smoothing, sharpness=cfg.sharpness, uniform_mix=cfg.uniform_mix)
        path = _dump(ctx.dir / "profile.json", profile.model_dump())
        ctx.log("missing-skill profile: " + ", ".join(
            f"{s.skill} {s.failure_rate:.0%} fail -> {s.target:.0%} of data" for s in profile.skills)
            + f" (missing: {', '.join(profile.missing) or 'none'})")
        metrics = {"probe_accuracy": round(1 - profile.overall_failure_rate, 4), "probe_missing": len(profile.missing)}
        metrics.update({f"msp_{metric_key(s.skill)}": s.failure_rate for s in profile.skills})
        return {"profile": path, "missing": profile.missing, "metrics": metrics}


def _profile(ctx: RoundContext) -> SkillProfile:
    return SkillProfile.model_validate_json(Path(ctx.outputs("probe")["profile"]).read_text())


class SynthesizeStage(Stage):
    """STAT-Syn: `syn.tasks` new tasks for the missing skills, written as the round's tasks.jsonl."""

    name = "tasks"

    def __init__(self, cfg: StatConfig):
        self.cfg = cfg

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        cfg, profile = self.cfg, _profile(ctx)
        wanted = cfg.syn.tasks or ctx.config.tasks.per_round
        held_out = {normal_form(r["prompt"]) for r in [*eval_tasks(ctx), *L.probe_tasks(ctx, cfg)]}
        if cfg.syn.source == "generator":
            rows, metrics = self._from_generator(ctx, profile, wanted, held_out)
        else:
            rows, metrics = self._from_skillmix(ctx, profile, wanted, held_out)
        if not rows:
            raise ValueError(f"STAT-Syn made no task this round ({metrics}); see {ctx.dir / 'syn'}")
        path = ctx.dir / "tasks.jsonl"
        write_jsonl(path, rows)
        metrics["tasks"] = len(rows)
        shares = skill_shares(r["skills"] for r in rows)
        metrics.update({f"syn_share_{metric_key(s)}": v for s, v in shares.items()})
        return {"path": str(path), "count": len(rows), "shares": shares, "metrics": metrics}

    def _from_generator(self, ctx: RoundContext, profile: SkillProfile, wanted: int,
                        held_out: set[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        import itertools

        source = ctx.config.tasks.train
        if "seed" not in type(source).model_fields:
            raise ConfigError(f"syn.source generator needs a task generator with a seed (tasks.train kind "
                              f"{source.kind!r} has none, e.g. use kind: arithmetic); or use syn.source: skillmix")
        fresh = source.model_copy(update={"seed": ctx.seed("syn-candidates"), "count": None})
        stream = (r for r in fresh.rows() if normal_form(r["prompt"]) not in held_out)
        candidates = [dict(r, task_id=f"syn-{i}") for i, r in
                      enumerate(itertools.islice(stream, wanted * self.cfg.syn.oversample))]
        labels = L.label_rows(ctx, self.cfg, candidates, ctx.dir / "syn" / "candidates-skills.jsonl",
                              f"syn-r{ctx.round}")
        quotas = allocate(wanted, profile.target)
        chosen: dict[str, str] = {}  # task_id -> the skill it was chosen for
        for skill in sorted(quotas, key=lambda s: -profile.target[s]):
            fits = [c["task_id"] for c in candidates if c["task_id"] not in chosen
                    and skill in (labels[c["task_id"]] or [UNLABELED])]
            chosen.update({t: skill for t in fits[: quotas[skill]]})
        short = wanted - len(chosen)
        for c in candidates:  # a skill without enough candidates: its share goes to the next candidates
            if len(chosen) >= wanted:
                break
            chosen.setdefault(c["task_id"], "(any)")
        rows = [dict(c, skills=labels[c["task_id"]], target_skill=chosen[c["task_id"]])
                for c in candidates if c["task_id"] in chosen]
        return rows, {"syn_candidates": len(candidates), "syn_shortfall": short}

    def _from_skillmix(self, ctx: RoundContext, profile: SkillProfile, wanted: int,
                       held_out: set[str]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        from synthloop.runs.run_dir import RunDir
        from synthloop.synth.chat import ChatSamples
        from synthloop.synth.skill_inventory import SkillInventory
        from synthloop.synth.skillmix import SkillMix

        syn = self.cfg.syn
        inventory = SkillInventory.load(L.inventory_path(ctx))
        by_rate = sorted((s for s in profile.skills if s.skill != UNLABELED), key=lambda s: -s.failure_rate)
        names = list(profile.missing)
        names += [s.skill for s in by_rate if s.skill not in names][: max(0, syn.k - len(names))]
        kept = [s for s in inventory.skills if s.name in names] or [s for s in inventory.skills][: syn.k]
        skills_file = SkillInventory(skills=kept, source="the missing skills of the round's profile").save(
            ctx.dir / "syn" / "skills.yaml")
        options = {"query_types": syn.query_types} if syn.query_types else {}
        program = SkillMix(skills=skills_file, k=min(syn.k, len(kept)), seed=ctx.seed("skillmix"),
                           min_response_words=syn.min_response_words, **options)
        mix_run = ctx.dir / "syn" / "skillmix"
        votes_run = ctx.dir / "syn" / "self-consistency"
        engine = L.teacher_engine(ctx, self.cfg)
        L.run_program(ctx, program, engine, mix_run, purpose="skillmix", num_records=wanted,
                      sampling=syn.writing)
        mixed = [r for r in RunDir(mix_run).iter_records()
                 if normal_form(r["messages"][0]["content"]) not in held_out]
        rows = [{"prompt": r["messages"][0]["content"], "teacher_response": r["messages"][1]["content"],
                 "skills": r["skills"], "task_id": f"syn-{r['id']}"} for r in mixed]
        if syn.verify == "none":
            return [dict(r, reference=None) for r in rows], {"syn_candidates": len(rows)}
        answers = ChatSamples(template=ctx.config.prompt.template, system=ctx.config.prompt.system,
                              n=syn.consistency_samples)
        L.run_program(ctx, answers, engine, votes_run, purpose="self-consistency", inputs=rows,
                      sampling=syn.consistency)
        kept_rows, agreements = [], []
        for record in RunDir(votes_run).iter_records():
            texts = [record["teacher_response"], *(s["text"] for s in record["samples"])]
            answer, agreement = majority_answer(texts)
            agreements.append(agreement)
            if answer is not None and agreement >= syn.min_agreement:
                row = {k: v for k, v in record.items() if k not in ("id", "messages", "samples", "provenance")}
                kept_rows.append(dict(row, reference=answer, agreement=round(agreement, 3)))
        mean = round(sum(agreements) / len(agreements), 4) if agreements else None
        return kept_rows, {"syn_candidates": len(rows), "syn_agreement": mean}


def majority_answer(texts: list[str]) -> tuple[str | None, float]:
    """Self-consistency: the final number most answers give, and the share of all answers that give it."""
    from synthloop.judges.verifiers.math import extract_answer, parse_number

    values: Counter[Fraction] = Counter()
    for text in texts:
        extracted = extract_answer(text or "")
        value = parse_number(extracted) if extracted is not None else None
        if value is not None:
            values[value] += 1
    if not values or not texts:
        return None, 0.0
    value, count = values.most_common(1)[0]
    shown = str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"
    return shown, count / len(texts)


class SelectStage(Stage):
    """The round's examples (verified answers, or the tasks' own worked answers) -> `budget` SFT rows drawn with
    replacement: by STAT-Sel weights (variant sel) or uniformly (uniform, syn). Writes data/sft.jsonl and
    data/selection.jsonl (every example with its skills, weight and times drawn)."""

    name = "select"

    def __init__(self, cfg: StatConfig):
        self.cfg = cfg

    def examples(self, ctx: RoundContext) -> list[dict[str, Any]]:
        from synthloop.loops.judging import iter_judged
        from synthloop.loops.pairs import sft_examples
        from synthloop.synth.base import as_text
        from synthloop.synth.chat import ChatSamples

        cfg = self.cfg
        probe = {normal_form(r["prompt"]) for r in L.probe_tasks(ctx, cfg)} if cfg.probe is not None else set()
        if cfg.response_column is not None:
            program = ChatSamples(template=ctx.config.prompt.template, system=ctx.config.prompt.system)
            out = []
            for row in read_jsonl(Path(ctx.outputs("tasks")["path"])):
                if cfg.response_column not in row:
                    raise ConfigError(f"recipe.response_column: task {row['task_id']} has no column "
                                      f"{cfg.response_column!r} (columns: {', '.join(row)})")
                if normal_form(row["prompt"]) not in probe:
                    out.append({"prompt": list(program.prompt(row)), "task_id": row["task_id"],
                                "completion": [{"role": "assistant", "content": as_text(row[cfg.response_column])}]})
            return out
        out = []
        for record in iter_judged(Path(ctx.outputs("judge")["path"])):
            if normal_form(record["prompt"]) in probe:
                continue
            for example in sft_examples([record], max_per_task=cfg.max_per_task,
                                        include_truncated=cfg.include_truncated):
                out.append({"prompt": example["prompt"], "completion": example["completion"],
                            "task_id": record["task_id"]})
        return out

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        cfg = self.cfg
        if cfg.variant == "syn":
            labels = {r["task_id"]: r["skills"] for r in read_jsonl(Path(ctx.outputs("tasks")["path"]))}
        else:
            labels = L.read_labels(Path(ctx.outputs("label")["files"]["pool"]))
        examples = self.examples(ctx)
        skills = [labels.get(e["task_id"]) or [] for e in examples]
        if cfg.variant == "sel":
            weights = example_weights(skills, _profile(ctx).target)
        else:
            weights = [1.0 / len(examples)] * len(examples) if examples else []
        drawn = weighted_draw(weights, cfg.budget, seed=ctx.seed("select"))
        times = Counter(drawn)
        n = write_jsonl(ctx.dir / "data" / "sft.jsonl", (examples[i] for i in drawn))
        write_jsonl(ctx.dir / "data" / "selection.jsonl", (
            {"task_id": e["task_id"], "skills": s, "weight": round(w, 6), "drawn": times[i]}
            for i, (e, s, w) in enumerate(zip(examples, skills, weights, strict=True))))
        pool, data = skill_shares(skills), skill_shares(skills[i] for i in drawn)
        if not examples:
            ctx.log("select: no verified example this round; the policy stays as it is")
        metrics: dict[str, Any] = {"sft_data": n, "sft_pool": len(examples), "sft_distinct": len(times)}
        metrics.update({f"pool_share_{metric_key(s)}": v for s, v in pool.items()})
        metrics.update({f"sft_share_{metric_key(s)}": v for s, v in data.items()})
        return {"sft": str(ctx.dir / "data" / "sft.jsonl"), "pool_shares": pool, "sft_shares": data,
                "metrics": metrics}


class SkillEvaluateStage(EvaluateStage):
    """The held-out evaluation, plus accuracy per skill (by the held-out tasks' labels)."""

    def __init__(self, cfg: StatConfig):
        self.cfg = cfg

    def run(self, ctx: RoundContext) -> dict[str, Any]:
        from synthloop.loops.judging import iter_judged

        out = super().run(ctx)
        labels = L.read_labels(L.skills_dir(ctx) / "eval.jsonl")
        per_skill = skill_accuracy(iter_judged(ctx.dir / "eval-judged"), labels)
        _dump(ctx.dir / "skills_eval.json", [a.model_dump() for a in per_skill])
        out["skills"] = {a.skill: a.accuracy for a in per_skill}
        out["metrics"].update({f"eval_acc_{metric_key(a.skill)}": a.accuracy for a in per_skill})
        ctx.log("held-out accuracy per skill: " + ", ".join(f"{a.skill} {a.accuracy:.1%} (n={a.tasks})"
                                                            for a in per_skill))
        return out
