"""STAT (skill-targeted training): the profile arithmetic on hand-made records, then the recipe on the tiny
model through every stage: programmatic labels with STAT-Sel against the uniform baseline, STAT-Syn from
the arithmetic generator, and a teacher LLM that lists and labels skills and writes SkillMix tasks.

The tiny model's answers are noise, so these loops are judged by `stat_judges:make`, a real judge whose
verdict depends on the task (it fails most multiplication and division problems): the student is then
missing exactly mul and div, and the tests check that every stage acts on that."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import ROOT, run_cli, write_config
from rich.console import Console

from synthloop.configs import ConfigError
from synthloop.loops import run_loop
from synthloop.loops.config import LoopConfig
from synthloop.loops.recipes.stat.profile import (
    UNLABELED,
    allocate,
    build_profile,
    example_weights,
    skill_accuracy,
    skill_shares,
    weighted_draw,
)
from synthloop.loops.recipes.stat.stages import majority_answer
from synthloop.loops.report import round_table
from synthloop.loops.state import LoopState
from synthloop.runs.jsonl import read_jsonl
from synthloop.runs.run_dir import RunDir
from synthloop.synth.skill_inventory import Skill, SkillInventory

SKILLS = ["add", "sub", "mul", "div"]


@pytest.fixture(autouse=True)
def _test_judge_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])))


def _judged(task_id: str, *accepted: bool) -> dict:
    return {"task_id": task_id, "samples": [{"accepted": a} for a in accepted]}


# -- the arithmetic of the profile ------------------------------------------------------------------
def test_profile_failure_rates_targets_and_missing_skills():
    labels = {"a": ["add"], "b": ["add"], "c": ["mul"], "d": ["mul", "add"], "e": []}
    judged = [_judged("a", True), _judged("b", True), _judged("c", False), _judged("d", False, True),
              _judged("e", False)]
    overall = (0 + 0 + 1 + 0.5 + 1) / 5
    profile = build_profile(judged, labels, ["add", "sub", "mul"], smoothing=1.0, sharpness=1.0, uniform_mix=0.0)
    rates = profile.rates
    assert profile.overall_failure_rate == pytest.approx(overall)
    assert rates["add"] == pytest.approx((0.5 + overall) / 4, abs=1e-4)  # a, b, d (half failed), + prior
    assert rates["mul"] == pytest.approx((1.5 + overall) / 3, abs=1e-4)
    assert rates["sub"] == pytest.approx(overall, abs=1e-4)  # never probed: the average
    assert rates[UNLABELED] == pytest.approx((1 + overall) / 2, abs=1e-4)
    assert profile.missing == ["mul"]  # unlabeled tasks are never a "missing skill"
    assert sum(profile.target.values()) == pytest.approx(1.0, abs=1e-3)
    assert profile.target["mul"] > profile.target["sub"] > profile.target["add"]
    sharp = build_profile(judged, labels, ["add", "sub", "mul"], sharpness=3.0, uniform_mix=0.0)
    assert sharp.target["mul"] > profile.target["mul"]
    flat = build_profile(judged, labels, ["add", "sub", "mul"], uniform_mix=1.0)
    assert set(flat.target.values()) == {0.25}
    with pytest.raises(ValueError, match="probe set is empty"):
        build_profile([], labels, ["add"])
    accuracy = {a.skill: (a.tasks, a.accuracy) for a in skill_accuracy(judged, labels)}
    assert accuracy == {"add": (3, 0.8333), "mul": (2, 0.25), UNLABELED: (1, 0.0)}


def test_sel_weights_meet_the_target_shares_and_draws_are_seeded():
    pool = [["add"]] * 60 + [["sub"]] * 30 + [["mul"]] * 10  # the student's verified answers: few mul
    target = {"add": 0.1, "sub": 0.3, "mul": 0.6}
    weights = example_weights(pool, target)
    assert sum(weights) == pytest.approx(1.0)
    by_skill = {s: sum(w for w, p in zip(weights, pool, strict=True) if p == [s]) for s in target}
    assert by_skill == pytest.approx(target)
    drawn = weighted_draw(weights, 5000, seed=1)
    assert drawn == weighted_draw(weights, 5000, seed=1) != weighted_draw(weights, 5000, seed=2)
    shares = skill_shares(pool[i] for i in drawn)
    assert shares["mul"] == pytest.approx(0.6, abs=0.03) and shares["add"] == pytest.approx(0.1, abs=0.02)
    assert skill_shares(pool) == {"add": 0.6, "sub": 0.3, "mul": 0.1}
    assert example_weights([[], ["add"]], {"add": 0.5, UNLABELED: 0.5}) == pytest.approx([0.5, 0.5])
    assert weighted_draw([], 10, 0) == [] and example_weights([], target) == []
    assert allocate(10, {"a": 0.55, "b": 0.35, "c": 0.1}) == {"a": 6, "b": 3, "c": 1}
    assert sum(allocate(7, {"a": 1, "b": 1, "c": 1}).values()) == 7


def test_self_consistency_majority_reads_final_numbers():
    texts = ["Maya has 12 apples. The answer is 12.", "#### 12", "She has 12.", "The answer is 14.", "no idea"]
    assert majority_answer(texts) == ("12", 0.6)
    assert majority_answer(["The answer is 1/2", "0.5", "3"]) == ("1/2", pytest.approx(2 / 3))
    assert majority_answer(["none", "at all"]) == (None, 0.0)


# -- the recipe on the tiny model -------------------------------------------------------------------
def stat_config(out: Path, recipe: dict, **overrides) -> dict:
    arithmetic = {"kind": "arithmetic", "skills": SKILLS}
    config = {
        "output_dir": str(out),
        "engine": {"kind": "transformers", "model": "tiny-random-chat", "batch_size": 64},
        "tasks": {"train": {**arithmetic, "seed": 1}, "eval": {**arithmetic, "seed": 2}, "eval_count": 12,
                  "per_round": 16},
        "prompt": {"template": "{prompt}\nEnd with: The answer is N."},
        "sampling": {"n": 2, "max_tokens": 8, "temperature": 1.0},
        "eval": {"max_tokens": 8},
        "judges": [{"kind": "python", "factory": "stat_judges:make"}],
        "recipe": {"kind": "stat", "probe": {**arithmetic, "seed": 3}, "probe_count": 24, "budget": 24,
                   "include_truncated": True, **recipe},
        "train": {"plan": ["sft"], "sft": {"max_steps": 2, "batch_size": 4, "learning_rate": 1e-3}},
        "rounds": 1,
        "concurrency": 8,
    }
    config.update(overrides)
    return config


def _run(config: dict, path: Path) -> tuple[dict, dict]:
    summary = run_loop(LoopConfig.model_validate(config), path, progress=False)
    assert summary["status"] == "completed" and summary["rounds_done"] == 1
    return json.loads((path / "state.json").read_text()), summary["rounds"][1]


def _shares(metrics: dict, prefix: str, skills=("mul", "div")) -> float:
    return sum(metrics.get(f"{prefix}_{s}", 0.0) for s in skills)


def test_sel_moves_the_sft_data_toward_missing_skills_with_the_uniform_budget(tmp_path):
    state, sel = _run(stat_config(tmp_path, {"variant": "sel"}), tmp_path / "sel")
    run = tmp_path / "sel"
    assert [(r["round"], list(r["stages"])) for r in state["rounds"]] == [
        (0, ["label", "evaluate"]),
        (1, ["tasks", "label", "probe", "sample", "judge", "select", "train-sft", "evaluate"]),
    ]
    inventory = [line.split(": ", 1)[1] for line in (run / "skills" / "inventory.yaml").read_text().splitlines()
                 if line.startswith("- name: ")]
    assert sorted(inventory) == sorted(SKILLS)
    profile = json.loads((run / "round-001" / "profile.json").read_text())
    assert set(profile["missing"]) == {"mul", "div"} and profile["tasks"] == 24
    assert sel["msp_mul"] > sel["msp_add"] and sel["msp_div"] > sel["msp_sub"]
    # the same budget, drawn toward mul and div
    assert sel["sft_data"] == 24 and sel["sft_examples"] == 24
    assert _shares(sel, "sft_share") > _shares(sel, "pool_share") > 0
    selection = list(read_jsonl(run / "round-001" / "data" / "selection.jsonl"))
    assert sum(r["drawn"] for r in selection) == 24
    assert sum(r["weight"] for r in selection) == pytest.approx(1, abs=1e-4)
    heavy = [r["weight"] for r in selection if set(r["skills"]) & {"mul", "div"}]
    light = [r["weight"] for r in selection if r["skills"] == ["add"]]
    assert heavy and light and min(heavy) > max(light)
    # per-skill accuracy before and after, in the round table and in skills_eval.json
    for m in (state["rounds"][0]["metrics"], sel):
        assert {f"eval_acc_{s}" for s in SKILLS} <= set(m)
        assert m["eval_acc_mul"] < m["eval_acc_add"]  # the judge fails most mul problems
    per_skill = json.loads((run / "round-001" / "skills_eval.json").read_text())
    assert sum(a["tasks"] for a in per_skill) >= 12 and {a["skill"] for a in per_skill} == set(SKILLS)
    console = Console(width=400, record=True)  # `synthloop loop status` shows accuracy per skill
    console.print(round_table(LoopState.load(run / "state.json")))
    header = console.export_text().splitlines()[1]
    assert header.index("held-out acc") < header.index("acc add") and "acc div" in header
    # the unweighted baseline: the same examples (same seeds), the same budget, no weights, no probe
    state_u, uni = _run(stat_config(tmp_path, {"variant": "uniform"}), tmp_path / "uniform")
    assert list(state_u["rounds"][1]["stages"]) == ["tasks", "label", "sample", "judge", "select", "train-sft",
                                                     "evaluate"]
    uniform_selection = list(read_jsonl(tmp_path / "uniform" / "round-001" / "data" / "selection.jsonl"))
    assert [r["task_id"] for r in uniform_selection] == [r["task_id"] for r in selection]
    assert len({r["weight"] for r in uniform_selection}) == 1
    assert uni["sft_data"] == 24 and uni["pool_share_mul"] == sel["pool_share_mul"]
    assert _shares(sel, "sft_share") > _shares(uni, "sft_share")


def test_syn_makes_tasks_for_missing_skills_from_the_generator(tmp_path):
    state, syn = _run(stat_config(tmp_path, {"variant": "syn", "syn": {"oversample": 4}}), tmp_path / "syn")
    run = tmp_path / "syn"
    assert list(state["rounds"][1]["stages"]) == ["probe", "tasks", "sample", "judge", "select", "train-sft",
                                                  "evaluate"]
    profile = json.loads((run / "round-001" / "profile.json").read_text())
    target = {s["skill"]: s["target"] for s in profile["skills"]}
    tasks = list(read_jsonl(run / "round-001" / "tasks.jsonl"))
    assert len(tasks) == 16 and syn["syn_candidates"] == 64 and syn["syn_shortfall"] == 0
    quotas = allocate(16, target)
    assert {s: sum(t["target_skill"] == s for t in tasks) for s in quotas} == quotas
    assert all(t["target_skill"] in t["skills"] for t in tasks)
    assert _shares(syn, "syn_share") > 0.5  # mul and div: the biggest shares of the new tasks
    held_out = {r["prompt"] for r in read_jsonl(run / "eval_tasks.jsonl")} | \
        {r["prompt"] for r in read_jsonl(run / "probe_tasks.jsonl")}
    assert not held_out & {t["prompt"] for t in tasks}
    samples = list(RunDir(run / "round-001" / "samples").iter_records())
    assert sorted(r["task_id"] for r in samples) == sorted(t["task_id"] for t in tasks)
    assert syn["sft_data"] == 24 and syn["sft_examples"] == 24
    # raising `rounds` continues the finished loop: round 2 probes the round-1 checkpoint with new tasks
    summary = run_loop(LoopConfig.model_validate(stat_config(tmp_path, {"variant": "syn"}, rounds=2)), run,
                       progress=False)
    assert summary["rounds_done"] == 2
    state = json.loads((run / "state.json").read_text())
    assert state["rounds"][2]["checkpoint_in"]["policy"].endswith("round-001/train-sft/model")
    assert (run / "round-002" / "profile.json").is_file()
    again = {t["prompt"] for t in read_jsonl(run / "round-002" / "tasks.jsonl")}
    assert len(again) >= 12 and not again & {t["prompt"] for t in tasks}


def test_teacher_labels_skills_and_writes_skillmix_tasks(tmp_path):
    """The tiny model as the teacher, with an inventory file: it labels every task with inventory names only
    (constrained decoding) and writes SkillMix tasks over the profile's missing skills."""
    skills_file = SkillInventory(skills=[Skill(name=s, description=f"the {s} step") for s in SKILLS]).save(
        tmp_path / "skills.yaml")
    recipe = {"variant": "syn", "labels": "teacher", "inventory": str(skills_file),
              "teacher_sampling": {"temperature": 1.0, "max_tokens": 48},
              "syn": {"source": "skillmix", "tasks": 4, "verify": "none", "min_response_words": 1,
                      "writing": {"max_tokens": 64}, "consistency": {"max_tokens": 64},
                      "query_types": ["word problem"]}}
    state, syn = _run(stat_config(tmp_path, recipe), tmp_path / "teacher")
    run = tmp_path / "teacher"
    assert SkillInventory.load(run / "skills" / "inventory.yaml").names() == SKILLS
    for name in ("eval", "probe"):
        labels = list(read_jsonl(run / "skills" / f"{name}.jsonl"))
        assert len(labels) == (12 if name == "eval" else 24)
        assert all(1 <= len(r["skills"]) <= 2 and set(r["skills"]) <= set(SKILLS) for r in labels)
        assert {r["source"] for r in labels} == {"teacher"}
    profile = json.loads((run / "round-001" / "profile.json").read_text())
    mix = SkillInventory.load(run / "round-001" / "syn" / "skills.yaml").names()
    assert set(profile["missing"]) <= set(mix) and len(mix) >= 2
    tasks = list(read_jsonl(run / "round-001" / "tasks.jsonl"))
    assert tasks and all(set(t["skills"]) <= set(mix) and t["reference"] is None for t in tasks)
    assert syn["tasks"] == len(tasks) and syn["sft_data"] == 24
    assert {f"eval_acc_{s}" for s in state["rounds"][0]["stages"]["label"]["outputs"]["shares_eval"]} <= \
        set(state["rounds"][0]["metrics"])


def test_teacher_that_names_no_usable_skill_stops_with_a_clear_error(tmp_path):
    """No inventory given: the teacher lists skills of training tasks (SkillExtraction). The tiny model's lists
    are noise that the skill-name filter rejects, so the loop stops and says how to give the skills instead."""
    recipe = {"variant": "uniform", "labels": "teacher", "inventory_tasks": 4,
              "teacher_sampling": {"temperature": 1.0, "max_tokens": 48}}
    with pytest.raises(ConfigError, match=r"teacher named no usable skill .* recipe\.inventory"):
        run_loop(LoopConfig.model_validate(stat_config(tmp_path, recipe)), tmp_path / "extract", progress=False)
    assert RunDir(tmp_path / "extract" / "skills" / "extract").manifest()["counts"]["filtered"] == 4


def test_config_errors_are_one_line(tmp_path):
    config = stat_config(tmp_path, {"variant": "sel"})
    del config["recipe"]["probe"]
    result = run_cli("loop", str(write_config(tmp_path / "bad.yaml", config)))
    assert result.returncode == 2 and "needs a probe set" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    config = stat_config(tmp_path, {"variant": "sel"}, train={"plan": ["dpo"]}, sampling={"n": 2})
    with pytest.raises(ValueError, match="recipe stat trains with SFT"):
        run_loop(LoopConfig.model_validate(config), tmp_path / "dpo", progress=False)
